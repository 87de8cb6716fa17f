//! The sans-IO connection: one HTTP/1.x connection as a state machine over
//! caller-provided buffers (RFC 9112 §9).
//!
//! A [`Conn`] is handed the bytes that arrived ([`Conn::received`]) and the
//! current time, does the work they allow ([`Conn::poll`]), and says what to
//! send ([`Conn::output`]), when to wake it, and whether to close
//! ([`Interest`]). It never blocks, never calls the OS and never allocates;
//! every call does bounded work. Requests are answered in order, pipelined
//! or not; the head of a request stays in the input buffer until its
//! response is sent, so the access log sees it.

mod body;

use crate::conditional::{ETag, is_not_modified, is_range_current};
use crate::html;
use crate::message::{Message, Method};
use crate::range::{Ranges, parse_range};
use crate::request::{Field, Limits, Parsed, Request, Version, parse_request};
use crate::response::{Connection, ContentRange, Head, write_head_from};
use crate::scan;
use crate::site::{Entry, Kind, Site};
use crate::status::{Refusal, Status};
use crate::target::{Form, is_hidden, parse_target};

use body::{Fault, Measure, Source, Stream};

/// Bytes at the start of the output buffer kept for a page's head, so the
/// body can be rendered before the head is written.
const HEAD_ROOM: usize = 1024;

/// Timeouts and limits of a connection. All times are in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Config {
    /// Limits on a request head.
    pub limits: Limits,
    /// Longest decoded path; reserved at the end of the input buffer (at
    /// most half of it). Longer paths are refused with 414.
    pub max_path: usize,
    /// From accepting to the first byte of the first request (then close).
    pub first_byte_timeout_ms: u64,
    /// From a head's first byte to its end (then 408 and close).
    pub head_timeout_ms: u64,
    /// Least average rate of a head after its first second, in bytes per
    /// second (then 408 and close); 0 turns the check off.
    pub min_head_rate: u64,
    /// Idle time allowed between requests (then close).
    pub keepalive_timeout_ms: u64,
    /// Idle time between requests while the server is short of connection
    /// slots ([`Conn::set_pressure`]).
    pub pressure_keepalive_timeout_ms: u64,
    /// Time allowed without any byte sent while a response is pending
    /// (then close).
    pub send_timeout_ms: u64,
    /// How long a connection takes new requests; 0 for no limit. Past it,
    /// as with nginx's `keepalive_time`, the response in progress is
    /// finished (the send timeout still guards it), the next one carries
    /// `Connection: close`, and an idle connection is closed.
    pub lifetime_ms: u64,
    /// After a server-side close, how long to read and discard what the
    /// client still sends, so it sees the last response (RFC 9112 §9.6).
    pub linger_ms: u64,
    /// Most requests served on one connection.
    pub max_requests: u32,
}

impl Config {
    /// The defaults: 5 s to the first byte, 10 s per head and 500 B/s after
    /// its first second, 5 s keep-alive idle (1 s under pressure), 30 s
    /// without send progress, 300 s per connection, 2 s linger, 1000
    /// requests per connection, 4096-byte paths.
    pub const DEFAULT: Self = Self {
        limits: Limits::DEFAULT,
        max_path: 4096,
        first_byte_timeout_ms: 5_000,
        head_timeout_ms: 10_000,
        min_head_rate: 500,
        keepalive_timeout_ms: 5_000,
        pressure_keepalive_timeout_ms: 1_000,
        send_timeout_ms: 30_000,
        lifetime_ms: 300_000,
        linger_ms: 2_000,
        max_requests: 1000,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// The current time, as the caller's clocks tell it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Now {
    /// A monotonic clock, for deadlines.
    pub monotonic_ms: u64,
    /// Wall-clock seconds since the Unix epoch, for `Date`.
    pub unix_secs: u64,
}

/// Whether and how to close the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Close {
    /// Keep it open.
    Keep,
    /// Shut down the sending side, keep reading (and feed the bytes to
    /// [`Conn::received`], which discards them) until the client closes or
    /// the deadline passes.
    Linger,
    /// Close it now.
    Now,
}

/// What a connection wants from its driver after a [`Conn::poll`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Interest {
    /// Read into [`Conn::read_buf`] when the socket is readable.
    pub read: bool,
    /// Send [`Conn::output`] when the socket is writable.
    pub write: bool,
    /// There is work to do without any I/O: poll again soon (after serving
    /// other connections).
    pub again: bool,
    /// Poll again at this monotonic time even if nothing happens.
    pub deadline_ms: Option<u64>,
    /// Whether to close.
    pub close: Close,
}

/// What a connection is doing, for a server choosing which one to give up
/// when it runs short of slots.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Activity {
    /// Between requests, no byte of the next one received.
    Idle {
        /// Since when (monotonic milliseconds).
        since_ms: u64,
    },
    /// Part of a request head received.
    Head {
        /// Bytes received so far.
        bytes: usize,
        /// When its first byte arrived.
        since_ms: u64,
    },
    /// Answering a request.
    Busy,
    /// Closing: discarding input until the client closes.
    Lingering,
    /// Closed.
    Closed,
}

/// One request and its answer, as an access log records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Exchange<'a> {
    /// The request line as received (for a malformed head: its first line,
    /// or what arrived of it).
    pub request_line: &'a [u8],
    /// The status sent.
    pub status: Status,
    /// Body bytes sent.
    pub body_len: u64,
    /// The `Referer` value, if any.
    pub referer: Option<&'a [u8]>,
    /// The `User-Agent` value, if any.
    pub user_agent: Option<&'a [u8]>,
    /// Why the request was refused, for an error status.
    pub refusal: Option<Refusal>,
    /// Whether the whole response was sent (false: the connection ended first).
    pub complete: bool,
}

/// Receives each finished exchange, e.g. to write an access log.
pub trait Log {
    /// Called once per response, when its last byte is handed over or the
    /// connection ends before that.
    fn exchange(&mut self, exchange: &Exchange<'_>);
}

impl Log for () {
    fn exchange(&mut self, _: &Exchange<'_>) {}
}

/// A byte range of the input buffer.
type Span = (usize, usize);

/// The request being answered, as offsets into the input.
#[derive(Clone, Copy)]
struct Current {
    head_len: usize,
    request_line: Span,
    referer: Option<Span>,
    user_agent: Option<Span>,
}

/// Everything a page response needs once its length is known.
struct Prepared<H> {
    handle: H,
    entry: Entry,
    source: Source,
    etag: ETag,
    is_head: bool,
    keep_alive: bool,
    version: Version,
    /// The `Range` value, if one applies.
    range: Option<Span>,
}

enum Body<H> {
    /// Nothing more to produce; the window may still hold bytes.
    Done,
    /// A page the site keeps rendered: bytes `pos..end` still to send.
    Cached { handle: H, pos: usize, end: usize },
    /// A page rendered as it is sent.
    Stream { handle: H, stream: Stream },
}

/// How to forge a response's head, and the fixed page after it, again
/// and again: an output buffer too small for them takes them in windows,
/// each forged from the same inputs (`Date` included), so the bytes do not
/// depend on the buffer's size.
#[derive(Clone, Copy)]
struct Forge {
    /// The head, but for its borrowed fields.
    head: Head<'static>,
    etag: Option<ETag>,
    /// Whether `Location` names the request's decoded path.
    location: bool,
    /// Whether the status's error page follows the head.
    page: bool,
    /// Bytes of the head.
    head_len: usize,
    /// Bytes of the head and page.
    total: usize,
    /// Bytes placed in the output buffer so far (sent or not).
    placed: usize,
    /// Bytes sent so far.
    sent: usize,
}

impl Forge {
    fn new(head: Head<'static>, etag: Option<ETag>, location: bool, page: bool) -> Self {
        Self {
            head,
            etag,
            location,
            page,
            head_len: 0,
            total: 0,
            placed: 0,
            sent: 0,
        }
    }

    /// The whole head; `path` is the request's decoded path.
    fn head<'a>(&'a self, path: &'a [u8]) -> Head<'a> {
        Head {
            etag: self.etag.as_ref().map(ETag::as_bytes),
            location: self.location.then_some(path),
            ..self.head
        }
    }

    /// Writes what fits `out` of the bytes from `skip` on; returns how many.
    fn write(&self, path: &[u8], skip: usize, out: &mut [u8]) -> usize {
        let (n, _) = write_head_from(&self.head(path), skip, out);
        if !self.page {
            return n;
        }
        let status = self.head.status;
        let rest = out.get_mut(n..).unwrap_or_default();
        n + html::write_error_page_from(
            status.code(),
            status.reason_phrase().as_bytes(),
            skip.saturating_sub(self.head_len),
            rest,
        )
    }

    /// Sets the lengths of the head and of all bytes, for `path`.
    fn measure(&mut self, path: &[u8]) {
        let (_, head_len) = write_head_from(&self.head(path), 0, &mut []);
        let status = self.head.status;
        let page = if self.page {
            html::error_page_len(status.code(), status.reason_phrase().as_bytes())
        } else {
            0
        };
        self.head_len = head_len;
        self.total = head_len.saturating_add(page);
    }
}

struct Sending<H> {
    /// Unsent bytes of the head (and fixed page) in the output buffer.
    head: Span,
    /// Forges the head's next window once this one is sent.
    forge: Forge,
    /// Unsent body bytes in the output buffer.
    window: Span,
    body: Body<H>,
    status: Status,
    refusal: Option<Refusal>,
    keep_alive: bool,
    body_sent: u64,
}

enum Phase<H> {
    /// Waiting for, or reading, a request head.
    Head,
    /// Computing a page's length before its head can be written.
    Measure {
        prepared: Prepared<H>,
        measure: Measure,
    },
    /// Sending a response.
    Send(Sending<H>),
    /// Shut down for sending; discarding input until this time.
    Linger { until_ms: u64 },
    /// Finished.
    Closed,
}

/// What the answer to a complete head will be.
enum Plan<H> {
    Refuse {
        refusal: Refusal,
        keep_alive: bool,
        version: Version,
        is_head: bool,
    },
    Options {
        keep_alive: bool,
        version: Version,
    },
    Redirect {
        keep_alive: bool,
        version: Version,
        is_head: bool,
    },
    NotModified {
        entry: Entry,
        etag: ETag,
        keep_alive: bool,
        version: Version,
    },
    Page(Prepared<H>),
}

/// One HTTP/1.x connection over fixed buffers.
///
/// `MAX_FIELDS` sizes the field array a head is parsed into, on the stack
/// of [`Conn::poll`]; [`Limits::max_fields`] can only lower it.
///
/// # Examples
///
/// ```
/// use txtd_core::conn::{Close, Config, Conn, Now};
/// use txtd_core::table::{Table, TableEntry};
///
/// static FILES: [TableEntry; 2] = [
///     TableEntry::dir(b""),
///     TableEntry::file(b"hello.txt", b"Hello <world>\n"),
/// ];
/// let mut site = Table::new(&FILES);
/// let (mut input, mut output) = ([0u8; 2048], [0u8; 2048]);
/// let now = Now { monotonic_ms: 0, unix_secs: 0 };
/// let mut conn: Conn<'_, Table> = Conn::new(&mut input, &mut output, Config::DEFAULT, now);
///
/// let request = b"GET /hello.txt HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
/// conn.read_buf()[..request.len()].copy_from_slice(request);
/// conn.received(request.len(), now);
///
/// let mut response = Vec::new();
/// loop {
///     let interest = conn.poll(&mut site, &mut (), now);
///     let [head, body] = conn.output(&site);
///     let n = head.len() + body.len();
///     response.extend_from_slice(head);
///     response.extend_from_slice(body);
///     conn.sent(n, now);
///     if n == 0 && interest.close != Close::Keep {
///         break;
///     }
/// }
/// let text = String::from_utf8(response).unwrap();
/// assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(text.contains("<pre>\nHello &lt;world&gt;\n</pre>"));
/// ```
pub struct Conn<'b, S: Site, const MAX_FIELDS: usize = 128> {
    config: Config,
    input: &'b mut [u8],
    output: &'b mut [u8],
    /// `input[..recv_cap]` receives bytes; the rest holds the decoded path.
    recv_cap: usize,
    in_len: usize,
    /// Input before this offset has been searched for line ends.
    scanned: usize,
    /// Where the line being received starts.
    line_start: usize,
    path_len: usize,
    phase: Phase<S::Handle>,
    current: Option<Current>,
    opened_ms: u64,
    head_since_ms: Option<u64>,
    idle_since_ms: u64,
    progress_ms: u64,
    requests: u32,
    peer_eof: bool,
    /// The request being answered asked to close, and nothing of a body
    /// can follow it (no refusal).
    client_close: bool,
    draining: bool,
    pressure: bool,
    now: Now,
}

impl<'b, S: Site, const MAX_FIELDS: usize> Conn<'b, S, MAX_FIELDS> {
    /// A new connection accepted at `now`, over the caller's buffers.
    ///
    /// The output buffer must hold at least 64 bytes; the input buffer
    /// should hold at least twice [`Config::max_path`]. Every response goes
    /// through an output buffer of any such size, byte for byte the same:
    /// a head (and an error page) too long for it is forged again window
    /// by window, and page bodies stream. A buffer that holds a head and
    /// a short page (about 1 KiB) sends them in one piece.
    pub fn new(input: &'b mut [u8], output: &'b mut [u8], config: Config, now: Now) -> Self {
        let path_room = config.max_path.min(input.len() / 2);
        let recv_cap = input.len() - path_room;
        Self {
            config,
            input,
            output,
            recv_cap,
            in_len: 0,
            scanned: 0,
            line_start: 0,
            path_len: 0,
            phase: Phase::Head,
            current: None,
            opened_ms: now.monotonic_ms,
            head_since_ms: None,
            idle_since_ms: now.monotonic_ms,
            progress_ms: now.monotonic_ms,
            requests: 0,
            peer_eof: false,
            client_close: false,
            draining: false,
            pressure: false,
            now,
        }
    }

    /// Starts over for a new connection in the same buffers.
    ///
    /// Anything in progress is dropped without a log entry; call
    /// [`Conn::close`] first to log it.
    pub fn reset(&mut self, now: Now) {
        self.in_len = 0;
        self.scanned = 0;
        self.line_start = 0;
        self.path_len = 0;
        self.phase = Phase::Head;
        self.current = None;
        self.opened_ms = now.monotonic_ms;
        self.head_since_ms = None;
        self.idle_since_ms = now.monotonic_ms;
        self.progress_ms = now.monotonic_ms;
        self.requests = 0;
        self.peer_eof = false;
        self.client_close = false;
        self.draining = false;
        self.pressure = false;
        self.now = now;
    }

    /// The input and output buffers, for a driver that releases their
    /// memory while the connection is closed (Linux's `madvise`): whatever
    /// they hold then, [`Conn::reset`] starts over in them.
    pub fn buffers(&mut self) -> (&mut [u8], &mut [u8]) {
        (&mut *self.input, &mut *self.output)
    }

    /// Where to put bytes that arrive; empty when the connection cannot take
    /// any now (its buffer is full, or it has stopped reading).
    pub fn read_buf(&mut self) -> &mut [u8] {
        match self.phase {
            Phase::Closed => &mut [],
            Phase::Linger { .. } => self.input.get_mut(..self.recv_cap).unwrap_or_default(),
            _ if self.peer_eof => &mut [],
            _ => self
                .input
                .get_mut(self.in_len..self.recv_cap)
                .unwrap_or_default(),
        }
    }

    /// Records that `n` bytes were read into [`Conn::read_buf`]; `0` means
    /// the client will send no more (end of stream).
    pub fn received(&mut self, n: usize, now: Now) {
        self.now = now;
        if n == 0 {
            self.peer_eof = true;
            trace!("peer closed its side");
            return;
        }
        match self.phase {
            // Lingering discards; closed ignores.
            Phase::Linger { .. } | Phase::Closed => {}
            _ => {
                if self.in_len == 0 && matches!(self.phase, Phase::Head) {
                    self.head_since_ms = Some(now.monotonic_ms);
                }
                self.in_len = self.in_len.saturating_add(n).min(self.recv_cap);
            }
        }
    }

    /// Records that the first `n` bytes of [`Conn::output`] were sent.
    pub fn sent(&mut self, n: usize, now: Now) {
        self.now = now;
        if n > 0 {
            self.progress_ms = now.monotonic_ms;
        }
        let Phase::Send(sending) = &mut self.phase else {
            return;
        };
        let mut n = n;
        let from_head = n.min(sending.head.1.saturating_sub(sending.head.0));
        sending.head.0 += from_head;
        n -= from_head;
        let forge = &mut sending.forge;
        // Bytes past the head are the fixed page's: body bytes.
        let before = forge.sent.saturating_sub(forge.head_len);
        forge.sent = forge.sent.saturating_add(from_head);
        let after = forge.sent.saturating_sub(forge.head_len);
        sending.body_sent += (after - before) as u64;
        if forge.placed < forge.total {
            // Nothing else was offered while the head is being forged.
            if sending.head.0 >= sending.head.1 {
                let path = self
                    .input
                    .get(self.recv_cap..self.recv_cap + self.path_len)
                    .unwrap_or_default();
                let placed = forge.write(path, forge.placed, self.output);
                forge.placed += placed;
                sending.head = (0, placed);
            }
            return;
        }
        let from_window = n.min(sending.window.1.saturating_sub(sending.window.0));
        sending.window.0 += from_window;
        n -= from_window;
        sending.body_sent += from_window as u64;
        if let Body::Cached { pos, end, .. } = &mut sending.body {
            let from_cache = n.min(end.saturating_sub(*pos));
            *pos += from_cache;
            sending.body_sent += from_cache as u64;
        }
    }

    /// The bytes to send next: head bytes, then body bytes. Both may be
    /// empty. `site` must be the one given to [`Conn::poll`].
    pub fn output<'s>(&'s self, site: &'s S) -> [&'s [u8]; 2] {
        let Phase::Send(sending) = &self.phase else {
            return [&[], &[]];
        };
        let head = self
            .output
            .get(sending.head.0..sending.head.1)
            .unwrap_or_default();
        if sending.forge.placed < sending.forge.total {
            // The body waits until the head's last window.
            return [head, &[]];
        }
        if sending.window.0 < sending.window.1 {
            let window = self
                .output
                .get(sending.window.0..sending.window.1)
                .unwrap_or_default();
            return [head, window];
        }
        match &sending.body {
            Body::Cached { handle, pos, end } => {
                let page = site
                    .page(handle)
                    .and_then(|p| p.get(*pos..*end))
                    .unwrap_or_default();
                [head, page]
            }
            _ => [head, &[]],
        }
    }

    /// The site's cached page that the body part of [`Conn::output`] is
    /// taken from now, and where in the page that part starts; `None` while
    /// the body part is empty or comes from the output buffer.
    ///
    /// A driver that holds the page's bytes elsewhere too (in a file it can
    /// `sendfile` from) may send the same bytes from there, then call
    /// [`Conn::sent`] as usual.
    pub fn cached_body(&self) -> Option<(&S::Handle, usize)> {
        let Phase::Send(sending) = &self.phase else {
            return None;
        };
        if sending.forge.placed < sending.forge.total || sending.window.0 < sending.window.1 {
            return None;
        }
        match &sending.body {
            Body::Cached { handle, pos, end } if pos < end => Some((handle, *pos)),
            _ => None,
        }
    }

    /// Whether the connection closes at once (no linger) when the response
    /// being sent is out, as far as the bytes received so far tell: a
    /// driver may then hold its last bytes back for the close (`MSG_MORE`
    /// on Linux), so that the FIN leaves in the same segment.
    pub fn closes_after_response(&self) -> bool {
        let Phase::Send(sending) = &self.phase else {
            return false;
        };
        let head_len = self
            .current
            .map_or(self.in_len, |c| c.head_len)
            .min(self.in_len);
        !sending.keep_alive && (self.peer_eof || (self.client_close && self.in_len == head_len))
    }

    /// Stops keep-alive: the request in progress is answered with
    /// `Connection: close`, an idle connection closes at the next poll.
    pub fn set_draining(&mut self) {
        self.draining = true;
    }

    /// While on, responses carry `Connection: close` and idle connections
    /// get the shorter [`Config::pressure_keepalive_timeout_ms`].
    pub fn set_pressure(&mut self, on: bool) {
        self.pressure = on;
    }

    /// What the connection is doing now.
    pub fn activity(&self) -> Activity {
        match &self.phase {
            Phase::Head if self.in_len == 0 => Activity::Idle {
                since_ms: self.idle_since_ms,
            },
            Phase::Head => Activity::Head {
                bytes: self.in_len,
                since_ms: self.head_since_ms.unwrap_or(self.idle_since_ms),
            },
            Phase::Measure { .. } | Phase::Send(_) => Activity::Busy,
            Phase::Linger { .. } => Activity::Lingering,
            Phase::Closed => Activity::Closed,
        }
    }

    /// Requests answered so far on this connection.
    pub fn requests(&self) -> u32 {
        self.requests
    }

    /// Ends the connection from the outside (the socket failed, the server
    /// needs the slot): logs an unfinished response as incomplete.
    pub fn close<L: Log>(&mut self, log: &mut L) {
        if let Phase::Send(sending) = &self.phase {
            let (status, refusal, body_sent) = (sending.status, sending.refusal, sending.body_sent);
            self.log_exchange(log, status, refusal, body_sent, false);
        }
        self.phase = Phase::Closed;
    }

    /// Ends a connection whose head is incomplete with a 408, if any byte of
    /// it arrived, else closes it. For a server that needs the slot.
    pub fn time_out(&mut self) {
        match self.phase {
            Phase::Head if self.in_len > 0 => self.refuse_head(Refusal::Timeout),
            Phase::Head | Phase::Linger { .. } => self.phase = Phase::Closed,
            _ => {}
        }
    }

    /// Does the work that the bytes received and the time allow, and says
    /// what the connection needs next.
    pub fn poll<L: Log>(&mut self, site: &mut S, log: &mut L, now: Now) -> Interest {
        self.now = now;
        let t = now.monotonic_ms;
        // Bounded: each pass either finishes a response or leaves the loop.
        for _ in 0..4 {
            match &mut self.phase {
                Phase::Head => {
                    if !self.poll_head(site, t) {
                        break;
                    }
                }
                Phase::Measure { .. } => {
                    self.poll_measure(site);
                    if matches!(self.phase, Phase::Measure { .. }) {
                        break;
                    }
                }
                Phase::Send(_) => {
                    if t >= self.progress_ms.saturating_add(self.config.send_timeout_ms) {
                        debug!("send timed out");
                        self.close(log);
                        break;
                    }
                    if !self.poll_send(site, log) {
                        break;
                    }
                }
                Phase::Linger { until_ms } => {
                    if self.peer_eof || t >= *until_ms {
                        self.phase = Phase::Closed;
                    }
                    break;
                }
                Phase::Closed => break,
            }
        }
        self.interest()
    }

    /// Head phase: enforces its deadlines and starts the response when the
    /// head is complete. Returns whether the phase changed.
    fn poll_head(&mut self, site: &mut S, t: u64) -> bool {
        if self.in_len == 0 {
            if self.peer_eof
                || self.draining
                || self.is_past_lifetime()
                || t >= self.idle_deadline()
            {
                trace!("closing an idle connection");
                self.phase = Phase::Closed;
                return true;
            }
            return false;
        }
        if self.has_new_line() {
            self.parse_and_start(site);
            if !matches!(self.phase, Phase::Head) {
                return true;
            }
        }
        if self.peer_eof {
            // The client stopped sending in the middle of a head.
            self.phase = Phase::Closed;
            return true;
        }
        if self.head_deadline().is_some_and(|d| t >= d) {
            debug!("request head timed out");
            self.refuse_head(Refusal::Timeout);
            return true;
        }
        false
    }

    /// When the connection stops taking new requests, if it ever does.
    fn lifetime_end(&self) -> Option<u64> {
        (self.config.lifetime_ms > 0)
            .then(|| self.opened_ms.saturating_add(self.config.lifetime_ms))
    }

    /// Whether the connection has lived past [`Config::lifetime_ms`].
    fn is_past_lifetime(&self) -> bool {
        self.lifetime_end()
            .is_some_and(|end| self.now.monotonic_ms >= end)
    }

    fn idle_deadline(&self) -> u64 {
        let timeout = if self.requests == 0 {
            self.config.first_byte_timeout_ms
        } else if self.pressure {
            self.config.pressure_keepalive_timeout_ms
        } else {
            self.config.keepalive_timeout_ms
        };
        self.idle_since_ms.saturating_add(timeout)
    }

    /// When the head being received must be complete: its overall timeout,
    /// or the time by which its bytes so far fall below the minimum rate.
    fn head_deadline(&self) -> Option<u64> {
        let since = self.head_since_ms?;
        let whole = since.saturating_add(self.config.head_timeout_ms);
        if self.config.min_head_rate == 0 {
            return Some(whole);
        }
        let rate_ms = (self.in_len as u64).saturating_mul(1000) / self.config.min_head_rate;
        Some(whole.min(since.saturating_add(rate_ms.max(1000))))
    }

    /// Whether the parser should look at the input again: a line ended, or
    /// the line being received may have passed a limit.
    fn has_new_line(&mut self) -> bool {
        let fresh = self
            .input
            .get(self.scanned..self.in_len)
            .unwrap_or_default();
        let found = scan::find_lf(fresh).is_some();
        if found {
            let last = fresh.iter().rposition(|&b| b == b'\n').unwrap_or(0);
            self.line_start = self.scanned + last + 1;
        }
        self.scanned = self.in_len;
        let limits = &self.config.limits;
        let line_len = self.in_len - self.line_start.min(self.in_len);
        found
            || line_len > limits.max_request_line.min(limits.max_field_line)
            || self.in_len >= limits.max_head.min(self.recv_cap)
    }

    fn parse_and_start(&mut self, site: &mut S) {
        let mut limits = self.config.limits;
        limits.max_head = limits.max_head.min(self.recv_cap);
        let draining = self.draining || self.pressure || self.is_past_lifetime();
        let last_request = self.requests.saturating_add(1) >= self.config.max_requests;
        let (recv, path_buf) = self.input.split_at_mut(self.recv_cap);
        let recv = recv.get(..self.in_len).unwrap_or_default();
        let mut fields = [Field::default(); MAX_FIELDS];
        let request = match parse_request(recv, &mut fields, &limits) {
            Ok(Parsed::Partial) => return,
            Ok(Parsed::Complete(request)) => request,
            Err(e) => {
                debug!("refused head: {:?}", e);
                self.refuse_head(Refusal::Request(e));
                return;
            }
        };
        let current = current_of(&request, recv);
        let plan = plan(
            &request,
            recv.as_ptr() as usize,
            path_buf,
            site,
            &mut self.path_len,
        );
        self.current = Some(current);
        // Before draining or the request limit turn keep-alive off: only
        // the client's own wish counts, and only where no body can follow.
        self.client_close = match &plan {
            Plan::Refuse {
                refusal,
                keep_alive,
                ..
            } => !keep_alive && !refusal.closes_connection(),
            Plan::Options { keep_alive, .. }
            | Plan::Redirect { keep_alive, .. }
            | Plan::NotModified { keep_alive, .. } => !keep_alive,
            Plan::Page(prepared) => !prepared.keep_alive,
        };
        let plan = match plan {
            Plan::Refuse {
                refusal,
                keep_alive,
                version,
                is_head,
            } => Plan::Refuse {
                refusal,
                keep_alive: keep_alive && !draining && !last_request,
                version,
                is_head,
            },
            Plan::Options {
                keep_alive,
                version,
            } => Plan::Options {
                keep_alive: keep_alive && !draining && !last_request,
                version,
            },
            Plan::Redirect {
                keep_alive,
                version,
                is_head,
            } => Plan::Redirect {
                keep_alive: keep_alive && !draining && !last_request,
                version,
                is_head,
            },
            Plan::NotModified {
                entry,
                etag,
                keep_alive,
                version,
            } => Plan::NotModified {
                entry,
                etag,
                keep_alive: keep_alive && !draining && !last_request,
                version,
            },
            Plan::Page(mut prepared) => {
                prepared.keep_alive &= !draining && !last_request;
                Plan::Page(prepared)
            }
        };
        self.execute(plan, site);
    }

    /// Answers a head that cannot be parsed (or did not arrive in time): an
    /// error page and a close.
    fn refuse_head(&mut self, refusal: Refusal) {
        let recv = self.input.get(..self.in_len).unwrap_or_default();
        let line_end = recv
            .iter()
            .position(|&b| b == b'\r' || b == b'\n')
            .unwrap_or(recv.len());
        self.current = Some(Current {
            head_len: self.in_len,
            request_line: (0, line_end.min(self.config.limits.max_request_line)),
            referer: None,
            user_agent: None,
        });
        self.error_response(refusal, false, Version::HTTP_11, false);
    }

    fn execute(&mut self, plan: Plan<S::Handle>, site: &mut S) {
        match plan {
            Plan::Refuse {
                refusal,
                keep_alive,
                version,
                is_head,
            } => {
                debug!("refused: {:?}", refusal);
                self.error_response(refusal, keep_alive, version, is_head);
            }
            Plan::Options {
                keep_alive,
                version,
            } => {
                let head = Head {
                    allow: true,
                    connection: connection_field(keep_alive, version),
                    ..Head::new(Status::NO_CONTENT, self.now.unix_secs)
                };
                self.send(
                    Forge::new(head, None, false, false),
                    Body::Done,
                    (0, 0),
                    None,
                    keep_alive,
                );
            }
            Plan::Redirect {
                keep_alive,
                version,
                is_head,
            } => {
                let status = Status::MOVED_PERMANENTLY;
                let body_len =
                    html::error_page_len(status.code(), status.reason_phrase().as_bytes());
                let head = Head {
                    content_length: Some(body_len as u64),
                    content_type: true,
                    connection: connection_field(keep_alive, version),
                    ..Head::new(status, self.now.unix_secs)
                };
                let forge = Forge::new(head, None, true, !is_head);
                self.send(forge, Body::Done, (0, 0), None, keep_alive);
            }
            Plan::NotModified {
                entry,
                etag,
                keep_alive,
                version,
            } => {
                let head = Head {
                    last_modified: Some(entry.modified),
                    connection: connection_field(keep_alive, version),
                    ..Head::new(Status::NOT_MODIFIED, self.now.unix_secs)
                };
                self.send(
                    Forge::new(head, Some(etag), false, false),
                    Body::Done,
                    (0, 0),
                    None,
                    keep_alive,
                );
            }
            Plan::Page(mut prepared) => {
                if let Some(page) = site.page(&prepared.handle) {
                    let len = page.len() as u64;
                    self.start_page(prepared, len, site);
                    return;
                }
                if let Some(len) = self.render_whole(&mut prepared, site) {
                    self.start_buffered(prepared, len, site);
                    return;
                }
                let path = self.path();
                let measure = Measure::new(prepared.source, path);
                self.phase = Phase::Measure { prepared, measure };
            }
        }
    }

    /// The decoded path of the current request.
    fn path(&self) -> &[u8] {
        self.input
            .get(self.recv_cap..self.recv_cap + self.path_len)
            .unwrap_or_default()
    }

    /// Renders a small file's whole page into the body area at once;
    /// returns its length, or `None` if it does not fit.
    fn render_whole(&mut self, prepared: &mut Prepared<S::Handle>, site: &mut S) -> Option<u64> {
        let Source::File { len } = prepared.source else {
            return None;
        };
        let (room, raw_start) = self.areas();
        let (body_area, raw) = self.output.split_at_mut(raw_start);
        let body_area = body_area.get_mut(room..)?;
        let want = usize::try_from(len).ok().filter(|&l| l <= raw.len())?;
        let mut got = 0;
        while got < want {
            let buf = raw.get_mut(got..want)?;
            match site.read(&mut prepared.handle, got as u64, buf) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(_) => return None,
            }
        }
        let path = self
            .input
            .get(self.recv_cap..self.recv_cap + self.path_len)
            .unwrap_or_default();
        let at = html::write_page(path, raw.get(..got)?, body_area).ok()?;
        // The page is the text that was there; a file that grew is cut at
        // the looked-up length, one that shrank is rendered as it is.
        prepared.source = Source::File { len: got as u64 };
        Some(at as u64)
    }

    /// Head room and where the raw-file scratch starts in the output.
    fn areas(&self) -> (usize, usize) {
        let room = HEAD_ROOM.min(self.output.len() / 2);
        let raw_start = room + (self.output.len() - room) / 2;
        (room, raw_start)
    }

    fn poll_measure(&mut self, site: &mut S) {
        let (_, raw_start) = self.areas();
        let Phase::Measure { prepared, measure } = &mut self.phase else {
            return;
        };
        // The whole output is free until the head is written.
        let scratch = self.output.get_mut(..raw_start).unwrap_or_default();
        match measure.step(site, &mut prepared.handle, prepared.source, scratch) {
            Ok(None) => {}
            Ok(Some(len)) => {
                let source = measure.measured(prepared.source);
                let phase = core::mem::replace(&mut self.phase, Phase::Head);
                if let Phase::Measure { mut prepared, .. } = phase {
                    prepared.source = source;
                    self.start_page(prepared, len, site);
                }
            }
            Err(fault) => {
                debug!("measuring failed: {:?}", fault);
                let keep = false;
                let version = prepared.version;
                let is_head = prepared.is_head;
                self.error_response(
                    Refusal::Site(crate::site::Error::Io),
                    keep,
                    version,
                    is_head,
                );
            }
        }
    }

    /// The range and status of a page response of `len` bytes.
    fn page_range(
        &self,
        prepared: &Prepared<S::Handle>,
        len: u64,
    ) -> (Status, Option<ContentRange>, u64, u64) {
        let ranges = prepared
            .range
            .and_then(|(s, e)| self.input.get(s..e))
            .map_or(Ranges::Whole, |value| parse_range(value, len));
        match ranges {
            Ranges::Whole => (Status::OK, None, 0, len),
            Ranges::One { first, last } => (
                Status::PARTIAL_CONTENT,
                Some(ContentRange::Bytes {
                    first,
                    last,
                    complete: len,
                }),
                first,
                last - first + 1,
            ),
            Ranges::Unsatisfiable => (
                Status::RANGE_NOT_SATISFIABLE,
                Some(ContentRange::Unsatisfied { complete: len }),
                0,
                0,
            ),
        }
    }

    /// The head of a 200 or 206 page response of `len` bytes, and the part
    /// of the page it announces (bytes to skip, bytes to send); `None` once
    /// an unsatisfiable Range has been answered with 416.
    fn page_head(&mut self, prepared: &Prepared<S::Handle>, len: u64) -> Option<(Forge, u64, u64)> {
        let (status, content_range, skip, send_len) = self.page_range(prepared, len);
        if status == Status::RANGE_NOT_SATISFIABLE {
            self.unsatisfiable(prepared, len);
            return None;
        }
        let head = Head {
            content_length: Some(send_len),
            content_type: true,
            last_modified: Some(prepared.entry.modified),
            accept_ranges: true,
            content_range,
            connection: connection_field(prepared.keep_alive, prepared.version),
            ..Head::new(status, self.now.unix_secs)
        };
        Some((
            Forge::new(head, Some(prepared.etag), false, false),
            skip,
            send_len,
        ))
    }

    /// Starts sending a page of `len` bytes that is not in the output buffer.
    fn start_page(&mut self, prepared: Prepared<S::Handle>, len: u64, site: &mut S) {
        let Some((forge, skip, send_len)) = self.page_head(&prepared, len) else {
            return;
        };
        let cached = site.page(&prepared.handle).is_some();
        let body = if prepared.is_head || send_len == 0 {
            Body::Done
        } else if cached {
            let pos = usize::try_from(skip).unwrap_or(usize::MAX);
            let end = usize::try_from(skip + send_len).unwrap_or(usize::MAX);
            Body::Cached {
                handle: prepared.handle,
                pos,
                end,
            }
        } else {
            Body::Stream {
                handle: prepared.handle,
                stream: Stream::new(prepared.source, skip, send_len),
            }
        };
        self.send(forge, body, (0, 0), None, prepared.keep_alive);
    }

    /// Starts sending a page rendered whole into the body area.
    fn start_buffered(&mut self, prepared: Prepared<S::Handle>, len: u64, site: &mut S) {
        let Some((mut forge, skip, send_len)) = self.page_head(&prepared, len) else {
            return;
        };
        let (room, _) = self.areas();
        forge.measure(self.path());
        if forge.total > room {
            // The head outgrew the head room (a small output buffer):
            // stream the page after it instead, its length being known.
            self.start_page(prepared, len, site);
            return;
        }
        let window = if prepared.is_head {
            (0, 0)
        } else {
            let start = room + usize::try_from(skip).unwrap_or(0);
            (start, start + usize::try_from(send_len).unwrap_or(0))
        };
        self.send(forge, Body::Done, window, None, prepared.keep_alive);
    }

    fn unsatisfiable(&mut self, prepared: &Prepared<S::Handle>, len: u64) {
        let head = Head {
            content_length: Some(0),
            last_modified: Some(prepared.entry.modified),
            accept_ranges: true,
            content_range: Some(ContentRange::Unsatisfied { complete: len }),
            connection: connection_field(prepared.keep_alive, prepared.version),
            ..Head::new(Status::RANGE_NOT_SATISFIABLE, self.now.unix_secs)
        };
        let forge = Forge::new(head, Some(prepared.etag), false, false);
        self.send(forge, Body::Done, (0, 0), None, prepared.keep_alive);
    }

    /// Sends an error status with its short HTML page.
    fn error_response(
        &mut self,
        refusal: Refusal,
        keep_alive: bool,
        version: Version,
        is_head: bool,
    ) {
        let status = refusal.status();
        let reason = status.reason_phrase().as_bytes();
        let body_len = html::error_page_len(status.code(), reason);
        let head = Head {
            content_length: Some(body_len as u64),
            content_type: true,
            allow: refusal == Refusal::Message(crate::message::Error::MethodNotAllowed),
            connection: connection_field(keep_alive, version),
            ..Head::new(status, self.now.unix_secs)
        };
        let forge = Forge::new(head, None, false, !is_head);
        self.send(forge, Body::Done, (0, 0), Some(refusal), keep_alive);
    }

    /// Enters the Send phase with the head (and fixed page) of `forge` at
    /// the front of the output buffer: all of it when it fits, else its
    /// first window, the rest following as each is sent. `body` comes
    /// after; `window` holds those of its bytes already in the buffer.
    fn send(
        &mut self,
        mut forge: Forge,
        body: Body<S::Handle>,
        window: Span,
        refusal: Option<Refusal>,
        keep_alive: bool,
    ) {
        let path = self
            .input
            .get(self.recv_cap..self.recv_cap + self.path_len)
            .unwrap_or_default();
        forge.measure(path);
        let placed = forge.write(path, 0, self.output);
        forge.placed = placed;
        // The send timeout runs from here: measuring a huge page (a sparse
        // file's NULs) may take longer than it, and is not the client's delay.
        self.progress_ms = self.now.monotonic_ms;
        self.phase = Phase::Send(Sending {
            head: (0, placed),
            forge,
            window,
            body,
            status: forge.head.status,
            refusal,
            keep_alive,
            body_sent: 0,
        });
    }

    /// Send phase: refills the window and finishes the exchange when all is
    /// sent. Returns whether the phase changed.
    fn poll_send<L: Log>(&mut self, site: &mut S, log: &mut L) -> bool {
        let (_, raw_start) = self.areas();
        let Phase::Send(sending) = &mut self.phase else {
            return false;
        };
        if sending.forge.placed < sending.forge.total {
            // The head's windows come first; `sent` forges each.
            return false;
        }
        if sending.head.0 < sending.head.1 && !matches!(sending.body, Body::Stream { .. }) {
            return false;
        }
        if sending.window.0 < sending.window.1 {
            return false;
        }
        /// What refilling the window came to.
        enum Next {
            Finished,
            Filled { progress: bool, done: bool },
            Failed(Fault),
        }
        let next = match &mut sending.body {
            Body::Done => Next::Finished,
            Body::Cached { pos, end, .. } => {
                if pos < end {
                    return false;
                }
                Next::Finished
            }
            Body::Stream { handle, stream } => {
                if stream.is_done() {
                    Next::Finished
                } else {
                    // An unsent head keeps its bytes: the window starts
                    // after them, else at the front. The head may be longer
                    // than the head room (a small buffer), so its end, not
                    // the room, bounds the window.
                    let head_unsent = sending.head.0 < sending.head.1;
                    let base = if head_unsent { sending.head.1 } else { 0 };
                    let path = self
                        .input
                        .get(self.recv_cap..self.recv_cap + self.path_len)
                        .unwrap_or_default();
                    let (front, raw) = self.output.split_at_mut(raw_start);
                    let window = front.get_mut(base..).unwrap_or_default();
                    match stream.fill(site, handle, path, window, raw) {
                        Ok((start, end)) => {
                            sending.window = (base + start, base + end);
                            let done = stream.is_done();
                            Next::Filled {
                                progress: end > start || !done,
                                done,
                            }
                        }
                        // No room beside the head: the whole window is
                        // free once the head is sent.
                        Err(Fault::TooLarge) if head_unsent => return false,
                        Err(fault) => Next::Failed(fault),
                    }
                }
            }
        };
        let fault = match next {
            Next::Finished => {
                sending.body = Body::Done;
                None
            }
            Next::Filled { progress, done } => {
                if done {
                    sending.body = Body::Done;
                }
                return progress;
            }
            Next::Failed(fault) => Some(fault),
        };
        if let Some(fault) = fault {
            // The head promised more than can be sent: end the connection.
            debug!("body failed: {:?}", fault);
            let _ = fault;
            self.close(log);
            return true;
        }
        if sending.head.0 < sending.head.1 {
            return false;
        }
        self.finish_exchange(log);
        true
    }

    /// Logs the exchange just completed and moves on to the next request.
    fn finish_exchange<L: Log>(&mut self, log: &mut L) {
        let Phase::Send(sending) = &self.phase else {
            return;
        };
        let (status, refusal, body_sent, keep_alive) = (
            sending.status,
            sending.refusal,
            sending.body_sent,
            sending.keep_alive,
        );
        self.log_exchange(log, status, refusal, body_sent, true);
        self.requests = self.requests.saturating_add(1);
        // Drop the answered head; pipelined bytes move to the front.
        let head_len = self
            .current
            .map_or(self.in_len, |c| c.head_len)
            .min(self.in_len);
        self.input.copy_within(head_len..self.in_len, 0);
        self.in_len -= head_len;
        self.current = None;
        self.scanned = 0;
        self.line_start = 0;
        self.idle_since_ms = self.now.monotonic_ms;
        self.head_since_ms = (self.in_len > 0).then_some(self.now.monotonic_ms);
        let client_close = core::mem::take(&mut self.client_close);
        self.phase = if keep_alive {
            Phase::Head
        } else if self.peer_eof || (client_close && self.in_len == 0) {
            // Lingering (RFC 9112 §9.6) keeps bytes the client is still
            // sending from resetting the connection before it read our
            // response. A client that asked to close must not send another
            // request (§9.6), and none of one arrived, nor of a body (it
            // would have been refused): none is in flight, so close now,
            // as nginx does.
            Phase::Closed
        } else {
            Phase::Linger {
                until_ms: self.now.monotonic_ms.saturating_add(self.config.linger_ms),
            }
        };
    }

    fn log_exchange<L: Log>(
        &self,
        log: &mut L,
        status: Status,
        refusal: Option<Refusal>,
        body_len: u64,
        complete: bool,
    ) {
        let span = |s: Option<Span>| s.and_then(|(a, b)| self.input.get(a..b));
        let current = self.current;
        log.exchange(&Exchange {
            request_line: span(current.map(|c| c.request_line)).unwrap_or_default(),
            status,
            body_len,
            referer: span(current.and_then(|c| c.referer)),
            user_agent: span(current.and_then(|c| c.user_agent)),
            refusal,
            complete,
        });
    }

    fn interest(&self) -> Interest {
        // Only a connection between requests acts when its lifetime ends; a
        // lifetime already past is no deadline (it would wake at once, again
        // and again).
        let lifetime = self
            .lifetime_end()
            .filter(|&end| matches!(self.phase, Phase::Head) && end > self.now.monotonic_ms);
        let (read, write, again, deadline, close) = match &self.phase {
            Phase::Head => {
                let deadline = if self.in_len == 0 {
                    Some(self.idle_deadline())
                } else {
                    self.head_deadline()
                };
                (
                    !self.peer_eof && self.in_len < self.recv_cap,
                    false,
                    false,
                    deadline,
                    Close::Keep,
                )
            }
            Phase::Measure { .. } => (false, false, true, None, Close::Keep),
            Phase::Send(sending) => {
                let has_bytes = sending.head.0 < sending.head.1
                    || sending.window.0 < sending.window.1
                    || matches!(sending.body, Body::Cached { pos, end, .. } if pos < end);
                let more = !has_bytes && !matches!(sending.body, Body::Done);
                let deadline = Some(self.progress_ms.saturating_add(self.config.send_timeout_ms));
                // Reading on buffers pipelined requests and notices a close.
                let read = !self.peer_eof && self.in_len < self.recv_cap;
                (read, has_bytes, more, deadline, Close::Keep)
            }
            Phase::Linger { until_ms } => (true, false, false, Some(*until_ms), Close::Linger),
            Phase::Closed => (false, false, false, None, Close::Now),
        };
        let deadline = match (deadline, lifetime) {
            (Some(d), Some(l)) => Some(d.min(l)),
            (d, None) => d,
            (None, l) => l,
        };
        Interest {
            read,
            write,
            again,
            deadline_ms: deadline,
            close,
        }
    }
}

/// The `Connection` field for a response.
fn connection_field(keep_alive: bool, version: Version) -> Connection {
    match (keep_alive, version < Version::HTTP_11) {
        (false, _) => Connection::Close,
        (true, true) => Connection::KeepAlive,
        (true, false) => Connection::Default,
    }
}

/// Offsets of a parsed request's log-relevant parts within `recv`.
fn current_of(request: &Request<'_, '_>, recv: &[u8]) -> Current {
    let base = recv.as_ptr() as usize;
    let span = |s: &[u8]| {
        let start = (s.as_ptr() as usize).wrapping_sub(base);
        (start, start + s.len())
    };
    let line = request.request_line(recv);
    let find = |name: &[u8]| {
        request
            .fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
            .map(|f| span(f.value))
    };
    Current {
        head_len: request.head_len,
        request_line: span(line),
        referer: find(b"referer"),
        user_agent: find(b"user-agent"),
    }
}

/// Decides the answer to a complete request head.
///
/// `base` is the address of the input buffer the request was parsed from.
fn plan<S: Site>(
    request: &Request<'_, '_>,
    base: usize,
    path_buf: &mut [u8],
    site: &mut S,
    path_len: &mut usize,
) -> Plan<S::Handle> {
    *path_len = 0;
    let message = match Message::from_request(request) {
        Ok(message) => message,
        Err(e) => {
            return Plan::Refuse {
                refusal: Refusal::Message(e),
                keep_alive: false,
                version: request.version,
                is_head: request.method == b"HEAD",
            };
        }
    };
    let version = message.version;
    let keep_alive = message.keep_alive;
    let is_head = message.method == Method::Head;
    let refuse = |refusal: Refusal| Plan::Refuse {
        keep_alive: keep_alive && !refusal.closes_connection(),
        refusal,
        version,
        is_head,
    };
    let target = match parse_target(
        request.request_target,
        message.method == Method::Options,
        path_buf,
    ) {
        Ok(target) => target,
        Err(e) => return refuse(Refusal::Target(e)),
    };
    if message.method == Method::Options {
        return Plan::Options {
            keep_alive,
            version,
        };
    }
    let (path, trailing_slash) = (target.path, target.trailing_slash);
    *path_len = path.len();
    if target.form == Form::Asterisk || is_hidden(path) {
        return refuse(Refusal::Site(crate::site::Error::NotFound));
    }
    let (handle, entry) = match site.open(path) {
        Ok(found) => found,
        Err(e) => return refuse(Refusal::Site(e)),
    };
    let source = match entry.kind {
        Kind::Directory if !trailing_slash => {
            return Plan::Redirect {
                keep_alive,
                version,
                is_head,
            };
        }
        Kind::Directory => Source::Index,
        // `/file.txt/` names nothing, as on a file system.
        Kind::File if trailing_slash => return refuse(Refusal::Site(crate::site::Error::NotFound)),
        Kind::File => Source::File { len: entry.len },
    };
    let etag = ETag::new(&entry, path);
    if is_not_modified(&message, &etag, entry.modified) {
        return Plan::NotModified {
            entry,
            etag,
            keep_alive,
            version,
        };
    }
    // The Range value, as offsets into the input (it stays there until the
    // response is sent).
    let range = message
        .field_value(b"range")
        .filter(|_| is_range_current(&message, &etag, entry.modified))
        .map(|value| {
            let start = (value.as_ptr() as usize).wrapping_sub(base);
            (start, start + value.len())
        });
    Plan::Page(Prepared {
        handle,
        entry,
        source,
        etag,
        is_head,
        keep_alive,
        version,
        range,
    })
}
