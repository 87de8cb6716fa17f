//! The high-availability proofs: each runs the real binary under the load
//! generator of `common::load` and counts every request.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::time::{Duration, Instant};

use common::load::Load;
use common::{Server, TIMEOUT, sample_site, signal_pid};

/// Waits (bounded) until the master has `n` workers again, none of them in
/// `gone`.
fn wait_for_pool(server: &Server, n: usize, gone: &[u32]) -> Vec<u32> {
    let start = Instant::now();
    loop {
        let now = server.workers();
        if now.len() == n && !now.iter().any(|p| gone.contains(p)) {
            return now;
        }
        assert!(start.elapsed() < TIMEOUT, "pool not back: {now:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn killing_a_random_worker_every_second_loses_no_request() {
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
