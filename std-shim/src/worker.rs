//! A worker process: one epoll loop over the shared listening sockets
//! (registered with `EPOLLEXCLUSIVE`, so one worker wakes per connection)
//! and a fixed array of connection slots whose buffers are allocated once
//! at start. Each connection is driven by core's sans-IO `Conn`.
//!
//! The worker keeps its scoreboard slot current: a heartbeat with its state
//! and connections once per wake (the epoll wait is bounded to a second),
//! and per response `Relaxed` increments, with no allocation or system call.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use txtd_core::conn::{Activity, Close, Config as ConnConfig, Conn, Exchange, Log, Now};

use crate::access_log::AccessLog;
use crate::admin::{self, Admin};
use crate::scoreboard::{Scoreboard, SlotCounters, State};
use crate::site::FsSite;
use crate::sys::{self, epoll};

/// Field slots a request head is parsed into (the `--max-headers` ceiling).
pub const MAX_FIELDS: usize = 256;

/// Output buffer per connection: a head and a window of the page.
const OUTPUT_LEN: usize = 16 * 1024;

/// Bytes a connection may receive, and send from its output buffer, and
/// still leave only about the first pages of its buffers touched. Past
/// this its buffers' pages are given back when it closes, so that a burst
/// of big heads or streamed files does not keep the worker at its peak.
const LIGHT_BYTES: usize = 4096;

/// Tokens at and above this one are listeners; below are slots.
const LISTENER_TOKEN: u64 = 1 << 32;
/// The signalfd's token.
const SIGNAL_TOKEN: u64 = u64::MAX;

/// Connections accepted per listener event. The listeners are level-
/// triggered, so more waiting ones come back with the next `epoll_wait`
/// (along with other events): accepting on until EAGAIN cost 0.6 failed
/// `accept4` per connection with `Connection: close` and more CPU per
/// request (nginx's `multi_accept off` likewise), and a burst is shared
/// with the other workers.
const ACCEPTS_PER_EVENT: usize = 1;

/// Most rounds of work one connection gets per wake-up, so one busy
/// connection cannot starve the others.
const ROUNDS_PER_WAKE: usize = 32;

/// How long the listeners stay out of epoll after `accept4` ran out of
/// descriptors (EMFILE, ENFILE) or kernel memory: long enough that a level-
/// triggered listener cannot spin the worker, short enough to recover fast.
const ACCEPT_PAUSE_MS: u64 = 250;

/// The longest a worker's loop sleeps: it stamps its heartbeat at least
/// this often, so the master's watchdog can tell a hung worker.
const HEARTBEAT_MS: u64 = 1000;

/// The exit code of a worker that cannot serve at all (sysexits'
/// `EX_CONFIG`): the master stops instead of starting another one.
pub const EXIT_CANNOT_SERVE: i32 = 78;

/// What a worker needs from the master.
pub struct Setup {
    /// The shared listening sockets.
    pub listeners: Vec<OwnedFd>,
    /// The admin interface's listening socket, if on.
    pub admin: Option<OwnedFd>,
    /// The site root, opened by the worker at start.
    pub root: PathBuf,
    /// Connection settings.
    pub conn: ConnConfig,
    /// How long a cached page is served without checking its file.
    pub page_cache_valid: Duration,
    /// Connection slots.
    pub max_conns: usize,
    /// Access log, if on.
    pub access_log: Option<AccessLog>,
    /// The slot number, for log lines.
    pub slot: usize,
    /// The master's pid: a different parent means the master is gone.
    pub master: sys::Pid,
    /// The shared scoreboard; the worker writes slot [`Setup::slot`].
    pub scoreboard: Scoreboard,
}

/// How long a worker whose master died finishes its connections.
pub const ORPHAN_DRAIN: Duration = Duration::from_secs(5);

struct Slot {
    conn: Conn<'static, FsSite, MAX_FIELDS>,
    socket: Option<OwnedFd>,
    /// Whether the socket is in the epoll set: only once it had to wait.
    registered: bool,
    peer: SocketAddr,
    /// Whether a read may find bytes: set by each readiness event, cleared
    /// by EAGAIN or by a short read (edge-triggered epoll reports bytes
    /// that arrive later), saving the `recv` that would fail.
    readable: bool,
    writable: bool,
    /// The peer hung up or the socket failed: read on until EOF or EAGAIN,
    /// short reads or not.
    hup: bool,
    /// Bytes received on this connection.
    received: usize,
    /// Bytes sent from the output buffer (not from a cached page).
    buffered: usize,
    /// Where this slot is in [`Worker::busy`] while it holds a connection.
    busy_at: usize,
    /// `TCP_CORK` is on: set for a page file sent before the close.
    corked: bool,
    /// The first read since accept is still to come, and tells whether
    /// requests are there by the time their connection is accepted.
    first_read: bool,
    shut_down: bool,
    /// More work without I/O is waiting.
    again: bool,
    deadline_ms: Option<u64>,
}

/// The earlier of two optional times.
fn earliest(a: Option<u64>, b: Option<u64>) -> Option<u64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The clocks, read once per wake of the loop (as nginx does): all the
/// work a wake does sees the same time. The monotonic one is the system's
/// `CLOCK_MONOTONIC`, so the same reading stamps the scoreboard heartbeat.
struct Clock {
    last: Now,
}

impl Clock {
    /// Reads both clocks.
    fn read() -> Now {
        Now {
            monotonic_ms: sys::monotonic_ms(),
            unix_secs: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        }
    }

    /// Reads the clocks again and returns the time.
    fn tick(&mut self) -> Now {
        self.last = Self::read();
        self.last
    }

    /// The time of the last reading.
    fn now(&self) -> Now {
        self.last
    }
}

/// The access log for one slot's exchanges, plus a line in the error log
/// for each refused request, and the response counted on the scoreboard.
struct SlotLog<'a> {
    access: Option<&'a mut AccessLog>,
    counters: SlotCounters,
    peer: SocketAddr,
    unix_secs: u64,
    monotonic_ms: u64,
}

impl Log for SlotLog<'_> {
    fn exchange(&mut self, exchange: &Exchange<'_>) {
        self.counters.add_response(exchange.status.code());
        if let Some(access) = self.access.as_deref_mut() {
            access.write(&self.peer, self.unix_secs, self.monotonic_ms, exchange);
        }
        if let Some(refusal) = exchange.refusal {
            log_info!(
                "{}: {} ({}): {:?}",
                self.peer,
                refusal,
                exchange.status.code(),
                LossyLine(exchange.request_line)
            );
        }
    }
}

/// A request line for the error log, non-UTF-8 bytes replaced.
struct LossyLine<'a>(&'a [u8]);

impl std::fmt::Debug for LossyLine<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&String::from_utf8_lossy(self.0), f)
    }
}

/// The worker's state.
struct Worker {
    ep: OwnedFd,
    signals: OwnedFd,
    listeners: Vec<OwnedFd>,
    /// Per listener: whether it has `TCP_NODELAY`, which its connections
    /// inherit (else it is set on each).
    nodelay: Vec<bool>,
    accepting: bool,
    /// Accepting is paused until then (monotonic ms) after `accept4` ran
    /// out of descriptors.
    paused_until_ms: Option<u64>,
    draining: bool,
    slots: Vec<Slot>,
    free: Vec<usize>,
    /// The slots holding a connection, in no order: the loop's per-wake
    /// pass over deadlines visits these, not every slot.
    busy: Vec<usize>,
    site: FsSite,
    access_log: Option<AccessLog>,
    clock: Clock,
    master: sys::Pid,
    /// This worker's scoreboard slot.
    counters: SlotCounters,
    /// Whether the last connection whose first read was tried had its
    /// request there already at accept (a loaded machine), else a read
    /// right after accept is an EAGAIN more than waiting for epoll.
    early_requests: bool,
    /// Connections accepted, to try that first read on every eighth one
    /// and notice when the guess changes.
    accepted: u32,
    /// When an orphaned worker gives up on its connections.
    drain_deadline_ms: Option<u64>,
    /// The admin interface (module admin), answered until the worker exits.
    admin: Option<Admin>,
}

/// Runs a worker until it is told to stop; returns the exit code:
/// [`EXIT_CANNOT_SERVE`] when the site root cannot be opened.
pub fn run(setup: Setup) -> i32 {
    // Opened here, after the fork, by path: a root removed or replaced
    // since the master checked it must stop txtd, not start worker after
    // worker that cannot serve.
    let site = match FsSite::open(&setup.root) {
        Ok(site) => site.revalidate_every(setup.page_cache_valid),
        Err(e) => {
            log_error!(
                "worker {} cannot serve: root {}: {e}",
                setup.slot,
                setup.root.display()
            );
            return EXIT_CANNOT_SERVE;
        }
    };
    match Worker::new(setup, site) {
        Ok(mut worker) => match worker.run() {
            Ok(()) => 0,
            Err(e) => {
                log_error!("worker failed: {e}");
                1
            }
        },
        Err(e) => {
            log_error!("worker could not start: {e}");
            1
        }
    }
}

impl Worker {
    fn new(setup: Setup, site: FsSite) -> io::Result<Self> {
        let mut clock = Clock {
            last: Clock::read(),
        };
        let counters = setup
            .scoreboard
            .slot(setup.slot)
            .ok_or_else(|| io::Error::other(format!("no scoreboard slot {}", setup.slot)))?;
        counters.set_pid(sys::getpid());
        let ep = sys::epoll_create()?;
        let signals = sys::signalfd(&[sys::SIGTERM, sys::SIGQUIT, sys::SIGINT, sys::SIGUSR1])?;
        sys::epoll_add(ep.as_fd(), signals.as_fd(), epoll::IN, SIGNAL_TOKEN)?;
        let now = clock.tick();
        // Whole pages a slot, so that discarding a closed slot's buffers
        // frees all of their pages.
        let input_len = setup
            .conn
            .limits
            .max_head
            .saturating_add(setup.conn.max_path)
            .next_multiple_of(sys::page_size());
        // Mapped once for the life of the worker, in one block per kind: a
        // slot's pages become resident only once a connection uses them.
        let inputs = sys::map_anonymous(input_len.saturating_mul(setup.max_conns))?;
        let output_len = OUTPUT_LEN.next_multiple_of(sys::page_size());
        let outputs = sys::map_anonymous(output_len.saturating_mul(setup.max_conns))?;
        let slots = inputs
            .chunks_exact_mut(input_len.max(1))
            .zip(outputs.chunks_exact_mut(output_len))
            .take(setup.max_conns)
            .map(|(input, output)| Slot {
                conn: Conn::new(input, output, setup.conn, now),
                socket: None,
                registered: false,
                peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                readable: false,
                writable: false,
                hup: false,
                received: 0,
                buffered: 0,
                busy_at: 0,
                corked: false,
                first_read: false,
                shut_down: false,
                again: false,
                deadline_ms: None,
            })
            .collect();
        // Set once on the shared listeners, so accepting costs no
        // `setsockopt` per connection.
        let nodelay = setup
            .listeners
            .iter()
            .map(|l| sys::set_nodelay(l.as_fd()).is_ok())
            .collect();
        let admin = setup.admin.map(|listener| {
            Admin::new(
                listener,
                setup.scoreboard,
                setup.slot,
                setup.conn.head_timeout_ms,
                setup.conn.send_timeout_ms,
            )
        });
        if let Some(admin) = &admin {
            admin.register(ep.as_fd())?;
        }
        let mut worker = Self {
            ep,
            signals,
            listeners: setup.listeners,
            nodelay,
            accepting: false,
            paused_until_ms: None,
            draining: false,
            slots,
            free: (0..setup.max_conns).rev().collect(),
            busy: Vec::with_capacity(setup.max_conns),
            site,
            access_log: setup.access_log,
            clock,
            master: setup.master,
            counters,
            early_requests: true,
            accepted: 0,
            drain_deadline_ms: None,
            admin,
        };
        worker.start_accepting()?;
        // Serving from here on: the master counts a reload's new generation
        // ready once each of its workers got this far.
        counters.beat(worker.clock.tick().monotonic_ms, State::Idle, 0);
        log_info!("worker {} started", setup.slot);
        Ok(worker)
    }

    fn start_accepting(&mut self) -> io::Result<()> {
        if self.accepting || self.draining || self.paused_until_ms.is_some() {
            return Ok(());
        }
        for (i, listener) in self.listeners.iter().enumerate() {
            sys::epoll_add(
                self.ep.as_fd(),
                listener.as_fd(),
                epoll::IN | epoll::EXCLUSIVE,
                LISTENER_TOKEN + i as u64,
            )?;
        }
        self.accepting = true;
        Ok(())
    }

    fn stop_accepting(&mut self) {
        if !self.accepting {
            return;
        }
        for listener in &self.listeners {
            let _ = sys::epoll_delete(self.ep.as_fd(), listener.as_fd());
        }
        self.accepting = false;
    }

    fn active(&self) -> usize {
        self.slots.len() - self.free.len()
    }

    fn run(&mut self) -> io::Result<()> {
        let mut events = vec![sys::Event::EMPTY; 256];
        // When the loop must wake even without events (None: never).
        let mut next_wake_ms: Option<u64> = None;
        loop {
            if self.draining && self.active() == 0 && self.admin_finished() {
                log_info!("worker drained, exiting");
                return Ok(());
            }
            let now = self.clock.tick().monotonic_ms;
            if self.drain_deadline_ms.is_some_and(|d| now >= d) {
                log_warn!(
                    "master gone and drain time over, exiting with {} connections",
                    self.active()
                );
                return Ok(());
            }
            // Once per wake, with the time already read: no system call
            // per request, and at least one beat a second.
            let state = if self.draining {
                State::Draining
            } else if self.active() > 0 {
                State::Busy
            } else {
                State::Idle
            };
            self.counters.beat(now, state, self.active());
            let wake_ms = earliest(next_wake_ms, self.housekeeping(now));
            let sleep_ms = wake_ms.map_or(HEARTBEAT_MS, |t| t.saturating_sub(now));
            let timeout = i32::try_from(sleep_ms.min(HEARTBEAT_MS)).unwrap_or(i32::MAX);
            let n = sys::epoll_wait(self.ep.as_fd(), &mut events, timeout)?;
            self.clock.tick();
            for event in events.iter().take(n) {
                match event.token() {
                    SIGNAL_TOKEN => {
                        if self.on_signals()? {
                            return Ok(());
                        }
                    }
                    token if token >= admin::TOKEN => self.on_admin_event(token),
                    token if token >= LISTENER_TOKEN => {
                        let index = usize::try_from(token - LISTENER_TOKEN).unwrap_or(usize::MAX);
                        self.accept(index);
                    }
                    token => {
                        let index = usize::try_from(token).unwrap_or(usize::MAX);
                        if let Some(slot) = self.slots.get_mut(index) {
                            let flags = event.flags();
                            if flags & (epoll::IN | epoll::RDHUP | epoll::HUP | epoll::ERR) != 0 {
                                slot.readable = true;
                            }
                            if flags & (epoll::RDHUP | epoll::HUP | epoll::ERR) != 0 {
                                slot.hup = true;
                            }
                            if flags & (epoll::OUT | epoll::HUP | epoll::ERR) != 0 {
                                slot.writable = true;
                            }
                        }
                        self.drive(index);
                    }
                }
            }
            self.resume_accepting();
            next_wake_ms = self.drive_due();
        }
    }

    /// Puts the listeners back into epoll once an accept pause is over.
    fn resume_accepting(&mut self) {
        let now = self.clock.now().monotonic_ms;
        if self.paused_until_ms.is_some_and(|t| t <= now) {
            self.paused_until_ms = None;
            // Without a free or freeable slot the listeners stay out; the
            // next release puts them back.
            if let Err(e) = self.start_accepting() {
                log_error!("listening again: {e}");
            }
        }
    }

    /// Takes the listeners out of epoll for [`ACCEPT_PAUSE_MS`]: they stay
    /// readable while the backlog is full, so retrying at once would spin.
    fn pause_accepting(&mut self, e: &io::Error) {
        self.stop_accepting();
        if self.paused_until_ms.is_none() {
            // One line per pause, so at most one per interval.
            log_warn!("accept: {e}; pausing new connections for {ACCEPT_PAUSE_MS} ms");
        }
        let now = self.clock.now().monotonic_ms;
        self.paused_until_ms = Some(now.saturating_add(ACCEPT_PAUSE_MS));
    }

    /// Drives every connection whose deadline passed or that has work, and
    /// returns when the loop must wake next: the earliest connection
    /// deadline, accept pause or orphan drain deadline (now, if work waits).
    /// One pass over the busy slots serves both.
    fn drive_due(&mut self) -> Option<u64> {
        let now = self.clock.now().monotonic_ms;
        let mut next = earliest(self.paused_until_ms, self.drain_deadline_ms);
        let mut at = 0;
        // Bounded: each turn moves on or shrinks `busy` (a slot released
        // by drive() gives its place to the last one, not yet visited).
        while let Some(&index) = self.busy.get(at) {
            let due = self.slots.get(index).is_some_and(|s| {
                s.socket.is_some() && (s.again || s.deadline_ms.is_some_and(|d| d <= now))
            });
            if due {
                self.drive(index);
                if self.busy.get(at) != Some(&index) {
                    continue;
                }
            }
            at += 1;
            if let Some(slot) = self.slots.get(index).filter(|s| s.socket.is_some()) {
                next = earliest(
                    next,
                    if slot.again {
                        Some(now)
                    } else {
                        slot.deadline_ms
                    },
                );
            }
        }
        next
    }

    /// Handles pending signals; returns whether to exit at once.
    fn on_signals(&mut self) -> io::Result<bool> {
        while let Some(signal) = sys::read_signal(self.signals.as_fd())? {
            match signal {
                sys::SIGINT => return Ok(true),
                sys::SIGTERM | sys::SIGQUIT => self.drain(),
                sys::SIGUSR1 => self.reopen_logs(),
                _ => {}
            }
        }
        Ok(false)
    }

    /// Reopens the error and access logs by their paths (log rotation).
    fn reopen_logs(&mut self) {
        if let Err(e) = crate::error_log::reopen() {
            log_error!("reopening the error log: {e}");
        }
        if let Some(Err(e)) = self.access_log.as_mut().map(AccessLog::reopen) {
            log_error!("reopening the access log: {e}");
        }
    }

    /// Stops accepting and lets the connections finish.
    fn drain(&mut self) {
        if self.draining {
            return;
        }
        if sys::getppid() != self.master {
            // Nobody will SIGKILL an orphan at the drain timeout: bound it here.
            log_warn!("master gone, draining for at most {ORPHAN_DRAIN:?}");
            let orphan_drain_ms = u64::try_from(ORPHAN_DRAIN.as_millis()).unwrap_or(u64::MAX);
            self.drain_deadline_ms = Some(
                self.clock
                    .now()
                    .monotonic_ms
                    .saturating_add(orphan_drain_ms),
            );
        }
        self.stop_accepting();
        self.leave_admin_if_handed_over();
        self.draining = true;
        // Our copies of the listeners: the master and other workers hold theirs.
        self.listeners.clear();
        for index in 0..self.slots.len() {
            if let Some(slot) = self.slots.get_mut(index).filter(|s| s.socket.is_some()) {
                slot.conn.set_draining();
                self.drive(index);
            }
        }
    }

    fn accept(&mut self, index: usize) {
        // A listener event from the same epoll batch may arrive after the
        // listeners were taken out: leave it queued.
        if !self.accepting {
            return;
        }
        for _ in 0..ACCEPTS_PER_EVENT {
            if self.free.is_empty() && self.idlest().is_none() && self.slowest_head().is_none() {
                // No slot: leave the connections queued for other workers
                // until one of ours frees up. The listeners leave epoll, so
                // a full backlog cannot wake us again and again.
                self.stop_accepting();
                return;
            }
            let Some(listener) = self.listeners.get(index) else {
                return;
            };
            let accepted = if self.nodelay.get(index) == Some(&true) {
                sys::accept_inheriting(listener.as_fd())
            } else {
                sys::accept(listener.as_fd())
            };
            let (socket, peer) = match accepted {
                Ok(Some(accepted)) => accepted,
                Ok(None) => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if is_out_of_resources(&e) => {
                    self.pause_accepting(&e);
                    return;
                }
                Err(e) => {
                    log_error!("accept: {e}");
                    return;
                }
            };
            // Only a connection that is already here is worth a slot: evict
            // for it now, never ahead of it (the evicted one could be the
            // connection accepted a moment ago).
            self.make_room();
            let Some(slot_index) = self.free.pop() else {
                return;
            };
            let now = self.clock.now();
            let read_now = self.early_requests || self.accepted.is_multiple_of(8);
            self.accepted = self.accepted.wrapping_add(1);
            // drive() sets the pressure flag from the slots free right now,
            // and adds the socket to epoll only if it has to wait: a
            // request that is already there may be answered and closed
            // without it. Epoll reports one that arrives later.
            if let Some(slot) = self.slots.get_mut(slot_index) {
                slot.conn.reset(now);
                slot.socket = Some(socket);
                slot.busy_at = self.busy.len();
                self.busy.push(slot_index);
                slot.registered = false;
                slot.peer = peer;
                slot.readable = read_now;
                slot.first_read = read_now;
                slot.writable = true;
                slot.hup = false;
                slot.received = 0;
                slot.buffered = 0;
                slot.corked = false;
                slot.shut_down = false;
                slot.again = false;
                slot.deadline_ms = None;
            }
            self.drive(slot_index);
        }
    }

    /// Frees a slot if none is free: the connection idle the longest, else
    /// the unfinished head arriving slowest, which gets a best-effort 408
    /// (RFC 9110 §15.5.9) before the close.
    fn make_room(&mut self) {
        if !self.free.is_empty() {
            return;
        }
        if let Some(index) = self.idlest() {
            self.counters.add_eviction();
            self.release(index);
        } else if let Some(index) = self.slowest_head() {
            self.counters.add_eviction();
            if let Some(slot) = self.slots.get_mut(index) {
                slot.conn.time_out();
            }
            // Writes what of the 408 the socket takes now; the rest is dropped.
            self.drive(index);
            if self.slots.get(index).is_some_and(|s| s.socket.is_some()) {
                self.release(index);
            }
        }
    }

    /// The connection idle the longest, if any is idle.
    fn idlest(&self) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.socket.is_some())
            .filter_map(|(i, s)| match s.conn.activity() {
                Activity::Idle { since_ms } => Some((since_ms, i)),
                _ => None,
            })
            .min()
            .map(|(_, index)| index)
    }

    /// The unfinished request head arriving slowest (the fewest bytes per
    /// millisecond since its first byte), if there is one.
    fn slowest_head(&self) -> Option<usize> {
        let now = self.clock.now().monotonic_ms;
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.socket.is_some())
            .filter_map(|(i, s)| match s.conn.activity() {
                Activity::Head { bytes, since_ms } => {
                    Some((bytes, now.saturating_sub(since_ms).max(1), i))
                }
                _ => None,
            })
            // a/t < b/u  <=>  a*u < b*t: compared without division, in u128
            // so neither product can overflow.
            .min_by(|(a, t, _), (b, u, _)| {
                let left = (*a as u128) * u128::from(*u);
                let right = (*b as u128) * u128::from(*t);
                left.cmp(&right)
            })
            .map(|(_, _, index)| index)
    }

    /// Closes a slot's socket and returns it to the free list.
    fn release(&mut self, index: usize) {
        let now = self.clock.now();
        if let Some(slot) = self.slots.get_mut(index) {
            let mut log = SlotLog {
                access: self.access_log.as_mut(),
                counters: self.counters,
                peer: slot.peer,
                unix_secs: now.unix_secs,
                monotonic_ms: now.monotonic_ms,
            };
            slot.conn.close(&mut log);
            if slot.socket.take().is_some() {
                if slot.received > LIGHT_BYTES || slot.buffered > LIGHT_BYTES {
                    let (input, output) = slot.conn.buffers();
                    // Best effort: kept pages are only memory not returned.
                    let _ = sys::discard(input);
                    let _ = sys::discard(output);
                }
                self.free.push(index);
                let at = slot.busy_at;
                if self.busy.get(at) == Some(&index) {
                    self.busy.swap_remove(at);
                }
                if let Some(&moved) = self.busy.get(at)
                    && let Some(moved) = self.slots.get_mut(moved)
                {
                    moved.busy_at = at;
                }
            }
        }
        if !self.accepting
            && !self.draining
            && let Err(e) = self.start_accepting()
        {
            log_error!("listening again: {e}");
        }
    }

    /// Moves one connection on as far as its socket allows.
    fn drive(&mut self, index: usize) {
        let pressure = self.free.len() < self.slots.len() / 8;
        let Some(slot) = self.slots.get_mut(index) else {
            return;
        };
        let Some(socket) = slot.socket.as_ref() else {
            return;
        };
        let socket = socket.as_fd();
        slot.conn.set_pressure(pressure);
        let mut close = false;
        slot.again = false;
        for round in 0..ROUNDS_PER_WAKE {
            let now = self.clock.now();
            self.site.set_now_ms(now.monotonic_ms);
            let mut log = SlotLog {
                access: self.access_log.as_mut(),
                counters: self.counters,
                peer: slot.peer,
                unix_secs: now.unix_secs,
                monotonic_ms: now.monotonic_ms,
            };
            let interest = slot.conn.poll(&mut self.site, &mut log, now);
            let mut progress = false;
            let [head, body] = slot.conn.output(&self.site);
            if slot.writable && (!head.is_empty() || !body.is_empty()) {
                let offered = head.len() + body.len();
                // A page in a memory file goes out with sendfile, uncopied.
                let file = slot
                    .conn
                    .cached_body()
                    .and_then(|(handle, pos)| Some((self.site.page_file(handle)?, pos)));
                // A cached page's bytes are the site's, not the buffer's.
                let in_buffer = if slot.conn.cached_body().is_some() {
                    head.len()
                } else {
                    offered
                };
                let result = match file {
                    Some((file, pos)) => {
                        // sendfile pushes its last segment at once, and
                        // the FIN would follow alone: corked, the close
                        // sends both together (nginx's tcp_nopush).
                        if !slot.corked && slot.conn.closes_after_response() {
                            slot.corked = sys::set_cork(socket).is_ok();
                        }
                        send_page(socket, head, file, pos, body.len())
                    }
                    // The close follows at once: its FIN leaves with the
                    // response's last segment instead of after it.
                    None if slot.conn.closes_after_response() => {
                        sys::send2_more(socket, head, body)
                    }
                    None => sys::send2(socket, head, body),
                };
                match result {
                    Ok(n) => {
                        slot.buffered = slot.buffered.saturating_add(n.min(in_buffer));
                        slot.conn.sent(n, now);
                        self.counters.add_bytes_sent(n);
                        progress = n > 0;
                        // A short send filled the socket buffer: EPOLLOUT
                        // follows once it drains, no EAGAIN needed.
                        if n < offered {
                            slot.writable = false;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => slot.writable = false,
                    Err(_) => {
                        close = true;
                        break;
                    }
                }
            }
            match interest.close {
                Close::Now => {
                    close = true;
                    break;
                }
                Close::Linger if !slot.shut_down => {
                    // RFC 9112 §9.6: half-close, then read until the client
                    // closes, so our last response is not lost to a reset.
                    let _ = sys::shutdown_write(socket);
                    slot.shut_down = true;
                }
                _ => {}
            }
            if interest.read && slot.readable {
                let buf = slot.conn.read_buf();
                let room = buf.len();
                if room > 0 {
                    match sys::recv(socket, buf) {
                        Ok(n) => {
                            if std::mem::take(&mut slot.first_read) {
                                self.early_requests = true;
                            }
                            slot.conn.received(n, now);
                            slot.received = slot.received.saturating_add(n);
                            progress = true;
                            // Short: the socket is empty now (bytes that
                            // arrive later bring a new edge), unless the
                            // peer hung up and only EOF is left to read.
                            if n == 0 || (n < room && !slot.hup) {
                                slot.readable = false;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                            if std::mem::take(&mut slot.first_read) {
                                self.early_requests = false;
                            }
                            slot.readable = false;
                        }
                        Err(_) => {
                            close = true;
                            break;
                        }
                    }
                }
            }
            if interest.again {
                progress = true;
            }
            slot.deadline_ms = interest.deadline_ms;
            if !progress {
                break;
            }
            if round + 1 == ROUNDS_PER_WAKE {
                slot.again = true;
            }
        }
        if close {
            self.release(index);
            return;
        }
        if let Some(slot) = self.slots.get_mut(index)
            && !slot.registered
            && let Some(socket) = slot.socket.as_ref()
        {
            // Edge-triggered, added late: epoll reports at once what is
            // ready already, so no byte or close is missed.
            match sys::epoll_add(
                self.ep.as_fd(),
                socket.as_fd(),
                epoll::IN | epoll::OUT | epoll::RDHUP | epoll::ET,
                index as u64,
            ) {
                Ok(()) => slot.registered = true,
                Err(e) => {
                    log_error!("epoll_ctl for {}: {e}", slot.peer);
                    self.release(index);
                }
            }
        }
    }
}

/// Sends a head with `MSG_MORE`, then `len` bytes of a page file from
/// `pos` with `sendfile`, so both leave in the same segment; returns the
/// bytes queued (fewer when the socket buffer filled).
fn send_page(
    socket: std::os::fd::BorrowedFd<'_>,
    head: &[u8],
    file: std::os::fd::BorrowedFd<'_>,
    pos: usize,
    len: usize,
) -> io::Result<usize> {
    let sent = if head.is_empty() {
        0
    } else {
        sys::send_more(socket, head)?
    };
    if sent < head.len() {
        return Ok(sent);
    }
    match sys::sendfile(socket, file, pos, len) {
        // The file is sealed at its length: an end before it is a bug,
        // and must not make the loop spin.
        Ok(0) => Err(io::Error::from(io::ErrorKind::UnexpectedEof)),
        Ok(n) => Ok(sent + n),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock && sent > 0 => Ok(sent),
        Err(e) => Err(e),
    }
}

/// Whether an `accept4` error means the process or system is out of
/// descriptors or memory: the connection stays queued until some free up.
fn is_out_of_resources(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

// Hooks of the admin interface (module admin) and the buffered access log.
impl Worker {
    /// Once per wake: writes the access log's buffer when due and closes
    /// admin connections past their deadline; returns when to wake next
    /// for either.
    fn housekeeping(&mut self, now_ms: u64) -> Option<u64> {
        let log = self.access_log.as_mut().and_then(|log| {
            log.flush_if_due(now_ms);
            log.flush_due_ms()
        });
        let admin = self.admin.as_mut().and_then(|a| a.expire(now_ms));
        earliest(log, admin)
    }

    fn on_admin_event(&mut self, token: u64) {
        if let Some(admin) = self.admin.as_mut() {
            admin.on_event(self.ep.as_fd(), token, self.clock.now());
        }
    }

    /// Whether a drained worker may exit as far as the admin interface
    /// goes: it takes no new admin connection from now on, and the ones
    /// open (a health check) get their answer first.
    fn admin_finished(&mut self) -> bool {
        let Some(admin) = self.admin.as_mut() else {
            return true;
        };
        admin.close_listener(self.ep.as_fd());
        admin.is_idle()
    }

    /// A draining worker keeps answering the admin interface (its
    /// `/healthz` says 503 during a stop), unless a binary upgrade handed
    /// over: the new master's workers answer from their own scoreboard.
    fn leave_admin_if_handed_over(&mut self) {
        if let Some(admin) = self.admin.as_mut() {
            admin.on_drain(self.ep.as_fd());
        }
    }
}
