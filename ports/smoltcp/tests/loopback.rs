//! The server over a smoltcp loopback interface: four clients on four slots
//! over this crate's `Loopback` and smoltcp's own, one slot serving client
//! after client, keep-alive, pressure, an idle client, a client too many.
//! Responses must equal `demo-expected/`, the Linux binary's responses (the
//! top-level `tests/smoltcp.rs` keeps the two equal).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

use smoltcp::iface::{SocketSet, SocketStorage};
use smoltcp::phy::{self, Device, Medium};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use txtd_core::conn::Config;
use txtd_smoltcp::demo::{self, CASES, Case, Client};
use txtd_smoltcp::{Buffers, Loopback, Server};

type SlotBuffers = Buffers<1024, 2048, 2048, 1024>;

/// Serves `rounds` (each a list of cases fetched at once) with one server
/// of `SLOTS` slots over `device`; returns, per round, each client's
/// (name, whether it matched, response).
fn serve<D: Device, const SLOTS: usize>(
    device: &mut D,
    rounds: &[&[&'static Case]],
) -> Vec<Vec<(&'static str, bool, String)>> {
    let mut iface = demo::interface(device);
    let mut storage = [SocketStorage::EMPTY; 16];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut buffers = Box::new([const { SlotBuffers::new() }; SLOTS]);
    let mut server: Server<'_, _, SLOTS> = Server::new(
        &mut buffers,
        &mut sockets,
        demo::PORT,
        Config::DEFAULT,
        1_700_000_000,
        Instant::ZERO,
    )
    .unwrap();
    let mut site = demo::site();
    let mut results = Vec::new();
    for cases in rounds {
        let handles: Vec<_> = cases
            .iter()
            .map(|_| {
                let rx = tcp::SocketBuffer::new(vec![0; 4096]);
                let tx = tcp::SocketBuffer::new(vec![0; 512]);
                sockets.add(tcp::Socket::new(rx, tx))
            })
            .collect();
        let mut clients: Vec<Client> = cases
            .iter()
            .zip(&handles)
            .map(|(case, &h)| Client::new(case, h))
            .collect();
        let mut got = vec![Vec::new(); cases.len()];
        demo::run(
            &mut iface,
            device,
            &mut sockets,
            &mut server,
            &mut site,
            &mut clients,
            60_000,
            |i, piece| got[i].extend_from_slice(piece),
        )
        .unwrap();
        results.push(
            clients
                .iter()
                .zip(got)
                .map(|(c, bytes)| {
                    (
                        c.case().name,
                        c.is_ok(),
                        String::from_utf8_lossy(&bytes).into_owned(),
                    )
                })
                .collect(),
        );
        for h in handles {
            sockets.remove(h);
        }
    }
    results
}

fn all_cases() -> Vec<&'static Case> {
    CASES.iter().collect()
}

fn assert_all_match(results: &[Vec<(&str, bool, String)>]) {
    for (name, ok, response) in results.iter().flatten() {
        assert!(ok, "{name}: unexpected response:\n{response}");
    }
}

#[test]
fn four_clients_at_once_get_what_the_linux_binary_sends() {
    let mut device = Loopback::<8, 1500>::new();
    let results = serve::<_, 4>(&mut device, &[&all_cases()]);
    assert_eq!(results[0].len(), 4);
    assert_all_match(&results);
    assert!(
        results[0][0]
            .2
            .contains("Hello from txtd on smoltcp &amp; a Cortex-M &lt;3")
    );
}

#[test]
fn smoltcps_own_loopback_device_gives_the_same_responses() {
    let mut device = phy::Loopback::new(Medium::Ip);
    let ours = serve::<_, 4>(&mut Loopback::<8, 1500>::new(), &[&all_cases()]);
    let theirs = serve::<_, 4>(&mut device, &[&all_cases()]);
    assert_all_match(&theirs);
    let without_date = |r: &String| {
        r.split("\r\n")
            .filter(|l| !l.starts_with("Date: "))
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    for (a, b) in ours[0].iter().zip(&theirs[0]) {
        assert_eq!(without_date(&a.2), without_date(&b.2), "{}", a.0);
    }
}

#[test]
fn one_slot_serves_one_client_after_another() {
    let mut device = Loopback::<4, 576>::new();
    let rounds: Vec<[&'static Case; 1]> = CASES.iter().chain(&CASES).map(|c| [c]).collect();
    let rounds: Vec<&[&Case]> = rounds.iter().map(|r| &r[..]).collect();
    let results = serve::<_, 1>(&mut device, &rounds);
    assert_eq!(results.len(), 8);
    assert_all_match(&results);
}

#[test]
fn a_ring_of_one_small_frame_still_delivers_every_response() {
    // One frame in flight at a time, and segments of 536 bytes: the pages
    // go out in several segments, and each waits for the ring.
    let mut device = Loopback::<1, 576>::new();
    let results = serve::<_, 4>(&mut device, &[&all_cases()]);
    assert_all_match(&results);
}

#[test]
fn port_zero_is_refused() {
    let mut storage = [SocketStorage::EMPTY; 1];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut buffers = [const { Buffers::<64, 64, 256, 64>::new() }; 1];
    let server: Result<Server<'_, txtd_smoltcp::StaticSite, 1>, _> = Server::new(
        &mut buffers,
        &mut sockets,
        0,
        Config::DEFAULT,
        0,
        Instant::ZERO,
    );
    assert_eq!(server.err(), Some(txtd_smoltcp::server::Error::PortZero));
}

/// A case for `request`, expecting `expected` (leaked: cases are `'static`).
fn case(name: &'static str, request: &[u8], expected: &[u8]) -> &'static Case {
    Box::leak(Box::new(Case {
        name,
        request: Box::leak(request.into()),
        expected: Box::leak(expected.into()),
    }))
}

/// `text` with the values of the fields that depend on time written `*`.
fn masked(text: &str) -> String {
    text.split("\r\n")
        .map(|l| match l.split_once(": ") {
            Some((name @ ("Date" | "Last-Modified" | "ETag"), _)) => format!("{name}: *"),
            _ => l.to_owned(),
        })
        .collect::<Vec<_>>()
        .join("\r\n")
}

/// A keep-alive GET of the page, then a HEAD that asks to close.
fn pipelined() -> &'static Case {
    let request = [
        &b"GET /hello.txt HTTP/1.1\r\nHost: demo\r\n\r\n"[..],
        CASES[3].request,
    ]
    .concat();
    case("pipelined", &request, b"")
}

#[test]
fn a_connection_is_kept_alive_for_pipelined_requests() {
    let page = String::from_utf8_lossy(CASES[0].expected).replace("Connection: close\r\n", "");
    let head = String::from_utf8_lossy(CASES[3].expected).into_owned();
    let results = serve::<_, 2>(&mut Loopback::<8, 1500>::new(), &[&[pipelined()]]);
    assert_eq!(masked(&results[0][0].2), format!("{page}{head}"));
}

#[test]
fn with_every_slot_busy_a_response_closes_its_connection() {
    // One slot, taken: the server is out of slots, so the first response
    // says `Connection: close` and the pipelined HEAD is not answered.
    let page = String::from_utf8_lossy(CASES[0].expected).into_owned();
    let results = serve::<_, 1>(&mut Loopback::<8, 1500>::new(), &[&[pipelined()]]);
    assert_eq!(masked(&results[0][0].2), page);
}

#[test]
fn an_idle_client_is_closed_and_its_slot_serves_the_next() {
    let idle = case("idle", b"", b"");
    let results = serve::<_, 1>(&mut Loopback::<8, 1500>::new(), &[&[idle], &[&CASES[0]]]);
    // The idle client saw the server close without a byte sent.
    assert_eq!(results[0][0], ("idle", true, String::new()));
    assert_all_match(&results[1..]);
}

#[test]
fn a_client_beyond_the_slots_is_refused_and_the_others_served() {
    let mut cases = all_cases();
    cases.push(&CASES[0]);
    let results = serve::<_, 4>(&mut Loopback::<8, 1500>::new(), &[&cases]);
    let (served, refused): (Vec<_>, Vec<_>) = results[0].iter().partition(|r| r.1);
    assert_eq!((served.len(), refused.len()), (4, 1), "{results:?}");
    assert_eq!(refused[0].2, "", "the refused client got no bytes");
}

#[test]
fn poll_reports_an_idle_connections_deadline() {
    let mut device = Loopback::<8, 1500>::new();
    let mut iface = demo::interface(&mut device);
    let mut storage = [SocketStorage::EMPTY; 2];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut buffers = [const { SlotBuffers::new() }; 1];
    let mut server: Server<'_, _, 1> = Server::new(
        &mut buffers,
        &mut sockets,
        demo::PORT,
        Config::DEFAULT,
        0,
        Instant::ZERO,
    )
    .unwrap();
    let mut site = demo::site();
    assert_eq!(
        server.poll(&mut sockets, &mut site, &mut (), Instant::ZERO),
        None
    );
    let client = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 64]),
        tcp::SocketBuffer::new(vec![0; 64]),
    ));
    sockets
        .get_mut::<tcp::Socket>(client)
        .connect(iface.context(), (demo::ADDRESS, demo::PORT), 49152)
        .unwrap();
    let mut wake = None;
    for ms in 0..10 {
        let now = Instant::from_millis(ms);
        iface.poll(now, &mut device, &mut sockets);
        wake = server.poll(&mut sockets, &mut site, &mut (), now);
        if wake.is_some() {
            // Accepted at `ms`: the client has until the first-byte timeout.
            let first_byte = i64::try_from(Config::DEFAULT.first_byte_timeout_ms).unwrap();
            assert_eq!(wake, Some(Instant::from_millis(ms + first_byte)));
            assert_eq!(server.serving(), 1);
            break;
        }
    }
    assert!(wake.is_some(), "the connection was never accepted");
}

/// Records each exchange's status and whether it completed.
#[derive(Default)]
struct Exchanges(Vec<(u16, bool)>);

impl txtd_core::Log for Exchanges {
    fn exchange(&mut self, exchange: &txtd_core::Exchange<'_>) {
        self.0.push((exchange.status.code(), exchange.complete));
    }
}

#[test]
fn a_client_that_resets_mid_response_frees_its_slot() {
    let mut device = Loopback::<8, 1500>::new();
    let mut iface = demo::interface(&mut device);
    let mut storage = [SocketStorage::EMPTY; 3];
    let mut sockets = SocketSet::new(&mut storage[..]);
    // A send buffer of 64 bytes: the page cannot leave in one go.
    let mut buffers = [const { Buffers::<512, 64, 1024, 1024>::new() }; 1];
    let mut server: Server<'_, _, 1> = Server::new(
        &mut buffers,
        &mut sockets,
        demo::PORT,
        Config::DEFAULT,
        0,
        Instant::ZERO,
    )
    .unwrap();
    let mut site = demo::site();
    let mut log = Exchanges::default();
    let rude = sockets.add(tcp::Socket::new(
        tcp::SocketBuffer::new(vec![0; 16]),
        tcp::SocketBuffer::new(vec![0; 256]),
    ));
    sockets
        .get_mut::<tcp::Socket>(rude)
        .connect(iface.context(), (demo::ADDRESS, demo::PORT), 49152)
        .unwrap();
    let mut ms = 0;
    let mut step = |sockets: &mut SocketSet<'_>, log: &mut Exchanges| {
        let now = Instant::from_millis(ms);
        ms += 1;
        iface.poll(now, &mut device, sockets);
        server.poll(sockets, &mut site, log, now);
        server.serving()
    };
    // Send the request, wait for the first bytes of the answer, then reset.
    let mut sent = false;
    for _ in 0..1000 {
        step(&mut sockets, &mut log);
        let socket = sockets.get_mut::<tcp::Socket>(rude);
        if socket.can_send() && !sent {
            sent = socket.send_slice(CASES[0].request).unwrap() == CASES[0].request.len();
        }
        if socket.can_recv() {
            socket.abort();
            break;
        }
    }
    let mut freed = false;
    for _ in 0..1000 {
        if step(&mut sockets, &mut log) == 0 {
            freed = true;
            break;
        }
    }
    assert!(freed, "the slot stayed busy");
    assert_eq!(
        log.0,
        [(200, false)],
        "the cut response is logged as incomplete"
    );
}
