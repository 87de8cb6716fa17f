//! Every libc call txtd makes: the workspace's only `unsafe` code.
//!
//! Each function returns `io::Result` built from errno, and wraps every new
//! file descriptor in an `OwnedFd` at once, so the rest of the shim is safe
//! Rust that cannot leak or double-close a descriptor.
#![allow(unsafe_code, reason = "this module is the one place that calls libc")]

use std::ffi::CString;
use std::io;
use std::mem::{size_of, size_of_val, zeroed};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::AtomicU64;

pub use libc::{SIGCHLD, SIGHUP, SIGINT, SIGKILL, SIGQUIT, SIGTERM, SIGUSR1, SIGUSR2};
pub use memfd::{PageFile, sendfile};

mod memfd {
    //! Pages kept in memory files: a sealed `memfd` per page, mapped read-only
    //! for its bytes, and `sendfile` from it to a socket, so a cached page goes
    //! out without being copied through user space (what nginx and lighttpd do
    //! with the files they serve). Nobody else holds the file, and once sealed
    //! it cannot change or shrink: its mapping never faults or races.

    use std::io;
    use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
    use std::ptr::NonNull;

    use super::{check, check_size, owned};

    /// A shared mapping of the first `len` bytes of a file, unmapped on drop.
    struct Mapping {
        ptr: NonNull<u8>,
        len: usize,
    }

    impl Mapping {
        /// Maps the first `len` (> 0) bytes of `fd`, shared, with `prot`.
        fn new(fd: BorrowedFd<'_>, len: usize, prot: libc::c_int) -> io::Result<Self> {
            // SAFETY: a new mapping at an address the kernel picks; no existing
            // memory is touched.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    prot,
                    libc::MAP_SHARED,
                    fd.as_raw_fd(),
                    0,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            let ptr = NonNull::new(ptr.cast::<u8>()).ok_or_else(io::Error::last_os_error)?;
            Ok(Self { ptr, len })
        }
    }

    impl Drop for Mapping {
        fn drop(&mut self) {
            // SAFETY: ptr and len are exactly what mmap returned and took; no
            // reference into the mapping outlives `self`.
            unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.len) };
        }
    }

    /// A page of bytes in a sealed memory file of its own, and a read-only
    /// mapping of it. Its pages are in memory (tmpfs), but count in the
    /// process's resident set only where the mapping is read.
    pub struct PageFile {
        fd: OwnedFd,
        map: Mapping,
    }

    impl PageFile {
        /// A file of `len` (> 0) bytes that `fill` writes; `fill` returns
        /// whether it wrote them all.
        ///
        /// # Errors
        ///
        /// errno of `memfd_create`, `ftruncate`, `mmap` or `fcntl` (EMFILE,
        /// ENOMEM, ...); EINVAL for `len == 0` or when `fill` fails.
        pub fn new(len: usize, fill: impl FnOnce(&mut [u8]) -> bool) -> io::Result<Self> {
            let size = libc::off_t::try_from(len)
                .map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
            if len == 0 {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            // SAFETY: the name is NUL-terminated; the flags are valid.
            let fd = owned(unsafe {
                libc::memfd_create(
                    c"txtd-page".as_ptr(),
                    libc::MFD_CLOEXEC | libc::MFD_ALLOW_SEALING,
                )
            })?;
            // SAFETY: plain syscall on a descriptor we own.
            check(unsafe { libc::ftruncate(fd.as_raw_fd(), size) })?;
            let writable = Mapping::new(fd.as_fd(), len, libc::PROT_READ | libc::PROT_WRITE)?;
            // SAFETY: the mapping is `len` writable bytes of a file sized to
            // `len` that only this function holds; the slice ends with it.
            let bytes = unsafe { std::slice::from_raw_parts_mut(writable.ptr.as_ptr(), len) };
            let filled = fill(bytes);
            // Sealing against writes needs the writable mapping gone.
            drop(writable);
            if !filled {
                return Err(io::Error::from_raw_os_error(libc::EINVAL));
            }
            let seals =
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
            // SAFETY: plain syscall on a descriptor we own.
            check(unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_ADD_SEALS, seals) })?;
            let map = Mapping::new(fd.as_fd(), len, libc::PROT_READ)?;
            Ok(Self { fd, map })
        }

        /// The page's bytes.
        pub fn bytes(&self) -> &[u8] {
            // SAFETY: the mapping is `len` readable bytes and lives as long as
            // `self`; the file is sealed against writes and shrinking, so the
            // bytes never change and no page of them can vanish.
            unsafe { std::slice::from_raw_parts(self.map.ptr.as_ptr().cast_const(), self.map.len) }
        }

        /// The file, to `sendfile` from.
        pub fn fd(&self) -> BorrowedFd<'_> {
            self.fd.as_fd()
        }
    }

    /// Sends up to `len` bytes of `file` from `offset` to a socket, without
    /// copying them through user space. Returns how many were queued; `0`
    /// only at the end of the file (or for `len == 0`).
    ///
    /// # Errors
    ///
    /// errno of `sendfile`; `WouldBlock` when the socket buffer is full.
    pub fn sendfile(
        socket: BorrowedFd<'_>,
        file: BorrowedFd<'_>,
        offset: usize,
        len: usize,
    ) -> io::Result<usize> {
        let mut offset = libc::off_t::try_from(offset)
            .map_err(|_| io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: offset is valid for reading and writing; the descriptors live.
        check_size(unsafe {
            libc::sendfile(socket.as_raw_fd(), file.as_raw_fd(), &raw mut offset, len)
        })
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_page_file_holds_what_was_filled_in_and_is_sealed() {
            let page = PageFile::new(10_000, |bytes| {
                bytes.fill(b'x');
                true
            })
            .unwrap();
            assert_eq!(page.bytes().len(), 10_000);
            assert!(page.bytes().iter().all(|&b| b == b'x'));
            // SAFETY: plain syscall on a descriptor the page owns.
            let seals = unsafe { libc::fcntl(page.fd().as_raw_fd(), libc::F_GET_SEALS) };
            let all =
                libc::F_SEAL_SHRINK | libc::F_SEAL_GROW | libc::F_SEAL_WRITE | libc::F_SEAL_SEAL;
            assert_eq!(seals & all, all);
            assert!(PageFile::new(0, |_| true).is_err());
            assert!(PageFile::new(10, |_| false).is_err());
        }
    }
}

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

/// Sets `TCP_NODELAY` on a socket. Set on a listening socket, it is
/// inherited by every connection `accept4` returns (Linux copies the
/// listener's TCP options), which [`accept_inheriting`] relies on.
///
/// # Errors
///
/// errno of `setsockopt`.
pub fn set_nodelay(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)
}

/// Sets `TCP_CORK` on a socket: only full segments leave until the close
/// (or the cork is taken off), whose FIN then rides on the last one.
///
/// # Errors
///
/// errno of `setsockopt`.
pub fn set_cork(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::IPPROTO_TCP, libc::TCP_CORK, 1)
}

/// Accepts one connection, non-blocking and close-on-exec, with
/// `TCP_NODELAY` set; `None` when none is waiting.
///
/// # Errors
///
/// errno of `accept4` other than EAGAIN (EMFILE, ENOBUFS, ...).
pub fn accept(listener: BorrowedFd<'_>) -> io::Result<Option<(OwnedFd, SocketAddr)>> {
    let accepted = accept_inheriting(listener)?;
    if let Some((fd, _)) = &accepted {
        // Responses go out as soon as they are written; Nagle would
        // hold back the tail of a response behind a delayed ACK.
        set_nodelay(fd.as_fd())?;
    }
    Ok(accepted)
}

/// Accepts one connection like [`accept`], but with the socket options it
/// inherits from the listener only: one system call per connection where
/// the listener has `TCP_NODELAY` set ([`set_nodelay`]).
///
/// # Errors
///
/// errno of `accept4` other than EAGAIN (EMFILE, ENOBUFS, ...).
pub fn accept_inheriting(listener: BorrowedFd<'_>) -> io::Result<Option<(OwnedFd, SocketAddr)>> {
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
    sendmsg2(fd, first, second, libc::MSG_NOSIGNAL)
}

/// Sends two slices like [`send2`], with `MSG_MORE`: the last partial
/// segment waits for more, or for the close, whose FIN then leaves in it.
///
/// # Errors
///
/// errno of `sendmsg`; `WouldBlock` when the socket buffer is full.
pub fn send2_more(fd: BorrowedFd<'_>, first: &[u8], second: &[u8]) -> io::Result<usize> {
    sendmsg2(fd, first, second, libc::MSG_NOSIGNAL | libc::MSG_MORE)
}

/// One `sendmsg` of two slices with `flags`.
fn sendmsg2(
    fd: BorrowedFd<'_>,
    first: &[u8],
    second: &[u8],
    flags: libc::c_int,
) -> io::Result<usize> {
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
    check_size(unsafe { libc::sendmsg(fd.as_raw_fd(), &raw const msg, flags) })
}

/// Sends `bytes` with `MSG_MORE`, without SIGPIPE: the kernel holds a
/// last partial segment back for what the next send adds (a response head
/// goes out in one segment with the start of its `sendfile` body).
///
/// # Errors
///
/// errno of `send`; `WouldBlock` when the socket buffer is full.
pub fn send_more(fd: BorrowedFd<'_>, bytes: &[u8]) -> io::Result<usize> {
    // SAFETY: bytes is valid for reading bytes.len() bytes.
    check_size(unsafe {
        libc::send(
            fd.as_raw_fd(),
            bytes.as_ptr().cast(),
            bytes.len(),
            libc::MSG_MORE | libc::MSG_NOSIGNAL,
        )
    })
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

// ---- inherited sockets, environment and exec (activation, upgrade) -----

/// Reads an integer socket option.
fn get_int_option(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
) -> io::Result<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: `value` and `len` live across the call; `len` holds the size.
    check(unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&raw mut value).cast(),
            &raw mut len,
        )
    })?;
    Ok(value)
}

/// Takes descriptor `fd`, handed to us open by whoever started us (the
/// `LISTEN_FDS` convention), as a listening stream socket: checks
/// `SO_TYPE` and `SO_ACCEPTCONN`, then makes it non-blocking and
/// close-on-exec like the sockets [`listen`] makes.
///
/// # Errors
///
/// EBADF if `fd` is not open; ENOTSOCK, or a message, if it is not a
/// listening stream socket.
pub fn inherit_listener(fd: RawFd) -> io::Result<OwnedFd> {
    // SAFETY: F_GETFD only reads the descriptor flags; a closed `fd` gives EBADF.
    let fd_flags = check(unsafe { libc::fcntl(fd, libc::F_GETFD) })?;
    // SAFETY: `fd` is open (F_GETFD succeeded) and, by the LISTEN_FDS
    // convention, handed to this process alone: nothing else here owns it.
    let owned = unsafe { OwnedFd::from_raw_fd(fd) };
    if get_int_option(owned.as_fd(), libc::SOL_SOCKET, libc::SO_TYPE)? != libc::SOCK_STREAM {
        return Err(io::Error::other("not a stream socket"));
    }
    if get_int_option(owned.as_fd(), libc::SOL_SOCKET, libc::SO_ACCEPTCONN)? == 0 {
        return Err(io::Error::other("not a listening socket"));
    }
    // SAFETY: F_SETFD on a descriptor we own, with its flags plus FD_CLOEXEC.
    check(unsafe { libc::fcntl(fd, libc::F_SETFD, fd_flags | libc::FD_CLOEXEC) })?;
    // SAFETY: F_GETFL only reads the status flags.
    let status = check(unsafe { libc::fcntl(fd, libc::F_GETFL) })?;
    // SAFETY: F_SETFL on a descriptor we own, adding O_NONBLOCK.
    check(unsafe { libc::fcntl(fd, libc::F_SETFL, status | libc::O_NONBLOCK) })?;
    Ok(owned)
}

/// Removes `name` from this process's environment, so that neither the
/// workers nor a program we start see it.
pub fn unset_env(name: &str) {
    // SAFETY: txtd never starts threads, so no other thread reads the
    // environment while it changes.
    unsafe { std::env::remove_var(name) };
}

/// Starts `program` with `argv` and `env` in a new child process that
/// inherits `listeners` as descriptors 3, 4, ... with `LISTEN_FDS` and
/// `LISTEN_PID` (the child's own pid) added to `env`, its signal mask
/// emptied and SIGPIPE back to its default: what systemd does for socket
/// activation. Everything that allocates is prepared before the fork; the
/// child runs only async-signal-safe calls until `execve`, and exits with
/// code 127 if that fails. The child keeps no parent-death signal (the
/// kernel clears it on fork).
///
/// # Errors
///
/// A NUL in an argument, or errno of `fork`.
pub fn spawn_with_listeners(
    program: &std::ffi::CStr,
    argv: &[CString],
    env: &[CString],
    listeners: &[BorrowedFd<'_>],
) -> io::Result<Pid> {
    const LISTEN_PID: &[u8] = b"LISTEN_PID=";
    let count = listeners.len();
    let first_free = libc::c_int::try_from(count.saturating_add(3))
        .map_err(|_| io::Error::other("too many listeners"))?;
    let listen_fds = CString::new(format!("LISTEN_FDS={count}"))
        .map_err(|_| io::Error::other("NUL in LISTEN_FDS"))?;
    // `LISTEN_PID=` and room for any pid's digits and the NUL; the child
    // writes its pid into its own copy of this buffer.
    let mut listen_pid = [0u8; 32];
    if let Some(head) = listen_pid.get_mut(..LISTEN_PID.len()) {
        head.copy_from_slice(LISTEN_PID);
    }
    let mut argv_ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    argv_ptrs.push(std::ptr::null());
    let mut env_ptrs: Vec<*const libc::c_char> = env.iter().map(|e| e.as_ptr()).collect();
    env_ptrs.push(listen_fds.as_ptr());
    env_ptrs.push(listen_pid.as_ptr().cast());
    env_ptrs.push(std::ptr::null());
    let sources: Vec<RawFd> = listeners.iter().map(AsRawFd::as_raw_fd).collect();
    let mut high: Vec<RawFd> = vec![-1; count];
    let empty = sigset(&[])?;
    // SAFETY: txtd never starts threads; the child only makes
    // async-signal-safe calls on memory prepared above, then execs.
    match check(unsafe { libc::fork() }).map_err(context("fork"))? {
        0 => exec_child(
            program,
            &argv_ptrs,
            &env_ptrs,
            &mut listen_pid,
            LISTEN_PID.len(),
            &sources,
            &mut high,
            first_free,
            &empty,
        ),
        pid => Ok(pid),
    }
}

/// The child side of [`spawn_with_listeners`]: async-signal-safe calls
/// only, no allocation, no panic; never returns.
#[expect(
    clippy::too_many_arguments,
    reason = "all prepared before the fork, passed as is"
)]
fn exec_child(
    program: &std::ffi::CStr,
    argv: &[*const libc::c_char],
    env: &[*const libc::c_char],
    listen_pid: &mut [u8; 32],
    digits_at: usize,
    sources: &[RawFd],
    high: &mut [RawFd],
    first_free: libc::c_int,
    empty: &libc::sigset_t,
) -> ! {
    // A signal mask survives execve: the master's blocked signals would
    // leave the new program deaf to TERM.
    // SAFETY: `empty` is an initialised set; the old mask is not wanted.
    unsafe { libc::sigprocmask(libc::SIG_SETMASK, empty, std::ptr::null_mut()) };
    // An ignored disposition survives execve too.
    // SAFETY: SIG_DFL is a valid disposition for SIGPIPE.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    // First copy every listener above the target range 3..first_free, so
    // that moving one into place cannot overwrite another not yet moved.
    for (&source, slot) in sources.iter().zip(high.iter_mut()) {
        // SAFETY: F_DUPFD_CLOEXEC on a live descriptor; the copy is ours.
        *slot = unsafe { libc::fcntl(source, libc::F_DUPFD_CLOEXEC, first_free) };
        if *slot < 0 {
            // SAFETY: _exit is async-signal-safe and ends the child.
            unsafe { libc::_exit(127) };
        }
    }
    for (target, &copy) in (3..).zip(high.iter()) {
        // dup2 leaves FD_CLOEXEC off on `target`: it survives execve.
        // SAFETY: both are descriptor numbers; `copy` is live.
        if unsafe { libc::dup2(copy, target) } < 0 {
            // SAFETY: as above.
            unsafe { libc::_exit(127) };
        }
    }
    // The decimal digits of our pid, written in place after "LISTEN_PID=".
    // SAFETY: getpid cannot fail.
    let mut pid = unsafe { libc::getpid() }.unsigned_abs();
    let mut digits = [0u8; 10];
    let mut len = 0;
    loop {
        if let Some(d) = digits.get_mut(len) {
            *d = b'0' + (pid % 10) as u8;
        }
        len += 1;
        pid /= 10;
        if pid == 0 || len == digits.len() {
            break;
        }
    }
    for i in 0..len {
        if let (Some(out), Some(&d)) = (listen_pid.get_mut(digits_at + i), digits.get(len - 1 - i))
        {
            *out = d;
        }
    }
    // The byte after the digits is still the buffer's 0: the NUL.
    // SAFETY: `program` is NUL-terminated; `argv` and `env` are
    // null-terminated arrays of pointers to NUL-terminated strings that
    // live in this process's copy of the parent's memory.
    unsafe { libc::execve(program.as_ptr(), argv.as_ptr(), env.as_ptr()) };
    // SAFETY: _exit is async-signal-safe and ends the child.
    unsafe { libc::_exit(127) }
}

/// Waits up to `timeout_ms` (-1: forever) until any of `fds` is readable.
///
/// # Errors
///
/// errno of `poll` other than EINTR.
pub fn wait_any_readable(fds: &[BorrowedFd<'_>], timeout_ms: i32) -> io::Result<()> {
    let mut pfds: Vec<libc::pollfd> = fds
        .iter()
        .map(|fd| libc::pollfd {
            fd: fd.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        })
        .collect();
    let count = libc::nfds_t::try_from(pfds.len()).unwrap_or(0);
    // SAFETY: `pfds` is valid for `count` entries for the call.
    match check(unsafe { libc::poll(pfds.as_mut_ptr(), count, timeout_ms) }) {
        Err(e) if e.kind() != io::ErrorKind::Interrupted => Err(e),
        _ => Ok(()),
    }
}

/// Asks the kernel to attach the sender's credentials to every datagram
/// received on unix socket `fd` (`SO_PASSCRED`), for [`recv_with_sender`].
///
/// # Errors
///
/// errno of `setsockopt`.
pub fn pass_credentials(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int_option(fd, libc::SOL_SOCKET, libc::SO_PASSCRED, 1)
}

/// Receives one datagram without waiting, with the pid of the process
/// that sent it as the kernel vouches for it (`SCM_CREDENTIALS`; a sender
/// cannot forge another's pid without CAP_SYS_ADMIN). `None` when none
/// waits; the pid is `None` unless [`pass_credentials`] was set.
///
/// # Errors
///
/// errno of `recvmsg` other than EAGAIN.
pub fn recv_with_sender(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
) -> io::Result<Option<(usize, Option<Pid>)>> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one ucred message, aligned for cmsghdr.
    let mut control = [0u64; 8];
    // SAFETY: all-zero msghdr is valid (no name, no control yet).
    let mut msg: libc::msghdr = unsafe { zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: the iovec and control buffer are live and writable for their lengths.
    let ret = unsafe { libc::recvmsg(fd.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT) };
    let n = match check_size(ret) {
        Ok(n) => n,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut sender = None;
    // SAFETY: `msg` was filled by recvmsg; its control fields describe `control`.
    let mut cmsg = unsafe { libc::CMSG_FIRSTHDR(&raw const msg) };
    while !cmsg.is_null() {
        // SAFETY: CMSG_FIRSTHDR/CMSG_NXTHDR return a header inside `control` or null.
        let header = unsafe { &*cmsg };
        if header.cmsg_level == libc::SOL_SOCKET && header.cmsg_type == libc::SCM_CREDENTIALS {
            // SAFETY: an SCM_CREDENTIALS message carries one ucred.
            let data = unsafe { libc::CMSG_DATA(cmsg) };
            // SAFETY: `data` points at a ucred inside `control`, maybe unaligned.
            let cred = unsafe { std::ptr::read_unaligned(data.cast::<libc::ucred>()) };
            sender = Some(cred.pid);
        }
        // SAFETY: `cmsg` is a header of `msg`'s control buffer.
        cmsg = unsafe { libc::CMSG_NXTHDR(&raw const msg, cmsg) };
    }
    Ok(Some((n, sender)))
}

/// CLOCK_MONOTONIC in microseconds (what `RELOADING=1` carries).
pub fn monotonic_usec() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `now` is valid for writing; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    let secs = u64::try_from(now.tv_sec).unwrap_or(0);
    let nsecs = u64::try_from(now.tv_nsec).unwrap_or(0);
    secs.saturating_mul(1_000_000).saturating_add(nsecs / 1000)
}

// ---- users, groups and privileges ----------------------------------------

/// A user or group id.
pub type Id = libc::uid_t;

/// Grows a lookup buffer and retries while the call says ERANGE.
fn lookup_with_buffer(mut call: impl FnMut(&mut [libc::c_char]) -> libc::c_int) -> io::Result<()> {
    let mut len = 1024;
    loop {
        let mut buf: Vec<libc::c_char> = vec![0; len];
        match call(&mut buf) {
            0 => return Ok(()),
            libc::ERANGE if len < 1 << 20 => len *= 4,
            errno => return Err(io::Error::from_raw_os_error(errno)),
        }
    }
}

/// The uid and primary gid of user `name` (`getpwnam_r`); `None` if there
/// is no such user.
///
/// # Errors
///
/// A NUL in the name, or the lookup failed (not: no such user).
pub fn user_by_name(name: &str) -> io::Result<Option<(Id, Id)>> {
    let c = CString::new(name).map_err(|_| io::Error::other("NUL in user name"))?;
    // SAFETY: all-zero passwd is valid plain data to be filled.
    let mut entry: libc::passwd = unsafe { zeroed() };
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    lookup_with_buffer(|buf| {
        // SAFETY: every pointer is valid for the call and `buf.len()` is
        // its size; the result points into `entry` or is null.
        unsafe {
            libc::getpwnam_r(
                c.as_ptr(),
                &raw mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut found,
            )
        }
    })?;
    Ok((!found.is_null()).then_some((entry.pw_uid, entry.pw_gid)))
}

/// The gid of group `name` (`getgrnam_r`); `None` if there is no such group.
///
/// # Errors
///
/// A NUL in the name, or the lookup failed (not: no such group).
pub fn group_by_name(name: &str) -> io::Result<Option<Id>> {
    let c = CString::new(name).map_err(|_| io::Error::other("NUL in group name"))?;
    // SAFETY: all-zero group is valid plain data to be filled.
    let mut entry: libc::group = unsafe { zeroed() };
    let mut found: *mut libc::group = std::ptr::null_mut();
    lookup_with_buffer(|buf| {
        // SAFETY: as in user_by_name.
        unsafe {
            libc::getgrnam_r(
                c.as_ptr(),
                &raw mut entry,
                buf.as_mut_ptr(),
                buf.len(),
                &raw mut found,
            )
        }
    })?;
    Ok((!found.is_null()).then_some(entry.gr_gid))
}

/// This process's effective user id.
pub fn geteuid() -> Id {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() }
}

/// Becomes user `uid` with group `gid` and no supplementary groups, for
/// good: setgroups, setgid, setuid (in that order: after setuid the
/// process may no longer change its groups), then `PR_SET_NO_NEW_PRIVS`
/// so no exec can gain privileges back. Clears the parent-death signal
/// (the kernel does on a credential change): set it afterwards.
///
/// # Errors
///
/// The failing call; the process must then not go on serving.
pub fn drop_privileges(uid: Id, gid: Id) -> io::Result<()> {
    let groups = [gid];
    // SAFETY: `groups` holds one gid for the call.
    check(unsafe { libc::setgroups(1, groups.as_ptr()) }).map_err(context("setgroups"))?;
    // SAFETY: plain syscall.
    check(unsafe { libc::setgid(gid) }).map_err(context("setgid"))?;
    // SAFETY: plain syscall.
    check(unsafe { libc::setuid(uid) }).map_err(context("setuid"))?;
    // SAFETY: PR_SET_NO_NEW_PRIVS takes 1 and three zeros.
    check(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
        .map_err(context("PR_SET_NO_NEW_PRIVS"))?;
    // setuid from root sets all three uids; check, since serving as root
    // by accident is what this must never do.
    // SAFETY: getuid cannot fail.
    let real = unsafe { libc::getuid() };
    if real != uid || geteuid() != uid {
        return Err(io::Error::other("uid did not change"));
    }
    Ok(())
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

/// The size of a memory page.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(page)
        .ok()
        .filter(|&p| p > 0)
        .unwrap_or(4096)
}

/// A new private anonymous mapping of `len` zero bytes, page-aligned, that
/// lives as long as the process. Its pages become resident only once
/// touched, and [`discard`] can give every one of them back.
///
/// # Errors
///
/// errno of `mmap` (ENOMEM); EINVAL for `len == 0`.
pub fn map_anonymous(len: usize) -> io::Result<&'static mut [u8]> {
    if len == 0 {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: a new anonymous mapping at an address the kernel picks; no
    // existing memory is touched.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if ptr == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the mapping is `len` readable and writable bytes, zero-filled
    // (a valid u8 each), never unmapped, and referenced only through this
    // one slice.
    Ok(unsafe { std::slice::from_raw_parts_mut(ptr.cast::<u8>(), len) })
}

/// Gives the whole memory pages inside `buf` back to the kernel
/// (`madvise(MADV_DONTNEED)`): they leave the resident set, and read as
/// zeros until written again. For buffers whose contents are no longer
/// needed, taken from `vec!` or `mmap` (private anonymous memory).
///
/// # Errors
///
/// errno of `madvise`.
pub fn discard(buf: &mut [u8]) -> io::Result<()> {
    let page = page_size();
    let start = buf.as_ptr() as usize;
    let first = start.next_multiple_of(page) - start;
    let len = buf.len().saturating_sub(first) / page * page;
    let Some(pages) = buf.get_mut(first..first + len).filter(|p| !p.is_empty()) else {
        return Ok(());
    };
    // SAFETY: `pages` is whole pages of memory this exclusive borrow owns,
    // not shared with any other process; zero-filled pages replace them,
    // and zero is a valid u8, so every later read sees initialised bytes.
    check(unsafe { libc::madvise(pages.as_mut_ptr().cast(), pages.len(), libc::MADV_DONTNEED) })
        .map(drop)
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
    fn a_connection_inherits_tcp_nodelay_from_its_listener() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), 8).unwrap();
        set_nodelay(listener.as_fd()).unwrap();
        let addr = local_addr(listener.as_fd()).unwrap();
        let _client = std::net::TcpStream::connect(addr).unwrap();
        let mut accepted = None;
        for _ in 0..1000 {
            accepted = accept_inheriting(listener.as_fd()).unwrap();
            if accepted.is_some() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
        let (socket, _) = accepted.unwrap();
        let nodelay = get_int_option(socket.as_fd(), libc::IPPROTO_TCP, libc::TCP_NODELAY);
        assert_eq!(nodelay.unwrap(), 1);
    }

    #[test]
    fn discarded_pages_read_as_zeros_and_the_edges_are_kept() {
        let mut buf = vec![7u8; 5 * 4096 + 100];
        discard(&mut buf[10..]).unwrap();
        let start = buf.as_ptr() as usize + 10;
        let kept = start.next_multiple_of(4096) - buf.as_ptr() as usize;
        assert!(buf[..kept].iter().all(|&b| b == 7));
        assert!(buf[kept..kept + 4096].iter().all(|&b| b == 0));
        assert_eq!(*buf.last().unwrap(), 7);
        discard(&mut buf[..100]).unwrap();
        assert_eq!(buf[0], 7);
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
