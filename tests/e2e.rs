//! End-to-end tests of the real `txtd` binary: started on 127.0.0.1 port 0,
//! driven through plain `TcpStream`s with read timeouts and bounded loops,
//! killed by pid when a test ends. Each test also checks that the server's
//! stderr holds no panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn a_file_is_served_as_an_escaped_html_page() {
    let server = Server::start(&sample_site(), &[]);
    let r = server.request("GET", "/specials.txt");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(r.header("server"), Some("txtd"));
    let text = r.text();
    assert!(text.starts_with("<!DOCTYPE html>"), "{text}");
    assert!(text.contains("<title>specials.txt</title>"));
    assert!(
        text.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;"),
        "{text}"
    );
    assert!(text.contains("Tom &amp; Jerry said &quot;hello&quot; &amp; &#39;goodbye&#39;."));
    assert!(!text.contains("<script>"));
    let r = server.request("GET", "/invalid-utf8.txt");
    let original = std::fs::read(sample_site().join("invalid-utf8.txt")).unwrap();
    assert!(
        r.text().contains(&*String::from_utf8_lossy(&original)),
        "{}",
        r.text()
    );
}

#[test]
fn head_has_exactly_the_headers_of_get_and_no_body() {
    let server = Server::start(&sample_site(), &[]);
    for target in ["/hello.txt", "/", "/big.txt", "/empty.txt", "/nope"] {
        let get = server.request("GET", target);
        let head = server.request("HEAD", target);
        let strip = |h: &str| {
            h.lines()
                .filter(|l| !l.starts_with("Date:"))
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert_eq!(strip(&get.head), strip(&head.head), "{target}");
        assert!(head.body.is_empty());
    }
    let big = server.request("GET", "/big.txt");
    assert_eq!(
        big.body.len(),
        big.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    assert!(big.body.len() > 3 * 1024 * 1024);
}

#[test]
fn a_directory_gets_an_index_and_needs_its_trailing_slash() {
    let server = Server::start(&sample_site(), &[]);
    let r = server.request("GET", "/");
    assert_eq!(r.status, 200);
    let text = r.text();
    let a = text.find("README.txt").unwrap();
    let b = text.find("big.txt").unwrap();
    let n = text.find("notes/").unwrap();
    assert!(a < b && b < n, "{text}");
    assert!(!text.contains(".hidden"), "{text}");
    let r = server.request("GET", "/notes/");
    assert!(r.text().contains(
        "<a href=\"name%20with%20spaces%20%26%20%23%3F.txt\">name with spaces &amp; #?.txt</a>"
    ));
    let r = server.request("GET", "/notes");
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("/notes/"));
    // Hostile targets and names: tests/security (location, listing).
    assert_eq!(server.request("GET", "/.hidden.txt").status, 404);
}

#[test]
fn bad_requests_get_their_status_and_a_log_line() {
    let server = Server::start(&sample_site(), &[]);
    assert_eq!(server.request("GET", "/missing.txt").status, 404);
    let r = server.request("POST", "/hello.txt");
    assert_eq!(r.status, 405);
    assert_eq!(r.header("allow"), Some("GET, HEAD, OPTIONS"));
    let cases: [(Vec<u8>, u16); 6] = [
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000)).into_bytes(),
            414,
        ),
        (
            format!(
                "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
                "X-A: b\r\n".repeat(200)
            )
            .into_bytes(),
            431,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nBad : y\r\n\r\n".to_vec(),
            400,
        ),
        (b"GET / HTTP/1.1\r\n\r\n".to_vec(), 400),
        (b"GET / HTTP/2.0\r\nHost: x\r\n\r\n".to_vec(), 505),
        (b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), 501),
    ];
    for (raw, status) in cases {
        let out = server.raw(&raw);
        let (r, _) = Response::parse(&out, false);
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(&raw[..40]));
        assert!(r.text().contains(&status.to_string()));
    }
    server.wait_for_log("(400)");
}

#[test]
fn one_keep_alive_connection_serves_a_hundred_requests() {
    let server = Server::start(&sample_site(), &[]);
    let mut stream = server.connect();
    for i in 0..100 {
        stream
            .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: test\r\n\r\n")
            .unwrap();
        let r = read_responses(&mut stream, 1).pop().unwrap();
        assert_eq!(r.status, 200, "request {i}");
        assert!(r.text().contains("Hello, world!"));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = Server::start(&sample_site(), &[]);
    let mut stream = server.connect();
    stream
        .write_all(
            b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\nGET /missing HTTP/1.1\r\nHost: t\r\n\r\n\
              HEAD /notes/ HTTP/1.1\r\nHost: t\r\n\r\nGET /notes/first.txt HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
    let responses = read_responses_to(&mut stream, &[false, false, true, false]);
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404, 200, 200]);
    assert!(responses[0].text().contains("Hello"));
    assert!(responses[3].text().contains("First note."));
}

#[test]
fn sixteen_concurrent_clients_are_all_served() {
    let server = Server::start(&sample_site(), &[]);
    let addr = server.addr;
    let clients: Vec<_> = (0..16)
        .map(|_| {
            std::thread::spawn(move || {
                let mut stream = TcpStream::connect(addr).unwrap();
                stream.set_read_timeout(Some(TIMEOUT)).unwrap();
                let mut ok = 0;
                for _ in 0..20 {
                    stream
                        .write_all(b"GET /unicode.txt HTTP/1.1\r\nHost: t\r\n\r\n")
                        .unwrap();
                    let r = read_responses(&mut stream, 1).pop().unwrap();
                    if r.status == 200 && r.text().contains("日本語") {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let total: i32 = clients.into_iter().map(|c| c.join().unwrap()).sum();
    assert_eq!(total, 16 * 20);
}

#[test]
fn the_master_keeps_exactly_n_workers_and_replaces_a_killed_one() {
    let server = Server::start(&sample_site(), &["--workers", "3"]);
    server.wait_for_workers(3);
    let before = server.workers();
    assert_eq!(before.len(), 3);
    let victim = before[0];
    signal_pid(victim, "KILL");
    let start = Instant::now();
    loop {
        let now = server.workers();
        if now.len() == 3 && !now.contains(&victim) {
            break;
        }
        assert!(start.elapsed() < TIMEOUT, "not replaced: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
    server.wait_for_log("killed by signal 9");
}

#[test]
fn term_stops_with_exit_code_zero_and_no_worker_left() {
    let mut server = Server::start(&sample_site(), &[]);
    let workers = server.workers();
    assert_eq!(workers.len(), 2);
    // An idle keep-alive connection must not hold the stop up.
    let mut idle = server.connect();
    idle.write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut idle, 1)[0].status, 200);
    server.signal("TERM");
    let code = server.wait_exit();
    assert_eq!(code.code(), Some(0));
    for pid in workers {
        assert!(!is_alive(pid), "worker {pid} outlived the master");
    }
}

#[test]
fn access_log_lines_are_in_combined_log_format() {
    let scratch = Scratch::new("access");
    let log = scratch.0.join("access.log");
    let server = Server::start(&sample_site(), &["--access-log", log.to_str().unwrap()]);
    let raw = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nUser-Agent: e2e \"agent\"\r\nReferer: http://r/\r\nConnection: close\r\n\r\n";
    let (r, _) = Response::parse(&server.raw(raw), false);
    let start = Instant::now();
    let line = loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break line.to_owned();
        }
        assert!(start.elapsed() < TIMEOUT);
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(line.starts_with("127.0.0.1 - - ["), "{line}");
    let expected = format!(
        "\"GET /hello.txt HTTP/1.1\" 200 {} \"http://r/\" \"e2e \\\"agent\\\"\"",
        r.body.len()
    );
    assert!(line.ends_with(&expected), "{line}");
}

/// Runs the binary to completion and returns (exit code, stderr).
fn run_to_end(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_txtd"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_flags_and_configuration_are_one_line_and_exit_code_one() {
    let site = sample_site();
    let site = site.to_str().unwrap();
    let scratch = Scratch::new("config");
    let bad_key = scratch.0.join("bad-key.toml");
    std::fs::write(&bad_key, "workers = 2\nlisten-on = \"x\"\n").unwrap();
    let bad_value = scratch.0.join("bad-value.toml");
    std::fs::write(&bad_value, "keepalive-timeout = \"soon\"\n").unwrap();
    let hello = format!("{site}/hello.txt");
    for args in [
        vec!["--no-such-flag"],
        vec!["--workers", "zero", site],
        vec!["--workers", "0", site],
        vec!["--listen", "localhost", site],
        vec!["--header-timeout", "ten", site],
        vec!["/no/such/dir"],
        vec![hello.as_str()],
        vec!["-c", bad_key.to_str().unwrap(), site],
        vec!["-c", bad_value.to_str().unwrap(), site],
        vec!["-c", "/no/such/config.toml", site],
    ] {
        let (code, stderr) = run_to_end(&args);
        assert_eq!(code, Some(1), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("txtd: "), "{args:?}: {stderr}");
    }
    let (code, _) = run_to_end(&["--check-config", site]);
    assert_eq!(code, Some(0));
    let (code, _) = run_to_end(&["--help"]);
    assert_eq!(code, Some(0));
}

#[test]
fn an_address_in_use_is_an_error_and_starts_no_worker() {
    let server = Server::start(&sample_site(), &[]);
    let addr = server.addr.to_string();
    let site = sample_site();
    let (code, stderr) = run_to_end(&[site.to_str().unwrap(), "--listen", &addr]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains(&addr) && stderr.contains("in use"),
        "{stderr}"
    );
    assert!(!stderr.contains("worker"), "{stderr}");
}

#[test]
fn a_config_file_sets_keys_and_flags_win() {
    let scratch = Scratch::new("toml");
    let config = scratch.0.join("txtd.toml");
    std::fs::write(
        &config,
        "workers = 3\nkeepalive-timeout = \"2s\"\nmax-conns = 64\n",
    )
    .unwrap();
    let server = Server::start(
        &sample_site(),
        &["-c", config.to_str().unwrap(), "--workers", "1"],
    );
    server.wait_for_workers(1);
    assert_eq!(server.workers().len(), 1);
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
}

#[test]
fn ipv6_loopback_is_served_when_available() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        return; // no IPv6 on this machine
    }
    let server = Server::start(&sample_site(), &["--listen", "[::1]:0"]);
    let stderr = server.stderr();
    let v6: SocketAddr = stderr
        .lines()
        .filter_map(|l| l.split("listening on ").nth(1))
        .filter_map(|r| r.split_whitespace().next()?.parse().ok())
        .find(SocketAddr::is_ipv6)
        .unwrap();
    let mut stream = TcpStream::connect(v6).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    assert_eq!(Response::parse(&out, false).0.status, 200);
}

#[test]
fn a_head_that_never_ends_gets_408_and_a_close() {
    let server = Server::start(&sample_site(), &["--header-timeout", "300ms"]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    let (r, _) = Response::parse(&out, false);
    assert_eq!(r.status, 408);
    assert_eq!(r.header("connection"), Some("close"));
}

#[test]
fn a_graceful_stop_finishes_the_response_in_flight() {
    let mut server = Server::start(&sample_site(), &[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 4096];
    let n = stream.read(&mut first).unwrap();
    assert!(n > 0);
    server.signal("TERM");
    // New connections are refused once every process closed its listener.
    let start = Instant::now();
    while TcpStream::connect(server.addr).is_ok() {
        assert!(start.elapsed() < TIMEOUT, "still accepting after TERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut rest = Vec::new();
    stream.read_to_end(&mut rest).unwrap();
    let mut all = first[..n].to_vec();
    all.extend_from_slice(&rest);
    let (r, after) = Response::parse(&all, false);
    assert_eq!(r.status, 200);
    // The head went out before the stop, so it could not say `close`; the
    // connection closes once the response is complete (read_to_end ended).
    assert_eq!(
        r.body.len(),
        r.header("content-length")
            .unwrap()
            .parse::<usize>()
            .unwrap()
    );
    assert!(after.is_empty());
    let code = server.wait_exit();
    assert_eq!(code.code(), Some(0));
}

#[test]
fn the_pid_file_names_the_master_and_goes_away_on_stop() {
    let scratch = Scratch::new("pid");
    let pid_file = scratch.0.join("txtd.pid");
    let mut server = Server::start(&sample_site(), &["--pid-file", pid_file.to_str().unwrap()]);
    let written = std::fs::read_to_string(&pid_file).unwrap();
    assert_eq!(written.trim(), server.pid().to_string());
    server.signal("INT");
    server.wait_exit();
    assert!(!pid_file.exists());
}

#[test]
fn a_file_that_shrinks_while_sent_ends_the_connection_short() {
    let scratch = Scratch::new("shrink");
    let file = scratch.0.join("long.txt");
    let line = "0123456789 abcdefghijklmnopqrstuvwxyz\n";
    std::fs::write(&file, line.repeat(48 * 1024 * 1024 / line.len())).unwrap();
    let server = Server::start(&scratch.0, &[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /long.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = vec![0u8; 4096];
    let n = stream.read(&mut first).unwrap();
    first.truncate(n);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&file)
        .unwrap()
        .set_len(1000)
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    first.extend_from_slice(&rest);
    let end = first.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&first[..end]).into_owned();
    let announced: usize = header(&head, "content-length").unwrap().parse().unwrap();
    let body = first.len() - end - 4;
    assert!(
        body < announced,
        "sent {body} of {announced} bytes after the file shrank"
    );
}

#[test]
fn a_stop_gives_up_on_a_stuck_client_after_the_drain_timeout() {
    let mut server = Server::start(&sample_site(), &["--drain-timeout", "300ms"]);
    let workers = server.workers();
    // A client that asks for a big page and never reads it.
    let mut stuck = server.connect();
    stuck
        .write_all(b"GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut first = [0u8; 16];
    assert!(stuck.read(&mut first).unwrap() > 0);
    server.signal("TERM");
    let code = server.wait_exit();
    assert_eq!(code.code(), Some(0));
    server.wait_for_log("drain timeout passed");
    for pid in workers {
        assert!(!is_alive(pid), "worker {pid} outlived the master");
    }
}

/// Serves `note.txt` through the page cache, changes it (same length,
/// then longer), and returns how many requests each new version took to
/// show, at most `tries` each, `pause` apart.
fn versions_seen(name: &str, args: &[&str], tries: usize, pause: Duration) -> (usize, usize) {
    let scratch = Scratch::new(name);
    let file = scratch.0.join("note.txt");
    std::fs::write(&file, "first version\n").unwrap();
    let server = Server::start(&scratch.0, args);
    for _ in 0..3 {
        assert!(
            server
                .request("GET", "/note.txt")
                .text()
                .contains("first version")
        );
    }
    let etag = server
        .request("GET", "/note.txt")
        .header("etag")
        .unwrap()
        .to_owned();
    let mut seen = Vec::new();
    // Same length, new bytes: only the modification time tells them apart.
    for text in ["other version\n", "a longer third version\n"] {
        std::thread::sleep(Duration::from_millis(20));
        std::fs::write(&file, text).unwrap();
        let mut requests = 0;
        while requests < tries {
            requests += 1;
            let r = server.request("GET", "/note.txt");
            if r.text().contains(text.trim_end()) {
                assert_ne!(r.header("etag").unwrap(), etag);
                break;
            }
            assert!(r.text().contains("version"), "{}", r.text());
            std::thread::sleep(pause);
        }
        seen.push(requests);
    }
    (seen[0], seen[1])
}

#[test]
fn a_changed_file_is_served_fresh_when_every_request_checks_it() {
    let (first, second) = versions_seen(
        "cache-checked",
        &["--workers", "1", "--page-cache-valid", "0s"],
        1,
        Duration::ZERO,
    );
    assert_eq!((first, second), (1, 1));
}

#[test]
fn a_changed_file_is_served_fresh_once_the_page_cache_checks_it_again() {
    // The default interval is a second: each version shows within a few,
    // not from the first request on.
    let (first, second) = versions_seen(
        "cache-rechecked",
        &["--workers", "1"],
        100,
        Duration::from_millis(50),
    );
    assert!(first < 100 && second < 100, "{first}, {second}");
}

#[test]
fn within_the_check_interval_a_cached_page_is_served_without_looking_at_its_file() {
    let scratch = Scratch::new("cache-valid");
    let file = scratch.0.join("note.txt");
    std::fs::write(&file, "first version\n").unwrap();
    let server = Server::start(&scratch.0, &["--workers", "1", "--page-cache-valid", "1h"]);
    assert!(server.request("GET", "/note.txt").text().contains("first"));
    std::fs::write(&file, "other version\n").unwrap();
    std::fs::remove_file(&file).unwrap();
    for _ in 0..10 {
        let r = server.request("GET", "/note.txt");
        assert_eq!(r.status, 200);
        assert!(r.text().contains("first version"), "{}", r.text());
    }
    // A file never cached is looked up on every request.
    assert_eq!(server.request("GET", "/other.txt").status, 404);
}

#[test]
fn a_page_sent_from_its_memory_file_arrives_whole_in_full_and_in_ranges() {
    let scratch = Scratch::new("page-file");
    // About 90 KiB of page: above the size kept on the heap, so the body
    // goes out with sendfile from the page's memory file.
    let text: String = (0..1500)
        .map(|i| format!("line {i:04}: 1 < 2 && \"x\" > 'y'\n"))
        .collect();
    std::fs::write(scratch.0.join("big.txt"), &text).unwrap();
    let escaped = text
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;");
    let server = Server::start(&scratch.0, &["--workers", "1"]);
    let whole = server.request("GET", "/big.txt");
    assert_eq!(whole.status, 200);
    assert!(whole.text().contains(&escaped));
    assert!(whole.body.len() > 64 * 1024, "{}", whole.body.len());
    // Pipelined far past a small receive buffer, read only once all are
    // sent: sendfile stops short again and again and must resume there.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    let get = b"GET /big.txt HTTP/1.1\r\nHost: t\r\n\r\n";
    let range = b"GET /big.txt HTTP/1.1\r\nHost: t\r\nRange: bytes=70000-70099\r\n\r\n";
    // About 7 MiB of responses: more than the kernel buffers a sender
    // (4 MiB by default) and a small receiver take.
    const PAIRS: usize = 80;
    let mut requests = Vec::new();
    for _ in 0..PAIRS {
        requests.extend_from_slice(get);
        requests.extend_from_slice(range);
    }
    requests.extend_from_slice(b"HEAD /big.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    stream.write_all(&requests).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut is_head = vec![false; 2 * PAIRS];
    is_head.push(true);
    let responses = read_responses_to(&mut stream, &is_head);
    for pair in responses[..2 * PAIRS].chunks(2) {
        assert_eq!(pair[0].status, 200);
        assert_eq!(pair[0].body, whole.body);
        assert_eq!(pair[1].status, 206);
        assert_eq!(pair[1].body, whole.body[70000..70100]);
    }
    let head = &responses[2 * PAIRS];
    assert_eq!(
        head.header("content-length"),
        Some(&*whole.body.len().to_string())
    );
    // Closed after the response: corked, the FIN leaves with its end.
    let raw = server.raw(b"GET /big.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    let (closed, rest) = Response::parse(&raw, false);
    assert_eq!(closed.body, whole.body);
    assert!(rest.is_empty());
}

#[test]
fn killing_the_master_takes_every_worker_down_and_frees_the_port() {
    let mut server = Server::start(&sample_site(), &[]);
    let workers = server.workers();
    assert_eq!(workers.len(), 2);
    // A connection in flight when the master dies is still answered.
    let mut stream = server.connect();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    let _ = stream.read_to_end(&mut out);
    if !out.is_empty() {
        assert_eq!(Response::parse(&out, false).0.status, 200);
    }
    let start = Instant::now();
    while workers.iter().any(|pid| is_alive(*pid)) {
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "workers outlived the master by 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // A new txtd binds the same port (besides the harness's own port 0)
    // and serves on it.
    let listen = server.addr.to_string();
    let _successor = Server::start(&sample_site(), &["--listen", &listen]);
    let mut stream = TcpStream::connect(server.addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut out = Vec::new();
    stream.read_to_end(&mut out).unwrap();
    assert_eq!(Response::parse(&out, false).0.status, 200);
}

#[test]
fn usr1_reopens_the_log_files_after_rotation() {
    let scratch = Scratch::new("usr1");
    let (access, error) = (scratch.0.join("access.log"), scratch.0.join("error.log"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_txtd"))
        .arg(sample_site())
        .args(["--listen", "127.0.0.1:0", "--workers", "2"])
        .arg("--access-log")
        .arg(&access)
        .arg("--error-log")
        .arg(&error)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let log = wait_for_file(&error, "worker 1 started");
    let log = if log.contains("worker 0 started") {
        log
    } else {
        wait_for_file(&error, "worker 0 started")
    };
    let addr: SocketAddr = log
        .lines()
        .find_map(|l| l.split("listening on ").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    let get = |target: &str| {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        let raw = format!("GET {target} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        stream.write_all(raw.as_bytes()).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        Response::parse(&out, false).0.status
    };
    assert_eq!(get("/hello.txt"), 200);
    wait_for_file(&access, "/hello.txt");
    std::fs::rename(&access, scratch.0.join("access.log.1")).unwrap();
    std::fs::rename(&error, scratch.0.join("error.log.1")).unwrap();
    signal_pid(child.id(), "USR1");
    wait_for_file(&error, "reopened the log files");
    // Workers reopen when their signal arrives; ask until a line lands.
    let start = Instant::now();
    while !std::fs::read_to_string(&access)
        .unwrap_or_default()
        .contains("/unicode.txt")
    {
        assert!(start.elapsed() < TIMEOUT, "the access log was not reopened");
        assert_eq!(get("/unicode.txt"), 200);
        std::thread::sleep(Duration::from_millis(50));
    }
    let rotated = std::fs::read_to_string(scratch.0.join("access.log.1")).unwrap();
    assert!(rotated.contains("/hello.txt"));
    let _ = child.kill();
    let _ = child.wait();
    let errors = std::fs::read_to_string(&error).unwrap_or_default();
    assert!(!errors.contains("panicked"), "{errors}");
}
