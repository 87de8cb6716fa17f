//! Every libc call txtd makes: the workspace's only `unsafe` code.
//!
//! Each function returns `io::Result` built from errno, and wraps every new
//! file descriptor in an `OwnedFd` at once, so the rest of the shim is safe
//! Rust that cannot leak or double-close a descriptor.
#![allow(unsafe_code, reason = "this module is the one place that calls libc")]

use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU64;

pub use libc::{SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};

/// Turns a -1 return into the errno error.
fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret == -1 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Turns a -1 size return into the errno error.
fn check_size(ret: libc::ssize_t) -> io::Result<usize> {
    usize::try_from(ret).map_err(|_| io::Error::last_os_error())
}

/// Takes ownership of a descriptor a successful call just returned.
fn owned(fd: libc::c_int) -> io::Result<OwnedFd> {
    let fd = check(fd)?;
    // SAFETY: `fd` was just returned by the kernel as a new descriptor that
    // nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Adds context to an error: `what: error`.
fn context(what: impl std::fmt::Display) -> impl FnOnce(io::Error) -> io::Error {
    move |e| io::Error::new(e.kind(), format!("{what}: {e}"))
}

// ---- sockets ----------------------------------------------------------

/// A socket address in the kernel's layout.
fn to_sockaddr(addr: &SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let len = match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for
            // sockaddr_in; the write stays inside `storage`.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in>(), sin) };
            size_of::<libc::sockaddr_in>()
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: as above, for sockaddr_in6.
            unsafe { std::ptr::write((&raw mut storage).cast::<libc::sockaddr_in6>(), sin6) };
            size_of::<libc::sockaddr_in6>()
        }
    };
    (storage, len as libc::socklen_t)
}

/// A socket address from the kernel's layout.
fn from_sockaddr(storage: &libc::sockaddr_storage) -> io::Result<SocketAddr> {
    match libc::c_int::from(storage.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in, and
            // sockaddr_storage is aligned for it.
            let sin = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in>()) };
            let ip = Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes());
            Ok(SocketAddr::V4(SocketAddrV4::new(
                ip,
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 = unsafe { &*(std::ptr::from_ref(storage).cast::<libc::sockaddr_in6>()) };
            let ip = Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Ok(SocketAddr::V6(SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        family => Err(io::Error::other(format!(
            "unexpected address family {family}"
        ))),
    }
}

/// Sets an integer socket option.
fn set_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    // SAFETY: `value` lives across the call and its size is passed.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw const value).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    check(ret).map(drop)
}

/// socket → SO_REUSEADDR (and IPV6_V6ONLY) → bind → listen, non-blocking
/// and close-on-exec.
///
/// # Errors
///
/// The failing call, with the address in the message.
pub fn listen(addr: SocketAddr, backlog: i32) -> io::Result<OwnedFd> {
    let family = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain syscall with constant arguments.
    let fd = owned(unsafe {
        libc::socket(
            family,
            libc::SOCK_STREAM | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
            0,
        )
    })
    .map_err(context(format_args!("socket for {addr}")))?;
    set_int_option(fd.as_fd(), libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)
        .map_err(context(format_args!("SO_REUSEADDR on {addr}")))?;
    if addr.is_ipv6() {
        set_int_option(fd.as_fd(), libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, 1)
            .map_err(context(format_args!("IPV6_V6ONLY on {addr}")))?;
    }
    let (storage, len) = to_sockaddr(&addr);
    // SAFETY: `storage` holds a valid address of `len` bytes.
    check(unsafe { libc::bind(fd.as_raw_fd(), (&raw const storage).cast(), len) })
        .map_err(context(format_args!("bind {addr}")))?;
    // SAFETY: plain syscall on a descriptor we own.
    check(unsafe { libc::listen(fd.as_raw_fd(), backlog) })
        .map_err(context(format_args!("listen on {addr}")))?;
    Ok(fd)
}

/// The address a socket is bound to.
///
/// # Errors
///
/// errno of `getsockname`.
pub fn local_addr(fd: BorrowedFd<'_>) -> io::Result<SocketAddr> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for writing; len holds the size.
    check(unsafe { libc::getsockname(fd.as_raw_fd(), (&raw mut storage).cast(), &raw mut len) })?;
    from_sockaddr(&storage)
}

/// Accepts one connection, non-blocking and close-on-exec; `None` when
/// none is waiting.
///
/// # Errors
///
/// errno of `accept4` other than EAGAIN (EMFILE, ENOBUFS, ...).
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<(OwnedFd, SocketAddr)>> {
    // SAFETY: all-zero sockaddr_storage is valid.
    let mut storage: libc::sockaddr_storage = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: storage and len are valid for writing; len holds the size.
    let ret = unsafe {
        libc::accept4(
            listener.as_raw_fd(),
            (&raw mut storage).cast(),
            &raw mut len,
            libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
        )
    };
    match owned(ret) {
        Ok(fd) => {
            let peer = from_sockaddr(&storage)?;
            // Responses go out as soon as they are written; Nagle would
            // hold back the tail of a response behind a delayed ACK.
            set_int_option(fd.as_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
            Ok(Some((fd, peer)))
        }
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        // The peer gave up before we accepted: nothing to serve.
        Err(e) if e.raw_os_error() == Some(libc::ECONNABORTED) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads what arrived on a socket.
///
/// # Errors
///
/// errno of `recv`; `WouldBlock` when nothing is there.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writing buf.len() bytes.
    check_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) })
}

/// Sends two slices with one `sendmsg`, without SIGPIPE.
///
/// # Errors
///
/// errno of `sendmsg`; `WouldBlock` when the socket buffer is full.
pub fn send2(fd: BorrowedFd<'_>, first: &[u8], second: &[u8]) -> io::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: first.as_ptr().cast_mut().cast(),
            iov_len: first.len(),
        },
        libc::iovec {
            iov_base: second.as_ptr().cast_mut().cast(),
            iov_len: second.len(),
        },
    ];
    let count = if second.is_empty() { 1 } else { 2 };
    // SAFETY: all-zero msghdr is valid (no name, no control).
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = iov.as_mut_ptr();
    msg.msg_iovlen = count;
    // SAFETY: the iovecs point at live slices that the kernel only reads.
    check_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &raw const msg, libc::MSG_NOSIGNAL) })
}

/// Shuts down the sending side of a socket (FIN after what is queued).
///
/// # Errors
///
/// errno of `shutdown`.
pub fn shutdown_write(fd: BorrowedFd<'_>) -> io::Result<()> {
    // SAFETY: plain syscall.
    check(unsafe { libc::shutdown(fd.as_raw_fd(), libc::SHUT_WR) }).map(drop)
}

// ---- epoll ------------------------------------------------------------

/// Readiness flags, as epoll names them.
pub mod epoll {
    /// Readable.
    pub const IN: u32 = libc::EPOLLIN as u32;
    /// Writable.
    pub const OUT: u32 = libc::EPOLLOUT as u32;
    /// Peer closed its side.
    pub const RDHUP: u32 = libc::EPOLLRDHUP as u32;
    /// Hang-up.
    pub const HUP: u32 = libc::EPOLLHUP as u32;
    /// Error.
    pub const ERR: u32 = libc::EPOLLERR as u32;
    /// Edge-triggered.
    pub const ET: u32 = libc::EPOLLET as u32;
    /// Wake one waiter only (listening sockets shared by workers).
    pub const EXCLUSIVE: u32 = libc::EPOLLEXCLUSIVE as u32;
}

/// One readiness event: flags and the token it was registered with.
#[derive(Clone, Copy)]
pub struct Event(libc::epoll_event);

impl Event {
    /// An empty event, to fill a buffer with.
    pub const EMPTY: Self = Self(libc::epoll_event { events: 0, u64: 0 });

    /// The readiness flags.
    pub fn flags(&self) -> u32 {
        self.0.events
    }

    /// The registration token.
    pub fn token(&self) -> u64 {
        self.0.u64
    }
}

/// A new epoll instance.
///
/// # Errors
///
/// errno of `epoll_create1`.
pub fn epoll_create() -> io::Result<OwnedFd> {
    // SAFETY: plain syscall.
    owned(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) }).map_err(context("epoll_create1"))
}

fn epoll_ctl(
    ep: BorrowedFd<'_>,
    op: libc::c_int,
    fd: RawFd,
    flags: u32,
    token: u64,
) -> io::Result<()> {
    let mut event = libc::epoll_event {
        events: flags,
        u64: token,
    };
    // SAFETY: event is valid for the call; the kernel copies it.
    check(unsafe { libc::epoll_ctl(ep.as_raw_fd(), op, fd, &raw mut event) }).map(drop)
}

/// Registers `fd` for `flags`, reporting `token`.
///
/// # Errors
///
/// errno of `epoll_ctl`.
pub fn epoll_add(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>, flags: u32, token: u64) -> io::Result<()> {
    epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd.as_raw_fd(), flags, token)
}

/// Unregisters `fd`.
///
/// # Errors
///
/// errno of `epoll_ctl`.
pub fn epoll_delete(ep: BorrowedFd<'_>, fd: BorrowedFd<'_>) -> io::Result<()> {
    epoll_ctl(ep, libc::EPOLL_CTL_DEL, fd.as_raw_fd(), 0, 0)
}

/// Waits up to `timeout_ms` (-1: forever) for events; returns how many
/// were written to `events`. An interrupted wait returns 0.
///
/// # Errors
///
/// errno of `epoll_wait` other than EINTR.
pub fn epoll_wait(ep: BorrowedFd<'_>, events: &mut [Event], timeout_ms: i32) -> io::Result<usize> {
    let max = libc::c_int::try_from(events.len()).unwrap_or(libc::c_int::MAX);
    // SAFETY: Event is repr-transparent-like (a single epoll_event field)
    // and `events` is valid for writing `max` of them.
    let ret =
        unsafe { libc::epoll_wait(ep.as_raw_fd(), events.as_mut_ptr().cast(), max, timeout_ms) };
    match check(ret) {
        Ok(n) => Ok(usize::try_from(n).unwrap_or(0)),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(0),
        Err(e) => Err(e),
    }
}

/// Waits up to `timeout_ms` (-1: forever) for `fd` to become readable;
/// returns whether it is.
///
/// # Errors
///
/// errno of `poll` other than EINTR.
pub fn wait_readable(fd: BorrowedFd<'_>, timeout_ms: i32) -> io::Result<bool> {
    let mut pfd = libc::pollfd {
        fd: fd.as_raw_fd(),
        events: libc::POLLIN,
        revents: 0,
    };
    // SAFETY: pfd is valid for the call.
    match check(unsafe { libc::poll(&raw mut pfd, 1, timeout_ms) }) {
        Ok(n) => Ok(n > 0),
        Err(e) if e.kind() == io::ErrorKind::Interrupted => Ok(false),
        Err(e) => Err(e),
    }
}

// ---- signals and processes -------------------------------------------

fn sigset(signals: &[libc::c_int]) -> io::Result<libc::sigset_t> {
    // SAFETY: all-zero is a valid sigset_t to initialise.
    let mut set: libc::sigset_t = unsafe { zeroed() };
    // SAFETY: set is valid for writing.
    check(unsafe { libc::sigemptyset(&raw mut set) })?;
    for &signal in signals {
        // SAFETY: set is initialised; signal is a valid signal number.
        check(unsafe { libc::sigaddset(&raw mut set, signal) })?;
    }
    Ok(set)
}

/// Blocks `signals` for this process (inherited by forked children), so
/// they are only seen through a signalfd: no work in signal handlers.
///
/// # Errors
///
/// errno of `sigprocmask`.
pub fn block_signals(signals: &[libc::c_int]) -> io::Result<()> {
    let set = sigset(signals)?;
    // SAFETY: set is initialised; the old mask is not wanted.
    check(unsafe { libc::sigprocmask(libc::SIG_BLOCK, &raw const set, std::ptr::null_mut()) })
        .map(drop)
}

/// A non-blocking signalfd that reports `signals` (which must be blocked).
///
/// # Errors
///
/// errno of `signalfd`.
pub fn signalfd(signals: &[libc::c_int]) -> io::Result<OwnedFd> {
    let set = sigset(signals)?;
    // SAFETY: set is initialised; -1 asks for a new descriptor.
    owned(unsafe { libc::signalfd(-1, &raw const set, libc::SFD_NONBLOCK | libc::SFD_CLOEXEC) })
        .map_err(context("signalfd"))
}

/// The next pending signal from a signalfd, if any.
///
/// # Errors
///
/// errno of `read` other than EAGAIN.
pub fn read_signal(fd: BorrowedFd<'_>) -> io::Result<Option<libc::c_int>> {
    // SAFETY: all-zero signalfd_siginfo is valid.
    let mut info: libc::signalfd_siginfo = unsafe { zeroed() };
    let size = size_of::<libc::signalfd_siginfo>();
    // SAFETY: info is valid for writing `size` bytes.
    match check_size(unsafe { libc::read(fd.as_raw_fd(), (&raw mut info).cast(), size) }) {
        Ok(n) if n == size => Ok(libc::c_int::try_from(info.ssi_signo).ok()),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// Ignores SIGPIPE: a peer that goes away shows as EPIPE, not a dead worker.
///
/// # Errors
///
/// errno of `sigaction`.
pub fn ignore_sigpipe() -> io::Result<()> {
    // SAFETY: SIG_IGN is a valid disposition for SIGPIPE.
    let previous = unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    if previous == libc::SIG_ERR {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// A process id.
pub type Pid = libc::pid_t;

/// Which side of a fork this is.
pub enum Fork {
    /// The new process.
    Child,
    /// The old process, with the child's pid.
    Parent(Pid),
}

/// Forks the process. The program is single-threaded, so the child may go
/// on running ordinary Rust code.
///
/// # Errors
///
/// errno of `fork`.
pub fn fork() -> io::Result<Fork> {
    // SAFETY: txtd never starts threads, so the child's copy of the process
    // holds no lock that another thread owned.
    match check(unsafe { libc::fork() }).map_err(context("fork"))? {
        0 => Ok(Fork::Child),
        pid => Ok(Fork::Parent(pid)),
    }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// `exit(code)`.
    Code(i32),
    /// Killed by a signal.
    Signal(i32),
}

/// Reaps one ended child without waiting; `None` if none has ended.
///
/// # Errors
///
/// errno of `waitpid` other than ECHILD (no children: `None`).
pub fn reap() -> io::Result<Option<(Pid, Exit)>> {
    let mut status: libc::c_int = 0;
    // SAFETY: status is valid for writing.
    match check(unsafe { libc::waitpid(-1, &raw mut status, libc::WNOHANG) }) {
        Ok(0) => Ok(None),
        Ok(pid) => {
            let exit = if libc::WIFSIGNALED(status) {
                Exit::Signal(libc::WTERMSIG(status))
            } else {
                Exit::Code(libc::WEXITSTATUS(status))
            };
            Ok(Some((pid, exit)))
        }
        Err(e) if e.raw_os_error() == Some(libc::ECHILD) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Sends `signal` to process `pid`.
///
/// # Errors
///
/// errno of `kill` (ESRCH if it is gone).
pub fn kill(pid: Pid, signal: libc::c_int) -> io::Result<()> {
    // SAFETY: plain syscall; pid is one of our children.
    check(unsafe { libc::kill(pid, signal) }).map(drop)
}

/// This process's id.
pub fn getpid() -> Pid {
    // SAFETY: getpid cannot fail.
    unsafe { libc::getpid() }
}

/// The parent's id.
pub fn getppid() -> Pid {
    // SAFETY: getppid cannot fail.
    unsafe { libc::getppid() }
}

/// Asks the kernel to send `signal` to this process when its parent dies,
/// so no worker outlives its master.
///
/// # Errors
///
/// errno of `prctl`.
pub fn set_parent_death_signal(signal: libc::c_int) -> io::Result<()> {
    let signal = libc::c_ulong::try_from(signal).unwrap_or(0);
    // SAFETY: PR_SET_PDEATHSIG takes a signal number.
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, signal, 0, 0, 0) }).map(drop)
}

/// The soft and hard `RLIMIT_NOFILE`: how many descriptors this process
/// (and each worker it forks) may hold open.
///
/// # Errors
///
/// errno of `getrlimit`.
pub fn nofile_limit() -> io::Result<(u64, u64)> {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid for writing for the call.
    check(unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) })?;
    Ok((limit.rlim_cur, limit.rlim_max))
}

// ---- shared memory and clocks ---------------------------------------------

/// Maps `count` zeroed 64-bit atomics in one `MAP_SHARED | MAP_ANONYMOUS`
/// mapping. Made before a fork, the same physical pages are seen by the
/// parent and every child, so an atomic store in one process is a load
/// away in the others. The mapping is never unmapped: it lives as long as
/// the process (the scoreboard is made once, by the master).
///
/// # Errors
///
/// errno of `mmap`; `EINVAL` for an empty or too large mapping.
pub fn map_shared_words(count: usize) -> io::Result<&'static [AtomicU64]> {
    let len = count
        .checked_mul(size_of::<AtomicU64>())
        .filter(|&len| len > 0)
        .ok_or_else(|| io::Error::from_raw_os_error(libc::EINVAL))?;
    // SAFETY: a new anonymous mapping at an address the kernel picks; no
    // existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(context("mmap of the scoreboard")(io::Error::last_os_error()));
    }
    // SAFETY: the mapping is `len` bytes, page-aligned (so aligned for
    // AtomicU64), zero-filled by the kernel (all-zero is a valid AtomicU64),
    // readable and writable, and never unmapped, so the slice may be
    // 'static. Atomics are the only access, so sharing it is sound.
    Ok(unsafe { std::slice::from_raw_parts(ptr.cast::<AtomicU64>().cast_const(), count) })
}

/// `CLOCK_MONOTONIC` in milliseconds: one clock for the whole system, so
/// a time one process writes to the scoreboard means the same to another.
pub fn monotonic_ms() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: ts is valid for writing; CLOCK_MONOTONIC always exists, and
    // glibc answers it from the vDSO without a system call.
    let ret = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut ts) };
    if ret != 0 {
        return 0;
    }
    let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
    let millis = u64::try_from(ts.tv_nsec / 1_000_000).unwrap_or(0);
    secs.saturating_mul(1000).saturating_add(millis)
}

// ---- files --------------------------------------------------------------

/// What `fstat` says about a descriptor.
#[derive(Debug, Clone, Copy)]
pub struct Stat {
    /// Regular file.
    pub is_file: bool,
    /// Directory.
    pub is_dir: bool,
    /// Size in bytes.
    pub size: u64,
    /// Modification time, seconds.
    pub mtime: i64,
    /// Modification time, nanoseconds.
    pub mtime_nsec: i64,
    /// Device.
    pub dev: u64,
    /// Inode.
    pub ino: u64,
}

/// `fstat` of a descriptor.
///
/// # Errors
///
/// errno of `fstat`.
pub fn fstat(fd: BorrowedFd<'_>) -> io::Result<Stat> {
    // SAFETY: all-zero stat is valid.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: st is valid for writing.
    check(unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) })?;
    let format = st.st_mode & libc::S_IFMT;
    Ok(Stat {
        is_file: format == libc::S_IFREG,
        is_dir: format == libc::S_IFDIR,
        size: u64::try_from(st.st_size).unwrap_or(0),
        mtime: st.st_mtime,
        mtime_nsec: st.st_mtime_nsec,
        dev: st.st_dev,
        ino: st.st_ino,
    })
}

/// Opens a directory by path, for the site root.
///
/// # Errors
///
/// errno of `open`.
pub fn open_dir(path: &std::path::Path) -> io::Result<OwnedFd> {
    use std::os::unix::ffi::OsStrExt;
    let c = CString::new(path.as_os_str().as_bytes())
        .map_err(|_| io::Error::other("path holds NUL"))?;
    // SAFETY: c is a valid NUL-terminated string.
    owned(unsafe {
        libc::open(
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })
}

/// Longest path [`open_beneath`] takes, with its NUL.
const PATH_MAX: usize = libc::PATH_MAX as usize;

/// Opens `path` beneath the directory `dir`, never leaving it and never
/// following a symlink: `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
/// RESOLVE_NO_MAGICLINKS)`, or a walk of `O_NOFOLLOW` opens one component
/// at a time where the kernel lacks openat2. `path` is relative, has no
/// `.`/`..`/empty segments and no NUL (core normalised it); `""` is `dir`.
/// `O_PATH` opens without touching the file (a FIFO is not opened for
/// reading, a device not woken).
///
/// # Errors
///
/// errno: ENOENT, ELOOP (a symlink), EXDEV (escape), ENOTDIR, EACCES, ...
pub fn open_beneath(dir: BorrowedFd<'_>, path: &[u8], o_path: bool) -> io::Result<OwnedFd> {
    let flags = if o_path {
        libc::O_PATH | libc::O_CLOEXEC | libc::O_NOFOLLOW
    } else {
        libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY | libc::O_NOFOLLOW
    };
    let path = if path.is_empty() { b"." as &[u8] } else { path };
    // NUL-terminated on the stack: a request's path costs no allocation.
    let mut buf = [0u8; PATH_MAX];
    let c = buf
        .get_mut(..path.len().saturating_add(1))
        .and_then(|room| {
            room.get_mut(..path.len())?.copy_from_slice(path);
            std::ffi::CStr::from_bytes_with_nul(room).ok()
        })
        .ok_or_else(|| io::Error::from_raw_os_error(libc::ENAMETOOLONG))?;
    // SAFETY: open_how is plain data; all-zero is valid (no mode, no flags).
    let mut how: libc::open_how = unsafe { zeroed() };
    how.flags = u64::try_from(flags).unwrap_or(0);
    how.resolve = libc::RESOLVE_BENEATH | libc::RESOLVE_NO_SYMLINKS | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: c is NUL-terminated, how is valid and its size is passed.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir.as_raw_fd(),
            c.as_ptr(),
            &raw const how,
            size_of::<libc::open_how>(),
        )
    };
    match owned(libc::c_int::try_from(ret).unwrap_or(-1)) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => open_walk(dir, path, flags),
        result => result,
    }
}

/// The fallback of [`open_beneath`]: one `openat(O_NOFOLLOW)` per component.
fn open_walk(dir: BorrowedFd<'_>, path: &[u8], flags: libc::c_int) -> io::Result<OwnedFd> {
    let mut current: Option<OwnedFd> = None;
    let mut segments = path.split(|&b| b == b'/').peekable();
    while let Some(segment) = segments.next() {
        if segment == b".." || segment.is_empty() {
            return Err(io::Error::from_raw_os_error(libc::EXDEV));
        }
        let c = CString::new(segment).map_err(|_| io::Error::from_raw_os_error(libc::ENOENT))?;
        let last = segments.peek().is_none();
        let step_flags = if last {
            flags
        } else {
            libc::O_PATH | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC
        };
        let at = current.as_ref().map_or(dir.as_raw_fd(), AsRawFd::as_raw_fd);
        // SAFETY: c is NUL-terminated; `at` is a live directory descriptor.
        let next = owned(unsafe { libc::openat(at, c.as_ptr(), step_flags) })?;
        current = Some(next);
    }
    current.ok_or_else(|| io::Error::from_raw_os_error(libc::ENOENT))
}

/// Reads up to `buf.len()` bytes of a file at `offset`.
///
/// # Errors
///
/// errno of `pread` (EINTR is retried).
pub fn pread(fd: BorrowedFd<'_>, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let offset =
        libc::off_t::try_from(offset).map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
    loop {
        // SAFETY: buf is valid for writing buf.len() bytes.
        let ret =
            unsafe { libc::pread(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), offset) };
        match check_size(ret) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            result => return result,
        }
    }
}

/// The regular files and directories directly in an open directory, as
/// (name, is_dir), unsorted. Symlinks and special files are left out.
///
/// # Errors
///
/// errno of `openat`, `fdopendir` or `readdir`.
pub fn list_dir(dir: BorrowedFd<'_>) -> io::Result<Vec<(Vec<u8>, bool)>> {
    // A fresh descriptor for the stream: fdopendir takes ownership of it,
    // and it must not share a read offset with `dir`.
    // SAFETY: "." is NUL-terminated; dir is a live directory descriptor.
    let fd = owned(unsafe {
        libc::openat(
            dir.as_raw_fd(),
            c".".as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    })?;
    let raw = fd.as_raw_fd();
    // SAFETY: raw is a directory descriptor; on success the stream owns it.
    let stream = unsafe { libc::fdopendir(raw) };
    if stream.is_null() {
        return Err(io::Error::last_os_error());
    }
    // The stream now owns the descriptor; closedir closes it.
    std::mem::forget(fd);
    let mut entries = Vec::new();
    let result = loop {
        // SAFETY: __errno_location has no preconditions; it returns this
        // thread's errno slot.
        let errno = unsafe { libc::__errno_location() };
        // SAFETY: the slot is valid for writing for the life of the thread.
        // Cleared to tell the end of the stream from an error.
        unsafe { *errno = 0 };
        // SAFETY: stream is a live DIR*.
        let entry = unsafe { libc::readdir(stream) };
        if entry.is_null() {
            let e = io::Error::last_os_error();
            break if e.raw_os_error() == Some(0) {
                Ok(())
            } else {
                Err(e)
            };
        }
        // SAFETY: readdir returned a valid dirent that stays valid until the
        // next readdir on this stream.
        let dirent = unsafe { &*entry };
        // SAFETY: d_name is NUL-terminated within the dirent.
        let name = unsafe { std::ffi::CStr::from_ptr(dirent.d_name.as_ptr()) }
            .to_bytes()
            .to_vec();
        let d_type = dirent.d_type;
        if name == b"." || name == b".." {
            continue;
        }
        let is_dir = match d_type {
            libc::DT_REG => false,
            libc::DT_DIR => true,
            libc::DT_UNKNOWN => match stat_at(dir, &name) {
                Some(kind) => kind,
                None => continue,
            },
            _ => continue,
        };
        entries.push((name, is_dir));
    };
    // SAFETY: stream is live and closed exactly once.
    unsafe { libc::closedir(stream) };
    result.map(|()| entries)
}

/// Whether `name` in `dir` is a directory (`Some(true)`), a regular file
/// (`Some(false)`) or anything else (`None`), without following symlinks.
fn stat_at(dir: BorrowedFd<'_>, name: &[u8]) -> Option<bool> {
    let c = CString::new(name).ok()?;
    // SAFETY: all-zero stat is valid.
    let mut st: libc::stat = unsafe { zeroed() };
    // SAFETY: c is NUL-terminated, st valid for writing.
    check(unsafe {
        libc::fstatat(
            dir.as_raw_fd(),
            c.as_ptr(),
            &raw mut st,
            libc::AT_SYMLINK_NOFOLLOW,
        )
    })
    .ok()?;
    match st.st_mode & libc::S_IFMT {
        libc::S_IFREG => Some(false),
        libc::S_IFDIR => Some(true),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("txtd-sys-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("root/sub")).unwrap();
        std::fs::write(dir.join("root/sub/file.txt"), "x").unwrap();
        std::fs::write(dir.join("outside.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.join("outside.txt"), dir.join("root/link.txt")).unwrap();
        std::os::unix::fs::symlink(dir.join("root/sub"), dir.join("root/dirlink")).unwrap();
        dir
    }

    #[test]
    fn both_ways_of_opening_beneath_refuse_symlinks_and_escapes() {
        let dir = scratch("beneath");
        let root = open_dir(&dir.join("root")).unwrap();
        let flags = libc::O_RDONLY | libc::O_CLOEXEC | libc::O_NOFOLLOW;
        for open in [
            |root: BorrowedFd<'_>, path: &[u8], flags| {
                let _ = flags;
                open_beneath(root, path, false)
            },
            open_walk as fn(BorrowedFd<'_>, &[u8], libc::c_int) -> io::Result<OwnedFd>,
        ] {
            assert!(open(root.as_fd(), b"sub/file.txt", flags).is_ok());
            for refused in [
                &b"link.txt"[..],
                b"dirlink/file.txt",
                b"../outside.txt",
                b"sub/../../outside.txt",
            ] {
                assert!(
                    open(root.as_fd(), refused, flags).is_err(),
                    "{}",
                    String::from_utf8_lossy(refused)
                );
            }
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn listings_hold_files_and_directories_but_not_symlinks() {
        let dir = scratch("list");
        let root = open_dir(&dir.join("root")).unwrap();
        let mut entries = list_dir(root.as_fd()).unwrap();
        entries.sort();
        assert_eq!(entries, [(b"sub".to_vec(), true)]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
