//! A worker's memory against the real `txtd` binary: its resident set
//! while every one of its 512 slots holds a 31 KiB request head, and after
//! those connections close (their buffers' pages go back to the kernel).
//! Counts from /proc, bounded waits, loopback only.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;

/// Connection slots of the worker, all filled.
const SLOTS: usize = 512;

/// Resident anonymous and shared-memory KiB of a process (`RssAnon` +
/// `RssShmem`): its heap and buffers, without the binary's own pages.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .filter(|l| l.starts_with("RssAnon:") || l.starts_with("RssShmem:"))
        .filter_map(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .sum()
}

/// Waits up to [`TIMEOUT`] for `done(rss)`; returns the last reading.
fn wait_rss(pid: u32, done: impl Fn(u64) -> bool) -> u64 {
    let start = Instant::now();
    loop {
        let rss = rss_kib(pid);
        if done(rss) || start.elapsed() > TIMEOUT {
            return rss;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Whether this process may hold `n` more descriptors; a low `ulimit -n`
/// skips the test with a note instead of failing it.
fn can_open(n: u64) -> bool {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|s| s.parse::<u64>().ok());
    if soft.is_some_and(|soft| soft < n) {
        eprintln!("skipped: RLIMIT_NOFILE is below the {n} descriptors needed");
        return false;
    }
    true
}

#[test]
fn a_worker_full_of_big_heads_gives_their_pages_back_when_they_close() {
    if !can_open(SLOTS as u64 + 64) {
        return;
    }
    let server = Server::start(&sample_site(), &["--workers", "1", "--max-conns", "512"]);
    let worker = server.workers()[0];
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
    let idle = rss_kib(worker);
    // 31 KiB of fields, below the 32 KiB head limit, and no blank line:
    // every slot holds an unfinished head in its input buffer.
    let mut head = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n".to_vec();
    let field = format!("X-Filler: {}\r\n", "x".repeat(100));
    while head.len() + field.len() < 31 * 1024 {
        head.extend_from_slice(field.as_bytes());
    }
    let held: Vec<TcpStream> = (0..SLOTS)
        .map(|_| {
            let mut stream = server.connect();
            stream.write_all(&head).unwrap();
            stream
        })
        .collect();
    let heads_kib = (SLOTS * head.len() / 1024) as u64;
    let full = wait_rss(worker, |rss| rss >= idle + heads_kib);
    eprintln!(
        "worker RssAnon+RssShmem: {idle} KiB idle, {full} KiB with {SLOTS} heads of {} B",
        head.len()
    );
    assert!(
        full >= idle + heads_kib,
        "the heads were not all read: {full} KiB"
    );
    // Input and output buffers are 52 KiB a slot: their pages, no more.
    assert!(
        full <= idle + (SLOTS * 56) as u64,
        "{full} KiB with {SLOTS} heads, {idle} KiB idle"
    );
    drop(held);
    let after = wait_rss(worker, |rss| rss <= idle + 2048);
    eprintln!("worker RssAnon+RssShmem: {after} KiB once they closed");
    assert!(
        after <= idle + 2048,
        "{after} KiB after the connections closed, {idle} KiB before them"
    );
    // The freed slots serve again.
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
}
