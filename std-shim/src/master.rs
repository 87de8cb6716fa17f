//! The master process: makes the listening sockets, forks a fixed array of
//! workers, reaps them with `waitpid` when SIGCHLD arrives through a
//! signalfd, and puts a new worker in the slot of one that died. It never
//! serves a request. TERM and QUIT stop gracefully, INT at once; the master
//! exits only after every worker is reaped.

use std::net::SocketAddr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::scoreboard::{Restart, Scoreboard};
use crate::site::FsSite;
use crate::sys::{self, Exit, Fork, Pid};
use crate::worker;

/// A worker that lived less than this and died counts as a crash on start.
const QUICK_DEATH: Duration = Duration::from_secs(1);
/// Longest wait before respawning a worker that keeps dying.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// A worker that lived this long resets its slot's backoff.
const HEALTHY: Duration = Duration::from_secs(60);

/// Signals the master handles through its signalfd.
const SIGNALS: [i32; 7] = [
    sys::SIGCHLD,
    sys::SIGTERM,
    sys::SIGQUIT,
    sys::SIGINT,
    sys::SIGHUP,
    sys::SIGUSR1,
    sys::SIGUSR2,
];

/// One entry of the fixed worker array.
struct Slot {
    pid: Option<Pid>,
    started: Instant,
    quick_deaths: u32,
    respawn_at: Option<Instant>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Graceful,
    Immediate,
}

struct Master {
    config: Config,
    listeners: Vec<OwnedFd>,
    access_log: Option<AccessLog>,
    signals: Option<OwnedFd>,
    slots: Vec<Slot>,
    pid: Pid,
    stop: Option<Stop>,
    drain_deadline: Option<Instant>,
    killed: bool,
    /// Shared with every worker; made before the first fork.
    scoreboard: Scoreboard,
}

/// Sets up and runs the master; returns the process exit code.
///
/// # Errors
///
/// A message for anything that stops txtd from starting (no worker has
/// been started then).
pub fn run(config: Config) -> Result<i32, String> {
    if let Some(path) = &config.error_log {
        crate::error_log::open(path).map_err(|e| format!("error log {}: {e}", path.display()))?;
    }
    // Checked here for a clear error at start; each worker opens it again.
    FsSite::open(&config.root).map_err(|e| format!("root {}: {e}", config.root.display()))?;
    if config.check_config {
        log_info!("configuration ok");
        return Ok(0);
    }
    let access_log = match &config.access_log {
        Some(path) => {
            Some(AccessLog::open(path).map_err(|e| format!("access log {}: {e}", path.display()))?)
        }
        None => None,
    };
    let mut listeners = Vec::with_capacity(config.listen.len());
    let mut bound: Vec<SocketAddr> = Vec::new();
    for addr in &config.listen {
        let fd = sys::listen(*addr, config.backlog).map_err(|e| e.to_string())?;
        let local =
            sys::local_addr(fd.as_fd()).map_err(|e| format!("getsockname for {addr}: {e}"))?;
        listeners.push(fd);
        bound.push(local);
    }
    sys::ignore_sigpipe().map_err(|e| format!("ignoring SIGPIPE: {e}"))?;
    // Blocked before the first fork, so workers inherit the mask and see
    // signals only through their own signalfd.
    sys::block_signals(&SIGNALS).map_err(|e| format!("blocking signals: {e}"))?;
    let signals = sys::signalfd(&SIGNALS).map_err(|e| e.to_string())?;
    if let Some(path) = &config.pid_file {
        std::fs::write(path, format!("{}\n", sys::getpid()))
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
    }
    warn_if_few_descriptors(config.max_conns, listeners.len());
    let backlog = effective_backlog(config.backlog);
    for addr in &bound {
        log_info!("listening on {addr} (backlog {backlog})");
    }
    // Two generations' worth of slots: a reload runs the old and the new
    // side by side.
    let scoreboard = Scoreboard::new(config.workers.saturating_mul(2))
        .map_err(|e| format!("scoreboard: {e}"))?;
    let unix_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    scoreboard.master().set_master(sys::getpid(), unix_secs);
    scoreboard.master().set_generation(1, config.workers);
    let now = Instant::now();
    let slots = (0..config.workers)
        .map(|_| Slot {
            pid: None,
            started: now,
            quick_deaths: 0,
            respawn_at: Some(now),
        })
        .collect();
    let mut master = Master {
        config,
        listeners,
        access_log,
        signals: Some(signals),
        slots,
        pid: sys::getpid(),
        stop: None,
        drain_deadline: None,
        killed: false,
        scoreboard,
    };
    Ok(master.run())
}

/// Descriptors a worker holds besides its connections: epoll, signalfd,
/// the site root, files being sent, logs and a margin.
const WORKER_SPARE_FDS: u64 = 16;

/// Warns when `RLIMIT_NOFILE` is too low for a worker to fill its slots:
/// `accept4` would then fail with EMFILE before the slots run out.
fn warn_if_few_descriptors(max_conns: usize, listeners: usize) {
    let need = u64::try_from(max_conns.saturating_add(listeners))
        .unwrap_or(u64::MAX)
        .saturating_add(WORKER_SPARE_FDS);
    match sys::nofile_limit() {
        Ok((soft, hard)) if soft < need => log_warn!(
            "RLIMIT_NOFILE soft limit {soft} (hard {hard}) is below the {need} descriptors each worker may need; raise it (ulimit -n) or lower --max-conns"
        ),
        Ok(_) => {}
        Err(e) => log_warn!("getrlimit(RLIMIT_NOFILE): {e}"),
    }
}

/// The backlog the kernel uses: what was asked, clamped to somaxconn.
fn effective_backlog(asked: i32) -> i32 {
    let max = std::fs::read_to_string("/proc/sys/net/core/somaxconn")
        .ok()
        .and_then(|s| s.trim().parse::<i32>().ok());
    max.map_or(asked, |max| asked.min(max))
}

impl Master {
    fn run(&mut self) -> i32 {
        loop {
            let now = Instant::now();
            if self.stop.is_none() {
                for index in 0..self.slots.len() {
                    let due = self
                        .slots
                        .get(index)
                        .is_some_and(|s| s.pid.is_none() && s.respawn_at.is_some_and(|t| t <= now));
                    // Only a worker gets a code back: its work is done.
                    if due && let Some(code) = self.spawn(index) {
                        return code;
                    }
                }
            }
            if let Some(deadline) = self.drain_deadline
                && now >= deadline
                && !self.killed
            {
                log_warn!("drain timeout passed, killing the workers left");
                self.signal_all(sys::SIGKILL);
                self.killed = true;
            }
            if self.stop.is_some() && self.slots.iter().all(|s| s.pid.is_none()) {
                if let Some(path) = &self.config.pid_file {
                    let _ = std::fs::remove_file(path);
                }
                log_info!("stopped");
                return 0;
            }
            let Some(signals) = self.signals.as_ref() else {
                return 1;
            };
            let timeout = self.timeout_ms(now);
            if let Err(e) = sys::wait_readable(signals.as_fd(), timeout) {
                log_error!("waiting for signals: {e}");
            }
            self.on_signals();
        }
    }

    /// Milliseconds until the next respawn or drain deadline (-1: none).
    fn timeout_ms(&self, now: Instant) -> i32 {
        let respawn = if self.stop.is_none() {
            self.slots
                .iter()
                .filter(|s| s.pid.is_none())
                .filter_map(|s| s.respawn_at)
                .min()
        } else {
            None
        };
        let drain = if self.killed {
            None
        } else {
            self.drain_deadline
        };
        let next = match (respawn, drain) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        next.map_or(-1, |t| {
            let ms = t
                .saturating_duration_since(now)
                .as_millis()
                .saturating_add(1);
            i32::try_from(ms).unwrap_or(i32::MAX)
        })
    }

    fn on_signals(&mut self) {
        loop {
            let Some(signals) = self.signals.as_ref() else {
                return;
            };
            let signal = match sys::read_signal(signals.as_fd()) {
                Ok(Some(signal)) => signal,
                Ok(None) => return,
                Err(e) => {
                    log_error!("reading signals: {e}");
                    return;
                }
            };
            match signal {
                sys::SIGCHLD => self.reap(),
                sys::SIGTERM | sys::SIGQUIT => self.begin_stop(Stop::Graceful),
                sys::SIGINT => self.begin_stop(Stop::Immediate),
                sys::SIGUSR1 => {
                    // After logrotate moved the files: reopen ours, then the workers'.
                    match crate::error_log::reopen() {
                        Ok(()) => log_info!("reopened the log files"),
                        Err(e) => log_error!("reopening the error log: {e}"),
                    }
                    self.signal_all(sys::SIGUSR1);
                }
                other => log_warn!("ignoring signal {other}: not supported yet"),
            }
        }
    }

    fn begin_stop(&mut self, stop: Stop) {
        if self.stop == Some(Stop::Immediate) || self.stop == Some(stop) {
            return;
        }
        self.stop = Some(stop);
        self.scoreboard.master().set_stopping();
        // New connections are refused once the workers close theirs too.
        self.listeners.clear();
        match stop {
            Stop::Graceful => {
                log_info!(
                    "stopping gracefully (drain timeout {:?})",
                    self.config.drain_timeout
                );
                self.drain_deadline = Some(Instant::now() + self.config.drain_timeout);
                self.signal_all(sys::SIGTERM);
            }
            Stop::Immediate => {
                log_info!("stopping now");
                self.signal_all(sys::SIGKILL);
                self.killed = true;
            }
        }
    }

    fn signal_all(&self, signal: i32) {
        for pid in self.slots.iter().filter_map(|s| s.pid) {
            if let Err(e) = sys::kill(pid, signal) {
                log_warn!("signal {signal} to worker {pid}: {e}");
            }
        }
    }

    /// Reaps every ended child and schedules its replacement.
    fn reap(&mut self) {
        loop {
            let (pid, exit) = match sys::reap() {
                Ok(Some(ended)) => ended,
                Ok(None) => return,
                Err(e) => {
                    log_error!("waitpid: {e}");
                    return;
                }
            };
            let now = Instant::now();
            let stopping = self.stop.is_some();
            let Some((index, slot)) = self
                .slots
                .iter_mut()
                .enumerate()
                .find(|(_, s)| s.pid == Some(pid))
            else {
                continue;
            };
            slot.pid = None;
            if let Some(counters) = self.scoreboard.slot(index) {
                self.scoreboard.master().retire(&counters.release());
            }
            let how = match exit {
                Exit::Code(code) => format!("exited with code {code}"),
                Exit::Signal(signal) => format!("was killed by signal {signal}"),
            };
            if stopping {
                log_info!("worker {index} (pid {pid}) {how}");
                continue;
            }
            // A worker that dies right after start would die again: back
            // off, doubling up to MAX_BACKOFF, so a crash loop cannot spin;
            // a minute of health forgives the slot.
            let lived = now.duration_since(slot.started);
            let quick = lived < QUICK_DEATH;
            if quick {
                slot.quick_deaths = slot.quick_deaths.saturating_add(1);
            } else if lived >= HEALTHY {
                slot.quick_deaths = 0;
            }
            let backoff = if !quick || slot.quick_deaths == 0 {
                Duration::ZERO
            } else {
                (Duration::from_millis(100) * 2u32.saturating_pow(slot.quick_deaths.min(6)))
                    .min(MAX_BACKOFF)
            };
            slot.respawn_at = Some(now + backoff);
            self.scoreboard.master().add_restart(match exit {
                Exit::Code(_) => Restart::Exit,
                Exit::Signal(_) => Restart::Signal,
            });
            log_warn!("worker {index} (pid {pid}) {how}; restarting it in {backoff:?}");
        }
    }

    /// Forks the worker of `index`. Returns `Some(exit code)` in the child
    /// once its worker is done, `None` in the master.
    fn spawn(&mut self, index: usize) -> Option<i32> {
        let counters = self.scoreboard.slot(index);
        if let Some(counters) = counters {
            counters.claim(self.scoreboard.master().generation(), sys::monotonic_ms());
        }
        match sys::fork() {
            Ok(Fork::Parent(pid)) => {
                if let Some(counters) = counters {
                    counters.set_pid(pid);
                }
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.pid = Some(pid);
                    slot.started = Instant::now();
                    slot.respawn_at = None;
                }
                None
            }
            Ok(Fork::Child) => Some(self.become_worker(index)),
            Err(e) => {
                if let Some(counters) = counters {
                    counters.release();
                }
                log_error!("starting worker {index}: {e}");
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.respawn_at = Some(Instant::now() + MAX_BACKOFF);
                }
                None
            }
        }
    }

    fn become_worker(&mut self, index: usize) -> i32 {
        // No worker outlives its master, even one killed with SIGKILL: the
        // kernel sends TERM, and an orphan drains for at most
        // worker::ORPHAN_DRAIN before it exits.
        if let Err(e) = sys::set_parent_death_signal(sys::SIGTERM) {
            log_error!("PR_SET_PDEATHSIG: {e}");
            return 1;
        }
        if sys::getppid() != self.pid {
            // The master died before the line above took effect.
            return 1;
        }
        self.signals = None;
        let setup = worker::Setup {
            listeners: std::mem::take(&mut self.listeners),
            root: self.config.root.clone(),
            conn: self.config.conn(),
            max_conns: self.config.max_conns,
            access_log: self.access_log.take(),
            slot: index,
            master: self.pid,
            scoreboard: self.scoreboard,
        };
        worker::run(setup)
    }
}
