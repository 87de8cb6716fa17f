//! The high-availability proofs of issue 6: each runs the real binary
//! (mostly under the load generator of `common::load`, counting every
//! request) and asserts counts and bounded waits, never durations. The
//! proofs take turns, so that their load and timers do not starve each
//! other on a busy machine.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::load::Load;
use common::{Scratch, Server, TIMEOUT, header, is_alive, sample_site, signal_pid};

/// Held by each proof for its whole run.
static TURN: Mutex<()> = Mutex::new(());

/// A proof's turn; prints how long the proof ran when it ends (for the
/// record, never asserted).
struct Turn {
    _lock: std::sync::MutexGuard<'static, ()>,
    name: &'static str,
    start: Instant,
}

impl Drop for Turn {
    fn drop(&mut self) {
        eprintln!("{}: ran {:?}", self.name, self.start.elapsed());
    }
}

fn take_turn(name: &'static str) -> Turn {
    Turn {
        _lock: TURN
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        name,
        start: Instant::now(),
    }
}

/// Waits (bounded) until the master has `n` workers again, none of them in
/// `gone`.
fn wait_for_pool(server: &Server, n: usize, gone: &[u32]) -> Vec<u32> {
    wait_for_pool_within(server, n, gone, TIMEOUT)
}

fn wait_for_pool_within(server: &Server, n: usize, gone: &[u32], bound: Duration) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let now = server.workers();
        if now.len() == n && !now.iter().any(|p| gone.contains(p)) {
            return now;
        }
        assert!(start.elapsed() < bound, "pool not back: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits (bounded) until `pid` is reaped: no process, not even a zombie.
fn wait_until_reaped(pid: u32, bound: Duration) {
    let start = Instant::now();
    while std::path::Path::new(&format!("/proc/{pid}")).exists() {
        assert!(start.elapsed() < bound, "process {pid} not reaped");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The stderr lines holding `text`.
fn lines_with(server: &Server, text: &str) -> Vec<String> {
    server
        .stderr()
        .lines()
        .filter(|l| l.contains(text))
        .map(str::to_owned)
        .collect()
}

#[test]
fn killing_a_random_worker_every_second_loses_no_request() {
    let _turn = take_turn("killing_a_random_worker_every_second_loses_no_request");
    let server = Server::start(&sample_site(), &["--workers", "3"]);
    let load = Load::start(server.addr, "/hello.txt", 8);
    load.wait_for_progress(100);
    let mut killed = Vec::new();
    // A cheap pseudo-random choice; the seed varies per run.
    let mut seed = u64::from(std::process::id()) | 1;
    for _ in 0..10 {
        let workers = server.workers();
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let victim = workers[usize::try_from(seed % 3).unwrap() % workers.len()];
        signal_pid(victim, "KILL");
        killed.push(victim);
        std::thread::sleep(Duration::from_secs(1));
    }
    wait_for_pool(&server, 3, &killed);
    load.wait_for_progress(100);
    let tally = load.stop();
    assert_eq!(tally.failed, 0, "{tally:?}");
    assert!(tally.ok > 1000, "{tally:?}");
    eprintln!("{tally:?}");
}

#[test]
fn a_stopped_worker_is_killed_by_the_watchdog_and_replaced_while_the_others_serve() {
    let _turn =
        take_turn("a_stopped_worker_is_killed_by_the_watchdog_and_replaced_while_the_others_serve");
    let server = Server::start(
        &sample_site(),
        &["--workers", "3", "--watchdog-timeout", "3s"],
    );
    let load = Load::start(server.addr, "/hello.txt", 8);
    load.wait_for_progress(100);
    let victim = server.workers()[0];
    signal_pid(victim, "STOP");
    let stopped = Instant::now();
    // The other workers keep serving while the stopped one hangs.
    load.wait_for_progress(200);
    assert!(
        is_alive(victim),
        "killed before the load was seen to progress"
    );
    // SIGKILL ends a stopped process too; the master reaps it.
    wait_until_reaped(victim, Duration::from_secs(15));
    let pool = wait_for_pool(&server, 3, &[victim]);
    assert!(
        stopped.elapsed() < Duration::from_secs(15),
        "replaced only after {:?}",
        stopped.elapsed()
    );
    let killed = lines_with(&server, &format!("(pid {victim}) sent no heartbeat for "));
    assert_eq!(killed.len(), 1, "{}", server.stderr());
    assert!(
        killed[0].contains("[error]") && killed[0].contains("(watchdog timeout 3s); killing it"),
        "{}",
        killed[0]
    );
    server.wait_for_log(&format!(
        "(pid {victim}) was killed by signal 9; restarting it"
    ));
    load.wait_for_progress(100);
    let tally = load.stop();
    eprintln!("{tally:?}; pool {pool:?}");
    assert_eq!(tally.failed, 0, "{tally:?}");
    // Only the stopped worker was replaced.
    assert_eq!(lines_with(&server, "sent no heartbeat").len(), 1);
}

#[test]
fn three_hups_in_a_row_lose_no_request_and_leave_exactly_a_new_generation() {
    let _turn = take_turn("three_hups_in_a_row_lose_no_request_and_leave_exactly_a_new_generation");
    let server = Server::start(&sample_site(), &["--workers", "3"]);
    let load = Load::start(server.addr, "/hello.txt", 8);
    load.wait_for_progress(100);
    let first = server.workers();
    // Each HUP as soon as the previous generation serves: its old one is
    // still retiring, so the reload is queued behind it.
    for generation in 2..=4 {
        server.signal("HUP");
        server.wait_for_log(&format!("generation {generation} serving (3 workers)"));
        load.wait_for_progress(50);
    }
    // Every worker of generations 1 to 3 retires: 9 of them.
    let start = Instant::now();
    let retired: HashSet<u32> = loop {
        let pids: HashSet<u32> = lines_with(&server, "; retired")
            .iter()
            .filter_map(|l| l.split("(pid ").nth(1)?.split(')').next()?.parse().ok())
            .collect();
        if pids.len() >= 9 {
            break pids;
        }
        assert!(start.elapsed() < TIMEOUT, "{}", server.stderr());
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(retired.len(), 9, "{}", server.stderr());
    assert!(first.iter().all(|p| retired.contains(p)), "{first:?}");
    let gone: Vec<u32> = retired.iter().copied().collect();
    let pool = wait_for_pool(&server, 3, &gone);
    for pid in &gone {
        assert!(!is_alive(*pid), "old worker {pid} still runs");
    }
    load.wait_for_progress(100);
    let tally = load.stop();
    let queued = lines_with(&server, "reload queued").len();
    eprintln!("{tally:?}; pool {pool:?}; {queued} of 3 reloads queued");
    assert_eq!(tally.failed, 0, "{tally:?}");
    // No worker died on the way: 3 started per generation, no more.
    assert_eq!(
        lines_with(&server, " started").len(),
        12,
        "{}",
        server.stderr()
    );
    assert_eq!(server.workers().len(), 3);
}

/// Fetches `target` on a new connection, reading `chunk` bytes at a time
/// with a pause after each; says on `started` when the head arrived;
/// returns (announced length, body bytes read).
fn slow_download(
    server: &Server,
    target: &str,
    chunk: usize,
    pause: Duration,
    started: &std::sync::mpsc::Sender<()>,
) -> (usize, usize) {
    let mut stream = server.connect();
    stream
        .write_all(format!("GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
        .unwrap();
    let mut buf = vec![0u8; chunk];
    let mut received = Vec::new();
    let (head_len, announced) = loop {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed before the head");
        received.extend_from_slice(&buf[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&received[..end]).into_owned();
            assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
            break (
                end + 4,
                header(&head, "content-length").unwrap().parse().unwrap(),
            );
        }
    };
    started.send(()).unwrap();
    let mut body = received.len() - head_len;
    // Up to the announced length; then the server closes (it is stopping).
    for _ in 0..1_000_000 {
        std::thread::sleep(pause);
        let n = stream.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        body += n;
    }
    (announced, body)
}

#[test]
fn term_lets_two_slow_big_downloads_finish_then_exits_zero() {
    let _turn = take_turn("term_lets_two_slow_big_downloads_finish_then_exits_zero");
    let scratch = Scratch::new("ha-slow");
    let line = "the quick brown fox jumps over the lazy dog 0123456789\n";
    std::fs::write(
        scratch.0.join("big.txt"),
        line.repeat(24 * 1024 * 1024 / line.len()),
    )
    .unwrap();
    let mut server = Server::start(&scratch.0, &["--workers", "2", "--drain-timeout", "60s"]);
    let workers = server.workers();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::scope(|scope| {
        let server = &server;
        let downloads: Vec<_> = (0..2)
            .map(|_| {
                let tx = tx.clone();
                // About 4 MiB/s: several seconds for 24 MiB.
                scope.spawn(move || {
                    let pause = Duration::from_millis(15);
                    slow_download(server, "/big.txt", 64 * 1024, pause, &tx)
                })
            })
            .collect();
        // Both responses have begun.
        for _ in 0..2 {
            rx.recv_timeout(TIMEOUT).unwrap();
        }
        server.signal("TERM");
        server.wait_for_log("stopping gracefully");
        // New connections are refused once every process closed its listener.
        let start = Instant::now();
        while TcpStream::connect(server.addr).is_ok() {
            assert!(start.elapsed() < TIMEOUT, "still accepting after TERM");
            std::thread::sleep(Duration::from_millis(20));
        }
        for download in downloads {
            let (announced, body) = download.join().unwrap();
            eprintln!("download: {body} of {announced} bytes");
            assert!(announced > 24 * 1024 * 1024, "{announced}");
            assert_eq!(body, announced);
        }
    });
    // Bounded by the drain timeout, not by TIMEOUT: the downloads are slow.
    let start = Instant::now();
    let status = loop {
        if let Some(status) = server.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "master still running"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "{}", server.stderr());
    assert!(!server.stderr().contains("drain timeout passed"));
    for pid in workers {
        assert!(!is_alive(pid), "worker {pid} outlived the master");
    }
}

#[test]
fn a_crash_loop_forks_at_most_fifty_workers_and_recovers() {
    let _turn = take_turn("a_crash_loop_forks_at_most_fifty_workers_and_recovers");
    let server = Server::start(&sample_site(), &["--workers", "2"]);
    let first: HashSet<u32> = server.workers().into_iter().collect();
    let mut seen = first.clone();
    let start = Instant::now();
    // Every worker is killed on sight for 5 s, the first two included.
    while start.elapsed() < Duration::from_secs(5) {
        for pid in server.workers() {
            seen.insert(pid);
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let forks = seen.len() - first.len();
    eprintln!("{forks} workers forked (and killed) in 5 s");
    assert!(forks <= 50, "{forks} forks");
    assert!(forks > 0, "the loop never ran");
    server.wait_for_log("restarting it in 400ms");
    let gone: Vec<u32> = seen.into_iter().collect();
    let pool = wait_for_pool_within(&server, 2, &gone, Duration::from_secs(20));
    // Healthy: serving, and still there a moment later.
    let load = Load::start(server.addr, "/hello.txt", 2);
    load.wait_for_progress(50);
    let tally = load.stop();
    eprintln!("{tally:?}; pool {pool:?}");
    assert_eq!(tally.failed, 0, "{tally:?}");
    assert_eq!(server.workers(), pool);
}

#[test]
fn a_worker_that_cannot_open_the_root_stops_txtd_with_exit_code_one() {
    let _turn = take_turn("a_worker_that_cannot_open_the_root_stops_txtd_with_exit_code_one");
    let scratch = Scratch::new("ha-fatal");
    let root = scratch.0.join("root");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("a.txt"), "a\n").unwrap();
    let mut server = Server::start(&root, &["--workers", "2"]);
    let workers = server.workers();
    // The root is replaced by a file; the next worker cannot open it.
    std::fs::remove_dir_all(&root).unwrap();
    std::fs::write(&root, "not a directory\n").unwrap();
    signal_pid(workers[0], "KILL");
    let status = server.wait_exit();
    let stderr = server.stderr();
    assert_eq!(status.code(), Some(1), "{stderr}");
    let fatal = lines_with(&server, "cannot serve (exit code 78); stopping txtd");
    assert_eq!(fatal.len(), 1, "{stderr}");
    assert!(fatal[0].contains("[error]"), "{}", fatal[0]);
    // The worker said why, once: one fork, no storm.
    let why = lines_with(&server, "cannot serve: root ");
    assert_eq!(why.len(), 1, "{stderr}");
    assert!(why[0].contains("Not a directory"), "{}", why[0]);
    assert_eq!(lines_with(&server, " started").len(), 2, "{stderr}");
    assert!(
        !is_alive(workers[1]),
        "the other worker outlived the master"
    );
}

#[test]
fn a_reload_with_a_bad_configuration_keeps_serving_and_a_good_one_applies() {
    let _turn = take_turn("a_reload_with_a_bad_configuration_keeps_serving_and_a_good_one_applies");
    let scratch = Scratch::new("ha-reload");
    let (first, second) = (scratch.0.join("first.log"), scratch.0.join("second.log"));
    let config = scratch.0.join("txtd.toml");
    let key = |path: &std::path::Path| format!("access-log = {:?}\n", path.to_str().unwrap());
    std::fs::write(&config, key(&first)).unwrap();
    let server = Server::start(
        &sample_site(),
        &["--workers", "2", "-c", config.to_str().unwrap()],
    );
    let workers = server.workers();
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
    std::fs::write(&config, "keepalive-timeout = \"soon\"\n").unwrap();
    server.signal("HUP");
    server.wait_for_log("reload failed: ");
    let failed = lines_with(&server, "reload failed: ");
    assert_eq!(failed.len(), 1);
    assert!(
        failed[0].contains("keepalive-timeout")
            && failed[0].ends_with("generation 1 keeps serving"),
        "{}",
        failed[0]
    );
    assert_eq!(server.workers(), workers);
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
    std::fs::write(&config, key(&second)).unwrap();
    server.signal("HUP");
    server.wait_for_log("generation 2 serving (2 workers)");
    wait_for_pool(&server, 2, &workers);
    assert_eq!(server.request("GET", "/unicode.txt").status, 200);
    let start = Instant::now();
    while !std::fs::read_to_string(&second)
        .unwrap_or_default()
        .contains("/unicode.txt")
    {
        assert!(start.elapsed() < TIMEOUT, "the new access log is not used");
        std::thread::sleep(Duration::from_millis(20));
    }
    let old = std::fs::read_to_string(&first).unwrap();
    assert!(
        old.contains("/hello.txt") && !old.contains("/unicode.txt"),
        "{old}"
    );
}

#[test]
fn hups_while_the_old_generation_drains_are_queued_into_one_more_reload() {
    let _turn = take_turn("hups_while_the_old_generation_drains_are_queued_into_one_more_reload");
    let scratch = Scratch::new("ha-queue");
    let line = "the quick brown fox jumps over the lazy dog 0123456789\n";
    std::fs::write(
        scratch.0.join("big.txt"),
        line.repeat(24 * 1024 * 1024 / line.len()),
    )
    .unwrap();
    std::fs::write(scratch.0.join("hello.txt"), "hello\n").unwrap();
    let server = Server::start(&scratch.0, &["--workers", "2"]);
    let load = Load::start(server.addr, "/hello.txt", 4);
    load.wait_for_progress(100);
    // A download that the client stops reading: its worker of generation
    // 1 cannot finish draining until the client reads again.
    let mut download = server.connect();
    download
        .write_all(b"GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut received = vec![0u8; 64 * 1024];
    let n = download.read(&mut received).unwrap();
    received.truncate(n);
    server.signal("HUP");
    server.wait_for_log("generation 2 serving (2 workers)");
    // Apart, so the kernel delivers each on its own.
    server.signal("HUP");
    server.wait_for_log("reload queued until the previous one is done");
    server.signal("HUP");
    server.wait_for_log("reload already queued");
    load.wait_for_progress(100);
    let stderr = server.stderr();
    assert!(!stderr.contains("generation 3"), "{stderr}");
    assert_eq!(lines_with(&server, "; retired").len(), 1, "{stderr}");
    // The client reads again: the response completes, the old worker
    // exits, and the two queued HUPs make one reload.
    download.read_to_end(&mut received).unwrap();
    let end = received.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&received[..end]).into_owned();
    let length: usize = header(&head, "content-length").unwrap().parse().unwrap();
    assert_eq!(received.len() - end - 4, length, "{head}");
    server.wait_for_log("generation 3 serving (2 workers)");
    load.wait_for_progress(100);
    let tally = load.stop();
    eprintln!("{tally:?}");
    assert_eq!(tally.failed, 0, "{tally:?}");
    assert_eq!(
        lines_with(&server, "reloading: ").len(),
        2,
        "{}",
        server.stderr()
    );
    assert!(!server.stderr().contains("generation 4"));
}

#[test]
fn a_watchdog_timeout_under_two_seconds_is_one_line_and_exit_code_one() {
    let _turn = take_turn("a_watchdog_timeout_under_two_seconds_is_one_line_and_exit_code_one");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_txtd"))
        .arg(sample_site())
        .args(["--watchdog-timeout", "1s"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(
        stderr,
        "txtd: watchdog-timeout must be at least 2s, not 1s\n"
    );
}
