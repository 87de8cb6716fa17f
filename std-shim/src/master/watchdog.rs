//! The watchdog: a worker stamps its scoreboard heartbeat at least once a
//! second; the master, which wakes at least as often, SIGKILLs a worker
//! whose heartbeat is older than `--watchdog-timeout` (a worker stopped
//! with SIGSTOP, or stuck in a loop). The reap then replaces it like any
//! dead worker and counts a watchdog restart. A worker still starting has
//! the heartbeat the master stamped at its fork, so a start that hangs is
//! timed the same way.

use std::time::Duration;

use super::Master;
use crate::sys;

impl Master {
    /// Kills every worker whose heartbeat is older than its generation's
    /// watchdog timeout.
    pub(super) fn watchdog(&mut self) {
        if self.killed {
            return;
        }
        let now_ms = sys::monotonic_ms();
        for index in 0..self.slots.len() {
            let Some(slot) = self.slots.get(index) else {
                continue;
            };
            let Some(pid) = slot.pid.filter(|_| !slot.watchdog_killed) else {
                continue;
            };
            let timeout = self.config_of(slot.generation).watchdog_timeout;
            let Some(counters) = self.scoreboard.slot(index) else {
                continue;
            };
            // The worker may have stamped a time a little after ours.
            let age = Duration::from_millis(now_ms.saturating_sub(counters.heartbeat_ms()));
            if age <= timeout {
                continue;
            }
            log_error!(
                "worker {index} (pid {pid}) sent no heartbeat for {}ms (watchdog timeout {timeout:?}); killing it",
                age.as_millis()
            );
            // SIGKILL works on a stopped process too, and cannot be caught
            // by a worker stuck in a loop.
            if let Err(e) = sys::kill(pid, sys::SIGKILL) {
                log_warn!("signal {} to worker {pid}: {e}", sys::SIGKILL);
            }
            if let Some(slot) = self.slots.get_mut(index) {
                slot.watchdog_killed = true;
            }
        }
    }
}
