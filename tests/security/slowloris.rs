//! Slowloris: a request head dripped below the minimum rate (500 B/s after
//! its first second) gets a 408 and loses its slot (RFC 9110 §15.5.9). The
//! proofs at scale (2,000 drippers, idle squatters, slot eviction) are in
//! tests/hostile.rs.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::*;

#[test]
fn a_head_dripped_below_the_minimum_rate_gets_408_and_frees_its_slot() {
    // Four slots, all taken by drippers.
    let server = Server::start(&sample_site(), &["--workers", "1", "--max-conns", "4"]);
    let head = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nX-Drip: ";
    let mut drippers: Vec<TcpStream> = (0..4).map(|_| server.connect()).collect();
    for d in &mut drippers {
        d.set_nonblocking(true).unwrap();
    }
    let start = Instant::now();
    let mut answered = vec![Vec::new(); drippers.len()];
    let mut sent = 0;
    // A byte every 100 ms: 10 B/s, far below the 500 B/s minimum. Bounded
    // by the header timeout (10 s) plus a margin.
    while answered.iter().any(Vec::is_empty) && start.elapsed() < Duration::from_secs(12) {
        for (d, out) in drippers.iter_mut().zip(&mut answered) {
            if out.is_empty() {
                let _ = d.write(&head[sent % head.len()..][..1]);
                let mut buf = [0u8; 1024];
                if let Ok(n) = d.read(&mut buf) {
                    out.extend_from_slice(&buf[..n]);
                }
            }
        }
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
    }
    let took = start.elapsed();
    for out in &answered {
        assert!(
            out.starts_with(b"HTTP/1.1 408 "),
            "a dripper got {:?}",
            String::from_utf8_lossy(out)
        );
    }
    // Well before the 10 s header timeout: the rate rule fired.
    assert!(took < Duration::from_secs(5), "408s only after {took:?}");
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
}
