//! The sans-IO `Conn` against a `Table` site, driven by random operations:
//! bytes arriving in random pieces, random time steps, partial sends,
//! pressure, draining, timeouts and end of stream. It never panics, never
//! hands out more than it holds, and everything it sends starts with
//! `HTTP/1.`.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use txtd_core::conn::{Close, Config, Conn, Exchange, Log, Now};
use txtd_core::table::{Table, TableEntry};

/// Long enough to need several output buffers and a cached body.
static LONG: [u8; 5000] = [b'<'; 5000];

static FILES: [TableEntry; 10] = [
    TableEntry::dir(b""),
    TableEntry::file(b"hello.txt", b"Hello <world> & \"friends\"\n").modified(1_700_000_000),
    TableEntry::file(b"empty.txt", b""),
    TableEntry::file(b"long.txt", &LONG).modified(1_600_000_000),
    TableEntry::file(
        b"bad-utf8.txt",
        b"caf\xc3\xa9 \xff\xfe \xe2\x82 \x00\x1b end",
    ),
    TableEntry::dir(b"docs"),
    TableEntry::file(b"docs/a b.txt", b"spaces\n"),
    TableEntry::file(b"docs/caf\xc3\xa9.txt", b"unicode name\n"),
    TableEntry::file(b".hidden", b"secret\n"),
    TableEntry::dir(b"docs/sub"),
];

/// A prefix of a plausible request, so the fuzzer reaches past the head.
const PREFIXES: [&[u8]; 6] = [
    b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n",
    b"HEAD /long.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=",
    b"GET /docs/ HTTP/1.1\r\nHost: x\r\nIf-None-Match: ",
    b"GET /long.txt HTTP/1.0\r\n",
    b"OPTIONS * HTTP/1.1\r\nHost: x\r\n",
    b"GET /bad-utf8.txt HTTP/1.1\r\nHost: x\r\nIf-Modified-Since: ",
];

#[derive(Debug, Arbitrary)]
enum Op {
    /// Bytes arrive (as much as the read buffer takes).
    Receive(Vec<u8>),
    /// One of the request prefixes arrives.
    Prefix(u8),
    /// The end of a head arrives.
    Crlf,
    /// Time passes.
    Advance(u32),
    /// The socket takes at most this many output bytes.
    Send(u16),
    /// The socket takes everything offered.
    SendAll,
    /// The client closes its side.
    Eof,
    Pressure(bool),
    Draining,
    TimeOut,
}

#[derive(Debug, Arbitrary)]
struct Input {
    input_len: u16,
    output_len: u16,
    small_config: bool,
    ops: Vec<Op>,
}

/// Counts exchanges and checks each one.
struct Checks {
    exchanges: usize,
}

impl Log for Checks {
    fn exchange(&mut self, exchange: &Exchange<'_>) {
        let code = exchange.status.code();
        assert!((100..600).contains(&code), "status {code}");
        self.exchanges += 1;
    }
}

struct Driver<'b> {
    conn: Conn<'b, Table, 16>,
    site: Table,
    log: Checks,
    now: Now,
    sent: Vec<u8>,
}

impl Driver<'_> {
    /// Polls until the connection has no work without I/O (bounded).
    fn poll(&mut self) -> txtd_core::conn::Interest {
        let mut interest = self.conn.poll(&mut self.site, &mut self.log, self.now);
        for _ in 0..64 {
            if !interest.again {
                break;
            }
            interest = self.conn.poll(&mut self.site, &mut self.log, self.now);
        }
        interest
    }

    fn receive(&mut self, bytes: &[u8]) {
        self.poll();
        let buf = self.conn.read_buf();
        let n = bytes.len().min(buf.len());
        buf[..n].copy_from_slice(&bytes[..n]);
        if n > 0 {
            self.conn.received(n, self.now);
        }
    }

    fn send(&mut self, max: usize) {
        self.poll();
        let [head, body] = self.conn.output(&self.site);
        let total = head.len() + body.len();
        let n = total.min(max);
        let from_head = n.min(head.len());
        self.sent.extend_from_slice(&head[..from_head]);
        self.sent.extend_from_slice(&body[..n - from_head]);
        self.conn.sent(n, self.now);
    }

    fn advance(&mut self, ms: u64) {
        self.now.monotonic_ms = self.now.monotonic_ms.saturating_add(ms);
        self.now.unix_secs = 1_700_000_000 + self.now.monotonic_ms / 1000;
    }
}

fuzz_target!(|input: Input| {
    let mut in_buf = vec![0u8; 64 + usize::from(input.input_len % 8192)];
    let mut out_buf = vec![0u8; 512 + usize::from(input.output_len % 4096)];
    let mut config = Config::DEFAULT;
    if input.small_config {
        config.max_path = 32;
        config.max_requests = 3;
        config.min_head_rate = 0;
        config.lifetime_ms = 0;
    }
    let now = Now {
        monotonic_ms: 0,
        unix_secs: 1_700_000_000,
    };
    let mut d = Driver {
        conn: Conn::new(&mut in_buf, &mut out_buf, config, now),
        site: Table::new(&FILES),
        log: Checks { exchanges: 0 },
        now,
        sent: Vec::new(),
    };
    for op in input.ops.iter().take(256) {
        match op {
            Op::Receive(bytes) => d.receive(bytes),
            Op::Prefix(i) => d.receive(PREFIXES[usize::from(*i) % PREFIXES.len()]),
            Op::Crlf => d.receive(b"\r\n"),
            Op::Advance(ms) => d.advance(u64::from(*ms % 400_000)),
            Op::Send(max) => d.send(usize::from(*max)),
            Op::SendAll => d.send(usize::MAX),
            Op::Eof => {
                d.poll();
                d.conn.received(0, d.now);
            }
            Op::Pressure(on) => d.conn.set_pressure(*on),
            Op::Draining => d.conn.set_draining(),
            Op::TimeOut => d.conn.time_out(),
        }
    }
    // The client goes away: everything must wind down within bounds.
    d.conn.received(0, d.now);
    for _ in 0..10_000 {
        d.send(usize::MAX);
        let interest = d.poll();
        let idle = d.conn.output(&d.site).iter().all(|s| s.is_empty());
        if idle && interest.close == Close::Now {
            break;
        }
        if idle && !interest.again {
            d.advance(
                interest
                    .deadline_ms
                    .map_or(1_000, |t| t.saturating_sub(d.now.monotonic_ms))
                    .max(1),
            );
        }
    }
    d.conn.close(&mut d.log);
    // A send cut short (a timeout, a slow socket) may stop inside the status line.
    let prefix = d.sent.len().min(7);
    assert!(
        d.sent[..prefix] == b"HTTP/1."[..prefix],
        "sent {:?}",
        String::from_utf8_lossy(&d.sent)
    );
});
