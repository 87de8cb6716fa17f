//! The admin interface and the access log through the real binary: each
//! endpoint's content, `/metrics` parsed and checked as it changes, 503
//! during a drain, the admin socket across HUP, USR2 and socket activation,
//! JSON lines and USR1 with the buffered writer. Loopback, bounded, by pid.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    Scratch, Server, TIMEOUT, get, is_alive, sample_site, signal_pid, try_get, wait_for_file,
};

/// The started server and its admin address.
fn start(extra: &[&str]) -> (Server, SocketAddr) {
    let mut args = vec!["--admin-listen", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = Server::start(&sample_site(), &args);
    let admin = server.admin_addr();
    wait_healthy(admin);
    (server, admin)
}

/// Waits (bounded) until `/healthz` answers 200 (the pool served once).
fn wait_healthy(admin: SocketAddr) {
    let start = Instant::now();
    while try_get(admin, "/healthz").map(|r| r.status) != Some(200) {
        assert!(start.elapsed() < TIMEOUT, "/healthz never said 200");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// `/metrics`, parsed by the `prometheus-parse` crate: (name, labels) to
/// value, and name to type.
struct Metrics {
    values: HashMap<(String, String), f64>,
    types: HashMap<String, String>,
    docs: HashMap<String, String>,
}

impl Metrics {
    fn scrape(admin: SocketAddr) -> Self {
        let response = get(admin, "/metrics");
        assert_eq!(response.status, 200);
        assert_eq!(
            response.header("content-type"),
            Some("text/plain; version=0.0.4; charset=utf-8")
        );
        let text = response.text();
        let lines = text.lines().map(|l| Ok(l.to_owned()));
        let scrape = prometheus_parse::Scrape::parse(lines).expect("valid exposition");
        let mut values = HashMap::new();
        for sample in &scrape.samples {
            let mut labels: Vec<String> = sample
                .labels
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            labels.sort();
            let value = match sample.value {
                prometheus_parse::Value::Counter(v)
                | prometheus_parse::Value::Gauge(v)
                | prometheus_parse::Value::Untyped(v) => v,
                ref other => panic!("{}: unexpected {other:?}", sample.metric),
            };
            values.insert((sample.metric.clone(), labels.join(",")), value);
        }
        let types = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split_once(' '))
            .map(|(n, t)| (n.to_owned(), t.to_owned()))
            .collect();
        Self {
            values,
            types,
            docs: scrape.docs,
        }
    }

    fn get(&self, name: &str, labels: &str) -> f64 {
        *self
            .values
            .get(&(name.to_owned(), labels.to_owned()))
            .unwrap_or_else(|| panic!("no {name}{{{labels}}}"))
    }
}

/// `/status?auto` as key to value.
fn status_auto(admin: SocketAddr) -> HashMap<String, String> {
    let response = get(admin, "/status?auto");
    assert_eq!(response.status, 200);
    response
        .text()
        .lines()
        .map(|l| {
            let (k, v) = l.split_once(": ").unwrap_or_else(|| panic!("{l}"));
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

#[test]
fn healthz_status_and_metrics_describe_the_running_pool() {
    let (server, admin) = start(&["--workers", "2"]);
    let health = get(admin, "/healthz");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    assert_eq!(health.header("connection"), Some("close"));

    let workers = server.workers();
    let auto = status_auto(admin);
    assert_eq!(auto["MasterPID"], server.pid().to_string());
    assert_eq!(auto["Health"], "ok");
    assert_eq!(
        (
            auto["Generation"].as_str(),
            auto["ConfiguredWorkers"].as_str()
        ),
        ("1", "2")
    );
    let busy: u32 = auto["BusyWorkers"].parse().unwrap();
    let idle: u32 = auto["IdleWorkers"].parse().unwrap();
    assert_eq!(busy + idle, 2, "{auto:?}");
    // Two generations' worth of slots; this one fills the first two.
    assert_eq!(auto["Scoreboard"].len(), 4, "{auto:?}");
    let slot_pids: Vec<u32> = auto
        .iter()
        .filter(|(k, _)| k.starts_with("Slot"))
        .map(|(_, v)| v.split_whitespace().next().unwrap())
        .map(|pid| pid.strip_prefix("pid=").unwrap().parse().unwrap())
        .collect();
    let mut sorted = workers.clone();
    sorted.sort_unstable();
    let mut slot_sorted = slot_pids.clone();
    slot_sorted.sort_unstable();
    assert_eq!(slot_sorted, sorted);
    // The page is answered by a worker, never by the master.
    let answering: u32 = auto["AnsweringPID"].parse().unwrap();
    assert!(
        workers.contains(&answering),
        "{answering} not in {workers:?}"
    );

    let html = get(admin, "/status");
    assert_eq!(
        html.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let page = html.text();
    assert!(page.starts_with("<!DOCTYPE html>"), "{page}");
    assert_eq!(
        page.matches("<tr><td>").count(),
        4,
        "one row per slot: {page}"
    );
    for pid in &workers {
        assert!(
            page.contains(&format!("<td>{pid}</td><td>1</td>")),
            "{pid}: {page}"
        );
    }

    let metrics = Metrics::scrape(admin);
    for (name, kind) in &metrics.types {
        assert!(name.starts_with("txtd_"), "{name}");
        assert_eq!(kind == "counter", name.ends_with("_total"), "{name} {kind}");
        let family = name.strip_suffix("_total").unwrap_or(name);
        assert!(
            metrics.docs.contains_key(family) || metrics.docs.contains_key(name.as_str()),
            "no HELP for {name}"
        );
    }
    for name in [
        "txtd_http_requests_total",
        "txtd_http_sent_bytes_total",
        "txtd_open_connections",
        "txtd_workers",
        "txtd_worker_restarts_total",
        "txtd_reloads_total",
        "txtd_upgrades_total",
        "txtd_slot_evictions_total",
        "txtd_http_request_timeouts_total",
    ] {
        assert!(metrics.types.contains_key(name), "no {name}");
    }
    assert_eq!(
        metrics.get("txtd_workers", "state=idle") + metrics.get("txtd_workers", "state=busy"),
        2.0
    );
    assert_eq!(metrics.get("txtd_healthy", ""), 1.0);
    assert_eq!(get(admin, "/nope").status, 404);
}

#[test]
fn metrics_count_requests_by_class_restarts_by_signal_and_reloads() {
    let (server, admin) = start(&["--workers", "2"]);
    let before = Metrics::scrape(admin);
    let ok = before.get("txtd_http_requests_total", "class=2xx");
    let not_found = before.get("txtd_http_requests_total", "class=4xx");
    let bytes = before.get("txtd_http_sent_bytes_total", "");
    let mut body_bytes = 0;
    for _ in 0..20 {
        let r = server.request("GET", "/hello.txt");
        assert_eq!(r.status, 200);
        body_bytes += r.body.len();
    }
    for _ in 0..3 {
        assert_eq!(server.request("GET", "/no-such-file.txt").status, 404);
    }
    // Admin requests are not the site's: they count nowhere.
    let after = Metrics::scrape(admin);
    assert_eq!(
        after.get("txtd_http_requests_total", "class=2xx"),
        ok + 20.0
    );
    assert_eq!(
        after.get("txtd_http_requests_total", "class=4xx"),
        not_found + 3.0
    );
    assert_eq!(after.get("txtd_http_requests_total", "class=5xx"), 0.0);
    let sent = after.get("txtd_http_sent_bytes_total", "") - bytes;
    assert!(
        sent > body_bytes as f64,
        "{sent} bytes for {body_bytes} of bodies"
    );

    // A worker killed by a signal: one restart by signal, and its counts
    // stay in the totals.
    let workers = server.workers();
    signal_pid(workers[0], "KILL");
    let start = Instant::now();
    loop {
        let now = server.workers();
        if now.len() == 2 && !now.contains(&workers[0]) {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "worker not replaced");
        std::thread::sleep(Duration::from_millis(20));
    }
    wait_until(|| {
        let m = Metrics::scrape(admin);
        m.get("txtd_workers", "state=idle") + m.get("txtd_workers", "state=busy") == 2.0
    });
    let killed = Metrics::scrape(admin);
    assert_eq!(
        killed.get("txtd_worker_restarts_total", "cause=signal"),
        1.0
    );
    assert_eq!(killed.get("txtd_worker_restarts_total", "cause=exit"), 0.0);
    assert_eq!(
        killed.get("txtd_worker_restarts_total", "cause=watchdog"),
        0.0
    );
    assert_eq!(
        killed.get("txtd_http_requests_total", "class=2xx"),
        ok + 20.0
    );

    // A reload: one more, a new generation, and the totals carry on.
    server.signal("HUP");
    server.wait_for_log("generation 2 serving");
    wait_until(|| status_auto(admin)["DrainingWorkers"] == "0");
    let reloaded = Metrics::scrape(admin);
    assert_eq!(reloaded.get("txtd_reloads_total", ""), 1.0);
    assert_eq!(reloaded.get("txtd_generation", ""), 2.0);
    assert_eq!(
        reloaded.get("txtd_http_requests_total", "class=2xx"),
        ok + 20.0
    );
    assert_eq!(
        reloaded.get("txtd_http_requests_total", "class=4xx"),
        not_found + 3.0
    );
    assert!(
        reloaded.get("txtd_http_sent_bytes_total", "")
            >= after.get("txtd_http_sent_bytes_total", "")
    );
    // Retired workers are not restarts.
    assert_eq!(
        reloaded.get("txtd_worker_restarts_total", "cause=signal"),
        1.0
    );
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
    wait_until(|| Metrics::scrape(admin).get("txtd_http_requests_total", "class=2xx") == ok + 21.0);
}

/// Waits (bounded) until `done` holds.
#[track_caller]
fn wait_until(mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < TIMEOUT, "condition not met in time");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn healthz_says_503_while_a_stop_drains_a_slow_download() {
    let scratch = Scratch::new("admin-drain");
    let line = "the quick brown fox jumps over the lazy dog 0123456789\n";
    std::fs::write(
        scratch.0.join("big.txt"),
        line.repeat(24 * 1024 * 1024 / line.len()),
    )
    .unwrap();
    let mut server = Server::start(
        &scratch.0,
        &[
            "--workers",
            "2",
            "--admin-listen",
            "127.0.0.1:0",
            "--drain-timeout",
            "60s",
        ],
    );
    let admin = server.admin_addr();
    wait_healthy(admin);
    // A download the client does not read yet: the worker cannot finish it.
    let mut download = server.connect();
    download
        .write_all(b"GET /big.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    let n = download.read(&mut first).unwrap();
    assert!(first[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));

    server.signal("TERM");
    server.wait_for_log("stopping gracefully");
    let health = get(admin, "/healthz");
    assert_eq!((health.status, health.text().as_str()), (503, "stopping\n"));
    // Still 503 however often it is asked, while the download lasts.
    for _ in 0..5 {
        assert_eq!(get(admin, "/healthz").status, 503);
    }
    // The idle worker exits at once; the one sending drains, and answers
    // the admin interface until it exits.
    wait_until(|| {
        let board = status_auto(admin)["Scoreboard"].clone();
        board.matches('G').count() == 1 && board.matches('.').count() == 3
    });
    assert_eq!(status_auto(admin)["Health"], "stopping");
    assert_eq!(Metrics::scrape(admin).get("txtd_healthy", ""), 0.0);
    // The site's listeners are closed meanwhile.
    wait_until(|| TcpStream::connect(server.addr).is_err());

    // The download finishes whole; then the master exits 0.
    let mut rest = Vec::new();
    download.read_to_end(&mut rest).unwrap();
    assert!(rest.ends_with(b"</pre>\n</body>\n</html>\n"), "cut short");
    assert!(server.wait_exit().success());
    assert!(try_get(admin, "/healthz").is_none(), "admin still answers");
}

#[test]
fn the_admin_socket_stays_through_hup_and_usr2() {
    let scratch = Scratch::new("admin-upgrade");
    let mut server = Server::start(
        &sample_site(),
        &["--workers", "2", "--admin-listen", "127.0.0.1:0"],
    );
    let admin = server.admin_addr();
    wait_healthy(admin);

    // HUP: the same socket, 200 all along, a second generation.
    server.signal("HUP");
    let start = Instant::now();
    while !server.stderr().contains("generation 2 serving") {
        assert!(start.elapsed() < TIMEOUT, "no reload");
        assert_eq!(get(admin, "/healthz").status, 200);
    }
    assert_eq!(status_auto(admin)["Generation"], "2");

    // USR2: the new master inherits the admin socket by its name, and its
    // workers answer it from their own scoreboard.
    server.signal("USR2");
    let start = Instant::now();
    while !server.stderr().contains("is serving; draining and exiting") {
        assert!(start.elapsed() < Duration::from_secs(20), "no handover");
        assert_eq!(get(admin, "/healthz").status, 200);
    }
    let stderr = server.stderr();
    let new_master: u32 = stderr
        .lines()
        .find_map(|l| l.split(" as pid ").nth(1))
        .and_then(|r| r.split(';').next())
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let _guard = Kill(new_master);
    assert!(
        stderr.contains(&format!(
            "{new_master}: admin interface on {admin} (inherited)"
        )),
        "{stderr}"
    );
    assert!(server.wait_exit().success());
    // Once the old master is gone, every answer is the new one's.
    wait_until(|| status_auto(admin)["MasterPID"] == new_master.to_string());
    for _ in 0..10 {
        let auto = status_auto(admin);
        assert_eq!(auto["MasterPID"], new_master.to_string());
        assert_eq!(
            (auto["Upgrades"].as_str(), auto["Health"].as_str()),
            ("1", "ok")
        );
    }
    assert_eq!(Metrics::scrape(admin).get("txtd_upgrades_total", ""), 1.0);
    assert_eq!(get(server.addr, "/hello.txt").status, 200);
    signal_pid(new_master, "TERM");
    let start = Instant::now();
    while is_alive(new_master) {
        assert!(start.elapsed() < TIMEOUT, "new master still running");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(scratch);
}

/// Kills a process the test caused to start (a new master) by pid.
struct Kill(u32);

impl Drop for Kill {
    fn drop(&mut self) {
        if is_alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

#[test]
fn an_admin_address_that_is_not_loopback_needs_the_opt_in() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_txtd"))
            .args(args)
            .arg(sample_site())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, stderr) = run(&["--admin-listen", "0.0.0.0:0", "--check-config"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("txtd: admin-listen 0.0.0.0:0 is not a loopback address")
            && stderr.contains("--admin-allow-remote"),
        "{stderr}"
    );
    let (code, stderr) = run(&[
        "--admin-listen",
        "0.0.0.0:0",
        "--admin-allow-remote",
        "--check-config",
    ]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stderr) = run(&["--admin-listen", "[::1]:0", "--check-config"]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn json_access_lines_are_valid_json_whatever_the_request_bytes() {
    let scratch = Scratch::new("admin-json");
    let log = scratch.0.join("access.json");
    let server = Server::start(
        &sample_site(),
        &[
            "--access-log",
            log.to_str().unwrap(),
            "--access-log-format",
            "json",
        ],
    );
    let raw = b"GET /hello.txt?q=%22x HTTP/1.1\r\nHost: t\r\nUser-Agent: a \"quoted\" \\ agent \xff\xfe\r\nReferer: http://r/a\tb\r\nConnection: close\r\n\r\n";
    assert!(server.raw(raw).starts_with(b"HTTP/1.1 200 OK\r\n"));
    assert_eq!(server.request("GET", "/no-such-file.txt").status, 404);
    // Each worker writes its own buffer: the two lines may come from two
    // workers, in either order, up to a flush interval apart.
    wait_for_file(&log, "no-such-file");
    let text = wait_for_file(&log, "hello.txt");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    let (first, second) = if lines[0]["status"] == 200 {
        (&lines[0], &lines[1])
    } else {
        (&lines[1], &lines[0])
    };
    assert_eq!(first["request"], "GET /hello.txt?q=%22x HTTP/1.1");
    assert_eq!(first["status"], 200);
    assert_eq!(first["remote_addr"], "127.0.0.1");
    assert_eq!(
        first["user_agent"],
        "a \"quoted\" \\ agent \u{fffd}\u{fffd}"
    );
    assert_eq!(first["referer"], "http://r/a\tb");
    assert_eq!(first["complete"], true);
    assert!(first["body_bytes_sent"].as_u64().unwrap() > 0);
    assert!(first["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(second["status"], 404);
    assert_eq!(second["referer"], serde_json::Value::Null);
}

#[test]
fn usr1_sends_the_buffered_lines_to_the_old_file_and_the_next_to_the_new() {
    let scratch = Scratch::new("admin-usr1");
    let log = scratch.0.join("access.log");
    let rotated = scratch.0.join("access.log.1");
    let server = Server::start(&sample_site(), &["--access-log", log.to_str().unwrap()]);
    // Lines reach the file within the flush interval, with no signal.
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
    wait_for_file(&log, "GET /hello.txt ");
    // A line still in a buffer when the log is rotated lands in the old
    // file: the reopen writes the buffer first.
    assert_eq!(server.request("GET", "/unicode.txt").status, 200);
    std::fs::rename(&log, &rotated).unwrap();
    server.signal("USR1");
    server.wait_for_log("reopened the log files");
    let start = Instant::now();
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("GET /?after")
    {
        assert!(start.elapsed() < TIMEOUT, "nothing reached the new file");
        // Each worker reopens when its own USR1 arrives.
        assert_eq!(server.request("GET", "/?after").status, 200);
        std::thread::sleep(Duration::from_millis(100));
    }
    let old = wait_for_file(&rotated, "GET /unicode.txt ");
    assert!(old.contains("GET /hello.txt "), "{old}");
    let new = std::fs::read_to_string(&log).unwrap();
    assert!(
        !new.contains("/unicode.txt") && !new.contains("/hello.txt"),
        "{new}"
    );
}

/// Binds a site socket and an admin socket on port 0, writes their ports
/// to argv[1], and execs argv[2:] with them as descriptors 3 and 4, named
/// as systemd names two socket units' sockets (`LISTEN_FDNAMES`).
const ACTIVATE_TWO_PY: &str = r#"
import os, socket, sys
ports, argv = sys.argv[1], sys.argv[2:]
socks = []
for fd in (3, 4):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(16)
    os.dup2(s.fileno(), fd)
    os.set_inheritable(fd, True)
    socks.append(s)
with open(ports, "w") as f:
    f.write(" ".join(str(s.getsockname()[1]) for s in socks))
os.environ["LISTEN_FDS"] = "2"
os.environ["LISTEN_FDNAMES"] = "txtd.socket:admin"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(argv[0], argv)
"#;

#[test]
fn a_socket_named_admin_by_socket_activation_is_the_admin_interface() {
    let scratch = Scratch::new("admin-activation");
    let script = scratch.0.join("activate.py");
    std::fs::write(&script, ACTIVATE_TWO_PY).unwrap();
    let ports = scratch.0.join("ports");
    let mut command = Command::new("python3");
    command
        .arg(&script)
        .arg(&ports)
        .arg(env!("CARGO_BIN_EXE_txtd"));
    let server = Server::start_in(command, &sample_site(), &["--workers", "2"]);
    let text = std::fs::read_to_string(&ports).unwrap();
    let (site, admin) = text.split_once(' ').unwrap();
    assert_eq!(server.addr.port().to_string(), site);
    let admin_addr = server.admin_addr();
    assert_eq!(admin_addr.port().to_string(), admin);
    assert!(server.stderr().contains("(inherited): /healthz"));
    wait_healthy(admin_addr);
    assert_eq!(get(admin_addr, "/healthz").text(), "ok\n");
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
    // The admin socket is not a site listener.
    assert_eq!(get(admin_addr, "/hello.txt").status, 404);
    assert_eq!(server.stderr().matches("listening on").count(), 1);
}

#[test]
fn a_request_head_too_slow_counts_as_a_408_and_a_4xx() {
    let (server, admin) = start(&["--workers", "1", "--header-timeout", "1s"]);
    let before = Metrics::scrape(admin);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    assert!(answer.starts_with(b"HTTP/1.1 408 "), "{answer:?}");
    wait_until(|| {
        Metrics::scrape(admin).get("txtd_http_request_timeouts_total", "")
            == before.get("txtd_http_request_timeouts_total", "") + 1.0
    });
    let after = Metrics::scrape(admin);
    assert_eq!(
        after.get("txtd_http_requests_total", "class=4xx"),
        before.get("txtd_http_requests_total", "class=4xx") + 1.0
    );
    assert_eq!(after.get("txtd_slot_evictions_total", ""), 0.0);
}
