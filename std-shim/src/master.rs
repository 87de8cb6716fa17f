//! The master process: makes the listening sockets, forks a fixed array of
//! workers, reaps them with `waitpid` when SIGCHLD arrives through a
//! signalfd, and puts a new worker in the slot of one that died. It never
//! serves a request. TERM and QUIT stop gracefully, INT at once; the master
//! exits only after every worker is reaped. Its side of the process
//! boundary (the last `impl` block) says `READY=1` once every worker
//! serves, and starts a binary upgrade on USR2 (modules notify, upgrade).

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::notify;
use crate::readiness::Reports;
use crate::site::FsSite;
use crate::sys::{self, Exit, Fork, Pid};
use crate::upgrade::Upgrade;
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
    site: Option<FsSite>,
    access_log: Option<AccessLog>,
    signals: Option<OwnedFd>,
    slots: Vec<Slot>,
    pid: Pid,
    stop: Option<Stop>,
    drain_deadline: Option<Instant>,
    killed: bool,
    /// Which workers reported that they serve.
    reports: Reports,
    /// Whether `READY=1` went out (the pool served once).
    ready: bool,
    /// A binary upgrade (USR2) under way, if any.
    upgrade: Upgrade,
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
    let site =
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
    notify::init();
    // Sockets passed by socket activation or an upgrading master replace
    // --listen: nothing is bound then.
    let inherited = crate::activation::listeners()?;
    let from_activation = inherited.is_some();
    let addrs: &[SocketAddr] = if from_activation { &[] } else { &config.listen };
    let mut listeners = Vec::with_capacity(config.listen.len());
    let mut bound: Vec<SocketAddr> = Vec::new();
    for fd in inherited.unwrap_or_default() {
        let local = sys::local_addr(fd.as_fd()).map_err(|e| format!("getsockname: {e}"))?;
        listeners.push(fd);
        bound.push(local);
    }
    for addr in addrs {
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
    // A new master started by an upgrade writes it once it serves.
    if let Some(path) = config.pid_file.as_ref().filter(|_| !notify::is_upgrade()) {
        std::fs::write(path, format!("{}\n", sys::getpid()))
            .map_err(|e| format!("pid file {}: {e}", path.display()))?;
    }
    warn_if_few_descriptors(config.max_conns, listeners.len());
    let backlog = effective_backlog(config.backlog);
    for addr in &bound {
        if from_activation {
            log_info!("listening on {addr} (inherited)");
        } else {
            log_info!("listening on {addr} (backlog {backlog})");
        }
    }
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
        site: Some(site),
        access_log,
        signals: Some(signals),
        slots,
        pid: sys::getpid(),
        stop: None,
        drain_deadline: None,
        killed: false,
        reports: Reports::new().map_err(|e| format!("worker reports: {e}"))?,
        ready: false,
        upgrade: Upgrade::Idle,
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
                    crate::upgrade::remove_pid_file_if_ours(path);
                }
                log_info!("stopped");
                return 0;
            }
            let Some(signals) = self.signals.as_ref() else {
                return 1;
            };
            let timeout = self.timeout_ms(now);
            if let Err(e) = self.wait(signals.as_fd(), timeout, now) {
                log_error!("waiting for signals: {e}");
            }
            self.on_signals();
            self.after_wake();
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
                sys::SIGUSR2 => self.on_upgrade_signal(),
                sys::SIGHUP => self.on_reload_signal(),
                other => log_warn!("ignoring signal {other}: not supported yet"),
            }
        }
    }

    fn begin_stop(&mut self, stop: Stop) {
        if self.stop == Some(Stop::Immediate) || self.stop == Some(stop) {
            return;
        }
        self.stop = Some(stop);
        self.on_stop_begun();
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
            // The new master of a binary upgrade is our child too.
            if self.upgrade.reaped(pid, exit) {
                continue;
            }
            self.reports.forget(pid);
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
            log_warn!("worker {index} (pid {pid}) {how}; restarting it in {backoff:?}");
        }
    }

    /// Forks the worker of `index`. Returns `Some(exit code)` in the child
    /// once its worker is done, `None` in the master.
    fn spawn(&mut self, index: usize) -> Option<i32> {
        match sys::fork() {
            Ok(Fork::Parent(pid)) => {
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.pid = Some(pid);
                    slot.started = Instant::now();
                    slot.respawn_at = None;
                }
                None
            }
            Ok(Fork::Child) => Some(self.become_worker(index)),
            Err(e) => {
                log_error!("starting worker {index}: {e}");
                if let Some(slot) = self.slots.get_mut(index) {
                    slot.respawn_at = Some(Instant::now() + MAX_BACKOFF);
                }
                None
            }
        }
    }

    fn become_worker(&mut self, index: usize) -> i32 {
        // Before PR_SET_PDEATHSIG below: a credential change clears it.
        if let Some(account) = self.config.account
            && let Err(e) = crate::privileges::drop_to(account)
        {
            log_error!("worker {index}: dropping privileges: {e}");
            return crate::privileges::EXIT_FATAL;
        }
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
        let Some(site) = self.site.take() else {
            return 1;
        };
        let setup = worker::Setup {
            listeners: std::mem::take(&mut self.listeners),
            site,
            conn: self.config.conn(),
            max_conns: self.config.max_conns,
            access_log: self.access_log.take(),
            slot: index,
            master: self.pid,
            started: self.reports.take_reporter(),
        };
        self.upgrade = Upgrade::Idle;
        worker::run(setup)
    }
}

// Readiness, notifications and the binary upgrade: the master's side of
// the process boundary (modules notify, readiness and upgrade).
impl Master {
    /// Waits up to `timeout_ms` for a signal, a worker's start report or
    /// the new master's notification, or the upgrade's ready deadline.
    fn wait(&self, signals: BorrowedFd<'_>, timeout_ms: i32, now: Instant) -> std::io::Result<()> {
        let mut fds = vec![signals, self.reports.fd()];
        fds.extend(self.upgrade.fd());
        let timeout_ms = match self.upgrade.timeout_ms(now) {
            Some(t) if timeout_ms < 0 => t,
            Some(t) => timeout_ms.min(t),
            None => timeout_ms,
        };
        sys::wait_any_readable(&fds, timeout_ms)
    }

    /// After each wake: collects start reports, says `READY=1` the first
    /// time the pool serves, and moves an upgrade along.
    fn after_wake(&mut self) {
        self.reports.collect();
        if !self.ready && self.stop.is_none() && self.pool_serving() {
            self.ready = true;
            if notify::is_upgrade()
                && let Some(path) = &self.config.pid_file
                && let Err(e) = crate::upgrade::write_pid_file(path)
            {
                log_error!("pid file {}: {e}", path.display());
            }
            log_info!("serving with {} workers", self.slots.len());
            notify::ready();
        }
        if self.upgrade.poll(Instant::now()) {
            self.begin_stop(Stop::Graceful);
        }
    }

    /// Whether the pool serves: every slot has a live worker that
    /// reported it started.
    fn pool_serving(&self) -> bool {
        self.slots
            .iter()
            .all(|s| s.pid.is_some_and(|pid| self.reports.has_started(pid)))
    }

    /// USR2: start the binary on disk as a new master, unless stopping or
    /// not serving yet.
    fn on_upgrade_signal(&mut self) {
        if self.stop.is_some() {
            log_warn!("ignoring USR2: stopping");
        } else if !self.ready {
            log_warn!("ignoring USR2: not serving yet");
        } else {
            self.upgrade.begin(&self.listeners);
        }
    }

    /// HUP: the reload goes between `RELOADING=1` and `READY=1`; before
    /// the first `READY=1` there is nothing to reload yet.
    fn on_reload_signal(&mut self) {
        if !self.ready {
            log_warn!("ignoring HUP: not serving yet");
            return;
        }
        notify::reloading();
        log_warn!("ignoring HUP: reload not supported yet");
        notify::ready();
    }

    /// A stop began: tell the service manager, unless a new master took
    /// over (it is the service now), and give up on a new master that is
    /// not serving yet.
    fn on_stop_begun(&mut self) {
        if !self.upgrade.handed_over() {
            notify::stopping();
        }
        self.upgrade.abort();
    }
}
