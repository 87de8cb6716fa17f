//! The scoreboard: one `MAP_SHARED` anonymous mapping, made by the master
//! before its first fork, that the master and every worker read and write
//! with atomics only. A master-wide area (generation, stopping, restarts by
//! cause, reloads, the counts of workers that ended) and a fixed array of
//! slots, one per worker, sized for two generations so that a reload runs
//! the old and the new side by side.
//!
//! Workers update their slot from the request path with `Relaxed` stores
//! and increments: no allocation, no system call, no lock. Times are
//! `CLOCK_MONOTONIC` milliseconds ([`sys::monotonic_ms`]), one clock for
//! every process.

use std::io;
use std::sync::atomic::Ordering::{Acquire, Relaxed, Release};
use std::sync::atomic::{AtomicU64, fence};

use crate::sys;

/// 64-bit words per slot: 128 bytes, two cache lines, so that slots
/// written by different workers never share a line.
const SLOT_WORDS: usize = 16;
/// 64-bit words of the master-wide area, ahead of the slots.
const MASTER_WORDS: usize = 32;

/// Where each field of a slot lives.
mod slot_word {
    pub const PID: usize = 0;
    pub const GENERATION: usize = 1;
    pub const STATE: usize = 2;
    pub const CONNECTIONS: usize = 3;
    pub const HEARTBEAT_MS: usize = 4;
    pub const STARTED_MS: usize = 5;
    /// The [`super::Counts`] block: requests, bytes, 1xx..5xx, evictions, 408s.
    pub const COUNTS: usize = 6;
}

/// Where each field of the master-wide area lives.
mod master_word {
    pub const GENERATION: usize = 0;
    pub const STOPPING: usize = 1;
    pub const WORKERS: usize = 2;
    pub const MASTER_PID: usize = 3;
    pub const STARTED_UNIX_SECS: usize = 4;
    pub const RESTARTS_EXIT: usize = 5;
    pub const RESTARTS_SIGNAL: usize = 6;
    pub const RESTARTS_WATCHDOG: usize = 7;
    pub const RELOADS: usize = 8;
    pub const RELOAD_FAILURES: usize = 9;
    pub const UPGRADES: usize = 10;
    /// The [`super::Counts`] of every worker that ended.
    pub const RETIRED: usize = 11;
    /// Odd while the master folds a slot into RETIRED (a sequence lock,
    /// so that totals never count a worker twice or not at all).
    pub const FOLD_SEQ: usize = 20;
    /// 1 once the pool served for the first time (`READY=1`).
    pub const READY: usize = 21;
    /// 1 once a binary upgrade handed over to a new master.
    pub const HANDED_OVER: usize = 22;
}

/// Words of a [`Counts`] block.
const COUNT_WORDS: usize = 9;
const _: () = assert!(slot_word::COUNTS + COUNT_WORDS <= SLOT_WORDS);
const _: () = assert!(master_word::RETIRED + COUNT_WORDS <= master_word::FOLD_SEQ);
const _: () = assert!(master_word::HANDED_OVER < MASTER_WORDS);

/// Attempts a reader makes at a consistent [`Scoreboard::totals`].
const TOTALS_TRIES: usize = 64;

/// What a worker in a slot is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No worker.
    Empty,
    /// Forked, not serving yet (the master sets this before the fork).
    Starting,
    /// Serving, no connection open.
    Idle,
    /// Serving, at least one connection open.
    Busy,
    /// Not accepting; finishing its connections before it exits.
    Draining,
}

impl State {
    fn word(self) -> u64 {
        match self {
            Self::Empty => 0,
            Self::Starting => 1,
            Self::Idle => 2,
            Self::Busy => 3,
            Self::Draining => 4,
        }
    }

    fn from_word(word: u64) -> Self {
        match word {
            1 => Self::Starting,
            2 => Self::Idle,
            3 => Self::Busy,
            4 => Self::Draining,
            _ => Self::Empty,
        }
    }

    /// Whether a worker in this state accepts and answers requests.
    pub fn is_serving(self) -> bool {
        matches!(self, Self::Idle | Self::Busy)
    }
}

impl State {
    /// The lowercase name, for `/status` pages and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Starting => "starting",
            Self::Idle => "idle",
            Self::Busy => "busy",
            Self::Draining => "draining",
        }
    }
}

/// Why the master replaced a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Restart {
    /// It exited on its own.
    Exit,
    /// A signal killed it (not the watchdog's).
    Signal,
    /// Its heartbeat went stale and the watchdog killed it.
    Watchdog,
}

/// Request counters, per slot and for all ended workers together.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counts {
    /// Responses finished (or cut short by the connection ending).
    pub requests: u64,
    /// Bytes handed to the kernel, heads and bodies.
    pub bytes_sent: u64,
    /// Responses by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub responses: [u64; 5],
    /// Connections closed to free a slot for a new one.
    pub evictions: u64,
    /// 408 responses (a head too slow, or evicted while arriving).
    pub timeouts_408: u64,
}

impl Counts {
    fn load(words: &[AtomicU64]) -> Self {
        let at = |i: usize| words.get(i).map_or(0, |w| w.load(Relaxed));
        Self {
            requests: at(0),
            bytes_sent: at(1),
            responses: [at(2), at(3), at(4), at(5), at(6)],
            evictions: at(7),
            timeouts_408: at(8),
        }
    }

    fn words(&self) -> [u64; COUNT_WORDS] {
        let [r1, r2, r3, r4, r5] = self.responses;
        [
            self.requests,
            self.bytes_sent,
            r1,
            r2,
            r3,
            r4,
            r5,
            self.evictions,
            self.timeouts_408,
        ]
    }
}

impl Counts {
    /// The sum of two counts, saturating.
    pub fn plus(&self, other: &Self) -> Self {
        let (a, b) = (self.words(), other.words());
        let at = |i: usize| {
            a.get(i)
                .copied()
                .unwrap_or(0)
                .saturating_add(b.get(i).copied().unwrap_or(0))
        };
        Self {
            requests: at(0),
            bytes_sent: at(1),
            responses: [at(2), at(3), at(4), at(5), at(6)],
            evictions: at(7),
            timeouts_408: at(8),
        }
    }
}

/// The shared mapping. A copyable handle: the mapping lives as long as the
/// process, and a forked worker holds the same pages as its master.
#[derive(Clone, Copy)]
pub struct Scoreboard {
    master: &'static [AtomicU64; MASTER_WORDS],
    slots: &'static [AtomicU64],
}

impl Scoreboard {
    /// Maps a zeroed scoreboard with `slots` worker slots. Call it before
    /// the first fork: only processes forked after it share it.
    ///
    /// # Errors
    ///
    /// `mmap` failed.
    pub fn new(slots: usize) -> io::Result<Self> {
        let words = slots
            .checked_mul(SLOT_WORDS)
            .and_then(|w| w.checked_add(MASTER_WORDS))
            .ok_or_else(|| io::Error::other("scoreboard too large"))?;
        let (master, slots) = sys::map_shared_words(words)?
            .split_at_checked(MASTER_WORDS)
            .ok_or_else(|| io::Error::other("scoreboard too small"))?;
        let master = master
            .try_into()
            .map_err(|_| io::Error::other("scoreboard too small"))?;
        Ok(Self { master, slots })
    }

    /// The number of worker slots.
    pub fn len(&self) -> usize {
        self.slots.len() / SLOT_WORDS
    }

    /// The master-wide area.
    pub fn master(&self) -> MasterCounters {
        MasterCounters { words: self.master }
    }

    /// Empties slot `index`, whose worker ended, and adds its counters to
    /// the retired counts, so that [`Scoreboard::totals`] goes on counting
    /// them. The master calls this when it reaps the worker.
    pub fn release(&self, index: usize) {
        let Some(slot) = self.slot(index) else {
            return;
        };
        let master = self.master();
        let seq = master.word(master_word::FOLD_SEQ);
        // Sequence lock, writer side (the master is the only writer).
        if let Some(seq) = seq {
            seq.fetch_add(1, Relaxed);
        }
        fence(Release);
        master.retire(&slot.counts());
        slot.clear();
        if let Some(seq) = seq {
            seq.fetch_add(1, Release);
        }
    }

    /// Slot `index`, or `None` past the end.
    pub fn slot(&self, index: usize) -> Option<SlotCounters> {
        let start = index.checked_mul(SLOT_WORDS)?;
        let words = self.slots.get(start..start.checked_add(SLOT_WORDS)?)?;
        Some(SlotCounters {
            words: words.try_into().ok()?,
        })
    }
}

impl Scoreboard {
    /// Whether there is no worker slot at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every slot, empty ones included, in index order.
    pub fn slots(&self) -> impl Iterator<Item = SlotCounters> + '_ {
        (0..self.len()).filter_map(|i| self.slot(i))
    }

    /// The request counts of the whole server: the workers that ended plus
    /// every live slot. Monotonic, so fit for Prometheus counters: a slot
    /// folded into the retired counts at that moment is read again.
    pub fn totals(&self) -> Counts {
        let seq = self.master().word(master_word::FOLD_SEQ);
        let load = |order| seq.map_or(0, |s| s.load(order));
        let mut sum = Counts::default();
        for _ in 0..TOTALS_TRIES {
            // Sequence lock, reader side: retry if a fold ran meanwhile.
            let before = load(Acquire);
            sum = self.slots().fold(self.master().retired(), |sum, slot| {
                sum.plus(&slot.counts())
            });
            fence(Acquire);
            if before % 2 == 0 && load(Relaxed) == before {
                break;
            }
            std::hint::spin_loop();
        }
        sum
    }

    /// A copy of the master area and of every slot that holds a worker.
    /// Allocates: for tests; the admin pages read slot by slot.
    #[cfg(test)]
    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            master: self.master().read(),
            slots: self
                .slots()
                .enumerate()
                .map(|(i, s)| (i, s.read()))
                .filter(|(_, s)| s.state != State::Empty)
                .collect(),
        }
    }
}

/// A copy of the scoreboard at one moment (each word read on its own).
#[cfg(test)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// The master-wide area.
    pub master: MasterSnapshot,
    /// (slot index, slot) for every slot that is not empty.
    pub slots: Vec<(usize, SlotSnapshot)>,
}

/// One worker's slot.
#[derive(Clone, Copy)]
pub struct SlotCounters {
    words: &'static [AtomicU64; SLOT_WORDS],
}

/// A copy of one slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlotSnapshot {
    /// The worker's pid (0: none).
    pub pid: i32,
    /// The generation the worker belongs to (0: none).
    pub generation: u64,
    /// What it is doing.
    pub state: State,
    /// Connections open.
    pub connections: u64,
    /// Its last heartbeat (monotonic ms).
    pub heartbeat_ms: u64,
    /// When the master forked it (monotonic ms).
    pub started_ms: u64,
    /// Its request counters since it started.
    pub counts: Counts,
}

impl SlotCounters {
    fn word(&self, i: usize) -> &AtomicU64 {
        // Every caller passes a `slot_word` const, checked below
        // SLOT_WORDS at compile time: the fallback is never taken.
        let [first, ..] = self.words;
        self.words.get(i).unwrap_or(first)
    }

    fn count(&self, i: usize) -> &AtomicU64 {
        self.word(slot_word::COUNTS.saturating_add(i))
    }

    // ---- the master ----

    /// Readies the slot for a worker about to be forked: counters zeroed,
    /// `Starting`, the heartbeat and start time set to `now_ms` (so the
    /// watchdog measures a start from the fork). Call before the fork.
    pub fn claim(&self, generation: u64, now_ms: u64) {
        for word in self.words {
            word.store(0, Relaxed);
        }
        self.word(slot_word::GENERATION).store(generation, Relaxed);
        self.word(slot_word::HEARTBEAT_MS).store(now_ms, Relaxed);
        self.word(slot_word::STARTED_MS).store(now_ms, Relaxed);
        self.word(slot_word::STATE)
            .store(State::Starting.word(), Relaxed);
    }

    /// Records the worker's pid (the master after the fork, the worker at
    /// start: whichever runs first).
    pub fn set_pid(&self, pid: sys::Pid) {
        let pid = u64::try_from(pid).unwrap_or(0);
        self.word(slot_word::PID).store(pid, Relaxed);
    }

    /// Zeroes every word: the slot is empty.
    fn clear(&self) {
        for word in self.words {
            word.store(0, Relaxed);
        }
    }

    // ---- the worker ----

    /// The heartbeat, once per wake of the worker's loop: the time, what
    /// the worker is doing and its open connections.
    pub fn beat(&self, now_ms: u64, state: State, connections: usize) {
        self.word(slot_word::HEARTBEAT_MS).store(now_ms, Relaxed);
        self.word(slot_word::STATE).store(state.word(), Relaxed);
        let connections = u64::try_from(connections).unwrap_or(u64::MAX);
        self.word(slot_word::CONNECTIONS)
            .store(connections, Relaxed);
    }

    /// Counts one response with `status_code`.
    pub fn add_response(&self, status_code: u16) {
        self.count(0).fetch_add(1, Relaxed);
        if let Some(class) = (status_code / 100).checked_sub(1).filter(|c| *c < 5) {
            self.count(2 + usize::from(class)).fetch_add(1, Relaxed);
        }
        if status_code == 408 {
            self.count(8).fetch_add(1, Relaxed);
        }
    }

    /// Counts bytes handed to the kernel.
    pub fn add_bytes_sent(&self, bytes: usize) {
        let bytes = u64::try_from(bytes).unwrap_or(u64::MAX);
        self.count(1).fetch_add(bytes, Relaxed);
    }

    /// Counts a connection closed to make room for a new one.
    pub fn add_eviction(&self) {
        self.count(7).fetch_add(1, Relaxed);
    }

    // ---- anyone ----

    /// What the slot's worker is doing.
    pub fn state(&self) -> State {
        State::from_word(self.word(slot_word::STATE).load(Relaxed))
    }

    /// The last heartbeat (monotonic ms).
    pub fn heartbeat_ms(&self) -> u64 {
        self.word(slot_word::HEARTBEAT_MS).load(Relaxed)
    }

    /// The request counters of the slot's worker.
    pub fn counts(&self) -> Counts {
        Counts::load(
            self.words
                .get(slot_word::COUNTS..slot_word::COUNTS + COUNT_WORDS)
                .unwrap_or(&[]),
        )
    }
}

impl SlotCounters {
    /// The worker's pid; 0 when the slot is empty.
    pub fn pid(&self) -> i32 {
        i32::try_from(self.word(slot_word::PID).load(Relaxed)).unwrap_or(0)
    }

    /// The generation of the slot's worker; 0 when empty.
    pub fn generation(&self) -> u64 {
        self.word(slot_word::GENERATION).load(Relaxed)
    }

    /// A copy of the whole slot.
    pub fn read(&self) -> SlotSnapshot {
        SlotSnapshot {
            pid: self.pid(),
            generation: self.generation(),
            state: self.state(),
            connections: self.word(slot_word::CONNECTIONS).load(Relaxed),
            heartbeat_ms: self.heartbeat_ms(),
            started_ms: self.word(slot_word::STARTED_MS).load(Relaxed),
            counts: self.counts(),
        }
    }
}

/// The master-wide area; written by the master only.
#[derive(Clone, Copy)]
pub struct MasterCounters {
    words: &'static [AtomicU64; MASTER_WORDS],
}

/// A copy of the master-wide area.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MasterSnapshot {
    /// The generation serving now (1 at start, one more per reload).
    pub generation: u64,
    /// A graceful or immediate stop has begun (`/healthz` answers 503).
    pub stopping: bool,
    /// Workers per generation, as configured.
    pub workers: u64,
    /// The master's pid.
    pub master_pid: i32,
    /// When the master started (Unix seconds).
    pub started_unix_secs: u64,
    /// Workers replaced after they exited on their own.
    pub restarts_exit: u64,
    /// Workers replaced after a signal killed them.
    pub restarts_signal: u64,
    /// Workers the watchdog killed and replaced.
    pub restarts_watchdog: u64,
    /// Reloads that put a new generation in service.
    pub reloads: u64,
    /// Reloads that failed (the old generation kept serving).
    pub reload_failures: u64,
    /// Binary upgrades this service went through.
    pub upgrades: u64,
    /// The pool served once (`READY=1`).
    pub ready: bool,
    /// A binary upgrade handed over to a new master.
    pub handed_over: bool,
    /// The request counters of every worker that ended.
    pub retired: Counts,
}

impl MasterCounters {
    fn word(&self, i: usize) -> Option<&'static AtomicU64> {
        self.words.get(i)
    }

    fn store(&self, i: usize, value: u64) {
        if let Some(w) = self.word(i) {
            w.store(value, Relaxed);
        }
    }

    fn add(&self, i: usize, value: u64) {
        if let Some(w) = self.word(i) {
            w.fetch_add(value, Relaxed);
        }
    }

    /// Records who the master is and when it started.
    pub fn set_master(&self, pid: sys::Pid, started_unix_secs: u64) {
        self.store(master_word::MASTER_PID, u64::try_from(pid).unwrap_or(0));
        self.store(master_word::STARTED_UNIX_SECS, started_unix_secs);
    }

    /// Sets the generation serving now and its worker count.
    pub fn set_generation(&self, generation: u64, workers: usize) {
        self.store(master_word::GENERATION, generation);
        self.store(
            master_word::WORKERS,
            u64::try_from(workers).unwrap_or(u64::MAX),
        );
    }

    /// Marks that a stop has begun.
    pub fn set_stopping(&self) {
        self.store(master_word::STOPPING, 1);
    }

    /// Counts a worker replaced for `cause`.
    pub fn add_restart(&self, cause: Restart) {
        let i = match cause {
            Restart::Exit => master_word::RESTARTS_EXIT,
            Restart::Signal => master_word::RESTARTS_SIGNAL,
            Restart::Watchdog => master_word::RESTARTS_WATCHDOG,
        };
        self.add(i, 1);
    }

    /// Counts a reload whose generation went into service.
    pub fn add_reload(&self) {
        self.add(master_word::RELOADS, 1);
    }

    /// Counts a reload that failed.
    pub fn add_reload_failure(&self) {
        self.add(master_word::RELOAD_FAILURES, 1);
    }

    /// Sets the binary upgrades this service went through: a new master
    /// counts on from the old one's count.
    pub fn set_upgrades(&self, upgrades: u64) {
        self.store(master_word::UPGRADES, upgrades);
    }

    /// Marks that the pool served for the first time.
    pub fn set_ready(&self) {
        self.store(master_word::READY, 1);
    }

    /// Marks that a binary upgrade handed over: the service goes on in
    /// the new master, and this one's workers leave the admin interface.
    pub fn set_handed_over(&self) {
        self.store(master_word::HANDED_OVER, 1);
    }

    /// Adds an ended worker's counters to the retired counts.
    fn retire(&self, counts: &Counts) {
        for (i, value) in counts.words().into_iter().enumerate() {
            self.add(master_word::RETIRED.saturating_add(i), value);
        }
    }
}

impl MasterCounters {
    fn load(&self, i: usize) -> u64 {
        self.word(i).map_or(0, |w| w.load(Relaxed))
    }

    /// Whether a stop has begun.
    pub fn stopping(&self) -> bool {
        self.load(master_word::STOPPING) != 0
    }

    /// Whether a binary upgrade handed over to a new master.
    pub fn handed_over(&self) -> bool {
        self.load(master_word::HANDED_OVER) != 0
    }

    /// The generation serving now.
    pub fn generation(&self) -> u64 {
        self.load(master_word::GENERATION)
    }

    /// The request counters of every worker that ended.
    pub fn retired(&self) -> Counts {
        let block = self
            .words
            .get(master_word::RETIRED..master_word::RETIRED + COUNT_WORDS);
        block.map_or_else(Counts::default, Counts::load)
    }

    /// A copy of the whole area.
    pub fn read(&self) -> MasterSnapshot {
        MasterSnapshot {
            generation: self.generation(),
            stopping: self.stopping(),
            workers: self.load(master_word::WORKERS),
            master_pid: i32::try_from(self.load(master_word::MASTER_PID)).unwrap_or(0),
            started_unix_secs: self.load(master_word::STARTED_UNIX_SECS),
            restarts_exit: self.load(master_word::RESTARTS_EXIT),
            restarts_signal: self.load(master_word::RESTARTS_SIGNAL),
            restarts_watchdog: self.load(master_word::RESTARTS_WATCHDOG),
            reloads: self.load(master_word::RELOADS),
            reload_failures: self.load(master_word::RELOAD_FAILURES),
            upgrades: self.load(master_word::UPGRADES),
            ready: self.load(master_word::READY) != 0,
            handed_over: self.handed_over(),
            retired: self.retired(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_do_not_overlap_and_start_empty() {
        let board = Scoreboard::new(4).unwrap();
        assert_eq!(board.len(), 4);
        assert!(!board.is_empty());
        assert!(board.slot(4).is_none());
        for (i, slot) in board.slots().enumerate() {
            slot.claim(7, 1000 + i as u64);
            slot.add_response(200);
        }
        for (i, slot) in board.slots().enumerate() {
            let s = slot.read();
            assert_eq!((s.generation, s.state), (7, State::Starting));
            assert_eq!(s.heartbeat_ms, 1000 + i as u64);
            assert_eq!(s.counts.requests, 1, "slot {i}");
        }
        assert_eq!(board.master().read().retired, Counts::default());
        assert!(Scoreboard::new(2).unwrap().snapshot().slots.is_empty());
    }

    #[test]
    fn responses_are_counted_by_status_class() {
        let board = Scoreboard::new(1).unwrap();
        let slot = board.slot(0).unwrap();
        slot.claim(1, 0);
        for code in [101, 200, 200, 206, 304, 404, 408, 500, 999] {
            slot.add_response(code);
        }
        slot.add_bytes_sent(1500);
        slot.add_eviction();
        let counts = slot.counts();
        assert_eq!(counts.requests, 9);
        assert_eq!(counts.responses, [1, 3, 1, 2, 1]);
        assert_eq!(counts.timeouts_408, 1);
        assert_eq!((counts.bytes_sent, counts.evictions), (1500, 1));
    }

    #[test]
    fn totals_stay_the_same_when_a_slot_is_released_into_the_retired_counts() {
        let board = Scoreboard::new(2).unwrap();
        for slot in board.slots() {
            slot.claim(1, 0);
            slot.add_response(200);
            slot.add_bytes_sent(10);
        }
        let before = board.totals();
        assert_eq!((before.requests, before.bytes_sent), (2, 20));
        let slot = board.slot(1).unwrap();
        board.release(1);
        assert_eq!(slot.state(), State::Empty);
        assert_eq!(board.totals(), before);
        assert_eq!(board.snapshot().slots.len(), 1);
    }

    #[test]
    fn the_heartbeat_sets_time_state_and_connections() {
        let board = Scoreboard::new(1).unwrap();
        let slot = board.slot(0).unwrap();
        slot.claim(3, 5);
        slot.set_pid(1234);
        slot.beat(9000, State::Busy, 17);
        let s = slot.read();
        assert_eq!((s.pid, s.heartbeat_ms, s.started_ms), (1234, 9000, 5));
        assert_eq!((s.state, s.connections), (State::Busy, 17));
        assert!(s.state.is_serving() && !State::Starting.is_serving());
        assert_eq!(s.state.as_str(), "busy");
        let master = board.master();
        master.set_generation(3, 4);
        master.add_restart(Restart::Watchdog);
        master.set_stopping();
        let m = master.read();
        assert_eq!((m.generation, m.workers, m.restarts_watchdog), (3, 4, 1));
        assert!(m.stopping);
    }
}
