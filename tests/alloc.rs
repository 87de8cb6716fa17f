//! Zero heap allocations per request in steady state: the worker's request
//! path (core's `Conn` over the shim's `FsSite` with its page cache, and
//! the scoreboard counters the worker bumps per response and per send: the
//! same modules the binary compiles) serves 10,000 keep-alive requests
//! under a counting global allocator, and the count must not grow with
//! the number of requests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    dead_code,
    unused_imports,
    unsafe_code,
    reason = "a test binary that compiles the shim's modules and counts allocations"
)]

#[path = "../std-shim/src/scoreboard.rs"]
mod scoreboard;
#[path = "../std-shim/src/site.rs"]
mod site;
#[path = "../std-shim/src/sys.rs"]
mod sys;

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use txtd_core::conn::{Close, Config, Conn, Exchange, Log, Now};

/// Counts every allocation, then lets the system allocator do it.
struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Whether this thread's allocations count: only the measuring test's
    /// do, not those of the unit tests (of site.rs, sys.rs) that run in
    /// parallel in this binary.
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Counts an allocation if this thread is the one measuring.
fn count() {
    if COUNTED.with(std::cell::Cell::get) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: forwards every call unchanged to the system allocator.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: the caller's contract is passed on as it is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Counts each response on the scoreboard, as the worker's log does.
struct Counted(scoreboard::SlotCounters);

impl Log for Counted {
    fn exchange(&mut self, exchange: &Exchange<'_>) {
        self.0.add_response(exchange.status.code());
    }
}

/// Serves `count` keep-alive requests for `target` and returns the bytes sent.
fn serve(
    conn: &mut Conn<'_, site::FsSite>,
    fs: &mut site::FsSite,
    counters: scoreboard::SlotCounters,
    request: &[u8],
    count: usize,
) -> usize {
    let now = Now {
        monotonic_ms: 1,
        unix_secs: 1_764_000_000,
    };
    let mut sent = 0;
    for _ in 0..count {
        let buf = conn.read_buf();
        buf[..request.len()].copy_from_slice(request);
        conn.received(request.len(), now);
        for _ in 0..1000 {
            let interest = conn.poll(fs, &mut Counted(counters), now);
            let [head, body] = conn.output(fs);
            let n = head.len() + body.len();
            conn.sent(n, now);
            counters.add_bytes_sent(n);
            sent += n;
            assert_eq!(interest.close, Close::Keep);
            if n == 0 && !interest.again {
                break;
            }
        }
    }
    sent
}

#[test]
fn ten_thousand_keep_alive_requests_allocate_nothing_per_request() {
    COUNTED.with(|c| c.set(true));
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/site");
    let mut fs = site::FsSite::open(&root).unwrap();
    let (mut input, mut output) = (vec![0u8; 36 * 1024], vec![0u8; 16 * 1024]);
    let now = Now {
        monotonic_ms: 1,
        unix_secs: 1_764_000_000,
    };
    let mut config = Config::DEFAULT;
    config.max_requests = u32::MAX;
    let mut conn: Conn<'_, site::FsSite> = Conn::new(&mut input, &mut output, config, now);
    let board = scoreboard::Scoreboard::new(1).unwrap();
    let counters = board.slot(0).unwrap();
    counters.claim(1, 1);
    for target in ["/hello.txt", "/specials.txt", "/unicode.txt"] {
        let request = format!("GET {target} HTTP/1.1\r\nHost: t\r\nUser-Agent: alloc-test\r\n\r\n");
        // Warm up: the first request renders the page into the cache.
        let first = serve(&mut conn, &mut fs, counters, request.as_bytes(), 10);
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        let sent = serve(&mut conn, &mut fs, counters, request.as_bytes(), 1_000);
        let after_1k = ALLOCATIONS.load(Ordering::Relaxed);
        let sent_more = serve(&mut conn, &mut fs, counters, request.as_bytes(), 10_000);
        let after_10k = ALLOCATIONS.load(Ordering::Relaxed);
        assert_eq!(
            sent,
            first * 100,
            "{target}: every response the same length"
        );
        assert_eq!(
            sent_more,
            first * 1000,
            "{target}: every response the same length"
        );
        let (in_1k, in_10k) = (after_1k - before, after_10k - after_1k);
        eprintln!("{target}: {in_1k} allocations over 1,000 requests, {in_10k} over 10,000");
        assert_eq!(in_10k, 0, "{target}: allocations grow with requests");
    }
    // Every response was counted: 3 targets x 11,010 requests.
    assert_eq!(counters.counts().requests, 3 * 11_010);
    assert_eq!(counters.counts().responses[1], 3 * 11_010);
}
