//! The harness the end-to-end tests share: the real `txtd` binary started
//! on 127.0.0.1 port 0, plain `TcpStream` clients with read timeouts,
//! bounded waits, and a `Drop` that kills the server by pid and checks its
//! stderr for a panic.
#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

pub mod load;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The bound on every read and wait.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// The bundled sample site.
pub fn sample_site() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/site")
}

/// A running server; killed (master by pid, workers by their parent-death
/// signal) when dropped.
pub struct Server {
    pub child: Child,
    pub addr: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
}

impl Server {
    pub fn start(root: &Path, extra: &[&str]) -> Self {
        Self::start_in(Command::new(env!("CARGO_BIN_EXE_txtd")), root, extra)
    }

    /// Starts the server with its `RLIMIT_NOFILE` lowered to `nofile` by
    /// the shell that then becomes it (`exec`), so its pid is the master's.
    pub fn start_with_nofile(nofile: u32, root: &Path, extra: &[&str]) -> Self {
        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(format!("ulimit -n {nofile} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_txtd"));
        Self::start_in(command, root, extra)
    }

    pub fn start_in(mut command: Command, root: &Path, extra: &[&str]) -> Self {
        let workers: usize = extra
            .iter()
            .position(|&a| a == "--workers")
            .map_or(2, |i| extra[i + 1].parse().unwrap());
        command.arg(root).args(["--listen", "127.0.0.1:0"]);
        if !extra.contains(&"--workers") {
            command.args(["--workers", "2"]);
        }
        let mut child = command
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        let log = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("listening on ").nth(1) {
                    let addr: SocketAddr = rest.split_whitespace().next().unwrap().parse().unwrap();
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr);
                    }
                }
                let mut log = log.lock().unwrap();
                log.push_str(&line);
                log.push('\n');
            }
        });
        let addr = match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr,
            Err(_) => {
                let _ = child.kill();
                panic!("server did not start: {}", stderr.lock().unwrap());
            }
        };
        let server = Self {
            child,
            addr,
            stderr,
        };
        server.wait_for_workers(workers);
        server
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends the master `signal` (`TERM`, `KILL`, ...) with kill(1).
    pub fn signal(&self, signal: &str) {
        signal_pid(self.pid(), signal);
    }

    /// Waits (bounded) for the master to exit; returns how it ended.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(start.elapsed() < TIMEOUT, "master still running");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The master's children, from /proc.
    pub fn workers(&self) -> Vec<u32> {
        let path = format!("/proc/{0}/task/{0}/children", self.pid());
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    pub fn wait_for_workers(&self, n: usize) {
        let start = Instant::now();
        while self.workers().len() != n || self.stderr().matches("worker").count() < n {
            assert!(
                start.elapsed() < TIMEOUT,
                "expected {n} workers, have {:?}",
                self.workers()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) until the server's stderr holds `text`.
    pub fn wait_for_log(&self, text: &str) {
        let start = Instant::now();
        while !self.stderr().contains(text) {
            assert!(
                start.elapsed() < TIMEOUT,
                "no {text:?} in:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr).unwrap();
        stream.set_read_timeout(Some(TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(TIMEOUT)).unwrap();
        stream
    }

    /// Sends `raw` on a new connection and reads until the server closes.
    pub fn raw(&self, raw: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        stream.write_all(raw).unwrap();
        let mut out = Vec::new();
        let _ = stream.read_to_end(&mut out);
        out
    }

    /// A `GET` (or other method) with `Connection: close`.
    pub fn request(&self, method: &str, target: &str) -> Response {
        let raw = format!("{method} {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
        Response::parse(&self.raw(raw.as_bytes()), method == "HEAD").0
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let stderr = self.stderr();
        if !std::thread::panicking() {
            assert!(!stderr.contains("panicked"), "server panicked:\n{stderr}");
        }
    }
}

#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    /// Parses one response from the front of `bytes`; returns it and the
    /// bytes after it.
    pub fn parse(bytes: &[u8], is_head: bool) -> (Self, &[u8]) {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no head in {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8(bytes[..end].to_vec()).unwrap();
        let status = head[9..12].parse().unwrap();
        let rest = &bytes[end + 4..];
        let len = if is_head || status == 304 || status == 204 {
            0
        } else {
            header(&head, "content-length").map_or(rest.len(), |v| v.parse().unwrap())
        };
        (
            Self {
                status,
                head,
                body: rest[..len].to_vec(),
            },
            &rest[len..],
        )
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header(&self.head, name)
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).unwrap()
    }
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Reads `count` responses to GETs from a keep-alive connection.
pub fn read_responses(stream: &mut TcpStream, count: usize) -> Vec<Response> {
    read_responses_to(stream, &vec![false; count])
}

/// Reads one response per entry of `is_head` (true: to a HEAD, no body).
pub fn read_responses_to(stream: &mut TcpStream, is_head: &[bool]) -> Vec<Response> {
    let mut buf = Vec::new();
    let mut out = Vec::new();
    let mut chunk = [0u8; 65536];
    for _ in 0..100_000 {
        while out.len() < is_head.len() {
            let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
                break;
            };
            let head = String::from_utf8_lossy(&buf[..end]).into_owned();
            let len: usize = if is_head[out.len()] {
                0
            } else {
                header(&head, "content-length").map_or(0, |v| v.parse().unwrap())
            };
            if buf.len() < end + 4 + len {
                break;
            }
            let (response, rest) = Response::parse(&buf, is_head[out.len()]);
            out.push(response);
            buf = rest.to_vec();
        }
        if out.len() == is_head.len() {
            assert!(buf.is_empty(), "unexpected bytes after the responses");
            return out;
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed after {} responses", out.len());
        buf.extend_from_slice(&chunk[..n]);
    }
    panic!("too many reads");
}

/// Sends process `pid` `signal` with kill(1).
pub fn signal_pid(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([format!("-{signal}"), pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

/// Whether process `pid` still runs (a zombie waiting for its reaper does not).
pub fn is_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| stat.rsplit(") ").next().map(|rest| !rest.starts_with('Z')))
        .unwrap_or(false)
}

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("txtd-e2e-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl Server {
    /// The admin interface's address (`--admin-listen`), from the
    /// master's `admin interface on ADDR` line.
    pub fn admin_addr(&self) -> SocketAddr {
        self.wait_for_log("admin interface on ");
        admin_addr_in(&self.stderr()).expect("an admin address in the log")
    }
}

/// The last `admin interface on ADDR` address in a log.
pub fn admin_addr_in(log: &str) -> Option<SocketAddr> {
    log.lines()
        .rev()
        .filter_map(|l| l.split("admin interface on ").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .find_map(|addr| addr.trim_end_matches(':').parse().ok())
}

/// A `GET` of `target` from `addr` with `Connection: close`; `None` if
/// the connection was refused or cut before a whole head arrived.
pub fn try_get(addr: SocketAddr, target: &str) -> Option<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).ok()?;
    stream.set_read_timeout(Some(TIMEOUT)).ok()?;
    stream.set_write_timeout(Some(TIMEOUT)).ok()?;
    let raw = format!("GET {target} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n");
    stream.write_all(raw.as_bytes()).ok()?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out).ok()?;
    out.windows(4)
        .any(|w| w == b"\r\n\r\n")
        .then(|| Response::parse(&out, false).0)
}

/// A `GET` of `target` from `addr` that must succeed.
pub fn get(addr: SocketAddr, target: &str) -> Response {
    try_get(addr, target).unwrap_or_else(|| panic!("GET {target} from {addr} failed"))
}

/// Polls `path` (bounded) until it holds `text`; returns its contents.
pub fn wait_for_file(path: &Path, text: &str) -> String {
    let start = Instant::now();
    loop {
        let contents = std::fs::read_to_string(path).unwrap_or_default();
        if contents.contains(text) {
            return contents;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "no {text:?} in {}:\n{contents}",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
