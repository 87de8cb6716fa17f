//! The master process: makes the listening sockets, forks a fixed array of
//! workers, reaps them with `waitpid` when SIGCHLD arrives through a
//! signalfd, and puts a new worker in the slot of one that died. It never
//! serves a request. TERM and QUIT stop gracefully, INT at once; the master
//! exits only after every worker is reaped. The [`watchdog`] replaces
//! hung workers; HUP [`reload`]s with a new generation of workers. Its side
//! of the process boundary (the last `impl` block) says `READY=1` once
//! every worker serves, and starts a binary upgrade on USR2 (modules
//! notify, upgrade).

pub mod reload;
pub mod watchdog;

use std::net::SocketAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use crate::access_log::AccessLog;
use crate::config::Config;
use crate::notify;
use crate::scoreboard::{Restart, Scoreboard};
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
/// The longest the master sleeps: it checks the heartbeats this often.
const TICK_MS: i32 = 1000;

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

/// One entry of the fixed worker array (two generations' worth). A slot
/// with no pid and no respawn time is free.
struct Slot {
    pid: Option<Pid>,
    started: Instant,
    quick_deaths: u32,
    respawn_at: Option<Instant>,
    /// The generation its worker belongs to (0: free).
    generation: u64,
    /// Its worker belongs to a retired generation (or a failed reload's):
    /// it was told to quit and is never respawned.
    retiring: bool,
    /// When a retiring worker is killed if it is still running.
    retire_by: Option<Instant>,
    /// The watchdog killed its worker: the restart counts as a watchdog one.
    watchdog_killed: bool,
}

impl Slot {
    fn free(now: Instant) -> Self {
        Self {
            pid: None,
            started: now,
            quick_deaths: 0,
            respawn_at: None,
            generation: 0,
            retiring: false,
            retire_by: None,
            watchdog_killed: false,
        }
    }

    fn is_free(&self) -> bool {
        self.pid.is_none() && self.respawn_at.is_none()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Stop {
    Graceful,
    Immediate,
}

struct Master {
    config: Config,
    listeners: Vec<OwnedFd>,
    /// The admin interface's listening socket (`--admin-listen`).
    admin: Option<OwnedFd>,
    access_log: Option<AccessLog>,
    signals: Option<OwnedFd>,
    slots: Vec<Slot>,
    pid: Pid,
    stop: Option<Stop>,
    drain_deadline: Option<Instant>,
    killed: bool,
    /// Shared with every worker; made before the first fork.
    scoreboard: Scoreboard,
    /// The generation serving (1 at start, one more per reload).
    generation: u64,
    /// A reload whose new generation is starting.
    reload: Option<reload::Reload>,
    /// A HUP arrived while a reload could not start yet.
    reload_queued: bool,
    /// A worker could not serve: stop, then exit 1.
    fatal: bool,
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
    // Checked here for a clear error at start; each worker opens it again.
    FsSite::open(&config.root).map_err(|e| format!("root {}: {e}", config.root.display()))?;
    if config.check_config {
        log_info!("configuration ok");
        return Ok(0);
    }
    let access_log = match &config.access_log {
        Some(path) => Some(
            AccessLog::open(path, config.access_log_format)
                .map_err(|e| format!("access log {}: {e}", path.display()))?,
        ),
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
    let crate::activation::Inherited {
        listeners: inherited,
        admin,
    } = inherited.unwrap_or_default();
    for fd in inherited {
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
    let admin = crate::admin::listener(admin, config.admin_listen, config.backlog)?;
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
    // Two generations' worth of slots: a reload runs the old and the new
    // side by side.
    let scoreboard = Scoreboard::new(config.workers.saturating_mul(2))
        .map_err(|e| format!("scoreboard: {e}"))?;
    let unix_secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    scoreboard.master().set_master(sys::getpid(), unix_secs);
    scoreboard
        .master()
        .set_upgrades(crate::upgrade::inherited_upgrades());
    if notify::is_upgrade() {
        // The service serves already, through the old master: our workers
        // answer /healthz with 200 as they start, not 503 `starting`.
        scoreboard.master().set_ready();
    }
    scoreboard.master().set_generation(1, config.workers);
    let now = Instant::now();
    let slots = (0..scoreboard.len())
        .map(|index| Slot {
            generation: if index < config.workers { 1 } else { 0 },
            respawn_at: (index < config.workers).then_some(now),
            ..Slot::free(now)
        })
        .collect();
    let mut master = Master {
        config,
        listeners,
        admin,
        access_log,
        signals: Some(signals),
        slots,
        pid: sys::getpid(),
        stop: None,
        drain_deadline: None,
        killed: false,
        scoreboard,
        generation: 1,
        reload: None,
        reload_queued: false,
        fatal: false,
        ready: false,
        upgrade: Upgrade::Idle,
    };
    Ok(master.run())
}

/// Descriptors a worker holds besides its connections: epoll, signalfd,
/// the site root, files being sent, logs and a margin.
const WORKER_SPARE_FDS: u64 = 16;

/// Warns when `RLIMIT_NOFILE` is too low for a worker to fill its slots
/// and its page cache's memory files: `accept4` would then fail with
/// EMFILE before the slots run out.
fn warn_if_few_descriptors(max_conns: usize, listeners: usize) {
    let need = u64::try_from(
        max_conns
            .saturating_add(listeners)
            .saturating_add(crate::site::MAX_FILE_PAGES),
    )
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
            self.watchdog();
            if self.stop.is_none() {
                self.advance_reload(now);
            }
            self.retire_overdue(now);
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
                return i32::from(self.fatal);
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

    /// Milliseconds until the next respawn or drain deadline, at most
    /// [`TICK_MS`].
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
        // Bounded by the tick: the watchdog and a reload in progress look
        // at the scoreboard at least once a second.
        next.map_or(TICK_MS, |t| {
            let ms = t
                .saturating_duration_since(now)
                .as_millis()
                .saturating_add(1);
            i32::try_from(ms).unwrap_or(i32::MAX).min(TICK_MS)
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
                sys::SIGHUP => self.on_reload_signal(),
                sys::SIGUSR1 => {
                    // After logrotate moved the files: reopen ours, then the workers'.
                    match crate::error_log::reopen() {
                        Ok(()) => log_info!("reopened the log files"),
                        Err(e) => log_error!("reopening the error log: {e}"),
                    }
                    self.signal_all(sys::SIGUSR1);
                }
                sys::SIGUSR2 => self.on_upgrade_signal(),
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
        if self.upgrade.handed_over() {
            // The service goes on in the new master: /healthz stays 200.
            self.scoreboard.master().set_handed_over();
        } else {
            self.scoreboard.master().set_stopping();
        }
        // New connections are refused once the workers close theirs too.
        self.listeners.clear();
        self.admin = None;
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
            self.scoreboard.release(index);
            let how = match exit {
                Exit::Code(code) => format!("exited with code {code}"),
                Exit::Signal(signal) => format!("was killed by signal {signal}"),
            };
            let generation = slot.generation;
            let watchdog_killed = std::mem::take(&mut slot.watchdog_killed);
            if slot.retiring {
                // Its generation was replaced: the slot is free for the next.
                *slot = Slot::free(now);
                log_info!("worker {index} (pid {pid}) of generation {generation} {how}; retired");
                continue;
            }
            if stopping {
                log_info!("worker {index} (pid {pid}) {how}");
                continue;
            }
            if exit == Exit::Code(worker::EXIT_CANNOT_SERVE) {
                // Another worker would fail the same way: no respawn.
                *slot = Slot::free(now);
                self.cannot_serve(index, pid, generation);
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
                _ if watchdog_killed => Restart::Watchdog,
                Exit::Code(_) => Restart::Exit,
                Exit::Signal(_) => Restart::Signal,
            });
            log_warn!("worker {index} (pid {pid}) {how}; restarting it in {backoff:?}");
        }
    }

    /// A worker of `generation` exited with [`worker::EXIT_CANNOT_SERVE`]:
    /// a reload's new generation fails that reload; the serving one stops
    /// txtd (exit code 1) rather than fork worker after worker.
    fn cannot_serve(&mut self, index: usize, pid: Pid, generation: u64) {
        let why = format!(
            "worker {index} (pid {pid}) cannot serve (exit code {})",
            worker::EXIT_CANNOT_SERVE
        );
        if self.reload.as_ref().map(|r| r.generation) == Some(generation) {
            self.fail_reload(&why);
        } else if !self.fatal {
            log_error!("{why}; stopping txtd (exit code 1)");
            self.fatal = true;
            self.begin_stop(Stop::Graceful);
        }
    }

    /// Forks the worker of `index`. Returns `Some(exit code)` in the child
    /// once its worker is done, `None` in the master.
    fn spawn(&mut self, index: usize) -> Option<i32> {
        let counters = self.scoreboard.slot(index);
        let generation = self.slots.get(index).map_or(0, |s| s.generation);
        if let Some(counters) = counters {
            // Before the fork: the watchdog times the start from here.
            counters.claim(generation, sys::monotonic_ms());
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
                    slot.watchdog_killed = false;
                }
                None
            }
            Ok(Fork::Child) => Some(self.become_worker(index)),
            Err(e) => {
                self.scoreboard.release(index);
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
            return worker::EXIT_CANNOT_SERVE;
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
        // A reload's new generation runs the new configuration.
        let generation = self.slots.get(index).map_or(0, |s| s.generation);
        // A new-generation worker closes the old access log, not inherits it.
        let serving_log = self.access_log.take();
        let (config, access_log) = match self.reload.as_mut() {
            Some(r) if r.generation == generation => (&r.config, r.access_log.take()),
            _ => (&self.config, serving_log),
        };
        let setup = worker::Setup {
            listeners: std::mem::take(&mut self.listeners),
            admin: self.admin.take(),
            root: config.root.clone(),
            conn: config.conn(),
            page_cache_valid: config.page_cache_valid,
            max_conns: config.max_conns,
            access_log,
            slot: index,
            master: self.pid,
            scoreboard: self.scoreboard,
        };
        self.upgrade = Upgrade::Idle;
        worker::run(setup)
    }
}

// Readiness, notifications and the binary upgrade: the master's side of
// the process boundary (modules notify and upgrade).
impl Master {
    /// Waits up to `timeout_ms` for a signal or the new master's
    /// notification, or until the upgrade's ready deadline.
    fn wait(&self, signals: BorrowedFd<'_>, timeout_ms: i32, now: Instant) -> std::io::Result<()> {
        let mut fds = vec![signals];
        fds.extend(self.upgrade.fd());
        let timeout_ms = match self.upgrade.timeout_ms(now) {
            Some(t) if timeout_ms < 0 => t,
            Some(t) => timeout_ms.min(t),
            None => timeout_ms,
        };
        sys::wait_any_readable(&fds, timeout_ms)
    }

    /// After each wake: notes when the pool first serves, and moves an
    /// upgrade along.
    fn after_wake(&mut self) {
        self.note_ready();
        if self.upgrade.poll(Instant::now()) {
            self.begin_stop(Stop::Graceful);
        }
    }

    /// The first time the pool serves: the pid file (for a new master
    /// started by an upgrade) and `READY=1`. Returns whether it serves.
    fn note_ready(&mut self) -> bool {
        if !self.ready && self.stop.is_none() && self.pool_serving() {
            self.ready = true;
            if notify::is_upgrade()
                && let Some(path) = &self.config.pid_file
                && let Err(e) = crate::upgrade::write_pid_file(path)
            {
                log_error!("pid file {}: {e}", path.display());
            }
            log_info!("serving with {} workers", self.config.workers);
            let master = self.scoreboard.master();
            if notify::is_upgrade() {
                master.set_upgrades(master.read().upgrades.saturating_add(1));
            }
            master.set_ready();
            notify::ready();
        }
        self.ready
    }

    /// Whether the pool serves: every slot of the serving generation has a
    /// live worker that the scoreboard shows serving.
    fn pool_serving(&self) -> bool {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.generation == self.generation && !s.retiring)
            .all(|(index, s)| {
                s.pid.is_some()
                    && self
                        .scoreboard
                        .slot(index)
                        .is_some_and(|c| c.state().is_serving())
            })
    }

    /// USR2: start the binary on disk as a new master, unless stopping or
    /// not serving yet.
    fn on_upgrade_signal(&mut self) {
        if self.stop.is_some() {
            log_warn!("ignoring USR2: stopping");
        } else if !self.note_ready() {
            log_warn!("ignoring USR2: not serving yet");
        } else {
            let upgrades = self.scoreboard.master().read().upgrades;
            self.upgrade
                .begin(&self.listeners, self.admin.as_ref(), upgrades);
        }
    }

    /// HUP: a reload ([`Master::on_hup`]), once the pool served: before
    /// the first `READY=1` there is nothing to reload yet (and a `READY=1`
    /// ending the reload would come too early).
    fn on_reload_signal(&mut self) {
        if self.note_ready() {
            self.on_hup();
        } else {
            log_warn!("ignoring HUP: not serving yet");
        }
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
