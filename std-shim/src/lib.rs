//! The Linux shim of txtd as a library: sockets, the pre-forking master,
//! the epoll workers, the file-system site, configuration and logs. The
//! `txtd` binary (`main.rs`) is a thin front over [`config`] and
//! [`master::run`]; tests drive the same modules in process.

#[macro_use]
pub mod error_log;
pub mod access_log;
pub mod activation;
pub mod admin;
pub mod config;
pub mod master;
pub mod notify;
pub mod privileges;
pub mod scoreboard;
pub mod site;
pub mod sys;
pub mod upgrade;
pub mod worker;
