//! txtd's core served over smoltcp: a [`Server`] of fixed connection slots,
//! each a smoltcp TCP socket paired with a core [`Conn`](txtd_core::Conn).
//!
//! `no_std`, no allocation, no `unsafe`. smoltcp has no listen backlog, so
//! N listening sockets are N connection slots; every buffer is sized by
//! const generics and handed in by the caller ([`Buffers`]). Time comes from
//! smoltcp's [`Instant`](smoltcp::time::Instant). [`StaticSite`] serves a
//! table of files that a build script made from a directory; [`Loopback`]
//! is an allocation-free loopback device for tests and for a board that
//! talks to itself.
//!
//! # Examples
//!
//! A server of two slots and a client socket on one loopback interface:
//!
//! ```
//! use smoltcp::iface::{Config, Interface, SocketSet, SocketStorage};
//! use smoltcp::socket::tcp;
//! use smoltcp::time::Instant;
//! use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
//! use txtd_core::table::TableEntry;
//! use txtd_smoltcp::{Buffers, Loopback, Server, StaticSite};
//!
//! static FILES: [TableEntry; 2] = [
//!     TableEntry::dir(b""),
//!     TableEntry::file(b"hi.txt", b"Hi <there>\n"),
//! ];
//! let mut site = StaticSite::new(&FILES, &[]);
//!
//! let mut device = Loopback::<4, 1500>::new();
//! let mut iface = Interface::new(Config::new(HardwareAddress::Ip), &mut device, Instant::ZERO);
//! let localhost = IpAddress::v4(127, 0, 0, 1);
//! iface.update_ip_addrs(|a| a.push(IpCidr::new(localhost, 8)).unwrap());
//! let mut storage = [SocketStorage::EMPTY; 3];
//! let mut sockets = SocketSet::new(&mut storage[..]);
//!
//! let mut slots = [const { Buffers::<512, 1024, 1024, 1024>::new() }; 2];
//! let config = txtd_core::Config::DEFAULT;
//! let mut server: Server<'_, StaticSite, 2> =
//!     Server::new(&mut slots, &mut sockets, 80, config, 0, Instant::ZERO).unwrap();
//!
//! let (mut rx, mut tx) = ([0u8; 2048], [0u8; 256]);
//! let client = tcp::Socket::new(tcp::SocketBuffer::new(&mut rx[..]), tcp::SocketBuffer::new(&mut tx[..]));
//! let client = sockets.add(client);
//! sockets.get_mut::<tcp::Socket>(client).connect(iface.context(), (localhost, 80), 49152).unwrap();
//!
//! let request = b"GET /hi.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
//! let (mut sent, mut response) = (false, Vec::new());
//! for ms in 0..1000 {
//!     let now = Instant::from_millis(ms);
//!     iface.poll(now, &mut device, &mut sockets);
//!     server.poll(&mut sockets, &mut site, &mut (), now);
//!     let socket = sockets.get_mut::<tcp::Socket>(client);
//!     if socket.can_send() && !sent {
//!         sent = socket.send_slice(request).unwrap() == request.len();
//!     }
//!     while let Ok(n) = socket.recv(|b| (b.len(), b.to_vec())) {
//!         if n.is_empty() { break }
//!         response.extend_from_slice(&n);
//!     }
//!     if !socket.may_recv() && !response.is_empty() {
//!         break;
//!     }
//! }
//! let text = String::from_utf8(response).unwrap();
//! assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
//! assert!(text.ends_with("<pre>\nHi &lt;there&gt;\n</pre>\n</body>\n</html>\n"));
//! ```
#![no_std]
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

// The tables `txtd-site-gen` writes name `::txtd_smoltcp::Stamp`, in this
// crate's demo as in any other.
extern crate self as txtd_smoltcp;

#[macro_use]
mod fmt;

#[cfg(feature = "demo")]
pub mod demo;
pub mod loopback;
pub mod server;
pub mod site;
pub mod socket;

pub use loopback::Loopback;
pub use server::{Buffers, Server};
pub use site::{Stamp, StaticSite};
pub use socket::SocketIo;
