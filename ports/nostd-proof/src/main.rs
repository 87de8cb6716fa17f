//! Proof that txtd-core runs on a bare-metal Cortex-M with no heap.
//!
//! On an LM3S6965 (QEMU `lm3s6965evb`) it parses a request head, normalises
//! its target, renders a text page, and serves two pipelined requests over
//! an in-memory `embedded_io` stream with [`driver::serve`]. Every buffer is
//! a `static` (cortex-m-rt's `#[entry]` turns them into `&'static mut`).
//! The outcome goes out over semihosting, and QEMU exits with its status.
#![no_std]
#![no_main]
#![deny(clippy::indexing_slicing)]

use core::convert::Infallible;
use core::panic::PanicInfo;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use embedded_io::{ErrorType, Read, Write};
use txtd_core::conn::{Config, Conn, Exchange, Log, Now};
use txtd_core::driver::{self, Ended};
use txtd_core::html::{self, Escaper};
use txtd_core::request::{Field, Limits, Parsed, parse_request};
use txtd_core::table::{Table, TableEntry};
use txtd_core::target::parse_target;

/// The site, served from flash.
static FILES: [TableEntry; 4] = [
    TableEntry::dir(b""),
    TableEntry::file(b"hello.txt", b"Hello from a Cortex-M <3\n").modified(1_700_000_000),
    TableEntry::dir(b"notes"),
    TableEntry::file(b"notes/todo.txt", b"1. port txtd\n2. \"ship\" it & rest\n"),
];

/// What a client sends: a keep-alive request, then one that asks to close.
const REQUESTS: &[u8] = b"GET /hello.txt HTTP/1.1\r\nHost: mcu\r\n\r\n\
GET /notes/ HTTP/1.1\r\nHost: mcu\r\nConnection: close\r\n\r\n";

/// Bytes per read, small so heads arrive in pieces as from a TCP stack.
const READ_PIECE: usize = 7;

/// Most responses the proof records.
const MAX_EXCHANGES: usize = 4;

/// An in-memory stream: reads `input` in pieces, writes into `output`.
struct MockStream<'a> {
    input: &'a [u8],
    output: &'a mut [u8],
    written: usize,
}

impl ErrorType for MockStream<'_> {
    type Error = Infallible;
}

impl Read for MockStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Infallible> {
        // An empty `input` reads as 0: the client has closed.
        let n = buf.len().min(READ_PIECE).min(self.input.len());
        let (piece, rest) = self.input.split_at(n);
        if let Some(dst) = buf.get_mut(..n) {
            dst.copy_from_slice(piece);
        }
        self.input = rest;
        Ok(n)
    }
}

impl Write for MockStream<'_> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Infallible> {
        // A full output answers 0, which the driver reports as `WriteZero`.
        let room = self.output.get_mut(self.written..).unwrap_or_default();
        let n = buf.len().min(room.len());
        if let (Some(dst), Some(src)) = (room.get_mut(..n), buf.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.written += n;
        Ok(n)
    }

    fn flush(&mut self) -> Result<(), Infallible> {
        Ok(())
    }
}

/// Keeps the status code of each exchange.
#[derive(Default)]
struct StatusLog {
    codes: [u16; MAX_EXCHANGES],
    len: usize,
    all_complete: bool,
}

impl Log for StatusLog {
    fn exchange(&mut self, exchange: &Exchange<'_>) {
        if let Some(slot) = self.codes.get_mut(self.len) {
            *slot = exchange.status.code();
            self.len += 1;
        }
        self.all_complete = (self.len == 1 || self.all_complete) && exchange.complete;
    }
}

/// Renders `text` as the page of file `name` into `out`; returns its length.
fn render_page(name: &[u8], text: &[u8], out: &mut [u8]) -> Option<usize> {
    let mut len = html::write_page_prologue(name, out).ok()?;
    let mut escaper = Escaper::new();
    let mut rest = text;
    loop {
        let (consumed, written) = escaper.escape(rest, out.get_mut(len..)?, true);
        len += written;
        rest = rest.get(consumed..)?;
        if rest.is_empty() {
            break;
        }
        if written == 0 {
            return None;
        }
    }
    let end = len.checked_add(html::PAGE_EPILOGUE.len())?;
    out.get_mut(len..end)?.copy_from_slice(html::PAGE_EPILOGUE);
    Some(end)
}

/// The first line of `bytes`, without its CRLF.
fn first_line(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .iter()
        .position(|&b| b == b'\r')
        .unwrap_or(bytes.len());
    bytes.get(..end).unwrap_or(bytes)
}

#[entry]
fn main() -> ! {
    static mut INPUT: [u8; 2048] = [0; 2048];
    static mut OUTPUT: [u8; 1024] = [0; 1024];
    static mut WIRE: [u8; 4096] = [0; 4096];
    static mut PAGE: [u8; 1024] = [0; 1024];
    static mut PATH: [u8; 128] = [0; 128];

    let mut ok = true;

    // 1. Parse a head and normalise its target.
    let mut fields = [Field::default(); 8];
    let mut target_path = &b""[..];
    match parse_request(REQUESTS, &mut fields, &Limits::DEFAULT) {
        Ok(Parsed::Complete(request)) => match parse_target(request.request_target, false, PATH) {
            Ok(target) => target_path = target.path,
            Err(_) => ok = false,
        },
        _ => ok = false,
    }
    let text = FILES
        .iter()
        .find(|e| e.path == target_path)
        .map_or(&b""[..], |e| e.contents);
    ok &= target_path == b"hello.txt";

    // 2. Render that file's page.
    let page_len = render_page(target_path, text, PAGE).unwrap_or(0);
    ok &= page_len > 0;

    // 3. Serve both requests over the mock stream.
    let mut site = Table::new(&FILES);
    let mut ms = 0;
    let mut clock = || {
        // A fake clock: each step takes a millisecond.
        ms += 1;
        Now {
            monotonic_ms: ms,
            unix_secs: 1_700_000_000 + ms / 1000,
        }
    };
    let start = clock();
    let mut conn: Conn<'_, Table, 16> = Conn::new(INPUT, OUTPUT, Config::DEFAULT, start);
    let mut stream = MockStream {
        input: REQUESTS,
        output: WIRE,
        written: 0,
    };
    let mut log = StatusLog::default();
    let ended = driver::serve(&mut conn, &mut stream, &mut site, &mut log, clock);
    let wire = stream.output.get(..stream.written).unwrap_or_default();
    ok &= ended == Ok(Ended::Closed);
    ok &= log.codes.get(..log.len) == Some(&[200, 200][..]) && log.all_complete;
    ok &= wire.starts_with(b"HTTP/1.1 200 OK\r\n");

    let status_line = core::str::from_utf8(first_line(wire)).unwrap_or("?");
    hprintln!(
        "txtd-nostd-proof: parsed target {:?}",
        core::str::from_utf8(target_path).unwrap_or("?")
    );
    hprintln!("txtd-nostd-proof: rendered page of {} bytes", page_len);
    hprintln!("txtd-nostd-proof: first response: {}", status_line);
    hprintln!(
        "txtd-nostd-proof: statuses {:?}, {} bytes sent, ended {:?}",
        log.codes.get(..log.len).unwrap_or_default(),
        wire.len(),
        ended
    );
    hprintln!("txtd-nostd-proof: {}", if ok { "ok" } else { "FAILED" });
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    // Core never panics; should this crate, park the CPU where a debugger sees it.
    loop {
        core::hint::spin_loop();
    }
}
