//! The admin interface (`--admin-listen`): `/healthz`, `/metrics`, `/status`,
//! answered by the workers (`EPOLLEXCLUSIVE`) from the shared scoreboard,
//! never by the master, which only binds the socket and hands it on like
//! the site's listeners. A few fixed connection slots per worker, one
//! request each (`Connection: close`), buffers that keep their capacity.

mod metrics;
mod page;
mod status;

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use txtd_core::conn::Now;

use crate::scoreboard::Scoreboard;
use crate::sys::{self, epoll};

/// The listening socket's epoll token; connection `i` has `TOKEN + 1 + i`.
/// Far above the worker's own tokens (slots, and listeners at 2³²).
pub const TOKEN: u64 = 1 << 40;
/// Admin connections a worker serves at once; more are closed at accept
/// (a scraper or a load balancer needs one or two).
const MAX_CONNS: usize = 8;
/// Bytes of a request head: an admin request is a line and a few fields.
const INPUT_LEN: usize = 4096;
/// How long a connection may linger after its response, for the client's
/// close (so unread bytes cannot turn our close into a reset).
const LINGER_MS: u64 = 1000;

/// The admin socket for the master: the one inherited (`LISTEN_FDNAMES`
/// name `admin`) or else a new one bound at `addr`; `None` if neither.
///
/// # Errors
///
/// The address cannot be bound, or its port read back.
pub fn listener(
    inherited: Option<OwnedFd>,
    addr: Option<SocketAddr>,
    backlog: i32,
) -> Result<Option<OwnedFd>, String> {
    let (fd, how) = match (inherited, addr) {
        (Some(fd), _) => (fd, " (inherited)"),
        (None, Some(addr)) => (
            sys::listen(addr, backlog).map_err(|e| format!("admin-listen: {e}"))?,
            "",
        ),
        (None, None) => return Ok(None),
    };
    let local = sys::local_addr(fd.as_fd()).map_err(|e| format!("admin-listen: {e}"))?;
    // Not "listening on": that names the site's addresses.
    log_info!("admin interface on {local}{how}: /healthz /metrics /status");
    Ok(Some(fd))
}

/// Where a connection stands.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Receiving the request head.
    Head,
    /// Sending the response.
    Send,
    /// Response sent and write side shut: waiting for the client's close.
    Linger,
}

/// One admin connection slot.
struct Conn {
    socket: Option<OwnedFd>,
    input: Box<[u8]>,
    received: usize,
    output: Vec<u8>,
    sent: usize,
    phase: Phase,
    deadline_ms: u64,
}

/// A worker's side of the admin interface.
pub struct Admin {
    listener: Option<OwnedFd>,
    conns: Vec<Conn>,
    scoreboard: Scoreboard,
    /// The answering worker's scoreboard slot.
    slot: usize,
    head_timeout_ms: u64,
    send_timeout_ms: u64,
    /// The response body, built before its head (which gives its length).
    body: Vec<u8>,
}

impl Admin {
    /// The worker's admin side for `listener`, writing slot `slot`'s view.
    pub fn new(
        listener: OwnedFd,
        scoreboard: Scoreboard,
        slot: usize,
        head_timeout_ms: u64,
        send_timeout_ms: u64,
    ) -> Self {
        let conns = (0..MAX_CONNS)
            .map(|_| Conn {
                socket: None,
                input: vec![0; INPUT_LEN].into_boxed_slice(),
                received: 0,
                output: Vec::new(),
                sent: 0,
                phase: Phase::Head,
                deadline_ms: 0,
            })
            .collect();
        Self {
            listener: Some(listener),
            conns,
            scoreboard,
            slot,
            head_timeout_ms,
            send_timeout_ms,
            body: Vec::new(),
        }
    }

    /// Adds the listening socket to the worker's epoll.
    ///
    /// # Errors
    ///
    /// errno of `epoll_ctl`.
    pub fn register(&self, ep: BorrowedFd<'_>) -> io::Result<()> {
        match &self.listener {
            Some(listener) => {
                sys::epoll_add(ep, listener.as_fd(), epoll::IN | epoll::EXCLUSIVE, TOKEN)
            }
            None => Ok(()),
        }
    }

    /// Takes no new admin connection; the open ones finish.
    pub fn close_listener(&mut self, ep: BorrowedFd<'_>) {
        if let Some(listener) = self.listener.take() {
            let _ = sys::epoll_delete(ep, listener.as_fd());
        }
    }

    /// Whether no admin connection is open.
    pub fn is_idle(&self) -> bool {
        self.conns.iter().all(|c| c.socket.is_none())
    }

    /// The worker began to drain. It goes on answering (so `/healthz`
    /// says 503 during a stop) unless a binary upgrade handed over: then
    /// the new master's workers answer from their own scoreboard, and
    /// this one only finishes the admin connections it has.
    pub fn on_drain(&mut self, ep: BorrowedFd<'_>) {
        if self.scoreboard.master().handed_over() {
            self.close_listener(ep);
        }
    }

    /// Handles an epoll event whose token is at or above [`TOKEN`].
    pub fn on_event(&mut self, ep: BorrowedFd<'_>, token: u64, now: Now) {
        match token.checked_sub(TOKEN + 1) {
            None => self.accept(ep, now),
            Some(index) => {
                let index = usize::try_from(index).unwrap_or(usize::MAX);
                self.drive(index, now);
            }
        }
    }

    /// Closes the connections whose deadline passed; returns the earliest
    /// deadline left, for the worker's next wake.
    pub fn expire(&mut self, now_ms: u64) -> Option<u64> {
        let mut next = None;
        for conn in &mut self.conns {
            if conn.socket.is_none() {
                continue;
            }
            if conn.deadline_ms <= now_ms {
                conn.socket = None;
            } else {
                next = Some(next.map_or(conn.deadline_ms, |n: u64| n.min(conn.deadline_ms)));
            }
        }
        next
    }

    fn accept(&mut self, ep: BorrowedFd<'_>, now: Now) {
        // Bounded: a burst is shared with the other workers.
        for _ in 0..MAX_CONNS {
            let Some(listener) = self.listener.as_ref() else {
                return;
            };
            let socket = match sys::accept(listener.as_fd()) {
                Ok(Some((socket, _peer))) => socket,
                Ok(None) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log_warn!("admin accept: {e}");
                    return;
                }
            };
            // No free slot: the connection is closed, unanswered.
            let Some(index) = self.conns.iter().position(|c| c.socket.is_none()) else {
                continue;
            };
            let token = TOKEN + 1 + index as u64;
            let flags = epoll::IN | epoll::OUT | epoll::RDHUP | epoll::ET;
            if let Err(e) = sys::epoll_add(ep, socket.as_fd(), flags, token) {
                log_warn!("admin epoll_ctl: {e}");
                continue;
            }
            if let Some(conn) = self.conns.get_mut(index) {
                conn.socket = Some(socket);
                conn.received = 0;
                conn.output.clear();
                conn.sent = 0;
                conn.phase = Phase::Head;
                conn.deadline_ms = now.monotonic_ms.saturating_add(self.head_timeout_ms);
            }
            self.drive(index, now);
        }
    }

    /// Moves connection `index` on as far as its socket allows.
    fn drive(&mut self, index: usize, now: Now) {
        let Some(conn) = self.conns.get_mut(index) else {
            return;
        };
        // Edge-triggered: go on until the socket would block. Each phase
        // ends or blocks, so three rounds suffice; the bound is a guard.
        for _ in 0..8 {
            let Some(socket) = conn.socket.as_ref() else {
                return;
            };
            let socket = socket.as_fd();
            match conn.phase {
                Phase::Head => {
                    let Some(free) = conn.input.get_mut(conn.received..) else {
                        return;
                    };
                    // A full buffer is answered (431) without reading more.
                    let n = if free.is_empty() {
                        0
                    } else {
                        match sys::recv(socket, free) {
                            Ok(0) => {
                                conn.socket = None;
                                return;
                            }
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                            Err(_) => {
                                conn.socket = None;
                                return;
                            }
                        }
                    };
                    conn.received = conn.received.saturating_add(n);
                    let input = conn.input.get(..conn.received).unwrap_or_default();
                    let full = conn.received == conn.input.len();
                    let view = page::View {
                        scoreboard: self.scoreboard,
                        slot: self.slot,
                        now_ms: now.monotonic_ms,
                        unix_secs: now.unix_secs,
                    };
                    if page::respond(input, full, &view, &mut self.body, &mut conn.output) {
                        conn.phase = Phase::Send;
                        conn.deadline_ms = now.monotonic_ms.saturating_add(self.send_timeout_ms);
                    } else if n == 0 {
                        return;
                    }
                }
                Phase::Send => {
                    let rest = conn.output.get(conn.sent..).unwrap_or_default();
                    if rest.is_empty() {
                        // RFC 9112 §9.6: half-close, then let the client close.
                        let _ = sys::shutdown_write(socket);
                        conn.phase = Phase::Linger;
                        conn.deadline_ms = now.monotonic_ms.saturating_add(LINGER_MS);
                        continue;
                    }
                    match sys::send2(socket, rest, &[]) {
                        Ok(n) => conn.sent = conn.sent.saturating_add(n),
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(_) => {
                            conn.socket = None;
                            return;
                        }
                    }
                }
                Phase::Linger => {
                    // Whatever else the client sent is not read as a request.
                    let mut sink = [0u8; 512];
                    match sys::recv(socket, &mut sink) {
                        Ok(0) => {
                            conn.socket = None;
                            return;
                        }
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                        Err(_) => {
                            conn.socket = None;
                            return;
                        }
                    }
                }
            }
        }
    }
}
