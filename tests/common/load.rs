//! A load generator for the high-availability proofs: a few keep-alive
//! clients, each sending GETs in a loop and counting every outcome, until
//! told to stop.
//!
//! A request that fails before any byte of its response arrived is retried
//! once on a fresh connection, as a client may retry a GET (RFC 9110
//! 9.2.2); both the failures before that retry and those left after it are
//! counted, and a proof requires the second count to be zero. A failure
//! after part of a response arrived is never retried: it counts as lost.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Bound on each read and write of a load client.
const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// What the clients counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    /// Responses that arrived whole with status 200.
    pub ok: u64,
    /// Requests that failed before any response byte, first attempt.
    pub failed_before_retry: u64,
    /// Requests that failed on their retry too, or after a response began,
    /// or got a status other than 200.
    pub failed: u64,
    /// Connections the clients opened.
    pub connections: u64,
}

#[derive(Default)]
struct Counters {
    ok: AtomicU64,
    failed_before_retry: AtomicU64,
    failed: AtomicU64,
    connections: AtomicU64,
}

/// Running clients; [`Load::stop`] joins them and returns the tally.
pub struct Load {
    stop: Arc<AtomicBool>,
    counters: Arc<Counters>,
    clients: Vec<JoinHandle<()>>,
}

impl Load {
    /// Starts `clients` keep-alive clients fetching `target` from `addr`.
    pub fn start(addr: SocketAddr, target: &str, clients: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let counters = Arc::new(Counters::default());
        let clients = (0..clients)
            .map(|_| {
                let stop = Arc::clone(&stop);
                let counters = Arc::clone(&counters);
                let request = format!("GET {target} HTTP/1.1\r\nHost: load\r\n\r\n").into_bytes();
                std::thread::spawn(move || client(addr, &request, &stop, &counters))
            })
            .collect();
        Self {
            stop,
            counters,
            clients,
        }
    }

    /// What was counted so far.
    pub fn tally(&self) -> Tally {
        let c = &self.counters;
        Tally {
            ok: c.ok.load(Ordering::Relaxed),
            failed_before_retry: c.failed_before_retry.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
        }
    }

    /// Waits (bounded by the number of requests) until `more` further
    /// requests have succeeded, so a proof knows traffic is flowing.
    pub fn wait_for_progress(&self, more: u64) {
        let target = self.tally().ok + more;
        let start = std::time::Instant::now();
        while self.tally().ok < target {
            assert!(
                start.elapsed() < super::TIMEOUT,
                "load made no progress: {:?}",
                self.tally()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops the clients after their request in flight and returns the
    /// final tally.
    pub fn stop(self) -> Tally {
        self.stop.store(true, Ordering::Relaxed);
        for client in self.clients {
            client.join().unwrap();
        }
        let c = &self.counters;
        Tally {
            ok: c.ok.load(Ordering::Relaxed),
            failed_before_retry: c.failed_before_retry.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            connections: c.connections.load(Ordering::Relaxed),
        }
    }
}

/// How one attempt ended.
enum Outcome {
    /// Whole response; whether the server keeps the connection open.
    Done { status: u16, keep_alive: bool },
    /// Nothing of the response arrived: safe to retry.
    NothingReceived,
    /// The response began and then broke off.
    Broken,
}

fn client(addr: SocketAddr, request: &[u8], stop: &AtomicBool, counters: &Counters) {
    let mut stream: Option<TcpStream> = None;
    let mut buf = Vec::with_capacity(64 * 1024);
    while !stop.load(Ordering::Relaxed) {
        let mut retried = false;
        loop {
            let conn = match stream.take() {
                Some(s) => s,
                None => match connect(addr) {
                    Some(s) => {
                        counters.connections.fetch_add(1, Ordering::Relaxed);
                        s
                    }
                    None => {
                        if retried {
                            counters.failed.fetch_add(1, Ordering::Relaxed);
                            break;
                        }
                        counters.failed_before_retry.fetch_add(1, Ordering::Relaxed);
                        retried = true;
                        continue;
                    }
                },
            };
            match exchange(conn, request, &mut buf) {
                (Outcome::Done { status, keep_alive }, conn) => {
                    if status == 200 {
                        counters.ok.fetch_add(1, Ordering::Relaxed);
                    } else {
                        counters.failed.fetch_add(1, Ordering::Relaxed);
                    }
                    if keep_alive {
                        stream = conn;
                    }
                    break;
                }
                (Outcome::NothingReceived, _) if !retried => {
                    counters.failed_before_retry.fetch_add(1, Ordering::Relaxed);
                    retried = true;
                }
                (Outcome::NothingReceived | Outcome::Broken, _) => {
                    counters.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
            }
        }
    }
}

fn connect(addr: SocketAddr) -> Option<TcpStream> {
    let stream = TcpStream::connect_timeout(&addr, IO_TIMEOUT).ok()?;
    stream.set_read_timeout(Some(IO_TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(IO_TIMEOUT)).ok()?;
    stream.set_nodelay(true).ok()?;
    Some(stream)
}

/// Sends one request and reads its whole response (Content-Length framed).
fn exchange(
    mut stream: TcpStream,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> (Outcome, Option<TcpStream>) {
    buf.clear();
    if stream.write_all(request).is_err() {
        return (Outcome::NothingReceived, None);
    }
    let mut chunk = [0u8; 16 * 1024];
    let (head_len, status, length, keep_alive) = loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) if buf.is_empty() => return (Outcome::NothingReceived, None),
            Ok(0) | Err(_) => return (Outcome::Broken, None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let Ok(head) = std::str::from_utf8(&buf[..end]) else {
                return (Outcome::Broken, None);
            };
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0);
            let length: usize = super::header(head, "content-length")
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let close =
                super::header(head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
            break (end + 4, status, length, !close);
        }
    };
    while buf.len() < head_len + length {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return (Outcome::Broken, None),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    if buf.len() > head_len + length {
        // The server sent more than it framed: a broken response.
        return (Outcome::Broken, None);
    }
    (Outcome::Done { status, keep_alive }, Some(stream))
}
