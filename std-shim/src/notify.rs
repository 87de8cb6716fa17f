//! The service manager's notification socket (the `sd_notify` protocol):
//! `READY=1`, `RELOADING=1`, `STOPPING=1` and `MAINPID=` as one datagram
//! each to the unix socket named by `NOTIFY_SOCKET` (a path, or `@name`
//! in the abstract namespace). No libsystemd: the protocol is one
//! `sendto`. Without `NOTIFY_SOCKET` every call does nothing.
//!
//! A new master started by a binary upgrade gets `NOTIFY_SOCKET` naming
//! the old master's socket, and `TXTD_NOTIFY_SOCKET` naming the service
//! manager's (empty when there is none): its first `READY=1` goes to the
//! old master, everything after it to the service manager.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Mutex;

use crate::sys;

/// The variable the service manager sets.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";
/// The variable an upgrading master sets for the new one: the service
/// manager's socket, for after the handover.
pub const TXTD_NOTIFY_SOCKET: &str = "TXTD_NOTIFY_SOCKET";

struct Targets {
    /// Where notifications go now.
    now: Option<String>,
    /// In a new master started by an upgrade: where they go after the
    /// first `READY=1`.
    after_ready: Option<Option<String>>,
}

/// The processes are single-threaded; the lock only satisfies `static`.
static TARGETS: Mutex<Targets> = Mutex::new(Targets {
    now: None,
    after_ready: None,
});

/// Reads `NOTIFY_SOCKET` (and `TXTD_NOTIFY_SOCKET`) and removes them from
/// the environment, so workers and programs we start do not see them.
pub fn init() {
    let now = std::env::var(NOTIFY_SOCKET).ok().filter(|s| !s.is_empty());
    let after_ready = std::env::var(TXTD_NOTIFY_SOCKET)
        .ok()
        .map(|s| Some(s).filter(|s| !s.is_empty()));
    sys::unset_env(NOTIFY_SOCKET);
    sys::unset_env(TXTD_NOTIFY_SOCKET);
    if let Ok(mut targets) = TARGETS.lock() {
        *targets = Targets { now, after_ready };
    }
}

/// Whether this master was started by another one's binary upgrade and
/// has not reported ready yet.
pub fn is_upgrade() -> bool {
    TARGETS.lock().is_ok_and(|t| t.after_ready.is_some())
}

/// The service manager's socket (after an upgrade's handover, too), for
/// passing on to a new master; `None` when there is none.
pub fn service_socket() -> Option<String> {
    TARGETS.lock().ok().and_then(|t| match &t.after_ready {
        Some(after) => after.clone(),
        None => t.now.clone(),
    })
}

/// `READY=1` with our pid: the workers are serving. In a new master
/// started by an upgrade this goes to the old master, and later
/// notifications to the service manager.
pub fn ready() {
    send_now(&format!("READY=1\nMAINPID={}\n", sys::getpid()));
    if let Ok(mut targets) = TARGETS.lock()
        && let Some(after) = targets.after_ready.take()
    {
        targets.now = after;
    }
}

/// `RELOADING=1`: a configuration reload began; [`ready`] ends it.
pub fn reloading() {
    let usec = sys::monotonic_usec();
    send_now(&format!("RELOADING=1\nMONOTONIC_USEC={usec}\n"));
}

/// `STOPPING=1`: a stop began.
pub fn stopping() {
    send_now("STOPPING=1\n");
}

/// `MAINPID=pid`: the service's main process is now `pid` (a new master
/// that took over by a binary upgrade).
pub fn main_pid(pid: sys::Pid) {
    send_now(&format!("MAINPID={pid}\n"));
}

/// Sends `message` to the current target, logging a failure: a lost
/// notification must not stop the server.
fn send_now(message: &str) {
    let target = TARGETS.lock().ok().and_then(|t| t.now.clone());
    if let Some(target) = target
        && let Err(e) = send(&target, message)
    {
        log_warn!("notify socket {target}: {e}");
    }
}

/// The address of a notification socket: a path, or `@name` for the
/// abstract namespace.
///
/// # Errors
///
/// The path or name is too long for a unix socket address.
pub fn parse_addr(name: &str) -> io::Result<SocketAddr> {
    match name.strip_prefix('@') {
        Some(abstract_name) => SocketAddr::from_abstract_name(abstract_name.as_bytes()),
        None => SocketAddr::from_pathname(name),
    }
}

/// Sends one datagram to the notification socket `name`.
///
/// # Errors
///
/// A bad address, or errno of `socket`/`sendto`.
pub fn send(name: &str, message: &str) -> io::Result<()> {
    let addr = parse_addr(name)?;
    let socket = UnixDatagram::unbound()?;
    socket.send_to_addr(message.as_bytes(), &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_reaches_an_abstract_socket_and_a_path() {
        let name = format!("txtd-notify-test-{}", std::process::id());
        let receiver =
            UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap())
                .unwrap();
        send(&format!("@{name}"), "READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");

        let path = std::env::temp_dir().join(format!("{name}.sock"));
        let _ = std::fs::remove_file(&path);
        let receiver = UnixDatagram::bind(&path).unwrap();
        send(path.to_str().unwrap(), "STOPPING=1\n").unwrap();
        let n = receiver.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"STOPPING=1\n");
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_name_too_long_for_an_address_is_an_error() {
        assert!(parse_addr(&"x".repeat(200)).is_err());
        assert!(parse_addr(&format!("@{}", "x".repeat(200))).is_err());
    }
}
