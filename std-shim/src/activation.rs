//! Socket activation: listening sockets handed over at start by the
//! `LISTEN_FDS`/`LISTEN_PID` convention (systemd's `.socket` units, and a
//! txtd master upgrading to a new binary), used instead of binding.
//!
//! Activation replaces `--listen`: when `LISTEN_FDS` names sockets for
//! this process, the configured addresses are not bound at all.

use std::os::fd::OwnedFd;

use crate::sys;

/// The first descriptor passed (`SD_LISTEN_FDS_START`).
const FIRST_FD: i32 = 3;
/// More descriptors than this is taken for a mistake.
const MAX_FDS: i32 = 64;

/// The sockets passed to this process, if any, and removes `LISTEN_PID`,
/// `LISTEN_FDS` and `LISTEN_FDNAMES` from the environment either way, so
/// neither the workers nor a program we start take them for theirs.
/// Variables meant for another process (`LISTEN_PID` not ours) are
/// ignored, as the convention says.
///
/// # Errors
///
/// A message naming the bad variable or descriptor.
pub fn listeners() -> Result<Option<Vec<OwnedFd>>, String> {
    let pid = std::env::var("LISTEN_PID").ok();
    let fds = std::env::var("LISTEN_FDS").ok();
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
    (FIRST_FD..FIRST_FD + count)
        .map(|fd| {
            sys::inherit_listener(fd).map_err(|e| format!("LISTEN_FDS: descriptor {fd}: {e}"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsFd;

    use super::*;

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
