//! Hostile clients against the real `txtd` binary: idle keep-alive
//! squatting, connections that never send a byte, header drip and slot
//! exhaustion. Every wait is bounded, every socket is on loopback, and
//! each test kills only the server it started and checks that its stderr
//! holds no panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;

/// How long a fresh client may wait for its answer while the server is
/// under attack: a bound on the wait, not a measure of speed.
const SERVED_WITHIN: Duration = Duration::from_secs(2);

/// Sockets the largest test holds open at once, plus a margin for the
/// small tests running beside it and the harness itself.
const SOCKETS_NEEDED: u64 = 1_200;

/// Held by the tests that open hundreds of sockets, so that their counts
/// never add up in one process.
static MANY_SOCKETS: Mutex<()> = Mutex::new(());

/// Takes [`MANY_SOCKETS`], even after another test failed holding it.
fn many_sockets() -> std::sync::MutexGuard<'static, ()> {
    MANY_SOCKETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether this process may open `n` descriptors; prints a note when not,
/// so a low `ulimit -n` skips the test instead of failing it.
fn can_open(n: u64) -> bool {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse::<u64>().ok());
    match soft {
        // "unlimited" does not parse: treat an unreadable limit as enough.
        Some(soft) if soft < n => {
            eprintln!("skipped: RLIMIT_NOFILE soft limit {soft} is below the {n} sockets needed");
            false
        }
        _ => true,
    }
}

/// A keep-alive connection that made one request and read its answer.
fn idle_keep_alive(server: &Server) -> TcpStream {
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut stream, 1)[0].status, 200);
    stream
}

/// The status a fresh `Connection: close` client gets, waiting at most
/// `wait` for the answer to begin.
fn fresh_status(server: &Server, wait: Duration) -> u16 {
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Bounded: hello.txt is small; stop at the close or a timeout.
    let out = read_until_close(&mut stream, wait);
    status_of(&out).unwrap_or_else(|| {
        panic!(
            "no answer to a fresh client within {wait:?}: {:?}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// The status code of the response at the front of `bytes`, if a status
/// line is there.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.get(..12)?;
    if !line.starts_with(b"HTTP/1.1 ") {
        return None;
    }
    std::str::from_utf8(&line[9..12]).ok()?.parse().ok()
}

/// Reads until the server closes or `wait` passes; returns what came.
fn read_until_close(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..64 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

/// An unfinished request head of at least `len` bytes: a request line and
/// padding fields, without the blank line that would end it.
fn partial_head(len: usize) -> Vec<u8> {
    let mut head = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n".to_vec();
    let mut n = 0;
    while head.len() < len {
        head.extend_from_slice(format!("X-Pad-{n}: {}\r\n", "a".repeat(1000)).as_bytes());
        n += 1;
    }
    head
}

#[test]
fn a_thousand_idle_keep_alive_connections_do_not_lock_out_a_new_client() {
    if !can_open(SOCKETS_NEEDED) {
        return;
    }
    let _many = many_sockets();
    let server = Server::start(&sample_site(), &["--workers", "2", "--max-conns", "512"]);
    let mut idle = Vec::with_capacity(1_000);
    for _ in 0..1_000 {
        idle.push(idle_keep_alive(&server));
    }
    assert_eq!(fresh_status(&server, SERVED_WITHIN), 200);
    drop(idle);
}

#[test]
fn a_thousand_connections_closed_without_a_byte_leave_service_intact() {
    if !can_open(SOCKETS_NEEDED) {
        return;
    }
    let _many = many_sockets();
    let server = Server::start(&sample_site(), &[]);
    for i in 0..1_000 {
        let stream = TcpStream::connect(server.addr).unwrap();
        if i % 2 == 1 {
            // A FIN first; the other half are dropped with no shutdown.
            let _ = stream.shutdown(Shutdown::Write);
        }
        drop(stream);
    }
    assert_eq!(fresh_status(&server, TIMEOUT), 200);
    let mut again = idle_keep_alive(&server);
    again
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut again, 1)[0].status, 200);
}

#[test]
fn header_drip_from_three_hundred_connections_does_not_lock_out_a_new_client() {
    if !can_open(SOCKETS_NEEDED) {
        return;
    }
    let _many = many_sockets();
    const DRIPPERS: usize = 300;
    const THREADS: usize = 4;
    const ATTACK: Duration = Duration::from_secs(6);
    let server = Server::start(&sample_site(), &[]);
    let head = partial_head(2_000);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..THREADS)
        .map(|_| {
            let (addr, head, stop) = (server.addr, head.clone(), Arc::clone(&stop));
            std::thread::spawn(move || {
                let open = || {
                    let s = TcpStream::connect(addr).ok()?;
                    s.set_nonblocking(true).ok()?;
                    Some(s)
                };
                // (stream, bytes of the head sent so far)
                let mut conns: Vec<(Option<TcpStream>, usize)> =
                    (0..DRIPPERS / THREADS).map(|_| (open(), 0)).collect();
                let start = Instant::now();
                while !stop.load(Ordering::Relaxed) && start.elapsed() < ATTACK {
                    for (stream, sent) in &mut conns {
                        let byte = head[*sent % head.len()..].get(..1).unwrap_or(b"a");
                        let ok = match stream.as_mut().map(|s| s.write(byte)) {
                            Some(Ok(n)) => {
                                *sent += n;
                                true
                            }
                            Some(Err(e)) => e.kind() == ErrorKind::WouldBlock,
                            None => false,
                        };
                        if !ok {
                            // Timed out or refused: come back with a new
                            // connection, as an attacker would.
                            *stream = open();
                            *sent = 0;
                        }
                    }
                    std::thread::sleep(Duration::from_millis(200));
                }
            })
        })
        .collect();
    let start = Instant::now();
    let mut served = 0;
    while start.elapsed() < ATTACK {
        assert_eq!(fresh_status(&server, SERVED_WITHIN), 200);
        served += 1;
        std::thread::sleep(Duration::from_millis(300));
    }
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    assert!(served > 1, "only {served} fresh clients were tried");
}

#[test]
fn idle_keep_alive_connections_holding_every_slot_make_way_for_a_new_client() {
    let server = Server::start(&sample_site(), &["--max-conns", "4", "--workers", "1"]);
    let mut idle: Vec<TcpStream> = (0..4).map(|_| idle_keep_alive(&server)).collect();
    assert_eq!(fresh_status(&server, TIMEOUT), 200);
    // The one idle longest gave up its slot: the server closed it.
    let closed = idle
        .iter_mut()
        .take(1)
        .map(|s| read_until_close(s, TIMEOUT))
        .all(|bytes| bytes.is_empty());
    assert!(closed, "the oldest idle connection is still open");
}

#[test]
fn slow_heads_holding_every_slot_make_way_and_the_slowest_gets_408() {
    let server = Server::start(&sample_site(), &["--max-conns", "4", "--workers", "1"]);
    // Large first bursts keep every head above the minimum head rate for
    // seconds; the smallest, sent first, has the lowest rate.
    let mut heads: Vec<TcpStream> = [3_000, 4_000, 5_000, 6_000]
        .iter()
        .map(|&len| {
            let mut s = server.connect();
            s.write_all(&partial_head(len)).unwrap();
            s
        })
        .collect();
    // Let the worker accept and read all four before the fifth arrives.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fresh_status(&server, Duration::from_secs(5)), 200);
    let answer = read_until_close(&mut heads[0], TIMEOUT);
    assert_eq!(
        status_of(&answer),
        Some(408),
        "the slowest head got {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn running_out_of_descriptors_pauses_accepting_and_service_recovers() {
    let server = Server::start_with_nofile(
        64,
        &sample_site(),
        &["--workers", "1", "--max-conns", "512"],
    );
    let log = server.stderr();
    assert!(
        log.contains("RLIMIT_NOFILE soft limit 64"),
        "no warning about the descriptor limit:\n{log}"
    );
    // More silent connections than the worker has descriptors: accept4
    // fails with EMFILE and the worker pauses instead of spinning.
    let held: Vec<TcpStream> = (0..100).map(|_| server.connect()).collect();
    let start = Instant::now();
    while !server.stderr().contains("pausing new connections") {
        assert!(
            start.elapsed() < TIMEOUT,
            "no pause logged:\n{}",
            server.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // While paused the worker sleeps in epoll_wait: over two seconds it
    // may use a fifth of a core (clock ticks, a count, not a duration; a
    // paused worker uses about none, a spinning one over half a core).
    let worker = server.workers()[0];
    let before = cpu_ticks(worker);
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(worker) - before;
    assert!(
        used < 40,
        "the worker used {used} ticks in 2 s with accept failing"
    );
    drop(held);
    assert_eq!(fresh_status(&server, TIMEOUT), 200);
}

/// User plus system CPU time of a process, in clock ticks (1/100 s on
/// Linux), from `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}
