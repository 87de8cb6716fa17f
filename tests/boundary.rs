//! The process boundary, through the real binary: proof 8 of the
//! high-availability issue (a fake `NOTIFY_SOCKET` hears READY=1,
//! RELOADING=1 and STOPPING=1; `LISTEN_FDS` activation serves on a socket
//! the test made), the privilege drop of `--user`/`--group`, and the
//! systemd units in contrib/. Sockets at fd 3 are set up by python3 (on
//! the test machines), so no test needs `unsafe`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::{Scratch, Server, TIMEOUT, sample_site};

/// Starts the program after it with a socket at fd 3 and `LISTEN_FDS=1`,
/// `LISTEN_PID` its own pid (exec keeps the pid). MODE `listen`: a
/// listening TCP socket on 127.0.0.1, its port written to PORT_FILE;
/// `file`: a regular file; `bound`: a TCP socket bound but not listening.
const ACTIVATE_PY: &str = r#"
import os, socket, sys
mode, port_file, argv = sys.argv[1], sys.argv[2], sys.argv[3:]
if mode == "file":
    fd = os.open(port_file, os.O_RDWR | os.O_CREAT)
else:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    if mode == "listen":
        s.listen(64)
    with open(port_file, "w") as f:
        f.write(str(s.getsockname()[1]))
    fd = s.fileno()
if fd != 3:
    os.dup2(fd, 3)
os.set_inheritable(3, True)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(argv[0], argv)
"#;

/// A command that runs txtd under [`ACTIVATE_PY`] in `mode`.
fn activated(scratch: &Scratch, mode: &str) -> (Command, PathBuf) {
    let script = scratch.0.join("activate.py");
    std::fs::write(&script, ACTIVATE_PY).unwrap();
    let port_file = scratch.0.join("port");
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(mode)
        .arg(&port_file)
        .arg(env!("CARGO_BIN_EXE_txtd"));
    (command, port_file)
}

/// Runs `command` to its end; returns the exit code and stderr.
fn run_to_end(mut command: Command) -> (Option<i32>, String) {
    let out = command.stdin(Stdio::null()).output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The next datagram on `socket`, as text.
fn receive(socket: &UnixDatagram) -> String {
    let mut buf = [0u8; 1024];
    let n = socket.recv(&mut buf).expect("no notification in time");
    String::from_utf8(buf[..n].to_vec()).unwrap()
}

#[test]
fn a_notify_socket_hears_ready_reloading_and_stopping() {
    let scratch = Scratch::new("notify");
    let path = scratch.0.join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_txtd"));
    command.env("NOTIFY_SOCKET", &path);
    let mut server = Server::start_in(command, &sample_site(), &["--workers", "2"]);

    // READY=1 comes first, once, with the master's pid.
    let ready = receive(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");
    assert!(
        ready
            .lines()
            .any(|l| l == format!("MAINPID={}", server.pid())),
        "{ready:?}"
    );
    assert_eq!(server.request("GET", "/hello.txt").status, 200);

    // A reload is bracketed by RELOADING=1 (with the monotonic time
    // systemd's notify-reload wants) and READY=1.
    server.signal("HUP");
    let reloading = receive(&socket);
    assert!(
        reloading.lines().any(|l| l == "RELOADING=1"),
        "{reloading:?}"
    );
    assert!(
        reloading.lines().any(|l| l.starts_with("MONOTONIC_USEC=")),
        "{reloading:?}"
    );
    let ready = receive(&socket);
    assert!(ready.lines().any(|l| l == "READY=1"), "{ready:?}");

    server.signal("TERM");
    let stopping = receive(&socket);
    assert_eq!(stopping, "STOPPING=1\n");
    assert!(server.wait_exit().success());
}

#[test]
fn listen_fds_activation_serves_on_the_socket_it_was_given() {
    let scratch = Scratch::new("activation");
    let (command, port_file) = activated(&scratch, "listen");
    // The harness adds --listen 127.0.0.1:0: activation replaces it.
    let server = Server::start_in(command, &sample_site(), &["--workers", "2"]);
    let port: u16 = std::fs::read_to_string(&port_file)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(server.addr.port(), port);
    let response = server.request("GET", "/hello.txt");
    assert_eq!(response.status, 200);
    let stderr = server.stderr();
    assert_eq!(stderr.matches("listening on").count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!("listening on 127.0.0.1:{port} (inherited)")),
        "{stderr}"
    );
}

#[test]
fn an_activation_descriptor_that_is_no_listening_socket_is_one_line_and_exit_code_one() {
    for (mode, reason) in [
        ("file", "descriptor 3: Socket operation on non-socket"),
        ("bound", "descriptor 3: not a listening socket"),
    ] {
        let scratch = Scratch::new(&format!("activation-{mode}"));
        let (mut command, _) = activated(&scratch, mode);
        command.arg(sample_site()).args(["--listen", "127.0.0.1:0"]);
        let (code, stderr) = run_to_end(command);
        assert_eq!(code, Some(1), "{mode}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{mode}: {stderr}");
        assert!(
            stderr.starts_with("txtd: LISTEN_FDS: ") && stderr.contains(reason),
            "{mode}: {stderr}"
        );
        assert!(!stderr.contains("worker"), "{mode}: {stderr}");
    }
}

/// The `Uid:` or `Gid:` line of /proc/PID/status, as its four ids.
fn ids(pid: u32, key: &str) -> Vec<u32> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .split_whitespace()
        .map(|id| id.parse().unwrap())
        .collect()
}

/// The status line `key` of /proc/PID/status.
fn status_line(pid: u32, key: &str) -> String {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .unwrap()
        .trim()
        .to_owned()
}

/// The id of `name` in a passwd or group file.
fn id_of(file: &str, name: &str) -> u32 {
    std::fs::read_to_string(file)
        .unwrap()
        .lines()
        .find_map(|l| {
            let mut fields = l.split(':');
            (fields.next() == Some(name)).then(|| fields.nth(1).unwrap().parse().unwrap())
        })
        .unwrap_or_else(|| panic!("no {name} in {file}"))
}

fn is_root() -> bool {
    ids(std::process::id(), "Uid:")[1] == 0
}

/// A site everyone may read, plus one file only root may.
fn world_readable_site(scratch: &Scratch) -> PathBuf {
    let site = scratch.0.join("site");
    std::fs::create_dir_all(&site).unwrap();
    std::fs::write(site.join("page.txt"), "served by nobody").unwrap();
    std::fs::write(site.join("secret.txt"), "root only").unwrap();
    let mode = |path: &Path, mode| {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    mode(&scratch.0, 0o755);
    mode(&site, 0o755);
    mode(&site.join("page.txt"), 0o644);
    mode(&site.join("secret.txt"), 0o600);
    site
}

#[test]
fn workers_drop_to_the_user_and_group_while_the_master_stays_root() {
    if !is_root() {
        eprintln!("not root: the privilege drop cannot be exercised here (CI runs as root)");
        return;
    }
    let uid = id_of("/etc/passwd", "nobody");
    let gid = id_of("/etc/group", "nogroup");
    let scratch = Scratch::new("privileges");
    let site = world_readable_site(&scratch);
    let server = Server::start(
        &site,
        &["--workers", "2", "--user", "nobody", "--group", "nogroup"],
    );
    let workers = server.workers();
    assert_eq!(workers.len(), 2);
    for &worker in &workers {
        assert_eq!(ids(worker, "Uid:"), [uid; 4], "worker {worker}");
        assert_eq!(ids(worker, "Gid:"), [gid; 4], "worker {worker}");
        assert_eq!(status_line(worker, "Groups:"), gid.to_string());
        assert_eq!(status_line(worker, "NoNewPrivs:"), "1");
    }
    assert_eq!(ids(server.pid(), "Uid:"), [0; 4]);
    let page = server.request("GET", "/page.txt");
    assert_eq!(page.status, 200);
    assert!(page.text().contains("served by nobody"));
    // A file only root may read is out of a worker's reach now.
    assert_ne!(server.request("GET", "/secret.txt").status, 200);
}

#[test]
fn user_and_group_errors_are_one_line_and_exit_code_one() {
    let site = sample_site();
    let site = site.to_str().unwrap();
    let txtd = || {
        let mut command = Command::new(env!("CARGO_BIN_EXE_txtd"));
        command.arg(site).args(["--listen", "127.0.0.1:0"]);
        command
    };
    let mut cases: Vec<(Command, &str)> = Vec::new();
    if is_root() {
        let mut unknown_user = txtd();
        unknown_user.args(["--user", "no-such-user-txtd"]);
        cases.push((unknown_user, "txtd: user no-such-user-txtd: no such user"));
        let mut unknown_group = txtd();
        unknown_group.args(["--user", "nobody", "--group", "no-such-group-txtd"]);
        cases.push((
            unknown_group,
            "txtd: group no-such-group-txtd: no such group",
        ));
        // Started as nobody: a privilege drop needs root.
        let mut not_root = Command::new("setpriv");
        not_root
            .args(["--reuid=nobody", "--regid=nogroup", "--clear-groups"])
            .arg(env!("CARGO_BIN_EXE_txtd"))
            .arg(site)
            .args(["--listen", "127.0.0.1:0", "--user", "nobody"]);
        cases.push((
            not_root,
            "txtd: --user and --group need txtd to start as root",
        ));
    } else {
        let mut not_root = txtd();
        not_root.args(["--user", "nobody"]);
        cases.push((
            not_root,
            "txtd: --user and --group need txtd to start as root",
        ));
    }
    for (command, expected) in cases {
        let (code, stderr) = run_to_end(command);
        assert_eq!(code, Some(1), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.starts_with(expected), "{stderr}");
    }
}

#[test]
fn user_and_group_are_configuration_keys_too() {
    if !is_root() {
        eprintln!("not root: --user is refused before the file's keys matter");
        return;
    }
    let scratch = Scratch::new("privileges-config");
    let config = scratch.0.join("txtd.toml");
    std::fs::write(&config, "user = \"nobody\"\ngroup = \"nogroup\"\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_txtd"));
    command
        .arg(sample_site())
        .arg("--config")
        .arg(&config)
        .arg("--check-config");
    let (code, stderr) = run_to_end(command);
    assert_eq!(code, Some(0), "{stderr}");
    std::fs::write(&config, "group = \"no-such-group-txtd\"\n").unwrap();
    let mut command = Command::new(env!("CARGO_BIN_EXE_txtd"));
    command
        .arg(sample_site())
        .arg("--config")
        .arg(&config)
        .arg("--check-config");
    let (code, stderr) = run_to_end(command);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(
        stderr, "txtd: group no-such-group-txtd: no such group\n",
        "{stderr}"
    );
}

/// A unit file's sections, each a map of key to its (last) value.
fn parse_unit(text: &str) -> HashMap<String, HashMap<String, String>> {
    let mut sections: HashMap<String, HashMap<String, String>> = HashMap::new();
    let mut current = None;
    for (number, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            current = Some(name.to_owned());
            sections.entry(name.to_owned()).or_default();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not key=value: {line}", number + 1));
        let section = current.clone().expect("a key before any section");
        sections
            .get_mut(&section)
            .unwrap()
            .insert(key.trim().to_owned(), value.trim().to_owned());
    }
    sections
}

fn contrib(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../contrib")
        .join(name)
}

#[test]
fn the_systemd_units_are_valid_and_say_what_txtd_needs() {
    let service_text = std::fs::read_to_string(contrib("txtd.service")).unwrap();
    let socket_text = std::fs::read_to_string(contrib("txtd.socket")).unwrap();
    let service = parse_unit(&service_text);
    let socket = parse_unit(&socket_text);
    let s = &service["Service"];
    assert_eq!(s["Type"], "notify");
    assert_eq!(s["NotifyAccess"], "main");
    assert_eq!(s["ExecReload"], "/bin/kill -HUP $MAINPID");
    // TERM is the graceful stop; systemd's SIGKILL must come after the
    // drain timeout the service asks for.
    assert_eq!(s["KillSignal"], "SIGTERM");
    assert_eq!(s["KillMode"], "mixed");
    let stop: u64 = s["TimeoutStopSec"]
        .strip_suffix('s')
        .unwrap()
        .parse()
        .unwrap();
    let drain: u64 = s["ExecStart"]
        .split("--drain-timeout ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|d| d.strip_suffix('s'))
        .unwrap()
        .parse()
        .unwrap();
    assert!(stop > drain, "TimeoutStopSec {stop} <= drain {drain}");
    assert_eq!(service["Unit"]["Requires"], "txtd.socket");
    assert!(socket["Socket"].contains_key("ListenStream"));
    assert_eq!(socket["Install"]["WantedBy"], "sockets.target");

    // systemd's own check, with ExecStart pointing at a binary that exists.
    let available = Command::new("systemd-analyze")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        eprintln!("systemd-analyze not installed: checked the keys only");
        return;
    }
    let scratch = Scratch::new("units");
    let service_text = service_text.replace("/usr/local/bin/txtd", env!("CARGO_BIN_EXE_txtd"));
    std::fs::write(scratch.0.join("txtd.service"), service_text).unwrap();
    std::fs::write(scratch.0.join("txtd.socket"), socket_text).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(scratch.0.join("txtd.service"))
        .arg(scratch.0.join("txtd.socket"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("txtd."), "{stderr}");
}
