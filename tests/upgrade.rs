//! Proof 4 of the high-availability issue, binary upgrade (USR2): under
//! load, a new master started from the binary now on disk takes over the
//! listening sockets and the pid file, and the old master drains and exits
//! without a failed request; a new binary that exits at once or never
//! serves leaves the old master serving; under a (fake) service manager
//! the old master names the new one with MAINPID=. Each test runs a copy of txtd
//! from a scratch directory so it can replace the file, and ends every
//! process it started, the new master included, by pid.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests fail loudly"
)]

mod common;

use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::load::Load;
use common::{Scratch, Server, is_alive, sample_site, signal_pid};

/// The bound for a step that involves starting a whole new master on a
/// busy machine: more than the upgrade's own 10 s ready timeout.
const UPGRADE_WAIT: Duration = Duration::from_secs(30);

/// Kills a process the test started indirectly (the new master) on drop,
/// in case the test failed before it stopped it.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if is_alive(self.0) {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// Copies `from` to `to` with cp(1): a file this multi-threaded test
/// process opened for writing could be inherited, still open, by a child
/// another test thread forks, and executing it would then fail with
/// ETXTBSY.
fn copy(from: &Path, to: &Path) {
    let status = Command::new("cp").arg(from).arg(to).status().unwrap();
    assert!(status.success(), "cp {} {}", from.display(), to.display());
}

/// Copies the txtd binary into `dir` and returns its path there.
fn copy_binary(dir: &Path) -> PathBuf {
    let path = dir.join("txtd");
    copy(Path::new(env!("CARGO_BIN_EXE_txtd")), &path);
    path
}

/// A shell script `text` in `dir`, to replace the binary with.
fn script(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("script.sh");
    std::fs::write(&path, text).unwrap();
    path
}

/// Replaces the file at `path` by renaming a copy of `source` over it
/// (executable), as a package manager does: the running master's
/// /proc/self/exe then reads "PATH (deleted)".
fn replace_by_rename(path: &Path, source: &Path) {
    let new = path.with_extension("new");
    copy(source, &new);
    std::fs::set_permissions(&new, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::rename(&new, path).unwrap();
}

/// Waits (bounded by `limit`) until the server's stderr holds `text`;
/// returns the stderr.
fn wait_for_log(server: &Server, text: &str, limit: Duration) -> String {
    let start = Instant::now();
    loop {
        let stderr = server.stderr();
        if stderr.contains(text) {
            return stderr;
        }
        assert!(start.elapsed() < limit, "no {text:?} in:\n{stderr}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The pid in the old master's "upgrade: started ... as pid N" line.
fn new_master_pid(stderr: &str) -> u32 {
    let line = stderr
        .lines()
        .find(|l| l.contains("upgrade: started"))
        .unwrap();
    let rest = line.split(" as pid ").nth(1).unwrap();
    rest.split(';').next().unwrap().trim().parse().unwrap()
}

/// The children of process `pid`, from /proc.
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

/// Waits (bounded) until none of `pids` runs.
fn wait_gone(pids: &[u32], limit: Duration) {
    let start = Instant::now();
    while pids.iter().any(|&p| is_alive(p)) {
        assert!(start.elapsed() < limit, "still running: {pids:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The abstract name (without its `@`) of the NOTIFY_SOCKET in process
/// `pid`'s environment, waiting (bounded) until it has exec'd with it.
fn notify_socket_of(pid: u32) -> String {
    let start = Instant::now();
    loop {
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let found = environ
            .split(|&b| b == 0)
            .find_map(|var| var.strip_prefix(b"NOTIFY_SOCKET=@"));
        if let Some(name) = found {
            return String::from_utf8(name.to_vec()).unwrap();
        }
        assert!(start.elapsed() < UPGRADE_WAIT, "no NOTIFY_SOCKET in {pid}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_pid_file(path: &Path) -> u32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn usr2_under_load_hands_over_to_the_new_binary_twice_without_a_failed_request() {
    let scratch = Scratch::new("upgrade-ok");
    let binary = copy_binary(&scratch.0);
    let pid_file = scratch.0.join("txtd.pid");
    let mut server = Server::start_in(
        Command::new(&binary),
        &sample_site(),
        &["--workers", "2", "--pid-file", pid_file.to_str().unwrap()],
    );
    let old_master = server.pid();
    let old_workers = server.workers();
    assert_eq!(old_workers.len(), 2);
    let load = Load::start(server.addr, "/hello.txt", 8);
    load.wait_for_progress(100);

    replace_by_rename(&binary, Path::new(env!("CARGO_BIN_EXE_txtd")));
    server.signal("USR2");
    let stderr = wait_for_log(&server, "is serving; draining and exiting", UPGRADE_WAIT);
    let new_master = new_master_pid(&stderr);
    let _guard = KillOnDrop(new_master);
    assert_ne!(new_master, old_master);
    // The file now at the path was started, not the deleted old one.
    assert!(
        stderr.contains(&format!("upgrade: started {} as pid", binary.display())),
        "{stderr}"
    );

    // The old master drains and exits 0 on its own; its workers go too.
    let status = server.wait_exit();
    assert!(status.success(), "old master: {status:?}");
    wait_gone(&old_workers, UPGRADE_WAIT);
    // The new master serves, owns the pid file and has its workers.
    assert!(is_alive(new_master));
    assert_eq!(read_pid_file(&pid_file), new_master);
    let new_workers = children(new_master);
    assert_eq!(new_workers.len(), 2, "{new_workers:?}");
    assert!(new_workers.iter().all(|w| !old_workers.contains(w)));
    load.wait_for_progress(200);
    let stderr = server.stderr();
    assert!(
        stderr.contains(&format!(
            "{new_master}: listening on {} (inherited)",
            server.addr
        )),
        "{stderr}"
    );

    // Again from the new master, an orphan now and itself started by an
    // upgrade, under the same load: the sockets and the pid file move on.
    signal_pid(new_master, "USR2");
    let handover = format!("{new_master}: upgrade: new master (pid ");
    let stderr = wait_for_log(&server, &handover, UPGRADE_WAIT);
    let third_master: u32 = stderr
        .split(&handover)
        .nth(1)
        .and_then(|rest| rest.split(')').next())
        .unwrap()
        .parse()
        .unwrap();
    let _third_guard = KillOnDrop(third_master);
    wait_gone(&[new_master], UPGRADE_WAIT);
    wait_gone(&new_workers, UPGRADE_WAIT);
    assert_eq!(read_pid_file(&pid_file), third_master);
    let third_workers = children(third_master);
    assert_eq!(third_workers.len(), 2, "{third_workers:?}");
    load.wait_for_progress(200);
    let tally = load.stop();
    eprintln!("{tally:?}");
    assert_eq!(tally.failed, 0, "{tally:?}");
    assert_eq!(server.request("GET", "/hello.txt").status, 200);

    // Stop the last master as an operator would, and see it clean up.
    signal_pid(third_master, "TERM");
    wait_gone(&[third_master], UPGRADE_WAIT);
    wait_gone(&third_workers, UPGRADE_WAIT);
    assert!(!pid_file.exists());
}

#[test]
fn a_new_binary_that_exits_at_once_leaves_the_old_master_serving() {
    let scratch = Scratch::new("upgrade-exit");
    let binary = copy_binary(&scratch.0);
    let pid_file = scratch.0.join("txtd.pid");
    let server = Server::start_in(
        Command::new(&binary),
        &sample_site(),
        &["--workers", "2", "--pid-file", pid_file.to_str().unwrap()],
    );
    let workers = server.workers();
    let load = Load::start(server.addr, "/hello.txt", 4);
    load.wait_for_progress(100);

    replace_by_rename(&binary, &script(&scratch.0, "#!/bin/sh\nexit 1\n"));
    server.signal("USR2");
    let stderr = wait_for_log(&server, "upgrade failed", UPGRADE_WAIT);
    let new_master = new_master_pid(&stderr);
    let _guard = KillOnDrop(new_master);
    let failure: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("upgrade failed"))
        .collect();
    assert_eq!(failure.len(), 1, "{stderr}");
    assert!(
        failure[0].contains(&format!("new master (pid {new_master}) exited with code 1")),
        "{stderr}"
    );
    // Reaped by the old master, which serves on with the same workers.
    wait_gone(&[new_master], UPGRADE_WAIT);
    assert!(is_alive(server.pid()));
    assert_eq!(server.workers(), workers);
    assert_eq!(read_pid_file(&pid_file), server.pid());
    load.wait_for_progress(100);
    let tally = load.stop();
    eprintln!("{tally:?}");
    assert_eq!(tally.failed, 0, "{tally:?}");
    assert_eq!(tally.failed_before_retry, 0, "{tally:?}");
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
}

#[test]
fn a_new_binary_that_never_serves_is_killed_after_ten_seconds_and_a_second_usr2_is_ignored() {
    let scratch = Scratch::new("upgrade-hang");
    let binary = copy_binary(&scratch.0);
    let pid_file = scratch.0.join("txtd.pid");
    let server = Server::start_in(
        Command::new(&binary),
        &sample_site(),
        &["--workers", "2", "--pid-file", pid_file.to_str().unwrap()],
    );
    let workers = server.workers();

    // What a new master inherits, checked by the script: a failed check
    // exits at once (the log then says "exited with code N", not "not
    // serving"), a passed one waits, never reporting ready.
    let never_ready = r#"#!/bin/sh
# Builtins only until the mask is read: sh blocks signals around waiting
# for a child of its own.
while read -r key value; do [ "$key" = "SigBlk:" ] && mask=$value; done < /proc/$$/status
case "$mask" in *[!0]*) exit 4 ;; esac
[ "$LISTEN_PID" = "$$" ] && [ "$LISTEN_FDS" = 1 ] || exit 5
[ -S /proc/$$/fd/3 ] && [ ! -e /proc/$$/fd/4 ] || exit 6
case "$NOTIFY_SOCKET" in @txtd-upgrade-*) ;; *) exit 7 ;; esac
[ "${TXTD_NOTIFY_SOCKET-unset}" = "" ] || exit 8
exec sleep 60
"#;
    replace_by_rename(&binary, &script(&scratch.0, never_ready));
    server.signal("USR2");
    let stderr = wait_for_log(&server, "upgrade: started", UPGRADE_WAIT);
    let new_master = new_master_pid(&stderr);
    let _guard = KillOnDrop(new_master);
    server.signal("USR2");
    wait_for_log(
        &server,
        &format!("ignoring USR2: an upgrade to pid {new_master} is under way"),
        UPGRADE_WAIT,
    );
    // A READY=1 naming the new master, but sent by another process (this
    // test, which read the socket's name from the child's environment),
    // does not count.
    let socket = notify_socket_of(new_master);
    let forged = format!("READY=1\nMAINPID={new_master}\n");
    UnixDatagram::unbound()
        .unwrap()
        .send_to_addr(
            forged.as_bytes(),
            &SocketAddr::from_abstract_name(socket.as_bytes()).unwrap(),
        )
        .unwrap();
    wait_for_log(
        &server,
        &format!(
            "upgrade: ignoring a notification from pid Some({})",
            std::process::id()
        ),
        UPGRADE_WAIT,
    );
    let stderr = wait_for_log(&server, "upgrade failed", UPGRADE_WAIT);
    assert!(!stderr.contains("is serving"), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "upgrade failed: new master (pid {new_master}) not serving within 10s; killing pid {new_master}, still serving"
        )),
        "{stderr}"
    );
    wait_gone(&[new_master], UPGRADE_WAIT);
    assert_eq!(stderr.matches("upgrade failed").count(), 1, "{stderr}");
    assert!(is_alive(server.pid()));
    assert_eq!(server.workers(), workers);
    assert_eq!(read_pid_file(&pid_file), server.pid());
    assert_eq!(server.request("GET", "/hello.txt").status, 200);
}

#[test]
fn under_a_service_manager_the_old_master_names_the_new_one_which_then_notifies_it() {
    let scratch = Scratch::new("upgrade-notify");
    let path = scratch.0.join("notify.sock");
    let manager = UnixDatagram::bind(&path).unwrap();
    manager.set_read_timeout(Some(UPGRADE_WAIT)).unwrap();
    let receive = || {
        let mut buf = [0u8; 512];
        let n = manager.recv(&mut buf).expect("no notification in time");
        String::from_utf8(buf[..n].to_vec()).unwrap()
    };
    let mut command = Command::new(env!("CARGO_BIN_EXE_txtd"));
    command.env("NOTIFY_SOCKET", &path);
    let mut server = Server::start_in(command, &sample_site(), &["--workers", "2"]);
    let old_master = server.pid();
    assert_eq!(receive(), format!("READY=1\nMAINPID={old_master}\n"));

    // The new master's READY=1 goes to the old master, which names it the
    // main process and drains without a STOPPING=1 of its own.
    server.signal("USR2");
    let stderr = wait_for_log(&server, "is serving; draining and exiting", UPGRADE_WAIT);
    let new_master = new_master_pid(&stderr);
    let _guard = KillOnDrop(new_master);
    assert_eq!(receive(), format!("MAINPID={new_master}\n"));
    assert!(server.wait_exit().success());

    // From now on the new master notifies the service manager itself.
    signal_pid(new_master, "HUP");
    assert!(receive().starts_with("RELOADING=1\n"));
    assert_eq!(receive(), format!("READY=1\nMAINPID={new_master}\n"));
    signal_pid(new_master, "TERM");
    assert_eq!(receive(), "STOPPING=1\n");
    wait_gone(&[new_master], UPGRADE_WAIT);
}
