//! Socket activation: listening sockets handed over at start by the
//! `LISTEN_FDS`/`LISTEN_PID` convention (systemd's `.socket` units, and a
//! txtd master upgrading to a new binary), used instead of binding.
//!
//! Activation replaces `--listen`: when `LISTEN_FDS` names sockets for
//! this process, the configured addresses are not bound at all. The
//! socket that `LISTEN_FDNAMES` names [`ADMIN_NAME`] (systemd's
//! `FileDescriptorName=admin`; an upgrading master names its own so) is
//! the admin interface's and replaces `--admin-listen`.

use std::os::fd::OwnedFd;

use crate::sys;

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;
/// More descriptors than this is taken for a mistake.
const MAX_FDS: i32 = 64;
/// The `LISTEN_FDNAMES` name of the admin interface's socket.
pub const ADMIN_NAME: &str = "admin";
/// The name an upgrading master gives the other sockets (systemd's
/// default is the socket unit's name; any name but [`ADMIN_NAME`] serves).
pub const HTTP_NAME: &str = "http";

/// The sockets passed to this process.
#[derive(Debug, Default)]
pub struct Inherited {
    /// The listening sockets for the site.
    pub listeners: Vec<OwnedFd>,
    /// The admin interface's socket, if one was named [`ADMIN_NAME`].
    pub admin: Option<OwnedFd>,
}

/// The `LISTEN_FDNAMES` value for `listeners` sockets and, if `admin`, the
/// admin socket after them.
pub fn fd_names(listeners: usize, admin: bool) -> String {
    let mut names = vec![HTTP_NAME; listeners];
    if admin {
        names.push(ADMIN_NAME);
    }
    names.join(":")
}

/// The sockets passed to this process, if any, and removes `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment either way, so
/// neither the workers nor a program we start take them for theirs.
/// Variables meant for another process (`LISTEN_PID` not ours) are
/// ignored, as the convention says.
///
/// # Errors
///
/// A message naming the bad variable or descriptor.
pub fn listeners() -> Result<Option<Inherited>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
    let names = std::env::var("LISTEN_FDNAMES").unwrap_or_default();
    for name in ["LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"] {
        sys::unset_env(name);
    }
    let (Some(pid), Some(fds)) = (pid, fds) else {
        return Ok(None);
    };
    if pid.trim().parse::<sys::Pid>().ok() != Some(sys::getpid()) {
        return Ok(None);
    }
    let count: i32 = fds
        .trim()
        .parse()
        .ok()
        .filter(|n| (1..=MAX_FDS).contains(n))
        .ok_or_else(|| format!("LISTEN_FDS={fds}: not a number from 1 to {MAX_FDS}"))?;
    let mut names = names.split(':');
    let mut inherited = Inherited::default();
    for fd in FIRST_FD..FIRST_FD + count {
        let socket =
            sys::inherit_listener(fd).map_err(|e| format!("LISTEN_FDS: descriptor {fd}: {e}"))?;
        if names.next() != Some(ADMIN_NAME) {
            inherited.listeners.push(socket);
        } else if inherited.admin.replace(socket).is_some() {
            return Err(format!(
                "LISTEN_FDNAMES: more than one socket named {ADMIN_NAME}"
            ));
        }
    }
    if inherited.listeners.is_empty() {
        return Err(format!(
            "LISTEN_FDS: no socket but the one named {ADMIN_NAME}"
        ));
    }
    Ok(Some(inherited))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

    #[test]
    fn the_admin_socket_is_named_after_the_others() {
        assert_eq!(fd_names(2, true), "http:http:admin");
        assert_eq!(fd_names(1, false), "http");
    }

    #[test]
    fn a_descriptor_that_is_no_listening_socket_is_not_inherited() {
        let file = std::fs::File::open("/proc/self/status").unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(file);
        let e = sys::inherit_listener(fd).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTSOCK));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::IntoRawFd::into_raw_fd(listener);
        let owned = sys::inherit_listener(fd).unwrap();
        assert!(sys::local_addr(owned.as_fd()).is_ok());
    }
}
