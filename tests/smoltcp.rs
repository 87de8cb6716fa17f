//! The smoltcp port answers byte for byte as the Linux binary does, `Date`
//! aside: the real `txtd` serves the demo site over loopback TCP, the port
//! serves the same files from its compiled-in table over a smoltcp loopback
//! device. Also keeps `ports/smoltcp/demo-expected/` (what the firmware
//! checks) equal to the binary's output; `TXTD_BLESS=1` rewrites it.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::path::{Path, PathBuf};

use smoltcp::iface::{SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use txtd_core::conn::Config;
use txtd_smoltcp::demo::{self, CASES, Client};
use txtd_smoltcp::{Buffers, Loopback, Server};

use common::Server as Txtd;

fn port_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ports/smoltcp")
}

/// The responses the smoltcp port sends for [`CASES`], all four served at
/// once by a server of four slots.
fn smoltcp_responses() -> Vec<Vec<u8>> {
    let mut device = Loopback::<8, 1500>::new();
    let mut iface = demo::interface(&mut device);
    let mut storage = [SocketStorage::EMPTY; 8];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut buffers = Box::new([const { Buffers::<1024, 2048, 2048, 1024>::new() }; 4]);
    let mut server: Server<'_, _, 4> = Server::new(
        &mut buffers,
        &mut sockets,
        demo::PORT,
        Config::DEFAULT,
        0,
        smoltcp::time::Instant::ZERO,
    )
    .unwrap();
    let mut client_buffers: Vec<(Vec<u8>, Vec<u8>)> =
        (0..4).map(|_| (vec![0; 4096], vec![0; 512])).collect();
    let mut clients: Vec<Client> = CASES
        .iter()
        .zip(client_buffers.iter_mut())
        .map(|(case, (rx, tx))| {
            let socket = tcp::Socket::new(
                tcp::SocketBuffer::new(&mut rx[..]),
                tcp::SocketBuffer::new(&mut tx[..]),
            );
            Client::new(case, sockets.add(socket))
        })
        .collect();
    let mut site = demo::site();
    let mut got = vec![Vec::new(); CASES.len()];
    demo::run(
        &mut iface,
        &mut device,
        &mut sockets,
        &mut server,
        &mut site,
        &mut clients,
        60_000,
        |i, piece| got[i].extend_from_slice(piece),
    )
    .unwrap();
    got
}

/// The head's lines and the body, `Date` dropped.
fn without_date(response: &[u8]) -> String {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head: Vec<_> = head
        .split("\r\n")
        .filter(|l| !l.starts_with("Date: "))
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n"))
}

/// The response with the values that depend on the clock and the files'
/// times written as `*`, as `demo-expected/` keeps them.
fn masked(response: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(response);
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let head: Vec<String> = head
        .split("\r\n")
        .map(|l| match l.split_once(": ") {
            Some((name @ ("Date" | "Last-Modified" | "ETag"), _)) => format!("{name}: *"),
            _ => l.to_owned(),
        })
        .collect();
    format!("{}\r\n\r\n{body}", head.join("\r\n")).into_bytes()
}

#[test]
fn the_port_sends_what_the_linux_binary_sends_but_the_date() {
    let server = Txtd::start(&port_dir().join("demo-site"), &["--workers", "1"]);
    let linux: Vec<Vec<u8>> = CASES.iter().map(|case| server.raw(case.request)).collect();
    let port = smoltcp_responses();
    let bless = std::env::var_os("TXTD_BLESS").is_some();
    for ((case, linux), port) in CASES.iter().zip(&linux).zip(&port) {
        assert!(linux.starts_with(b"HTTP/1.1 "), "{}: {linux:?}", case.name);
        assert_eq!(without_date(port), without_date(linux), "{}", case.name);
        let expected = port_dir()
            .join("demo-expected")
            .join(format!("{}.http", case.name));
        if bless {
            std::fs::write(&expected, masked(linux)).unwrap();
        } else {
            assert_eq!(
                String::from_utf8_lossy(&masked(linux)),
                String::from_utf8_lossy(case.expected),
                "{}: demo-expected is stale; rerun with TXTD_BLESS=1",
                case.name
            );
        }
    }
    assert!(!server.stderr().contains("panicked"), "{}", server.stderr());
}
