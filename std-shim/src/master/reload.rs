//! Reload (HUP): the configuration is read again from the same command
//! line and file; if it is valid, a new generation of workers starts in
//! free scoreboard slots beside the serving one, and once every new worker
//! is serving the old generation retires (SIGQUIT: stop accepting, finish
//! what is in flight, `Connection: close` on a keep-alive connection's next
//! response, idle connections closed), killed only past its drain timeout.
//! The listening sockets stay open throughout: no connection is refused.
//!
//! A HUP that arrives while a reload is starting, or while the previous
//! old generation still retires (its slots are not free yet), is queued;
//! any number of such HUPs make one more reload, which reads the
//! configuration as it is when it starts. Listen addresses and the backlog
//! belong to the sockets, which a reload keeps: a change is logged and
//! needs a restart or a binary upgrade (USR2).

use std::time::{Duration, Instant};

use super::{Master, Slot};
use crate::access_log::AccessLog;
use crate::config::Config;
use crate::site::FsSite;
use crate::sys;

/// How long a new generation has to be serving before the reload is
/// abandoned and the old generation keeps serving.
const RELOAD_TIMEOUT: Duration = Duration::from_secs(30);

/// A reload whose new generation is starting.
pub(super) struct Reload {
    /// The new generation's number.
    pub(super) generation: u64,
    /// Its configuration.
    pub(super) config: Config,
    /// Its access log, opened by the master for its workers to inherit.
    pub(super) access_log: Option<AccessLog>,
    /// When it began.
    started: Instant,
}

impl Master {
    /// The configuration the workers of `generation` run.
    pub(super) fn config_of(&self, generation: u64) -> &Config {
        match &self.reload {
            Some(r) if r.generation == generation => &r.config,
            _ => &self.config,
        }
    }

    /// SIGHUP: reloads now, or queues the reload if one cannot start yet.
    pub(super) fn on_hup(&mut self) {
        if self.stop.is_some() {
            log_info!("ignoring HUP: stopping");
            return;
        }
        if self.reload_queued {
            log_info!("reload already queued");
        } else if self.reload.is_some() || self.slots.iter().any(|s| s.retiring) {
            log_info!("reload queued until the previous one is done");
            self.reload_queued = true;
        } else {
            self.start_reload();
        }
    }

    /// Reads and checks the configuration and starts the new generation;
    /// on any error the running generation keeps serving.
    fn start_reload(&mut self) {
        self.reload_queued = false;
        let generation = self.generation.saturating_add(1);
        log_info!("reloading: starting generation {generation}");
        // A service manager hears READY=1 again however the reload ends.
        crate::notify::reloading();
        let config = match self.prepare_reload() {
            Ok(config) => config,
            Err(e) => {
                log_error!(
                    "reload failed: {e}; generation {} keeps serving",
                    self.generation
                );
                self.scoreboard.master().add_reload_failure();
                crate::notify::ready();
                return;
            }
        };
        super::warn_if_few_descriptors(config.max_conns, self.listeners.len());
        let access_log = match &config.access_log {
            Some(path) => match AccessLog::open(path, config.access_log_format) {
                Ok(log) => Some(log),
                Err(e) => {
                    log_error!(
                        "reload failed: access log {}: {e}; generation {} keeps serving",
                        path.display(),
                        self.generation
                    );
                    self.scoreboard.master().add_reload_failure();
                    crate::notify::ready();
                    return;
                }
            },
            None => None,
        };
        if config.error_log != self.config.error_log
            && let Some(path) = &config.error_log
        {
            // The new workers inherit the master's error log at the fork.
            if let Err(e) = crate::error_log::open(path) {
                log_error!(
                    "reload: error log {}: {e}; keeping the old one",
                    path.display()
                );
            }
        }
        let now = Instant::now();
        let mut wanted = config.workers;
        for slot in self.slots.iter_mut().filter(|s| s.is_free()) {
            if wanted == 0 {
                break;
            }
            *slot = Slot {
                generation,
                respawn_at: Some(now),
                ..Slot::free(now)
            };
            wanted -= 1;
        }
        self.reload = Some(Reload {
            generation,
            config,
            access_log,
            started: now,
        });
    }

    /// The new configuration, checked as at start and against what a
    /// reload can change.
    fn prepare_reload(&self) -> Result<Config, String> {
        let mut config = Config::reload()?;
        FsSite::open(&config.root).map_err(|e| format!("root {}: {e}", config.root.display()))?;
        // Two generations share the scoreboard: each may have half of it.
        let most = self.slots.len() / 2;
        if config.workers > most {
            return Err(format!(
                "workers {} needs a restart: the scoreboard holds two generations of at most {most}",
                config.workers
            ));
        }
        let free = self.slots.iter().filter(|s| s.is_free()).count();
        if config.workers > free {
            return Err(format!(
                "{} workers wanted, {free} scoreboard slots free",
                config.workers
            ));
        }
        let mut listen = config.listen.clone();
        let mut old = self.config.listen.clone();
        listen.sort_unstable();
        old.sort_unstable();
        if listen != old || config.backlog != self.config.backlog {
            log_warn!(
                "reload: a changed --listen or --backlog needs a restart or a binary upgrade (USR2); keeping the listening sockets"
            );
        }
        // The sockets are the old ones; so is what they were made with.
        config.listen.clone_from(&self.config.listen);
        config.backlog = self.config.backlog;
        if config.admin_listen != self.config.admin_listen {
            log_warn!(
                "reload: a changed --admin-listen needs a restart or a binary upgrade (USR2); keeping the admin socket"
            );
            config.admin_listen = self.config.admin_listen;
        }
        if config.pid_file != self.config.pid_file {
            log_warn!("reload: a changed --pid-file needs a restart; keeping the old one");
            config.pid_file.clone_from(&self.config.pid_file);
        }
        Ok(config)
    }

    /// Puts the new generation in service once each of its workers is
    /// serving, or gives the reload up after [`RELOAD_TIMEOUT`]; starts a
    /// queued reload once the previous old generation is gone.
    pub(super) fn advance_reload(&mut self, now: Instant) {
        let Some(reload) = &self.reload else {
            if self.reload_queued && !self.slots.iter().any(|s| s.retiring) {
                self.start_reload();
            }
            return;
        };
        let generation = reload.generation;
        let ready = self
            .slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.generation == generation && !s.retiring)
            .all(|(index, s)| {
                s.pid.is_some()
                    && self
                        .scoreboard
                        .slot(index)
                        .is_some_and(|c| c.state().is_serving())
            });
        if ready {
            self.commit_reload();
        } else if now.duration_since(reload.started) > RELOAD_TIMEOUT {
            self.fail_reload(&format!(
                "generation {generation} not serving after {RELOAD_TIMEOUT:?}"
            ));
        }
    }

    /// The new generation serves: the old one retires.
    fn commit_reload(&mut self) {
        let Some(reload) = self.reload.take() else {
            return;
        };
        let old = self.generation;
        let deadline = Instant::now() + self.config.drain_timeout;
        for (index, slot) in self.slots.iter_mut().enumerate() {
            if slot.generation != old || slot.retiring {
                continue;
            }
            match slot.pid {
                Some(pid) => {
                    slot.retiring = true;
                    slot.retire_by = Some(deadline);
                    // QUIT: the worker's graceful stop.
                    if let Err(e) = sys::kill(pid, sys::SIGQUIT) {
                        log_warn!("signal {} to worker {index} (pid {pid}): {e}", sys::SIGQUIT);
                    }
                }
                // Waiting for a respawn: nothing to stop.
                None => *slot = Slot::free(slot.started),
            }
        }
        self.generation = reload.generation;
        self.config = reload.config;
        self.access_log = reload.access_log;
        let master = self.scoreboard.master();
        master.set_generation(self.generation, self.config.workers);
        master.add_reload();
        log_info!(
            "generation {} serving ({} workers); generation {old} retiring",
            self.generation,
            self.config.workers
        );
        crate::notify::ready();
    }

    /// Gives a reload up: its new workers are killed and never respawned,
    /// and the old generation keeps serving.
    pub(super) fn fail_reload(&mut self, why: &str) {
        let Some(reload) = self.reload.take() else {
            return;
        };
        log_error!(
            "reload failed: {why}; generation {} keeps serving",
            self.generation
        );
        self.scoreboard.master().add_reload_failure();
        crate::notify::ready();
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.generation == reload.generation)
        {
            match slot.pid {
                Some(pid) => {
                    slot.retiring = true;
                    let _ = sys::kill(pid, sys::SIGKILL);
                }
                None => *slot = Slot::free(slot.started),
            }
        }
    }

    /// SIGKILLs a retiring worker still running past its drain deadline.
    pub(super) fn retire_overdue(&mut self, now: Instant) {
        for (index, slot) in self.slots.iter_mut().enumerate() {
            let Some(pid) = slot.pid else {
                continue;
            };
            if slot.retire_by.is_some_and(|deadline| deadline <= now) {
                log_warn!(
                    "worker {index} (pid {pid}) still retiring after the drain timeout; killing it"
                );
                let _ = sys::kill(pid, sys::SIGKILL);
                // Killed once: the reap frees the slot.
                slot.retire_by = None;
            }
        }
    }
}
