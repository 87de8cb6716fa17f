//! The security regression suite: one module per class of bug (path
//! traversal, symlink escape, listing injection, CRLF in `Location`,
//! request smuggling, slowloris), each test named after what it guards,
//! all through the real `txtd` binary on loopback with bounded waits.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

#[path = "../common/mod.rs"]
mod common;

mod listing;
mod location;
mod slowloris;
mod smuggling;
mod symlink;
mod traversal;
