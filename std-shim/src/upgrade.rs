//! Binary upgrade (USR2), the old master's side: start the binary now at
//! `/proc/self/exe` with the same arguments, hand it the listening sockets
//! (`LISTEN_FDS`), and wait at most [`READY_TIMEOUT`] for its `READY=1` on a
//! notification socket of our own. Ready: the old master hands over and
//! drains; not ready in time, or exited: it is killed and reaped, and the
//! old master keeps serving.
//!
//! The admin interface's socket goes with the others, last, named
//! `admin` in `LISTEN_FDNAMES`; the count of upgrades so far goes in
//! `TXTD_UPGRADES`, so `txtd_upgrades_total` counts on.
//!
//! The handshake: the new master gets `NOTIFY_SOCKET=@txtd-upgrade-...`
//! (ours) and `TXTD_NOTIFY_SOCKET` (the service manager's, or empty). It
//! writes the pid file and sends `READY=1` + `MAINPID=` to us once its
//! workers serve; we then tell the service manager `MAINPID=<new pid>` and
//! stop gracefully, and it sends later notifications to the service
//! manager itself.

use std::ffi::{CString, OsString};
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::linux::net::SocketAddrExt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::notify;
use crate::sys::{self, Exit, Pid};

/// How long the new master has to report that its workers serve.
pub const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// The variable that tells a new master how many upgrades came before.
const TXTD_UPGRADES: &str = "TXTD_UPGRADES";

/// The upgrades before this master (0 unless an upgrade started it), and
/// removes the variable so that no child sees it.
pub fn inherited_upgrades() -> u64 {
    let count = std::env::var(TXTD_UPGRADES)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    sys::unset_env(TXTD_UPGRADES);
    count
}

/// Where an upgrade stands.
#[derive(Default)]
pub enum Upgrade {
    /// None under way.
    #[default]
    Idle,
    /// The new master runs and has not reported ready yet.
    Waiting {
        /// The new master.
        child: Pid,
        /// Our notification socket, which its `READY=1` reaches.
        socket: UnixDatagram,
        /// When we give up on it.
        deadline: Instant,
    },
    /// The new master failed and was killed; it is not reaped yet.
    Killed {
        /// The new master.
        child: Pid,
    },
    /// The new master serves; we drain and exit.
    HandedOver {
        /// The new master.
        child: Pid,
    },
}

impl Upgrade {
    /// Starts the new binary (USR2). A USR2 while one is under way is
    /// ignored with a log line; a failure to start is logged and leaves
    /// us serving.
    pub fn begin(&mut self, listeners: &[OwnedFd], admin: Option<&OwnedFd>, upgrades: u64) {
        match self {
            Self::Idle => {}
            Self::Waiting { child, .. } | Self::Killed { child } | Self::HandedOver { child } => {
                log_warn!("ignoring USR2: an upgrade to pid {child} is under way");
                return;
            }
        }
        match start(listeners, admin, upgrades) {
            Ok((child, socket, exe)) => {
                log_info!(
                    "upgrade: started {} as pid {child}; waiting up to {READY_TIMEOUT:?} for it to serve",
                    exe.display()
                );
                *self = Self::Waiting {
                    child,
                    socket,
                    deadline: Instant::now() + READY_TIMEOUT,
                };
            }
            Err(e) => log_error!("upgrade failed: {e}; still serving"),
        }
    }

    /// The notification socket to poll while waiting.
    pub fn fd(&self) -> Option<BorrowedFd<'_>> {
        match self {
            Self::Waiting { socket, .. } => Some(socket.as_fd()),
            _ => None,
        }
    }

    /// Milliseconds until the ready deadline, if waiting (for the poll).
    pub fn timeout_ms(&self, now: Instant) -> Option<i32> {
        match self {
            Self::Waiting { deadline, .. } => {
                let ms = deadline
                    .saturating_duration_since(now)
                    .as_millis()
                    .saturating_add(1);
                Some(i32::try_from(ms).unwrap_or(i32::MAX))
            }
            _ => None,
        }
    }

    /// Reads the new master's notifications and checks the deadline;
    /// returns true once, when the new master serves and we must stop.
    pub fn poll(&mut self, now: Instant) -> bool {
        let Self::Waiting {
            child,
            socket,
            deadline,
        } = self
        else {
            return false;
        };
        let child = *child;
        let mut buf = [0u8; 512];
        while let Ok(Some((n, sender))) = sys::recv_with_sender(socket.as_fd(), &mut buf) {
            // Anyone may send to an abstract socket: only the new master's
            // own READY=1, by the kernel's word on the sender, counts.
            if sender != Some(child) {
                log_warn!("upgrade: ignoring a notification from pid {sender:?}");
                continue;
            }
            let message = String::from_utf8_lossy(buf.get(..n).unwrap_or_default());
            if message.lines().any(|l| l == "READY=1") {
                log_info!("upgrade: new master (pid {child}) is serving; draining and exiting");
                notify::main_pid(child);
                *self = Self::HandedOver { child };
                return true;
            }
        }
        if now >= *deadline {
            self.fail(
                child,
                &format!("new master (pid {child}) not serving within {READY_TIMEOUT:?}"),
            );
        }
        false
    }

    /// Takes an ended child if it is the new master; returns whether it was.
    pub fn reaped(&mut self, pid: Pid, exit: Exit) -> bool {
        match *self {
            Self::Waiting { child, .. } if child == pid => {
                let how = match exit {
                    Exit::Code(code) => format!("exited with code {code}"),
                    Exit::Signal(signal) => format!("was killed by signal {signal}"),
                };
                log_error!(
                    "upgrade failed: new master (pid {pid}) {how} before serving; still serving"
                );
                *self = Self::Idle;
                true
            }
            Self::Killed { child } if child == pid => {
                *self = Self::Idle;
                true
            }
            // Once handed over it is no longer our business; it is still
            // our child until we exit.
            Self::HandedOver { child } => child == pid,
            _ => false,
        }
    }

    /// Gives up on a new master that is not serving yet (we are stopping).
    pub fn abort(&mut self) {
        if let Self::Waiting { child, .. } = *self {
            self.fail(child, "stopping");
        }
    }

    /// Whether the new master took over.
    pub fn handed_over(&self) -> bool {
        matches!(self, Self::HandedOver { .. })
    }

    fn fail(&mut self, child: Pid, reason: &str) {
        log_error!("upgrade failed: {reason}; killing pid {child}, still serving");
        // Its workers follow it by their parent-death signal.
        if let Err(e) = sys::kill(child, sys::SIGKILL) {
            log_warn!("killing pid {child}: {e}");
        }
        *self = Self::Killed { child };
    }
}

/// The binary `/proc/self/exe` names now: after a binary was replaced by
/// rename, the link reads `PATH (deleted)`, and PATH holds the new one.
fn current_exe() -> io::Result<PathBuf> {
    let link = std::fs::read_link("/proc/self/exe")?;
    let bytes = link.as_os_str().as_bytes();
    Ok(match bytes.strip_suffix(b" (deleted)") {
        Some(path) => PathBuf::from(OsString::from_vec(path.to_vec())),
        None => link,
    })
}

/// Binds our notification socket and starts the new master.
fn start(
    listeners: &[OwnedFd],
    admin: Option<&OwnedFd>,
    upgrades: u64,
) -> io::Result<(Pid, UnixDatagram, PathBuf)> {
    let exe = current_exe()?;
    let name = format!("txtd-upgrade-{}-{}", sys::getpid(), sys::monotonic_usec());
    let socket = UnixDatagram::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes())?)?;
    socket.set_nonblocking(true)?;
    sys::pass_credentials(socket.as_fd())?;
    let nul = |e: std::ffi::NulError| io::Error::other(format!("NUL in {e}"));
    let program = CString::new(exe.as_os_str().as_bytes()).map_err(nul)?;
    let argv = std::env::args_os()
        .map(|a| CString::new(a.into_vec()).map_err(nul))
        .collect::<io::Result<Vec<_>>>()?;
    // Ours is gone from the environment (activation and notify took it);
    // the new master's is set here.
    let mut env = std::env::vars_os()
        .map(|(k, v)| {
            let mut pair = k.into_vec();
            pair.push(b'=');
            pair.extend(v.into_vec());
            CString::new(pair).map_err(nul)
        })
        .collect::<io::Result<Vec<_>>>()?;
    env.push(CString::new(format!("{}=@{name}", notify::NOTIFY_SOCKET)).map_err(nul)?);
    let service = notify::service_socket().unwrap_or_default();
    env.push(CString::new(format!("{}={service}", notify::TXTD_NOTIFY_SOCKET)).map_err(nul)?);
    let names = crate::activation::fd_names(listeners.len(), admin.is_some());
    env.push(CString::new(format!("LISTEN_FDNAMES={names}")).map_err(nul)?);
    env.push(CString::new(format!("{TXTD_UPGRADES}={upgrades}")).map_err(nul)?);
    let fds: Vec<BorrowedFd<'_>> = listeners.iter().chain(admin).map(AsFd::as_fd).collect();
    let child = sys::spawn_with_listeners(&program, &argv, &env, &fds)?;
    Ok((child, socket, exe))
}

/// Writes our pid into the pid file.
///
/// # Errors
///
/// The file cannot be written.
pub fn write_pid_file(path: &std::path::Path) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", sys::getpid()))
}

/// Removes the pid file on exit if it still holds our pid: after an
/// upgrade it names the new master, which must keep it.
pub fn remove_pid_file_if_ours(path: &std::path::Path) {
    let ours = std::fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<Pid>().ok())
        == Some(sys::getpid());
    if ours {
        let _ = std::fs::remove_file(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_datagram_carries_the_pid_of_its_sender() {
        let (receiver, sender) = std::os::unix::net::UnixDatagram::pair().unwrap();
        sys::pass_credentials(receiver.as_fd()).unwrap();
        let mut buf = [0u8; 16];
        assert_eq!(
            sys::recv_with_sender(receiver.as_fd(), &mut buf).unwrap(),
            None
        );
        sender.send(b"READY=1\n").unwrap();
        let (n, pid) = sys::recv_with_sender(receiver.as_fd(), &mut buf)
            .unwrap()
            .unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        assert_eq!(pid, Some(sys::getpid()));
    }

    #[test]
    fn the_pid_file_of_another_process_is_left_alone() {
        let path = std::env::temp_dir().join(format!("txtd-pidfile-{}", std::process::id()));
        std::fs::write(&path, "1\n").unwrap();
        remove_pid_file_if_ours(&path);
        assert!(path.exists());
        write_pid_file(&path).unwrap();
        remove_pid_file_if_ours(&path);
        assert!(!path.exists());
    }
}
