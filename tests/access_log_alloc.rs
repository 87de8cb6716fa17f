//! The buffered access log allocates nothing per request: its line and
//! block buffers keep their capacity, so writing 10,000 lines (Combined
//! and JSON, flushes included) after a warm-up makes no heap allocation.
//! Runs the shim's `access_log` module under a counting allocator that
//! counts only the measuring thread.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    unsafe_code,
    reason = "a test binary with a counting global allocator"
)]

use txtd::access_log;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use txtd_core::{Exchange, Status};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    /// Only the measuring thread's allocations count.
    static COUNTED: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    // `try_with`: the allocator may run while thread locals are torn down.
    if COUNTED.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
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
    // The counter counts: a fresh buffer is one allocation.
    COUNTED.with(|c| c.set(true));
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    drop(std::hint::black_box(vec![0u8; 64]));
    assert_eq!(ALLOCATIONS.load(Ordering::Relaxed) - before, 1);
    COUNTED.with(|c| c.set(false));
    for format in [access_log::Format::Combined, access_log::Format::Json] {
        let path = dir.join(format!("{format:?}.log"));
        let mut log = access_log::AccessLog::open(&path, format).unwrap();
        for i in 0..100 {
            log.write(&peer, 1_764_000_000 + i, i, &exchange);
        }
        COUNTED.with(|c| c.set(true));
        let before = ALLOCATIONS.load(Ordering::Relaxed);
        for i in 0..10_000u64 {
            log.write(&peer, 1_764_000_000 + i, i * 10, &exchange);
            log.flush_if_due(i * 10);
        }
        let allocations = ALLOCATIONS.load(Ordering::Relaxed) - before;
        COUNTED.with(|c| c.set(false));
        drop(log);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 10_100, "{format:?}");
        eprintln!("{format:?}: {allocations} allocations over 10,000 lines");
        assert_eq!(allocations, 0, "{format:?}: allocations per line");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
