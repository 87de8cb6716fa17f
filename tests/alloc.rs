//! Zero heap allocations per request in steady state, over the worker's
//! real request path: `txtd::worker::run` (epoll loop, accepting, page
//! cache, `sendfile`, scoreboard, access log) runs on a thread of this test,
//! on 127.0.0.1 port 0, under a counting global allocator that counts that
//! thread only. 1,000 requests warm it up; 10,000 more must allocate nothing.
//! The buffered access log on its own, under the same allocator: 10,000
//! lines in either format (flushes included) after a warm-up allocate
//! nothing, since its line and block buffers keep their capacity.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unsafe_code,
    reason = "a test binary with a counting global allocator"
)]

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::{Scratch, TIMEOUT, read_responses_to};
use txtd::access_log::{AccessLog, Format};
use txtd::scoreboard::Scoreboard;
use txtd::worker::Setup;
use txtd_core::{Exchange, Status};

/// Counts the allocations of threads that carry a counter, then lets the
/// system allocator do them.
struct Counting;

thread_local! {
    /// The counter of what is measured on this thread (a worker, the
    /// log); `None` elsewhere, whose allocations do not count.
    static COUNTER: Cell<Option<&'static AtomicU64>> = const { Cell::new(None) };
}

/// Counts one allocation if this thread is a worker's.
fn count() {
    if let Ok(Some(counter)) = COUNTER.try_with(Cell::get) {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// A worker serving `root` on a thread of its own, and what it counts.
struct Worker {
    addr: SocketAddr,
    allocations: &'static AtomicU64,
    scoreboard: Scoreboard,
}

impl Worker {
    /// Starts `txtd::worker::run` as the master would, with 64 slots.
    /// The thread serves until the test process exits: it holds no child
    /// process and no file outside the test's scratch directory.
    fn start(root: &Path, access_log: Option<&Path>, page_cache_valid: Duration) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let mut conn = txtd_core::Config::DEFAULT;
        conn.max_requests = u32::MAX;
        let scoreboard = Scoreboard::new(1).unwrap();
        // The 404s' error lines go to a file, not the test's stderr.
        txtd::error_log::open(&root.join("error.log")).unwrap();
        let setup = Setup {
            listeners: vec![listener.into()],
            admin: None,
            root: root.to_owned(),
            conn,
            page_cache_valid,
            max_conns: 64,
            access_log: access_log.map(|path| AccessLog::open(path, Format::Combined).unwrap()),
            slot: 0,
            master: txtd::sys::getppid(),
            scoreboard,
        };
        let allocations: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
        std::thread::spawn(move || {
            COUNTER.with(|c| c.set(Some(allocations)));
            txtd::worker::run(setup)
        });
        Self {
            addr,
            allocations,
            scoreboard,
        }
    }

    fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream
    }

    /// Responses the worker has logged.
    fn requests(&self) -> u64 {
        self.scoreboard.slot(0).unwrap().counts().requests
    }

    /// The allocations so far, once `requests` responses are logged and
    /// the worker has gone back to waiting.
    fn allocations_after(&self, requests: u64) -> u64 {
        let start = Instant::now();
        while self.requests() < requests {
            assert!(start.elapsed() < TIMEOUT, "{} responses", self.requests());
            std::thread::sleep(Duration::from_millis(5));
        }
        std::thread::sleep(Duration::from_millis(50));
        self.allocations.load(Ordering::Relaxed)
    }
}

/// A site of a 1 KiB page (kept on the heap) and a 64 KiB one (sent with
/// `sendfile` from its memory file).
fn site(name: &str) -> Scratch {
    let scratch = Scratch::new(name);
    let line = "line: 1 < 2 && \"x\" > 'y'\n";
    std::fs::write(scratch.0.join("1k.txt"), line.repeat(1024 / line.len())).unwrap();
    std::fs::write(scratch.0.join("64k.txt"), line.repeat(65536 / line.len())).unwrap();
    scratch
}

/// Ten requests in one write: pages, a HEAD, a 404, a 304 and a range.
fn round(etag: &str) -> (Vec<u8>, [bool; 10]) {
    let mut bytes = Vec::new();
    let mut get = |target: &str, extra: &str| {
        write!(
            bytes,
            "GET {target} HTTP/1.1\r\nHost: t\r\nUser-Agent: alloc\r\n{extra}\r\n"
        )
        .unwrap();
    };
    for _ in 0..3 {
        get("/1k.txt", "");
        get("/64k.txt", "");
    }
    get("/missing.txt", "");
    get("/1k.txt", &format!("If-None-Match: {etag}\r\n"));
    get("/64k.txt", "Range: bytes=1000-1999\r\n");
    bytes.extend_from_slice(b"HEAD /1k.txt HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut is_head = [false; 10];
    is_head[9] = true;
    (bytes, is_head)
}

/// Sends `rounds` rounds over four keep-alive connections in turn.
fn serve(streams: &mut [TcpStream], etag: &str, rounds: usize) {
    let (bytes, is_head) = round(etag);
    for i in 0..rounds {
        let stream = &mut streams[i % streams.len()];
        stream.write_all(&bytes).unwrap();
        let statuses: Vec<u16> = read_responses_to(stream, &is_head)
            .iter()
            .map(|r| r.status)
            .collect();
        assert_eq!(statuses, [200, 200, 200, 200, 200, 200, 404, 304, 206, 200]);
    }
}

/// Warms a worker up with 1,000 requests, then serves 10,000 keep-alive
/// requests and 100 one-request connections, and returns the allocations
/// counted during each of the three.
fn allocations(worker: &Worker) -> [u64; 3] {
    let mut streams: Vec<TcpStream> = (0..4).map(|_| worker.connect()).collect();
    let first = read_responses_to(
        &mut {
            let mut s = worker.connect();
            s.write_all(b"GET /1k.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
                .unwrap();
            s
        },
        &[false],
    );
    let etag = first[0].header("etag").unwrap().to_owned();
    serve(&mut streams, &etag, 100);
    let warm = worker.allocations_after(1 + 1_000);
    serve(&mut streams, &etag, 1_000);
    let keep_alive = worker.allocations_after(1 + 11_000);
    for _ in 0..100 {
        let mut stream = worker.connect();
        stream
            .write_all(b"GET /64k.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            .unwrap();
        assert_eq!(read_responses_to(&mut stream, &[false])[0].status, 200);
    }
    let closed = worker.allocations_after(1 + 11_000 + 100);
    [warm, keep_alive - warm, closed - keep_alive]
}

#[test]
fn ten_thousand_keep_alive_requests_allocate_nothing_in_the_worker() {
    let scratch = site("alloc");
    let worker = Worker::start(&scratch.0, None, Duration::from_secs(1));
    let [warm, keep_alive, closed] = allocations(&worker);
    eprintln!(
        "worker allocations: {warm} to start and warm up (1,001 requests), \
         {keep_alive} over 10,000 keep-alive requests, {closed} over 100 connections"
    );
    // The counter is live: starting the worker and filling its cache allocate.
    assert!(warm > 0);
    assert_eq!(keep_alive, 0, "allocations grow with requests");
    assert_eq!(closed, 0, "allocations grow with connections");
}

#[test]
fn with_the_access_log_on_and_every_file_checked_requests_allocate_nothing() {
    let scratch = site("alloc-logged");
    let log = scratch.0.join("access.log");
    let worker = Worker::start(&scratch.0, Some(&log), Duration::ZERO);
    let [warm, keep_alive, closed] = allocations(&worker);
    eprintln!(
        "worker allocations with the access log: {warm} to start and warm up, \
         {keep_alive} over 10,000 keep-alive requests, {closed} over 100 connections"
    );
    assert!(warm > 0);
    assert_eq!(keep_alive, 0, "allocations grow with requests");
    assert_eq!(closed, 0, "allocations grow with connections");
    // The log is buffered for up to a second (nginx's `flush=1s`).
    let expected = 1 + 11_000 + 100;
    let start = Instant::now();
    let mut lines = 0;
    while start.elapsed() < TIMEOUT {
        lines = std::fs::read_to_string(&log).unwrap().lines().count();
        if lines >= expected {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(lines, expected);
}

/// Every line is written whole and none allocates: the log reuses its
/// buffers.
#[test]
fn ten_thousand_lines_allocate_nothing_in_either_format() {
    let dir = std::env::temp_dir().join(format!("txtd-log-alloc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let peer: SocketAddr = "[2001:db8::1]:40000".parse().unwrap();
    let exchange = Exchange {
        request_line: b"GET /notes/a%20b.txt?x=\"1\" HTTP/1.1",
        status: Status::OK,
        body_len: 123_456,
        referer: Some(b"http://example.invalid/\xff"),
        user_agent: Some(b"Mozilla/5.0 (X11; Linux x86_64) \\ test"),
        refusal: None,
        complete: true,
    };
    let allocations: &'static AtomicU64 = Box::leak(Box::new(AtomicU64::new(0)));
    let counting = |on: bool| COUNTER.with(|c| c.set(on.then_some(allocations)));
    // The counter counts: a fresh buffer is one allocation.
    counting(true);
    let before = allocations.load(Ordering::Relaxed);
    drop(std::hint::black_box(vec![0u8; 64]));
    assert_eq!(allocations.load(Ordering::Relaxed) - before, 1);
    counting(false);
    for format in [Format::Combined, Format::Json] {
        let path = dir.join(format!("{format:?}.log"));
        let mut log = AccessLog::open(&path, format).unwrap();
        for i in 0..100 {
            log.write(&peer, 1_764_000_000 + i, i, &exchange);
        }
        counting(true);
        let before = allocations.load(Ordering::Relaxed);
        for i in 0..10_000u64 {
            log.write(&peer, 1_764_000_000 + i, i * 10, &exchange);
            log.flush_if_due(i * 10);
        }
        let lines_allocated = allocations.load(Ordering::Relaxed) - before;
        counting(false);
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 10_100, "{format:?}");
        eprintln!("{format:?}: {lines_allocated} allocations over 10,000 lines");
        assert_eq!(lines_allocated, 0, "{format:?}: allocations per line");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
