//! End-to-end tests of the sans-IO [`Conn`] over a static [`Table`]: whole
//! responses checked byte for byte, with input handed over and output
//! taken in pseudo-random pieces through the blocking driver, plus
//! deadlines driven directly through `poll` with a fake clock.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use std::convert::Infallible;
use std::sync::OnceLock;

use proptest::prelude::*;
use txtd_core::conn::{Close, Config, Conn, Exchange, Log, Now};
use txtd_core::driver::{Ended, serve};
use txtd_core::table::{Table, TableEntry};

/// `Sun, 06 Nov 1994 08:49:37 GMT`, the RFC 9110 example date.
const MODIFIED: u64 = 784_111_777;
/// The wall clock every test runs at: `Sat, 01 Jan 2000 00:00:00 GMT`.
const NOW_SECS: u64 = 946_684_800;
const HELLO: &[u8] = b"Hello <world> & \"friends\" 'x'\n";

/// A file much bigger than any buffer used here, full of escaped bytes.
fn big_text() -> &'static [u8] {
    static TEXT: OnceLock<Vec<u8>> = OnceLock::new();
    TEXT.get_or_init(|| {
        let mut text = Vec::new();
        let mut i = 0u32;
        while text.len() < 40_000 {
            text.extend_from_slice(format!("line {i}: a<b & c>d \"q\" é\n").as_bytes());
            i += 1;
        }
        text
    })
}

/// A 250-byte name of characters that grow when escaped and encoded.
fn long_name() -> String {
    "&'<".repeat(83) + "x"
}

fn leak(s: String) -> &'static [u8] {
    Box::leak(s.into_bytes().into_boxed_slice())
}

fn site() -> Table {
    static ENTRIES: OnceLock<&'static [TableEntry]> = OnceLock::new();
    let entries = ENTRIES.get_or_init(|| {
        let entries = vec![
            TableEntry::dir(b""),
            TableEntry::file(b"hello.txt", HELLO).modified(MODIFIED),
            TableEntry::file(b"big.txt", big_text()).modified(MODIFIED),
            TableEntry::dir(b"dir").modified(MODIFIED),
            TableEntry::file(b"dir/zeta.txt", b"z"),
            TableEntry::file(b"dir/alpha.txt", b"a"),
            TableEntry::dir(b"dir/middle"),
            TableEntry::file(b"dir/.secret", b"hidden"),
            TableEntry::file(b".hidden.txt", b"hidden"),
            TableEntry::dir(b"long"),
            TableEntry::file(leak(format!("long/{}", long_name())), b"<long>"),
            TableEntry::dir(leak(format!("long/{}-dir", long_name()))),
            TableEntry::file(b"long/short", b""),
        ];
        Box::leak(entries.into_boxed_slice())
    });
    Table::new(entries)
}

/// splitmix64: small, deterministic, good enough to pick piece sizes.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A size in `1..=max`.
    fn size(&mut self, max: usize) -> usize {
        1 + (self.next() % max as u64) as usize
    }
}

/// A stream that hands its input over in random pieces (then end of
/// stream) and takes writes in random pieces.
struct Mock {
    input: Vec<u8>,
    at: usize,
    output: Vec<u8>,
    rng: Rng,
    max_read: usize,
    max_write: usize,
}

impl embedded_io::ErrorType for Mock {
    type Error = Infallible;
}

impl embedded_io::Read for Mock {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        let rest = &self.input[self.at..];
        let n = rest.len().min(buf.len()).min(self.rng.size(self.max_read));
        buf[..n].copy_from_slice(&rest[..n]);
        self.at += n;
        Ok(n)
    }
}

impl embedded_io::Write for Mock {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        let n = buf.len().min(self.rng.size(self.max_write));
        self.output.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Records `(status, complete)` of each exchange, and its request line
/// and body length.
#[derive(Default)]
struct Record(Vec<(u16, bool)>, Vec<(Vec<u8>, u64)>);

impl Log for Record {
    fn exchange(&mut self, exchange: &Exchange<'_>) {
        self.0.push((exchange.status.code(), exchange.complete));
        self.1
            .push((exchange.request_line.to_vec(), exchange.body_len));
    }
}

const fn now(ms: u64) -> Now {
    Now {
        monotonic_ms: ms,
        unix_secs: NOW_SECS,
    }
}

/// How a run is cut up.
#[derive(Clone, Copy, Debug)]
struct Shape {
    input_buf: usize,
    output_buf: usize,
    max_read: usize,
    max_write: usize,
    seed: u64,
}

const BIG: Shape = Shape {
    input_buf: 64 * 1024,
    output_buf: 64 * 1024,
    max_read: usize::MAX,
    max_write: usize::MAX,
    seed: 1,
};

/// Everything the server sent for `input`, and the log.
fn run_with(input: &[u8], config: Config, shape: Shape) -> (Vec<u8>, Record) {
    let mut site = site();
    let mut inbuf = vec![0u8; shape.input_buf];
    let mut outbuf = vec![0u8; shape.output_buf];
    let mut conn: Conn<'_, Table> = Conn::new(&mut inbuf, &mut outbuf, config, now(0));
    let mut io = Mock {
        input: input.to_vec(),
        at: 0,
        output: Vec::new(),
        rng: Rng(shape.seed),
        max_read: shape.max_read,
        max_write: shape.max_write,
    };
    let mut log = Record::default();
    let ended = serve(&mut conn, &mut io, &mut site, &mut log, || now(0));
    assert_eq!(ended, Ok(Ended::Closed));
    (io.output, log)
}

fn run(input: &[u8]) -> Vec<u8> {
    run_with(input, Config::DEFAULT, BIG).0
}

/// One parsed response.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Response {
    status: u16,
    head: String,
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

/// Splits a byte stream into responses; `is_head(i)` says whether the
/// `i`th answers a HEAD (so has no body despite its Content-Length).
fn responses(mut bytes: &[u8], is_head: impl Fn(usize) -> bool) -> Vec<Response> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("unterminated head: {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap();
        assert!(status_line.starts_with("HTTP/1.1 "), "{status_line}");
        let status: u16 = status_line[9..12].parse().unwrap();
        let fields: Vec<(String, String)> = lines
            .map(|l| {
                let (n, v) = l.split_once(": ").unwrap();
                (n.to_owned(), v.to_owned())
            })
            .collect();
        bytes = &bytes[end + 4..];
        let len: usize = fields
            .iter()
            .find(|(n, _)| n == "Content-Length")
            .map_or(0, |(_, v)| v.parse().unwrap());
        let len = if is_head(out.len()) || status == 304 || status == 204 {
            0
        } else {
            len
        };
        assert!(bytes.len() >= len, "body cut short in {head}");
        out.push(Response {
            status,
            head,
            fields,
            body: bytes[..len].to_vec(),
        });
        bytes = &bytes[len..];
    }
    out
}

fn one(input: &[u8]) -> Response {
    let mut all = responses(&run(input), |_| input.starts_with(b"HEAD"));
    assert_eq!(all.len(), 1, "{all:?}");
    all.remove(0)
}

fn get(target: &str, fields: &str) -> Response {
    one(format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{fields}\r\n").as_bytes())
}

#[test]
fn a_file_is_served_as_an_escaped_page_with_validators() {
    let r = get("/hello.txt", "");
    assert_eq!(r.status, 200);
    assert!(r.head.starts_with("HTTP/1.1 200 OK\r\n"));
    assert_eq!(r.field("Content-Length").unwrap(), r.body.len().to_string());
    assert_eq!(r.field("Server"), Some("txtd"));
    assert_eq!(r.field("Date"), Some("Sat, 01 Jan 2000 00:00:00 GMT"));
    assert_eq!(
        r.field("Last-Modified"),
        Some("Sun, 06 Nov 1994 08:49:37 GMT")
    );
    let etag = r.field("ETag").unwrap();
    assert!(etag.starts_with('"') && etag.ends_with('"') && etag.len() > 2);
    assert_eq!(r.field("Connection"), Some("close"));
    assert!(r.field("Content-Type").unwrap().starts_with("text/html"));
    let text = r.text();
    assert!(
        text.contains("<pre>\nHello &lt;world&gt; &amp; &quot;friends&quot; &#39;x&#39;\n</pre>"),
        "{text}"
    );
    assert!(text.contains("<title>hello.txt"), "{text}");
}

#[test]
fn head_gives_the_get_head_and_no_body() {
    let get = run(b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let head = run(b"HEAD /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let get_head_len = get.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    assert_eq!(head, &get[..get_head_len]);
    assert!(get.len() > get_head_len);
}

#[test]
fn a_big_file_is_streamed_whole() {
    let r = get("/big.txt", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.field("Content-Length").unwrap(), r.body.len().to_string());
    let text = r.text();
    let escaped = String::from_utf8(big_text().to_vec())
        .unwrap()
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    assert!(text.contains(&format!("<pre>\n{escaped}</pre>")));
}

#[test]
fn a_directory_index_lists_entries_sorted_and_hides_dotfiles() {
    let r = get("/dir/", "");
    assert_eq!(r.status, 200);
    assert_eq!(r.field("Content-Length").unwrap(), r.body.len().to_string());
    let text = r.text();
    let alpha = text.find("alpha.txt").expect(&text);
    let middle = text.find("middle/").expect(&text);
    let zeta = text.find("zeta.txt").expect(&text);
    assert!(alpha < middle && middle < zeta, "{text}");
    assert!(text.contains("href=\"middle/\""), "{text}");
    assert!(!text.contains("secret"), "{text}");
    let root = get("/", "").text();
    assert!(
        root.contains("hello.txt") && root.contains("dir/"),
        "{root}"
    );
    assert!(!root.contains("hidden"), "{root}");
}

#[test]
fn a_directory_without_slash_is_redirected() {
    let r = get("/dir", "");
    assert_eq!(r.status, 301);
    assert_eq!(r.field("Location"), Some("/dir/"));
    assert_eq!(r.field("Content-Length").unwrap(), r.body.len().to_string());
}

#[test]
fn a_missing_file_is_a_404_page() {
    let r = get("/nope.txt", "");
    assert_eq!(r.status, 404);
    assert!(r.head.starts_with("HTTP/1.1 404 Not Found\r\n"));
    assert!(r.text().contains("404 Not Found"), "{}", r.text());
    assert!(r.text().starts_with("<!DOCTYPE html>"), "{}", r.text());
    assert_eq!(r.field("Content-Length").unwrap(), r.body.len().to_string());
    assert_eq!(get("/.hidden.txt", "").status, 404);
}

#[test]
fn post_is_refused_with_allow() {
    let r = one(b"POST /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 405);
    assert_eq!(r.field("Allow"), Some("GET, HEAD, OPTIONS"));
}

#[test]
fn options_is_answered_with_allow() {
    let r = one(b"OPTIONS * HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 204);
    assert_eq!(r.field("Allow"), Some("GET, HEAD, OPTIONS"));
    assert!(r.body.is_empty());
    let r = one(b"OPTIONS /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(r.status, 204);
}

#[test]
fn a_bad_request_line_is_a_400_and_a_close() {
    // More bytes follow; none must be answered.
    let out = run(b"GARBAGE\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n");
    let all = responses(&out, |_| false);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].status, 400);
    assert_eq!(all[0].field("Connection"), Some("close"));
}

#[test]
fn http_2_is_refused_with_505() {
    let r = one(b"GET / HTTP/2.0\r\nHost: x\r\n\r\n");
    assert_eq!(r.status, 505);
}

#[test]
fn a_too_long_request_line_is_a_414() {
    let long = "a".repeat(9000);
    let r = one(format!("GET /{long} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    assert_eq!(r.status, 414);
}

#[test]
fn too_many_header_fields_are_a_431() {
    let fields: String = (0..200).map(|i| format!("X-{i}: y\r\n")).collect();
    let r = one(format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n").as_bytes());
    assert_eq!(r.status, 431);
}

#[test]
fn dot_dot_above_the_root_is_a_400() {
    assert_eq!(get("/../x", "").status, 400);
    assert_eq!(get("/%2e%2e/x", "").status, 400);
}

#[test]
fn a_matching_etag_is_not_modified() {
    let first = get("/hello.txt", "");
    let etag = first.field("ETag").unwrap();
    let r = get("/hello.txt", &format!("If-None-Match: {etag}\r\n"));
    assert_eq!(r.status, 304);
    assert_eq!(r.field("ETag"), Some(etag));
    assert!(r.body.is_empty());
    assert_eq!(
        get("/hello.txt", "If-None-Match: \"other\"\r\n").status,
        200
    );
}

#[test]
fn an_unchanged_date_is_not_modified() {
    let r = get(
        "/hello.txt",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n",
    );
    assert_eq!(r.status, 304);
    let r = get(
        "/hello.txt",
        "If-Modified-Since: Sun, 06 Nov 1994 08:49:36 GMT\r\n",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn a_range_is_a_206_with_content_range() {
    let whole = get("/hello.txt", "");
    let r = get("/hello.txt", "Range: bytes=0-9\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(
        r.field("Content-Range"),
        Some(format!("bytes 0-9/{}", whole.body.len()).as_str())
    );
    assert_eq!(r.field("Content-Length"), Some("10"));
    assert_eq!(r.body, whole.body[..10]);
    // A range of a streamed page.
    let whole = get("/big.txt", "");
    let r = get("/big.txt", "Range: bytes=30000-30099\r\n");
    assert_eq!(r.status, 206);
    assert_eq!(r.body, whole.body[30000..30100]);
}

#[test]
fn a_range_past_the_end_is_a_416() {
    let whole = get("/hello.txt", "");
    let r = get("/hello.txt", "Range: bytes=999999-\r\n");
    assert_eq!(r.status, 416);
    assert_eq!(
        r.field("Content-Range"),
        Some(format!("bytes */{}", whole.body.len()).as_str())
    );
}

#[test]
fn a_hundred_requests_share_one_connection() {
    let mut input = Vec::new();
    for i in 0..100 {
        let target = ["/hello.txt", "/dir/", "/nope", "/dir"][i % 4];
        input.extend_from_slice(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes());
    }
    let shape = Shape {
        input_buf: 8192,
        output_buf: 4096,
        max_read: 100,
        max_write: 300,
        seed: 7,
    };
    let (out, log) = run_with(&input, Config::DEFAULT, shape);
    let all = responses(&out, |_| false);
    assert_eq!(all.len(), 100);
    for (i, r) in all.iter().enumerate() {
        assert_eq!(r.status, [200, 200, 404, 301][i % 4], "response {i}");
        assert_eq!(r.field("Connection"), None, "response {i}");
    }
    assert_eq!(log.0.len(), 100);
    assert!(log.0.iter().all(|&(_, complete)| complete));
    for (i, ((line, body_len), r)) in log.1.iter().zip(&all).enumerate() {
        let target = ["/hello.txt", "/dir/", "/nope", "/dir"][i % 4];
        assert_eq!(line, format!("GET {target} HTTP/1.1").as_bytes());
        assert_eq!(*body_len, r.body.len() as u64, "response {i}");
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let input = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
        HEAD /nope HTTP/1.1\r\nHost: x\r\n\r\n\
        GET /dir HTTP/1.1\r\nHost: x\r\n\r\n";
    let shape = Shape {
        max_read: usize::MAX,
        ..BIG
    };
    let (out, _) = run_with(input, Config::DEFAULT, shape);
    let all = responses(&out, |i| i == 1);
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 404, 301]);
}

#[test]
fn http_1_0_without_keep_alive_closes() {
    let input = b"GET /hello.txt HTTP/1.0\r\n\r\nGET /hello.txt HTTP/1.0\r\n\r\n";
    let all = responses(&run(input), |_| false);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].field("Connection"), Some("close"));
    let input = b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\n\r\n\
        GET /hello.txt HTTP/1.0\r\n\r\nGET /hello.txt HTTP/1.0\r\n\r\n";
    let all = responses(&run(input), |_| false);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].field("Connection"), Some("keep-alive"));
}

#[test]
fn connection_close_closes_after_the_response() {
    let input = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n\
        GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n";
    let all = responses(&run(input), |_| false);
    assert_eq!(all.len(), 1);
}

#[test]
fn a_connection_closes_after_its_last_allowed_request() {
    let request = b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    let input: Vec<u8> = request.repeat(1005);
    let shape = Shape {
        input_buf: 8192,
        output_buf: 2048,
        ..BIG
    };
    let (out, log) = run_with(&input, Config::DEFAULT, shape);
    let all = responses(&out, |_| false);
    assert_eq!(all.len(), 1000);
    assert_eq!(all[998].field("Connection"), None);
    assert_eq!(all[999].field("Connection"), Some("close"));
    assert_eq!(log.0.len(), 1000);
}

/// Polls `conn` at `t` and returns everything it has to send.
fn drain(conn: &mut Conn<'_, Table>, site: &mut Table, t: u64) -> (Vec<u8>, Close) {
    let mut out = Vec::new();
    for _ in 0..1000 {
        let interest = conn.poll(site, &mut (), now(t));
        let [head, body] = conn.output(site);
        let n = head.len() + body.len();
        out.extend_from_slice(head);
        out.extend_from_slice(body);
        conn.sent(n, now(t));
        if n == 0 && !interest.again {
            return (out, interest.close);
        }
    }
    panic!("connection never settled");
}

#[test]
fn an_idle_connection_closes_after_the_first_byte_timeout() {
    let mut site = site();
    let (mut input, mut output) = ([0u8; 4096], [0u8; 4096]);
    let config = Config::DEFAULT;
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    let interest = conn.poll(&mut site, &mut (), now(0));
    assert_eq!(interest.close, Close::Keep);
    assert!(interest.read);
    assert_eq!(interest.deadline_ms, Some(config.first_byte_timeout_ms));
    let (out, close) = drain(&mut conn, &mut site, config.first_byte_timeout_ms - 1);
    assert!(out.is_empty());
    assert_eq!(close, Close::Keep);
    let (out, close) = drain(&mut conn, &mut site, config.first_byte_timeout_ms);
    assert!(out.is_empty());
    assert_eq!(close, Close::Now);
}

#[test]
fn a_partial_head_gets_a_408_after_the_head_timeout() {
    let mut site = site();
    let (mut input, mut output) = ([0u8; 4096], [0u8; 4096]);
    let config = Config {
        min_head_rate: 0,
        ..Config::DEFAULT
    };
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    let part = b"GET /hello.txt HTTP/1.1\r\nHo";
    conn.read_buf()[..part.len()].copy_from_slice(part);
    conn.received(part.len(), now(100));
    let interest = conn.poll(&mut site, &mut (), now(100));
    assert_eq!(interest.deadline_ms, Some(100 + config.head_timeout_ms));
    let (out, close) = drain(&mut conn, &mut site, 99 + config.head_timeout_ms);
    assert!(out.is_empty());
    assert_eq!(close, Close::Keep);
    let (out, close) = drain(&mut conn, &mut site, 100 + config.head_timeout_ms);
    let all = responses(&out, |_| false);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, 408);
    assert_eq!(all[0].field("Connection"), Some("close"));
    assert_ne!(close, Close::Keep);
}

#[test]
fn a_slow_head_gets_a_408_below_the_minimum_rate() {
    let mut site = site();
    let (mut input, mut output) = ([0u8; 4096], [0u8; 4096]);
    let config = Config::DEFAULT;
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    conn.read_buf()[..3].copy_from_slice(b"GET");
    conn.received(3, now(0));
    let (out, _) = drain(&mut conn, &mut site, 999);
    assert!(out.is_empty());
    let (out, _) = drain(&mut conn, &mut site, 1000);
    assert_eq!(responses(&out, |_| false)[0].status, 408);
}

/// Requests whose answers must not depend on how the bytes are cut.
fn mixed_requests() -> Vec<u8> {
    b"GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\n\
      GET /dir/ HTTP/1.1\r\nHost: x\r\n\r\n\
      HEAD /big.txt HTTP/1.1\r\nHost: x\r\n\r\n\
      GET /big.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-20999\r\n\r\n\
      GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
      GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        .to_vec()
}

/// Fails with where `out` first departs from `reference`.
fn assert_same(out: &[u8], reference: &[u8], shape: Shape) {
    if out == reference {
        return;
    }
    let at = out
        .iter()
        .zip(reference)
        .position(|(a, b)| a != b)
        .unwrap_or(out.len().min(reference.len()));
    let show = |b: &[u8]| {
        String::from_utf8_lossy(&b[at.saturating_sub(80)..(at + 80).min(b.len())]).into_owned()
    };
    panic!(
        "differs for {shape:?} at byte {at} (lengths {} and {}):\n got {:?}\nwant {:?}",
        out.len(),
        reference.len(),
        show(out),
        show(reference)
    );
}

#[test]
fn responses_do_not_depend_on_piece_or_buffer_sizes() {
    let input = mixed_requests();
    let (reference, _) = run_with(&input, Config::DEFAULT, BIG);
    let all = responses(&reference, |i| i == 2);
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 200, 206, 200, 404]);
    for output_buf in [512, 513, 600, 777, 1024, 1500, 2048, 2049, 4096, 9000] {
        for seed in 0..8 {
            let mut rng = Rng(seed * 31 + output_buf as u64);
            let shape = Shape {
                input_buf: 8192 + rng.size(8192),
                output_buf,
                max_read: rng.size(200),
                max_write: rng.size(3000),
                seed,
            };
            let (out, _) = run_with(&input, Config::DEFAULT, shape);
            assert_same(&out, &reference, shape);
        }
    }
}

#[test]
fn entries_longer_than_the_output_buffer_are_sent_in_pieces() {
    let name = long_name();
    let encoded = "%26%27%3C".repeat(83) + "x";
    let escaped = "&amp;&#39;&lt;".repeat(83) + "x";
    let index = "GET /long/ HTTP/1.1\r\nHost: x\r\n\r\n";
    let page = format!("GET /long/{encoded} HTTP/1.1\r\nHost: x\r\n\r\n");
    let redirect =
        format!("GET /long/{encoded}-dir HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let input = format!("{index}{page}{redirect}").into_bytes();
    let (reference, _) = run_with(&input, Config::DEFAULT, BIG);
    let all = responses(&reference, |_| false);
    let statuses: Vec<u16> = all.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [200, 200, 301], "{name}");
    let listing = all[0].text();
    assert!(
        listing.contains(&format!("href=\"{encoded}\">{escaped}</a>")),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("href=\"{encoded}-dir/\">{escaped}-dir/</a>")),
        "{listing}"
    );
    assert!(all[1].text().contains(&format!("<title>{escaped}")));
    assert_eq!(
        all[1].field("Content-Length").unwrap(),
        all[1].body.len().to_string()
    );
    // The redirect's head, with its long Location, goes out in windows.
    for output_buf in [64, 100, 512, 640, 1024, 2048, 3000] {
        for seed in 0..4 {
            let shape = Shape {
                output_buf,
                max_read: 50,
                max_write: 700,
                seed,
                ..BIG
            };
            let (out, _) = run_with(&input, Config::DEFAULT, shape);
            assert_same(&out, &reference, shape);
        }
    }
}

/// One input per way a connection ends, between them answering with
/// every kind of response: a keep-alive run of pages, a listing with long
/// names, a long redirect, empty and error responses, then the refusals
/// that close.
fn every_kind_of_response() -> Vec<(Vec<u8>, Vec<u16>)> {
    let encoded = "%26%27%3C".repeat(83) + "x";
    let run = format!(
        "GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\n\
         HEAD /big.txt HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /long/ HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /missing HTTP/1.1\r\nHost: x\r\n\r\n\
         HEAD /missing HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /long/{encoded}-dir HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /hello.txt HTTP/1.1\r\nHost: x\r\n\
         If-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n\
         GET /big.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=1000-20999\r\n\r\n\
         GET /big.txt HTTP/1.1\r\nHost: x\r\nRange: bytes=999999-\r\n\r\n\
         OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n\
         GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n\
         POST /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let long_line = format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(9000));
    let fields: String = (0..200).map(|i| format!("X-{i}: y\r\n")).collect();
    let many_fields = format!("GET / HTTP/1.1\r\nHost: x\r\n{fields}\r\n");
    vec![
        (
            run.into_bytes(),
            vec![200, 200, 200, 404, 404, 301, 304, 206, 416, 204, 200, 405],
        ),
        (b"GARBAGE\r\n\r\n".to_vec(), vec![400]),
        (long_line.into_bytes(), vec![414]),
        (many_fields.into_bytes(), vec![431]),
    ]
}

#[test]
fn output_buffers_from_the_minimum_up_send_the_same_bytes() {
    // `Conn::new` asks for 64 bytes of output: from there up, heads, error
    // pages and long redirects go out in windows, byte for byte as from a
    // big buffer.
    for (input, statuses) in every_kind_of_response() {
        let (reference, reference_log) = run_with(&input, Config::DEFAULT, BIG);
        let all = responses(&reference, |i| {
            input.starts_with(b"GET /big") && (i == 1 || i == 4)
        });
        let got: Vec<u16> = all.iter().map(|r| r.status).collect();
        assert_eq!(got, statuses);
        assert!(reference_log.0.iter().all(|&(_, complete)| complete));
        for output_buf in 64..=511 {
            let mut rng = Rng(output_buf as u64);
            let shape = Shape {
                output_buf,
                max_read: rng.size(300),
                max_write: rng.size(600),
                seed: output_buf as u64,
                ..BIG
            };
            let (out, log) = run_with(&input, Config::DEFAULT, shape);
            assert_same(&out, &reference, shape);
            assert_eq!(log.0, reference_log.0, "{shape:?}");
            assert_eq!(log.1, reference_log.1, "{shape:?}");
        }
    }
}

#[test]
fn a_big_output_buffer_holds_a_head_and_a_short_page_at_once() {
    for (request, status) in [
        (
            &b"GET /missing HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
            404,
        ),
        (
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            200,
        ),
    ] {
        let mut site = site();
        let (mut input, mut output) = (vec![0u8; 16 * 1024], vec![0u8; 16 * 1024]);
        let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, Config::DEFAULT, now(0));
        feed(&mut conn, request, 0);
        conn.poll(&mut site, &mut (), now(0));
        let [head, body] = conn.output(&site);
        let first = [head, body].concat();
        let all = responses(&first, |_| false);
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].status, status);
        assert_eq!(first, run(request));
    }
}

#[test]
fn a_request_body_is_refused_and_the_connection_closed() {
    let input = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n\
        helloGET /nope HTTP/1.1\r\nHost: x\r\n\r\n";
    let all = responses(&run(input), |_| false);
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(all[0].status, 413);
    assert_eq!(all[0].field("Connection"), Some("close"));
}

#[test]
fn a_head_cut_off_by_the_client_gets_no_answer() {
    let (out, log) = run_with(b"GET /hello.txt HTTP/1.1\r\nHo", Config::DEFAULT, BIG);
    assert!(out.is_empty());
    assert!(log.0.is_empty());
}

/// Hands `bytes` to `conn` at `t`.
fn feed(conn: &mut Conn<'_, Table>, bytes: &[u8], t: u64) {
    conn.read_buf()[..bytes.len()].copy_from_slice(bytes);
    conn.received(bytes.len(), now(t));
}

#[test]
fn an_idle_keep_alive_connection_closes_after_its_timeout() {
    let mut site = site();
    let (mut input, mut output) = ([0u8; 4096], [0u8; 4096]);
    let config = Config::DEFAULT;
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    feed(&mut conn, b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", 10);
    let (out, close) = drain(&mut conn, &mut site, 20);
    assert_eq!(responses(&out, |_| false)[0].status, 200);
    assert_eq!(close, Close::Keep);
    let interest = conn.poll(&mut site, &mut (), now(20));
    assert_eq!(interest.deadline_ms, Some(20 + config.keepalive_timeout_ms));
    let (_, close) = drain(&mut conn, &mut site, 19 + config.keepalive_timeout_ms);
    assert_eq!(close, Close::Keep);
    let (out, close) = drain(&mut conn, &mut site, 20 + config.keepalive_timeout_ms);
    assert!(out.is_empty());
    assert_eq!(close, Close::Now);
}

/// How a connection ends after answering `input` in one piece, with
/// `config`: the statuses sent and what the driver is told to do; checks
/// that `closes_after_response` foretold it while the response was sent.
fn ending(input: &[u8], config: Config) -> (Vec<u16>, Close) {
    let mut site = site();
    let (mut inbuf, mut outbuf) = ([0u8; 4096], [0u8; 4096]);
    let mut conn: Conn<'_, Table> = Conn::new(&mut inbuf, &mut outbuf, config, now(0));
    feed(&mut conn, input, 0);
    let interest = conn.poll(&mut site, &mut (), now(0));
    assert!(interest.write);
    let foretold = conn.closes_after_response();
    let (out, close) = drain(&mut conn, &mut site, 0);
    let what = String::from_utf8_lossy(input);
    assert_eq!(foretold, close == Close::Now, "{what}");
    let statuses = responses(&out, |_| false)
        .iter()
        .map(|r| r.status)
        .collect();
    (statuses, close)
}

#[test]
fn a_client_that_asked_to_close_and_sent_nothing_more_is_closed_at_once() {
    for input in [
        &b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"[..],
        b"GET /hello.txt HTTP/1.0\r\n\r\n",
        b"GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        b"GET /dir HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    ] {
        let (statuses, close) = ending(input, Config::DEFAULT);
        assert_eq!(statuses.len(), 1);
        assert_eq!(close, Close::Now, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn a_close_the_client_may_still_be_sending_into_lingers() {
    let mut last = Config::DEFAULT;
    last.max_requests = 1;
    for (input, config, status) in [
        // More bytes after the request that asked to close.
        (
            &b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\nGET /"[..],
            Config::DEFAULT,
            200,
        ),
        // A body, refused: the rest of it may still be on its way.
        (
            b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\n\r\n",
            Config::DEFAULT,
            413,
        ),
        // A malformed head.
        (b"GET / HTTP/1.1\r\nHost x\r\n\r\n", Config::DEFAULT, 400),
        // The server ends the connection: pipelined requests may follow.
        (b"GET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n", last, 200),
    ] {
        let (statuses, close) = ending(input, config);
        assert_eq!(statuses, [status], "{}", String::from_utf8_lossy(input));
        assert_eq!(close, Close::Linger, "{}", String::from_utf8_lossy(input));
    }
}

#[test]
fn a_response_the_client_never_reads_is_given_up_and_logged_incomplete() {
    let mut site = site();
    let (mut input, mut output) = ([0u8; 4096], [0u8; 4096]);
    let config = Config::DEFAULT;
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    feed(&mut conn, b"GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    let mut log = Record::default();
    let mut t = 0;
    let mut interest = conn.poll(&mut site, &mut log, now(t));
    for _ in 0..100 {
        if !interest.again {
            break;
        }
        interest = conn.poll(&mut site, &mut log, now(t));
    }
    assert!(interest.write);
    // Nothing is ever sent.
    t += config.send_timeout_ms;
    let interest = conn.poll(&mut site, &mut log, now(t));
    assert_eq!(interest.close, Close::Now);
    assert_eq!(log.0, [(200, false)]);
}

#[test]
fn a_page_measured_for_longer_than_the_send_timeout_is_still_sent() {
    // NULs (each one U+FFFD) beyond what one poll measures: the length
    // pass takes several polls, and the clock runs on between them as in
    // a busy worker.
    let text: &'static [u8] = Box::leak(vec![0u8; 768 * 1024].into_boxed_slice());
    let entries: &'static [TableEntry] = Box::leak(
        vec![TableEntry::dir(b""), TableEntry::file(b"zeros.txt", text)].into_boxed_slice(),
    );
    let mut site = Table::new(entries);
    let (mut input, mut output) = (vec![0u8; 4096], vec![0u8; 16 * 1024]);
    let config = Config::DEFAULT;
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    feed(&mut conn, b"GET /zeros.txt HTTP/1.1\r\nHost: x\r\n\r\n", 0);
    let mut t = 0;
    for _ in 0..100 {
        let interest = conn.poll(&mut site, &mut (), now(t));
        assert_eq!(interest.close, Close::Keep, "closed at {t} ms");
        if !conn.output(&site)[0].is_empty() {
            break;
        }
        assert!(interest.again);
        t += config.send_timeout_ms / 2;
    }
    assert!(t >= config.send_timeout_ms, "measured within {t} ms");
    // The send timeout counts from the head being ready, not from the request.
    let (out, close) = drain(&mut conn, &mut site, t);
    assert_eq!(close, Close::Keep);
    let all = responses(&out, |_| false);
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].status, 200);
    assert_eq!(
        all[0]
            .body
            .windows(3)
            .filter(|w| *w == "\u{FFFD}".as_bytes())
            .count(),
        text.len()
    );
}

#[test]
fn a_connection_ends_at_its_lifetime() {
    let mut site = site();
    let (mut input, mut output) = ([0u8; 4096], [0u8; 4096]);
    let config = Config::DEFAULT;
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    let mut t = 0;
    // A request every second keeps it from idling out.
    while t < config.lifetime_ms - 1000 {
        feed(&mut conn, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", t);
        let (out, close) = drain(&mut conn, &mut site, t);
        assert_eq!(responses(&out, |_| false).len(), 1);
        assert_eq!(close, Close::Keep);
        t += 1000;
    }
    let interest = conn.poll(&mut site, &mut (), now(t));
    assert_eq!(interest.deadline_ms, Some(config.lifetime_ms));
    let (_, close) = drain(&mut conn, &mut site, config.lifetime_ms);
    assert_eq!(close, Close::Now);
}

#[test]
fn a_response_in_flight_when_the_lifetime_ends_is_finished_and_the_next_closes() {
    let mut site = site();
    let (mut input, mut output) = ([0u8; 4096], [0u8; 1024]);
    let config = Config::DEFAULT;
    let end = config.lifetime_ms;
    let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, config, now(0));
    // A big page asked for just before the lifetime ends, and a second
    // request pipelined behind it.
    feed(
        &mut conn,
        b"GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /hello.txt HTTP/1.1\r\nHost: x\r\n\r\n",
        end - 10,
    );
    let mut out = Vec::new();
    let mut t = end - 10;
    // The client reads a window a second: the page outlasts the lifetime
    // by far, and each read is progress, so the send timeout never fires.
    for _ in 0..10_000 {
        let interest = conn.poll(&mut site, &mut (), now(t));
        assert_ne!(interest.close, Close::Now, "closed at {t} ms");
        if interest.deadline_ms.is_some_and(|d| d <= t) {
            panic!("a deadline in the past at {t} ms: {interest:?}");
        }
        let [head, body] = conn.output(&site);
        let n = head.len() + body.len();
        out.extend_from_slice(head);
        out.extend_from_slice(body);
        conn.sent(n, now(t));
        if n == 0 && !interest.again {
            break;
        }
        t += 1000;
    }
    assert!(t > end + config.send_timeout_ms, "sent by {t} ms");
    let all = responses(&out, |_| false);
    assert_eq!(all.len(), 2);
    assert_eq!(all[0].status, 200);
    assert_eq!(all[0].field("Connection"), None);
    assert!(all[0].text().ends_with("</pre>\n</body>\n</html>\n"));
    // The request after the lifetime is answered, then the connection ends.
    assert_eq!(all[1].status, 200);
    assert_eq!(all[1].field("Connection"), Some("close"));
    let (rest, close) = drain(&mut conn, &mut site, t);
    assert!(rest.is_empty());
    assert_ne!(close, Close::Keep);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_split_and_buffer_give_the_same_bytes(
        seed in any::<u64>(),
        input_buf in 8192usize..20_000,
        output_buf in 64usize..6000,
        max_read in 1usize..300,
        max_write in 1usize..5000,
    ) {
        static REFERENCE: OnceLock<Vec<u8>> = OnceLock::new();
        let input = mixed_requests();
        let reference = REFERENCE.get_or_init(|| run_with(&input, Config::DEFAULT, BIG).0);
        let shape = Shape { input_buf, output_buf, max_read, max_write, seed };
        let (out, _) = run_with(&input, Config::DEFAULT, shape);
        assert_same(&out, reference, shape);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_bytes_get_well_formed_responses(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        prefix in prop_oneof![
            Just(&b""[..]),
            Just(&b"GET /"[..]),
            Just(&b"GET / HTTP/1.1\r\n"[..]),
            Just(&b"HEAD /dir/ HTTP/1.0\r\nRange: bytes="[..]),
            Just(&b"GET /big.txt HTTP/1.1\r\nHost: x\r\n\r\nHEAD /hello.txt HTTP/1.1\r\nHost: x\r\n\r\nGET /"[..]),
            Just(&b"GET /hello.txt HTTP/1.0\r\nConnection: keep-alive\r\nIf-None-Match: "[..]),
        ],
        seed in any::<u64>(),
        output_buf in 64usize..3000,
    ) {
        let mut input = prefix.to_vec();
        input.extend_from_slice(&bytes);
        let shape = Shape { input_buf: 4096, output_buf, max_read: 64, max_write: 64, seed };
        let (out, log) = run_with(&input, Config::DEFAULT, shape);
        // Frame the responses by what the log says each body was: every
        // one starts with a status line, and its body is as long as its
        // Content-Length, or empty (HEAD, 204, 304).
        let mut rest = &out[..];
        for (i, (&(status, complete), (_, body_len))) in log.0.iter().zip(&log.1).enumerate() {
            prop_assert!(complete);
            prop_assert!(rest.starts_with(b"HTTP/1.1 "), "{i}: {:?}", String::from_utf8_lossy(rest));
            prop_assert!(rest.len() >= 13 && rest[12] == b' ');
            let code = status.to_string();
            prop_assert_eq!(&rest[9..12], code.as_bytes());
            let end = rest.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
            let head = String::from_utf8_lossy(&rest[..end]).into_owned();
            let length = head
                .split("\r\n")
                .find_map(|l| l.strip_prefix("Content-Length: "))
                .map_or(0, |v| v.parse::<u64>().unwrap());
            prop_assert!(*body_len == length || *body_len == 0, "{head}");
            rest = &rest[end + usize::try_from(*body_len).unwrap()..];
        }
        prop_assert!(rest.is_empty(), "unlogged bytes: {:?}", String::from_utf8_lossy(rest));
    }
}
