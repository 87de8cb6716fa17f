//! The server: N smoltcp TCP sockets listening on one port are N connection
//! slots (smoltcp has no listen backlog), each paired with a core [`Conn`]
//! over the caller's [`Buffers`], sized by const generics. A slot accepts,
//! serves, and listens again. [`Server::poll`] does bounded work per slot and
//! never blocks, allocates or panics on any input.

use core::fmt;

use embedded_io::{Read, Write};
use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant;
use txtd_core::conn::{Close, Config, Conn, Log, Now};
use txtd_core::site::Site;

use crate::socket::{self, SocketIo};

/// Passes of poll, send and receive per slot and [`Server::poll`]: enough
/// for a response to go from parsed to queued in one call, and a bound.
const ROUNDS: usize = 8;

/// The memory of one connection slot: a socket's receive and send buffers
/// and a connection's input and output buffers.
///
/// `IN` must hold a request head and the decoded path (core keeps up to
/// half of it for the path, [`Config::max_path`] at most); `OUT` at least
/// 64 bytes, and about 1 KiB sends a head and a short page in one piece.
#[derive(Debug)]
pub struct Buffers<const RX: usize, const TX: usize, const IN: usize, const OUT: usize> {
    rx: [u8; RX],
    tx: [u8; TX],
    input: [u8; IN],
    output: [u8; OUT],
}

impl<const RX: usize, const TX: usize, const IN: usize, const OUT: usize> Buffers<RX, TX, IN, OUT> {
    /// Zeroed buffers; in a `static`, they take no flash.
    pub const fn new() -> Self {
        Self {
            rx: [0; RX],
            tx: [0; TX],
            input: [0; IN],
            output: [0; OUT],
        }
    }
}

impl<const RX: usize, const TX: usize, const IN: usize, const OUT: usize> Default
    for Buffers<RX, TX, IN, OUT>
{
    fn default() -> Self {
        Self::new()
    }
}

/// Why a server could not start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Port 0 was asked for: a smoltcp socket cannot listen on it.
    PortZero,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("cannot listen on port 0")
    }
}

impl core::error::Error for Error {}

/// What a slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// The socket listens (or is about to listen again).
    Listening,
    /// A connection is being served.
    Serving {
        /// Whether the end of the client's stream was handed to the `Conn`.
        eof: bool,
        /// When the sending side was shut down, in monotonic milliseconds.
        closing_since: Option<u64>,
    },
}

/// One socket and the connection it serves.
struct Slot<'b, S: Site, const MAX_FIELDS: usize> {
    socket: SocketHandle,
    conn: Conn<'b, S, MAX_FIELDS>,
    state: State,
}

/// A txtd server of `SLOTS` connection slots on one smoltcp interface.
///
/// `MAX_FIELDS` sizes the header field array a request is parsed into (on
/// the stack of [`Server::poll`]); more fields are refused with 431.
pub struct Server<'b, S: Site, const SLOTS: usize, const MAX_FIELDS: usize = 32> {
    slots: [Slot<'b, S, MAX_FIELDS>; SLOTS],
    port: u16,
    linger_ms: u64,
    unix_epoch_secs: u64,
}

impl<'b, S: Site, const SLOTS: usize, const MAX_FIELDS: usize> Server<'b, S, SLOTS, MAX_FIELDS> {
    /// A server whose slots listen on `port`, one socket per slot, added to
    /// `sockets` over `buffers`.
    ///
    /// `unix_epoch_secs` is the wall-clock time (Unix seconds) at smoltcp's
    /// `Instant` zero, for `Date`: 0 if the board does not know the time.
    ///
    /// # Errors
    ///
    /// [`Error::PortZero`] for port 0.
    ///
    /// # Panics
    ///
    /// smoltcp's `SocketSet::add` panics when the set has no room: give it
    /// storage for `SLOTS` more sockets.
    pub fn new<const RX: usize, const TX: usize, const IN: usize, const OUT: usize>(
        buffers: &'b mut [Buffers<RX, TX, IN, OUT>; SLOTS],
        sockets: &mut SocketSet<'b>,
        port: u16,
        config: Config,
        unix_epoch_secs: u64,
        now: Instant,
    ) -> Result<Self, Error> {
        if port == 0 {
            return Err(Error::PortZero);
        }
        let now = to_now(now, unix_epoch_secs);
        let slots = buffers.each_mut().map(|buffers| {
            let Buffers {
                rx,
                tx,
                input,
                output,
            } = buffers;
            let mut socket = tcp::Socket::new(
                tcp::SocketBuffer::new(rx.as_mut_slice()),
                tcp::SocketBuffer::new(tx.as_mut_slice()),
            );
            // A new socket is closed and the port is not 0: the only two
            // reasons `listen` fails cannot hold.
            let _ = socket.listen(port);
            Slot {
                socket: sockets.add(socket),
                conn: Conn::new(input, output, config, now),
                state: State::Listening,
            }
        });
        debug!("listening on port {} with {} slots", port, SLOTS);
        Ok(Self {
            slots,
            port,
            linger_ms: config.linger_ms,
            unix_epoch_secs,
        })
    }

    /// Slots serving a connection now.
    pub fn serving(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.state != State::Listening)
            .count()
    }

    /// Moves every connection on as far as the sockets' buffers and `now`
    /// allow: accepts, reads requests, queues responses, closes, and sets
    /// finished slots listening again. Call it after each interface poll.
    ///
    /// Returns when to call it again at the latest (a connection's
    /// deadline), or `None` if only network traffic can move anything.
    /// `sockets` and `site` must be the ones the server was made with; a
    /// slot's socket missing from `sockets` makes smoltcp panic.
    pub fn poll<L: Log>(
        &mut self,
        sockets: &mut SocketSet<'_>,
        site: &mut S,
        log: &mut L,
        now: Instant,
    ) -> Option<Instant> {
        let now = to_now(now, self.unix_epoch_secs);
        // With no socket listening, new clients are refused: ask the busy
        // connections to close after their response.
        let pressure = self.serving() == SLOTS;
        let mut wake: Option<u64> = None;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let socket = sockets.get_mut::<tcp::Socket>(slot.socket);
            let at = slot.poll(
                index,
                socket,
                site,
                log,
                now,
                self.port,
                pressure,
                self.linger_ms,
            );
            wake = match (wake, at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
        wake.map(|ms| Instant::from_millis(i64::try_from(ms).unwrap_or(i64::MAX)))
    }
}

impl<S: Site, const MAX_FIELDS: usize> Slot<'_, S, MAX_FIELDS> {
    /// Moves this slot on; returns its next deadline.
    #[expect(
        clippy::too_many_arguments,
        reason = "one call site, all of them needed"
    )]
    fn poll<L: Log>(
        &mut self,
        index: usize,
        socket: &mut tcp::Socket<'_>,
        site: &mut S,
        log: &mut L,
        now: Now,
        port: u16,
        pressure: bool,
        linger_ms: u64,
    ) -> Option<u64> {
        let t = now.monotonic_ms;
        if self.state == State::Listening {
            if !socket.is_active() {
                // Closed or in TIME-WAIT: a slot must not wait out
                // TIME-WAIT's minutes, so it listens again at once.
                if !socket.is_open() {
                    let _ = socket.listen(port);
                }
                return None;
            }
            debug!("slot {}: accepted {:?}", index, socket.remote_endpoint());
            self.conn.reset(now);
            self.state = State::Serving {
                eof: false,
                closing_since: None,
            };
        }
        let State::Serving { eof, closing_since } = &mut self.state else {
            return None;
        };
        if !socket.is_active() {
            // Both sides closed, or the client reset the connection.
            debug!(
                "slot {}: closed after {} requests",
                index,
                self.conn.requests()
            );
            self.conn.close(log);
            self.state = State::Listening;
            let _ = socket.listen(port);
            return None;
        }
        if let Some(since) = *closing_since
            && t >= since.saturating_add(linger_ms)
        {
            // The client never closed its side: give the slot back.
            debug!("slot {}: aborted, the client did not close", index);
            socket.abort();
            self.conn.close(log);
            self.state = State::Listening;
            return None;
        }
        self.conn.set_pressure(pressure);
        let mut wake = None;
        for round in 0..ROUNDS {
            let interest = self.conn.poll(site, log, now);
            wake = interest.deadline_ms;
            let mut moved = false;
            let [head, body] = self.conn.output(site);
            let chunk = if head.is_empty() { body } else { head };
            if !chunk.is_empty() {
                match SocketIo::new(socket).write(chunk) {
                    Ok(n) => {
                        self.conn.sent(n, now);
                        moved = true;
                    }
                    Err(socket::Error::WouldBlock) => {}
                    Err(socket::Error::NotConnected) => {
                        debug!("slot {}: the client stopped the response", index);
                        socket.abort();
                        self.conn.close(log);
                        self.state = State::Listening;
                        return None;
                    }
                }
            } else if interest.close != Close::Keep && closing_since.is_none() {
                // Shut down the sending side once all is queued: smoltcp
                // sends the FIN after the bytes still in the buffer.
                trace!("slot {}: closing ({:?})", index, interest.close);
                socket.close();
                *closing_since = Some(t);
            }
            if interest.read && !*eof {
                let buf = self.conn.read_buf();
                if !buf.is_empty() {
                    match SocketIo::new(socket).read(buf) {
                        Ok(n) => {
                            *eof = n == 0;
                            self.conn.received(n, now);
                            moved = true;
                        }
                        Err(socket::Error::WouldBlock) => {}
                        Err(socket::Error::NotConnected) => {
                            *eof = true;
                            self.conn.received(0, now);
                            moved = true;
                        }
                    }
                }
            }
            if !moved && !interest.again {
                break;
            }
            if round + 1 == ROUNDS {
                // Work is left: come back at once.
                wake = Some(t);
            }
        }
        let closing = closing_since.map(|since| since.saturating_add(linger_ms));
        match (wake, closing) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

/// Core's time from smoltcp's: its milliseconds, and the wall clock.
fn to_now(now: Instant, unix_epoch_secs: u64) -> Now {
    let monotonic_ms = u64::try_from(now.total_millis()).unwrap_or(0);
    Now {
        monotonic_ms,
        unix_secs: unix_epoch_secs.saturating_add(monotonic_ms / 1000),
    }
}
