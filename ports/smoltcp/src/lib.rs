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
#![no_std]
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

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
