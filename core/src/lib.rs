//! The allocation-free core of txtd: HTTP/1.x requests in, HTML pages of
//! text files out.
//!
//! Everything here is `no_std`, allocation-free and free of `unsafe`; it
//! never calls the OS, never reads a clock and never panics on any input.
//! The caller hands in bytes, the current time and a [`Site`], and gets back
//! bytes to send and decisions (keep the connection, close it, wake me at).
//! The same code serves from a Linux worker process and from a
//! microcontroller TCP stack.
//!
//! Dependencies are limited to nom, heapless, embedded-io and (behind the
//! `defmt` feature) defmt, or `log` behind the `log` feature.
#![no_std]
#![forbid(unsafe_code)]
#![deny(clippy::indexing_slicing)]

#[macro_use]
mod fmt;

pub mod conditional;
pub mod conn;
pub mod date;
pub mod driver;
pub mod html;
pub mod message;
pub mod range;
pub mod request;
pub mod response;
mod scan;
pub mod site;
pub mod status;
pub mod table;
pub mod target;

pub use conn::{Close, Config, Conn, Exchange, Interest, Log, Now};
pub use message::{Message, Method};
pub use request::{Field, Limits, Parsed, Request, Version, parse_request};
pub use site::{DirEntry, Entry, Kind, Site};
pub use status::{Refusal, Status};
