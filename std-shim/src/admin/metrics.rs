//! `/metrics`: the scoreboard in the Prometheus text format 0.0.4, `# HELP`
//! and `# TYPE` per family, `txtd_` names, `_total` counters, base units.
//! Counters are the scoreboard's totals, which keep ended workers' counts:
//! they only grow while the master runs (an upgrade's new master resets them).

use std::io::Write;

use super::page::{Health, View};
use crate::scoreboard::{Restart, State};

/// The status classes, in the order of `Counts::responses`.
const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];
/// The worker states a live slot can be in.
const STATES: [State; 4] = [State::Starting, State::Idle, State::Busy, State::Draining];

/// One family's `# HELP` and `# TYPE` lines.
fn family(out: &mut Vec<u8>, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A family with one sample and no labels.
fn single(out: &mut Vec<u8>, name: &str, kind: &str, help: &str, value: u64) {
    family(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

/// Appends the whole exposition to `out`.
pub fn write(out: &mut Vec<u8>, view: &View) {
    let scoreboard = view.scoreboard;
    let totals = scoreboard.totals();
    let master = scoreboard.master().read();

    family(
        out,
        "txtd_http_requests_total",
        "counter",
        "HTTP requests answered, by status class of the response.",
    );
    for (class, count) in CLASSES.iter().zip(totals.responses) {
        let _ = writeln!(out, "txtd_http_requests_total{{class=\"{class}\"}} {count}");
    }
    single(
        out,
        "txtd_http_sent_bytes_total",
        "counter",
        "Bytes of responses (heads and bodies) handed to the kernel.",
        totals.bytes_sent,
    );
    single(
        out,
        "txtd_http_request_timeouts_total",
        "counter",
        "408 responses: a request head too slow, or cut short to free a slot.",
        totals.timeouts_408,
    );
    single(
        out,
        "txtd_slot_evictions_total",
        "counter",
        "Connections closed to free a connection slot for a new one.",
        totals.evictions,
    );

    let mut by_state = [0u64; STATES.len()];
    let mut connections = 0u64;
    for slot in scoreboard.slots() {
        let slot = slot.read();
        if let Some(i) = STATES.iter().position(|s| *s == slot.state) {
            if let Some(n) = by_state.get_mut(i) {
                *n += 1;
            }
            connections = connections.saturating_add(slot.connections);
        }
    }
    single(
        out,
        "txtd_open_connections",
        "gauge",
        "Connections open on the site's listeners now.",
        connections,
    );
    family(out, "txtd_workers", "gauge", "Worker processes, by state.");
    for (state, count) in STATES.iter().zip(by_state) {
        let _ = writeln!(out, "txtd_workers{{state=\"{}\"}} {count}", state.as_str());
    }
    single(
        out,
        "txtd_configured_workers",
        "gauge",
        "Workers per generation, as configured.",
        master.workers,
    );
    single(
        out,
        "txtd_generation",
        "gauge",
        "The generation of workers in service (1 at start, one more per reload).",
        master.generation,
    );

    family(
        out,
        "txtd_worker_restarts_total",
        "counter",
        "Workers replaced by the master, by cause: exited, killed by a signal, or killed by the watchdog.",
    );
    for (cause, count) in [
        (Restart::Exit, master.restarts_exit),
        (Restart::Signal, master.restarts_signal),
        (Restart::Watchdog, master.restarts_watchdog),
    ] {
        let cause = match cause {
            Restart::Exit => "exit",
            Restart::Signal => "signal",
            Restart::Watchdog => "watchdog",
        };
        let _ = writeln!(
            out,
            "txtd_worker_restarts_total{{cause=\"{cause}\"}} {count}"
        );
    }
    single(
        out,
        "txtd_reloads_total",
        "counter",
        "Reloads (HUP) that put a new generation in service.",
        master.reloads,
    );
    single(
        out,
        "txtd_reload_failures_total",
        "counter",
        "Reloads that failed; the generation before kept serving.",
        master.reload_failures,
    );
    single(
        out,
        "txtd_upgrades_total",
        "counter",
        "Binary upgrades (USR2) this service went through, counted on by each new master.",
        master.upgrades,
    );
    single(
        out,
        "txtd_healthy",
        "gauge",
        "1 while /healthz answers 200, 0 while it answers 503.",
        u64::from(Health::of(&master) == Health::Serving),
    );
    single(
        out,
        "txtd_start_time_seconds",
        "gauge",
        "When the master started, in seconds since the Unix epoch.",
        master.started_unix_secs,
    );
    family(
        out,
        "txtd_build_info",
        "gauge",
        "Always 1; the version of the txtd binary in its label.",
    );
    let _ = writeln!(
        out,
        "txtd_build_info{{version=\"{}\"}} 1",
        env!("CARGO_PKG_VERSION")
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    #[test]
    fn every_sample_belongs_to_a_family_with_help_and_type() {
        let scoreboard = Scoreboard::new(2).unwrap();
        let slot = scoreboard.slot(0).unwrap();
        slot.claim(1, 0);
        slot.beat(10, State::Busy, 3);
        slot.add_response(404);
        let view = View {
            scoreboard,
            slot: 0,
            now_ms: 10,
            unix_secs: 0,
        };
        let mut out = Vec::new();
        write(&mut out, &view);
        let text = String::from_utf8(out).unwrap();
        let mut typed = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# TYPE ") {
                let (name, kind) = rest.split_once(' ').unwrap();
                assert!(name.starts_with("txtd_"), "{line}");
                assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
                typed.push(name.to_owned());
            } else if !line.starts_with('#') {
                let name = line.split(['{', ' ']).next().unwrap();
                assert_eq!(typed.last().map(String::as_str), Some(name), "{line}");
            }
        }
        assert!(text.contains("\ntxtd_http_requests_total{class=\"4xx\"} 1\n"));
        assert!(text.contains("\ntxtd_workers{state=\"busy\"} 1\n"));
        assert!(text.contains("\ntxtd_open_connections 3\n"));
    }
}
