//! `/status`: the scoreboard as a page in the spirit of Apache's
//! `server-status`, one table row per worker slot (pid, generation, state,
//! connections, requests, last heartbeat age), and `/status?auto`, the
//! same facts as `Key: value` lines for scripts. Only numbers and fixed
//! words reach the page: nothing from a request, so nothing to escape.

use std::io::Write;

use super::page::{Health, View};
use crate::scoreboard::{SlotSnapshot, State};

/// Apache's scoreboard key: one character per slot.
fn key(state: State) -> char {
    match state {
        State::Empty => '.',
        State::Starting => 'S',
        State::Idle => '_',
        State::Busy => 'W',
        State::Draining => 'G',
    }
}

/// The facts both forms show.
struct Summary {
    health: Health,
    uptime_secs: u64,
    requests: u64,
    bytes_sent: u64,
    by_state: [u64; 5],
    connections: u64,
}

fn summary(view: &View) -> Summary {
    let master = view.scoreboard.master().read();
    let totals = view.scoreboard.totals();
    let mut by_state = [0u64; 5];
    let mut connections = 0u64;
    for slot in view.scoreboard.slots() {
        let slot = slot.read();
        let i = match slot.state {
            State::Empty => 0,
            State::Starting => 1,
            State::Idle => 2,
            State::Busy => 3,
            State::Draining => 4,
        };
        if let Some(n) = by_state.get_mut(i) {
            *n += 1;
        }
        connections = connections.saturating_add(slot.connections);
    }
    Summary {
        health: Health::of(&master),
        uptime_secs: view.unix_secs.saturating_sub(master.started_unix_secs),
        requests: totals.requests,
        bytes_sent: totals.bytes_sent,
        by_state,
        connections,
    }
}

/// Milliseconds since the slot's last heartbeat.
fn heartbeat_age_ms(view: &View, slot: &SlotSnapshot) -> u64 {
    view.now_ms.saturating_sub(slot.heartbeat_ms)
}

/// Appends `/status?auto` to `out`.
pub fn write_auto(out: &mut Vec<u8>, view: &View) {
    let master = view.scoreboard.master().read();
    let s = summary(view);
    let [_, starting, idle, busy, draining] = s.by_state;
    let _ = write!(
        out,
        "ServerVersion: txtd/{}\nMasterPID: {}\nAnsweringPID: {}\nAnsweringSlot: {}\nHealth: {}\n\
Uptime: {}\nGeneration: {}\nConfiguredWorkers: {}\nTotal Accesses: {}\n\
Total kBytes: {}\nTotal Bytes: {}\nBusyWorkers: {busy}\nIdleWorkers: {idle}\n\
StartingWorkers: {starting}\nDrainingWorkers: {draining}\nOpenConnections: {}\n\
RestartsExit: {}\nRestartsSignal: {}\nRestartsWatchdog: {}\nReloads: {}\n\
ReloadFailures: {}\nUpgrades: {}\nScoreboard: ",
        env!("CARGO_PKG_VERSION"),
        master.master_pid,
        crate::sys::getpid(),
        view.slot,
        s.health.as_str(),
        s.uptime_secs,
        master.generation,
        master.workers,
        s.requests,
        s.bytes_sent / 1024,
        s.bytes_sent,
        s.connections,
        master.restarts_exit,
        master.restarts_signal,
        master.restarts_watchdog,
        master.reloads,
        master.reload_failures,
        master.upgrades,
    );
    for slot in view.scoreboard.slots() {
        let _ = write!(out, "{}", key(slot.state()));
    }
    out.push(b'\n');
    for (index, slot) in view.scoreboard.slots().enumerate() {
        let slot = slot.read();
        if slot.state == State::Empty {
            continue;
        }
        let _ = writeln!(
            out,
            "Slot{index}: pid={} generation={} state={} connections={} requests={} bytes={} heartbeat_age_ms={}",
            slot.pid,
            slot.generation,
            slot.state.as_str(),
            slot.connections,
            slot.counts.requests,
            slot.counts.bytes_sent,
            heartbeat_age_ms(view, &slot),
        );
    }
}

/// Appends the `/status` HTML page to `out`.
pub fn write_html(out: &mut Vec<u8>, view: &View) {
    let master = view.scoreboard.master().read();
    let s = summary(view);
    let [_, starting, idle, busy, draining] = s.by_state;
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
<title>txtd status</title>\n<style>\
body{{font-family:sans-serif}}table{{border-collapse:collapse}}\
td,th{{border:1px solid #999;padding:2px 8px;text-align:right}}\
</style>\n</head>\n<body>\n<h1>txtd status</h1>\n<dl>\n\
<dt>Version</dt><dd>txtd/{}</dd>\n<dt>Master pid</dt><dd>{}</dd>\n\
<dt>Answered by pid</dt><dd>{}</dd>\n<dt>Health</dt><dd>{}</dd>\n\
<dt>Uptime</dt><dd>{} s</dd>\n<dt>Generation</dt><dd>{}</dd>\n\
<dt>Workers</dt><dd>{} configured: {busy} busy, {idle} idle, {starting} starting, {draining} draining</dd>\n\
<dt>Requests</dt><dd>{}</dd>\n<dt>Bytes sent</dt><dd>{}</dd>\n\
<dt>Open connections</dt><dd>{}</dd>\n\
<dt>Restarts</dt><dd>{} exit, {} signal, {} watchdog</dd>\n\
<dt>Reloads</dt><dd>{} ({} failed)</dd>\n<dt>Upgrades</dt><dd>{}</dd>\n</dl>\n\
<p>Scoreboard: <code>",
        env!("CARGO_PKG_VERSION"),
        master.master_pid,
        crate::sys::getpid(),
        s.health.as_str(),
        s.uptime_secs,
        master.generation,
        master.workers,
        s.requests,
        s.bytes_sent,
        s.connections,
        master.restarts_exit,
        master.restarts_signal,
        master.restarts_watchdog,
        master.reloads,
        master.reload_failures,
        master.upgrades,
    );
    for slot in view.scoreboard.slots() {
        let _ = write!(out, "{}", key(slot.state()));
    }
    out.extend_from_slice(
        b"</code> (<code>_</code> idle, <code>W</code> busy, <code>S</code> starting, \
<code>G</code> draining, <code>.</code> empty)</p>\n<table>\n<thead><tr><th>slot</th>\
<th>pid</th><th>generation</th><th>state</th><th>connections</th><th>requests</th>\
<th>bytes sent</th><th>heartbeat age (ms)</th></tr></thead>\n<tbody>\n",
    );
    for (index, slot) in view.scoreboard.slots().enumerate() {
        let slot = slot.read();
        if slot.state == State::Empty {
            let _ = writeln!(
                out,
                "<tr><td>{index}</td><td>-</td><td>-</td><td>empty</td><td>-</td><td>-</td><td>-</td><td>-</td></tr>"
            );
            continue;
        }
        let _ = writeln!(
            out,
            "<tr><td>{index}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            slot.pid,
            slot.generation,
            slot.state.as_str(),
            slot.connections,
            slot.counts.requests,
            slot.counts.bytes_sent,
            heartbeat_age_ms(view, &slot),
        );
    }
    out.extend_from_slice(b"</tbody>\n</table>\n</body>\n</html>\n");
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scoreboard::Scoreboard;

    #[test]
    fn both_forms_show_each_live_slot() {
        let scoreboard = Scoreboard::new(3).unwrap();
        let slot = scoreboard.slot(1).unwrap();
        slot.claim(2, 100);
        slot.set_pid(4242);
        slot.beat(400, State::Busy, 2);
        slot.add_response(200);
        let view = View {
            scoreboard,
            slot: 1,
            now_ms: 1000,
            unix_secs: 50,
        };
        let mut auto = Vec::new();
        write_auto(&mut auto, &view);
        let auto = String::from_utf8(auto).unwrap();
        assert!(auto.contains("\nScoreboard: .W.\n"), "{auto}");
        assert!(auto.contains(
            "\nSlot1: pid=4242 generation=2 state=busy connections=2 requests=1 bytes=0 heartbeat_age_ms=600\n"
        ));
        assert!(
            auto.contains("\nBusyWorkers: 1\nIdleWorkers: 0\n"),
            "{auto}"
        );
        let mut html = Vec::new();
        write_html(&mut html, &view);
        let html = String::from_utf8(html).unwrap();
        assert!(html.contains("<tr><td>1</td><td>4242</td><td>2</td><td>busy</td><td>2</td><td>1</td><td>0</td><td>600</td></tr>"));
        assert_eq!(html.matches("<tr><td>").count(), 3);
    }
}
