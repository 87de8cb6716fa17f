//! What `contrib/` ships, checked: the man page and completions equal what
//! the binary prints now; the units pass `systemd-analyze verify`, HAProxy's
//! `-c`, logrotate's `--debug`; the Kubernetes manifest is valid YAML with
//! the probes and grace period txtd needs. Missing checkers skip, with a line.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use yaml_rust2::{Yaml, YamlLoader};

fn contrib(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib")
        .join(name)
}

/// What `txtd ARGS` prints on stdout; it must exit 0.
fn txtd_prints(args: &[&str]) -> Vec<u8> {
    let out = Command::new(env!("CARGO_BIN_EXE_txtd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// Whether `program --version` runs.
fn installed(program: &str) -> bool {
    Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn the_man_page_and_completions_are_what_the_binary_prints_now() {
    let regenerate = "regenerate with: txtd --print-man > contrib/txtd.1; \
txtd --print-completions bash > contrib/completions/txtd.bash (zsh: _txtd, fish: txtd.fish)";
    let man = txtd_prints(&["--print-man"]);
    // As text, so that a stale page shows which lines differ.
    assert_eq!(
        std::fs::read_to_string(contrib("txtd.1")).unwrap(),
        String::from_utf8_lossy(&man),
        "{regenerate}"
    );
    let text = String::from_utf8(man).unwrap();
    // Every flag of --help is in the page.
    for flag in [
        "admin\\-listen",
        "admin\\-allow\\-remote",
        "access\\-log\\-format",
        "watchdog\\-timeout",
        "print\\-completions",
    ] {
        assert!(text.contains(flag), "{flag} not in the man page");
    }
    for (shell, file, mark) in [
        ("bash", "completions/txtd.bash", "complete -F _txtd"),
        ("zsh", "completions/_txtd", "#compdef txtd"),
        ("fish", "completions/txtd.fish", "complete -c txtd"),
    ] {
        let printed = txtd_prints(&["--print-completions", shell]);
        assert_eq!(
            std::fs::read(contrib(file)).unwrap(),
            printed,
            "{regenerate}"
        );
        let printed = String::from_utf8(printed).unwrap();
        assert!(printed.contains(mark), "{shell}");
        assert!(printed.contains("admin-listen"), "{shell}");
    }
}

/// A unit file's sections: each key with all its values, in order.
fn parse_unit(text: &str) -> HashMap<String, HashMap<String, Vec<String>>> {
    let mut sections: HashMap<String, HashMap<String, Vec<String>>> = HashMap::new();
    let mut current = String::new();
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = name.to_owned();
            continue;
        }
        let (key, value) = line.split_once('=').unwrap_or_else(|| panic!("{line}"));
        sections
            .entry(current.clone())
            .or_default()
            .entry(key.to_owned())
            .or_default()
            .push(value.to_owned());
    }
    sections
}

#[test]
fn the_hardened_unit_sandboxes_txtd_and_passes_systemd_analyze() {
    let text = std::fs::read_to_string(contrib("txtd-hardened.service")).unwrap();
    let unit = parse_unit(&text);
    let s = &unit["Service"];
    let one = |key: &str| {
        let values = s.get(key).unwrap_or_else(|| panic!("no {key}="));
        assert_eq!(values.len(), 1, "{key}");
        values[0].as_str()
    };
    assert_eq!(one("ProtectSystem"), "strict");
    assert_eq!(one("NoNewPrivileges"), "yes");
    assert_eq!(one("PrivateTmp"), "yes");
    assert_eq!(one("ProtectHome"), "yes");
    assert_eq!(one("CapabilityBoundingSet"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("AmbientCapabilities"), "CAP_NET_BIND_SERVICE");
    assert_eq!(one("Type"), "notify");
    assert_eq!(one("KillSignal"), "SIGTERM");
    let exec = one("ExecStart");
    // The root it serves is read-only, and the logs and pid file live in
    // the only writable directories.
    let root = exec.split_whitespace().last().unwrap();
    assert_eq!(one("ReadOnlyPaths"), root);
    assert!(exec.contains("/var/log/txtd/") && one("LogsDirectory") == "txtd");
    assert!(exec.contains("--pid-file /run/txtd/") && one("RuntimeDirectory") == "txtd");
    assert!(exec.contains("--admin-listen 127.0.0.1:"), "{exec}");
    // No root master here: nothing to drop privileges from.
    assert!(!exec.contains("--user"), "{exec}");
    let stop: u64 = one("TimeoutStopSec").trim_end_matches('s').parse().unwrap();
    let drain: u64 = exec
        .split("--drain-timeout ")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|d| d.strip_suffix('s'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stop > drain, "TimeoutStopSec {stop} <= drain {drain}");

    if !installed("systemd-analyze") {
        eprintln!("systemd-analyze not installed: checked the keys only");
        return;
    }
    let dir = std::env::temp_dir().join(format!("txtd-contrib-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("txtd.service");
    std::fs::write(
        &path,
        text.replace("/usr/local/bin/txtd", env!("CARGO_BIN_EXE_txtd")),
    )
    .unwrap();
    // Documentation=man:txtd(1) is installed with the package, not here.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("txtd.service"), "{stderr}");
}

#[test]
fn the_haproxy_configuration_checks_healthz_and_retries_elsewhere() {
    let text = std::fs::read_to_string(contrib("haproxy.cfg")).unwrap();
    for line in [
        "option httpchk",
        "http-check send meth GET uri /healthz",
        "http-check expect status 200",
        "option redispatch",
        "retries 3",
        "retry-on conn-failure empty-response response-timeout",
    ] {
        assert!(text.contains(line), "no {line:?}");
    }
    assert_eq!(text.matches("\n    server txtd").count(), 3);
    if !installed("haproxy") {
        eprintln!("haproxy not installed: checked the lines only");
        return;
    }
    let out = Command::new("haproxy")
        .args(["-c", "-f"])
        .arg(contrib("haproxy.cfg"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_logrotate_snippet_signals_usr1_and_parses() {
    let text = std::fs::read_to_string(contrib("txtd.logrotate")).unwrap();
    assert!(text.contains("--signal=SIGUSR1") && text.contains("kill -USR1"));
    // The files are reopened, never truncated under a writer.
    assert!(text.lines().all(|l| l.trim() != "copytruncate"));
    if !installed("logrotate") {
        eprintln!("logrotate not installed: checked the lines only");
        return;
    }
    let dir = std::env::temp_dir().join(format!("txtd-logrotate-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("txtd");
    std::fs::write(&config, &text).unwrap();
    // --debug: parse and say what would be done, touching nothing.
    let out = Command::new("logrotate")
        .arg("--debug")
        .arg("--state")
        .arg(dir.join("state"))
        .arg(&config)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");
}

/// The mapping value at `key`.
fn at<'a>(yaml: &'a Yaml, key: &str) -> &'a Yaml {
    let value = &yaml[key];
    assert!(!value.is_badvalue(), "no {key}");
    value
}

#[test]
fn the_kubernetes_manifest_probes_healthz_and_outlasts_the_drain() {
    let text = std::fs::read_to_string(contrib("kubernetes.yaml")).unwrap();
    let docs = YamlLoader::load_from_str(&text).expect("valid YAML");
    assert_eq!(docs.len(), 2);
    let deployment = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Deployment"))
        .unwrap();
    let service = docs
        .iter()
        .find(|d| d["kind"].as_str() == Some("Service"))
        .unwrap();
    let pod = at(at(at(deployment, "spec"), "template"), "spec");
    let container = &at(pod, "containers")[0];
    let args: Vec<&str> = at(container, "args")
        .as_vec()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    let arg = |flag: &str| {
        let i = args
            .iter()
            .position(|a| *a == flag)
            .unwrap_or_else(|| panic!("no {flag}"));
        args[i + 1]
    };
    let admin_port: i64 = arg("--admin-listen")
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let ports = at(container, "ports").as_vec().unwrap();
    let port_of = |name: &str| {
        ports
            .iter()
            .find(|p| p["name"].as_str() == Some(name))
            .and_then(|p| p["containerPort"].as_i64())
            .unwrap()
    };
    assert_eq!(port_of("admin"), admin_port);
    for probe in ["readinessProbe", "livenessProbe"] {
        let get = at(at(container, probe), "httpGet");
        assert_eq!(at(get, "path").as_str(), Some("/healthz"), "{probe}");
        assert_eq!(at(get, "port").as_str(), Some("admin"), "{probe}");
    }
    let pause = at(
        at(at(at(container, "lifecycle"), "preStop"), "sleep"),
        "seconds",
    )
    .as_i64()
    .unwrap();
    let drain: i64 = arg("--drain-timeout")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    let grace = at(pod, "terminationGracePeriodSeconds").as_i64().unwrap();
    assert!(grace > pause + drain, "grace {grace} <= {pause} + {drain}");
    // The Service sends traffic to the site's port, never the admin one.
    let targets: Vec<&str> = at(at(service, "spec"), "ports")
        .as_vec()
        .unwrap()
        .iter()
        .map(|p| p["targetPort"].as_str().unwrap())
        .collect();
    assert_eq!(targets, ["http"]);
    assert_eq!(
        at(at(service, "spec"), "selector"),
        at(at(at(deployment, "spec"), "selector"), "matchLabels")
    );
}

#[test]
fn the_admin_socket_unit_names_its_socket_admin_for_txtd_service() {
    let text = std::fs::read_to_string(contrib("txtd-admin.socket")).unwrap();
    let unit = parse_unit(&text);
    let socket = &unit["Socket"];
    assert_eq!(socket["FileDescriptorName"], ["admin"]);
    assert_eq!(socket["Service"], ["txtd.service"]);
    assert!(socket["ListenStream"][0].starts_with("127.0.0.1:"));
    if !installed("systemd-analyze") {
        eprintln!("systemd-analyze not installed: checked the keys only");
        return;
    }
    // As its comment says: txtd.service with Sockets= naming both units.
    let dir = std::env::temp_dir().join(format!("txtd-admin-socket-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let service = std::fs::read_to_string(contrib("txtd.service"))
        .unwrap()
        .replace("/usr/local/bin/txtd", env!("CARGO_BIN_EXE_txtd"))
        .replace(
            "[Service]\n",
            "[Service]\nSockets=txtd.socket txtd-admin.socket\n",
        );
    std::fs::write(dir.join("txtd.service"), service).unwrap();
    std::fs::copy(contrib("txtd.socket"), dir.join("txtd.socket")).unwrap();
    std::fs::write(dir.join("txtd-admin.socket"), &text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(dir.join("txtd.service"))
        .arg(dir.join("txtd.socket"))
        .arg(dir.join("txtd-admin.socket"))
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("txtd"), "{stderr}");
}
