//! txtd on a Cortex-M3 (LM3S6965, QEMU `lm3s6965evb`): four server slots
//! and four clients on one smoltcp loopback interface; the clients fetch a
//! page, an index, a 404 and a HEAD and check each response byte for byte
//! against the Linux binary's. Results go out over semihosting; QEMU exits 0
//! only if all matched. No heap, no `unsafe`: buffers are `#[entry]` statics.
#![no_std]
#![no_main]
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

use core::panic::PanicInfo;

use cortex_m_rt::entry;
use cortex_m_semihosting::{debug, hprintln};
use smoltcp::iface::{SocketSet, SocketStorage};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use txtd_core::conn::Config;
use txtd_smoltcp::demo::{self, CASES, Client};
use txtd_smoltcp::{Buffers, Loopback, Server};

/// Connection slots of the server.
const SLOTS: usize = 4;

/// One slot's memory: socket receive 512 B (a request head), socket send
/// 1 KiB, connection input 1 KiB (head and decoded path), output 1 KiB.
type SlotBuffers = Buffers<512, 1024, 1024, 1024>;

/// Frames of the loopback ring, and their size: a small MTU keeps the
/// ring small; TCP segments are then 536 bytes.
const FRAMES: usize = 4;
const MTU: usize = 576;

/// Clients: one per demo case.
const CLIENTS: usize = 4;

/// A client socket's receive buffer: responses stream through it.
const CLIENT_RX: usize = 512;
/// A client socket's send buffer: one request.
const CLIENT_TX: usize = 128;

/// Simulated milliseconds after which a run counts as stuck.
const MAX_MS: u64 = 60_000;

#[entry]
fn main() -> ! {
    static mut SLOT_BUFFERS: [SlotBuffers; SLOTS] = [const { SlotBuffers::new() }; SLOTS];
    static mut CLIENT_BUFFERS: [([u8; CLIENT_RX], [u8; CLIENT_TX]); CLIENTS] =
        [([0; CLIENT_RX], [0; CLIENT_TX]); CLIENTS];
    static mut DEVICE: Loopback<FRAMES, MTU> = Loopback::new();

    // On the stack, not in a `static`: `SocketStorage::EMPTY` is not all
    // zeroes, so a static array of them would sit in .data, in flash and RAM.
    let mut storage = [SocketStorage::EMPTY; SLOTS + CLIENTS];
    let mut sockets = SocketSet::new(&mut storage[..]);
    let mut iface = demo::interface(DEVICE);
    let mut site = demo::site();

    let server = Server::<'_, _, SLOTS, 16>::new(
        SLOT_BUFFERS,
        &mut sockets,
        demo::PORT,
        Config::DEFAULT,
        0,
        Instant::ZERO,
    );
    let Ok(mut server) = server else {
        hprintln!("txtd-qemu: the server did not start");
        exit(false);
    };
    // One client per case, each on its own socket over its own buffers.
    let mut client = |case, (rx, tx): &'static mut ([u8; CLIENT_RX], [u8; CLIENT_TX])| {
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(rx.as_mut_slice()),
            tcp::SocketBuffer::new(tx.as_mut_slice()),
        );
        Client::new(case, sockets.add(socket))
    };
    let [b0, b1, b2, b3] = CLIENT_BUFFERS.each_mut();
    let [c0, c1, c2, c3] = CASES.each_ref();
    let mut clients = [
        client(c0, b0),
        client(c1, b1),
        client(c2, b2),
        client(c3, b3),
    ];

    let ran = demo::run(
        &mut iface,
        DEVICE,
        &mut sockets,
        &mut server,
        &mut site,
        &mut clients,
        MAX_MS,
        |_, _| {},
    );
    let mut passed = 0;
    for client in &clients {
        let m = client.matcher();
        let name = client.case().name;
        if client.is_ok() {
            passed += 1;
            hprintln!("txtd-qemu: {}: ok, {} bytes as expected", name, m.seen());
        } else {
            hprintln!(
                "txtd-qemu: {}: FAILED, {} bytes, first difference at byte {:?}",
                name,
                m.seen(),
                m.mismatch()
            );
        }
    }
    match ran {
        Ok(ms) => hprintln!("txtd-qemu: all clients done after {} simulated ms", ms),
        Err(stuck) => hprintln!("txtd-qemu: clients still waiting after {} ms", stuck.ms),
    }
    // What one slot costs in RAM: its buffers, its socket (in the socket
    // storage) and its share of the server (a `Conn` and a handle).
    hprintln!(
        "txtd-qemu: RAM per slot: {} B buffers + {} B socket + {} B connection",
        size_of::<SlotBuffers>(),
        size_of::<SocketStorage<'_>>(),
        size_of_val(&server) / SLOTS
    );
    let ok = ran.is_ok() && passed == CASES.len();
    hprintln!(
        "txtd-qemu: {} of {} requests answered as expected{}",
        passed,
        CASES.len(),
        if ok { "" } else { ": FAILED" }
    );
    exit(ok)
}

/// Ends the run: QEMU exits with status 0 if `ok`, else 1.
fn exit(ok: bool) -> ! {
    debug::exit(if ok {
        debug::EXIT_SUCCESS
    } else {
        debug::EXIT_FAILURE
    });
    // Without a debugger attached the call above returns: park the CPU.
    loop {
        cortex_m::asm::wfi();
    }
}

#[panic_handler]
fn panic(_: &PanicInfo) -> ! {
    hprintln!("txtd-qemu: panicked");
    exit(false)
}
