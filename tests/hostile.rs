//! Hostile clients against the real `txtd` binary: idle keep-alive
//! squatting, connections that never send a byte, header drip and slot
//! exhaustion. Every wait is bounded, every socket is on loopback, and
//! each test kills only the server it started and checks that its stderr
//! holds no panic.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    reason = "tests fail loudly"
)]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use socket2::{Domain, Protocol, Socket, Type};

/// How long a fresh client may wait for its answer while the server is
/// under attack: a bound on the wait, not a measure of speed.
const SERVED_WITHIN: Duration = Duration::from_secs(2);

/// Sockets the largest test holds open at once, plus a margin for the
/// small tests running beside it and the harness itself.
const SOCKETS_NEEDED: u64 = 1_200;

/// Held by the tests that open hundreds of sockets, so that their counts
/// never add up in one process.
static MANY_SOCKETS: Mutex<()> = Mutex::new(());

/// Takes [`MANY_SOCKETS`], even after another test failed holding it.
fn many_sockets() -> std::sync::MutexGuard<'static, ()> {
    MANY_SOCKETS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether this process may open `n` descriptors, after raising its soft
/// `RLIMIT_NOFILE` to the hard limit (the server it starts inherits it);
/// prints a note when not, so a low hard limit skips the test instead of
/// failing it.
fn can_open(n: u64) -> bool {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) if soft < n => {
            eprintln!("skipped: RLIMIT_NOFILE hard limit {soft} is below the {n} sockets needed");
            false
        }
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped: RLIMIT_NOFILE cannot be raised: {e}");
            false
        }
    }
}

/// A keep-alive connection that made one request and read its answer.
fn idle_keep_alive(server: &Server) -> TcpStream {
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut stream, 1)[0].status, 200);
    stream
}

/// The status a fresh `Connection: close` client gets, waiting at most
/// `wait` for the answer to begin.
fn fresh_status(server: &Server, wait: Duration) -> u16 {
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    // Bounded: hello.txt is small; stop at the close or a timeout.
    let out = read_until_close(&mut stream, wait);
    status_of(&out).unwrap_or_else(|| {
        panic!(
            "no answer to a fresh client within {wait:?}: {:?}",
            String::from_utf8_lossy(&out)
        )
    })
}

/// The status code of the response at the front of `bytes`, if a status
/// line is there.
fn status_of(bytes: &[u8]) -> Option<u16> {
    let line = bytes.get(..12)?;
    if !line.starts_with(b"HTTP/1.1 ") {
        return None;
    }
    std::str::from_utf8(&line[9..12]).ok()?.parse().ok()
}

/// Reads until the server closes or `wait` passes; returns what came.
fn read_until_close(stream: &mut TcpStream, wait: Duration) -> Vec<u8> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    for _ in 0..64 {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
        }
    }
    out
}

/// An unfinished request head of at least `len` bytes: a request line and
/// padding fields, without the blank line that would end it.
fn partial_head(len: usize) -> Vec<u8> {
    let mut head = b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n".to_vec();
    let mut n = 0;
    while head.len() < len {
        head.extend_from_slice(format!("X-Pad-{n}: {}\r\n", "a".repeat(1000)).as_bytes());
        n += 1;
    }
    head
}

#[test]
fn a_thousand_idle_keep_alive_connections_do_not_lock_out_a_new_client() {
    if !can_open(SOCKETS_NEEDED) {
        return;
    }
    let _many = many_sockets();
    let server = Server::start(&sample_site(), &["--workers", "2", "--max-conns", "512"]);
    let mut idle = Vec::with_capacity(1_000);
    for _ in 0..1_000 {
        idle.push(idle_keep_alive(&server));
    }
    assert_eq!(fresh_status(&server, SERVED_WITHIN), 200);
    drop(idle);
}

/// Descriptors process `pid` has open, from `/proc/PID/fd`.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, Iterator::count)
}

#[test]
fn a_thousand_connections_closed_without_a_byte_half_by_fin_half_by_reset_leave_service_intact() {
    if !can_open(SOCKETS_NEEDED) {
        return;
    }
    let _many = many_sockets();
    let server = Server::start(&sample_site(), &["--workers", "2", "--max-conns", "512"]);
    let workers = server.workers();
    let before: Vec<usize> = workers.iter().map(|&pid| open_fds(pid)).collect();
    let (mut fin, mut reset) = (0, 0);
    for i in 0..1_000 {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
        socket.connect(&server.addr.into()).unwrap();
        if i % 2 == 0 {
            // A FIN: the orderly close of a client that changed its mind.
            socket.shutdown(Shutdown::Write).unwrap();
            fin += 1;
        } else {
            // SO_LINGER 0: the close sends a RST instead of a FIN.
            socket.set_linger(Some(Duration::ZERO)).unwrap();
            reset += 1;
        }
        drop(socket);
    }
    assert_eq!((fin, reset), (500, 500));
    assert_eq!(fresh_status(&server, TIMEOUT), 200);
    let mut again = idle_keep_alive(&server);
    again
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut again, 1)[0].status, 200);
    drop(again);
    // Every one of those connections gave its slot and descriptor back:
    // the workers hold what they held before (bounded wait for the last
    // closes to be read).
    let start = Instant::now();
    loop {
        let now: Vec<usize> = workers.iter().map(|&pid| open_fds(pid)).collect();
        if now == before {
            break;
        }
        assert!(
            start.elapsed() < TIMEOUT,
            "workers hold {now:?} descriptors, {before:?} before the closes"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(server.workers(), workers, "a worker was replaced");
}

/// Header drippers: connections that each send one byte of an endless
/// request head per second, and connect again, without blocking, as soon
/// as the server closes them (408 or eviction), as slowhttptest does: the
/// pressure stays at the full count for as long as they run.
struct Drip {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
    tally: Arc<DripTally>,
}

/// What the drippers counted.
#[derive(Default)]
struct DripTally {
    /// Connections opened, first ones included.
    opened: AtomicU64,
    /// Connections the server closed after sending something (its 408).
    answered: AtomicU64,
    /// Connections the server closed without a byte (evicted unread).
    dropped: AtomicU64,
    /// Header bytes sent.
    bytes: AtomicU64,
}

/// One dripping connection.
struct Dripper {
    stream: Option<TcpStream>,
    sent: usize,
    next_byte: Instant,
}

impl Drip {
    /// Starts `count` drippers against `addr` on `threads` threads; each
    /// thread runs for at most `bound` even if never stopped.
    fn start(addr: SocketAddr, count: usize, threads: usize, bound: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let tally = Arc::new(DripTally::default());
        let head = Arc::new(partial_head(64 * 1024));
        let threads = (0..threads)
            .map(|t| {
                let (stop, tally, head) =
                    (Arc::clone(&stop), Arc::clone(&tally), Arc::clone(&head));
                let mine = count / threads + usize::from(t < count % threads);
                std::thread::spawn(move || drip(addr, mine, &head, &stop, &tally, bound))
            })
            .collect();
        Self {
            stop,
            threads,
            tally,
        }
    }

    /// Stops the drippers and closes their connections.
    fn stop(self) -> Arc<DripTally> {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads {
            t.join().unwrap();
        }
        self.tally
    }
}

/// A TCP connection to `addr` whose handshake goes on in the background.
fn connect_nonblocking(addr: SocketAddr) -> Option<TcpStream> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).ok()?;
    socket.set_nonblocking(true).ok()?;
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
        Err(_) => return None,
    }
    Some(socket.into())
}

/// The body of one dripper thread: `count` connections, one pass over
/// them every 50 ms.
fn drip(
    addr: SocketAddr,
    count: usize,
    head: &[u8],
    stop: &AtomicBool,
    tally: &DripTally,
    bound: Duration,
) {
    let mut conns: Vec<Dripper> = (0..count)
        .map(|_| Dripper {
            stream: None,
            sent: 0,
            next_byte: Instant::now(),
        })
        .collect();
    let start = Instant::now();
    let mut scratch = [0u8; 512];
    while !stop.load(Ordering::Relaxed) && start.elapsed() < bound {
        let now = Instant::now();
        for c in &mut conns {
            let alive = match c.stream.as_mut() {
                None => false,
                // A connection still in its handshake reads WouldBlock too.
                Some(s) => match s.read(&mut scratch) {
                    Err(e) if e.kind() == ErrorKind::WouldBlock => true,
                    Ok(0) | Err(_) => {
                        tally.dropped.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                    Ok(_) => {
                        tally.answered.fetch_add(1, Ordering::Relaxed);
                        false
                    }
                },
            };
            if !alive {
                c.stream = connect_nonblocking(addr);
                tally.opened.fetch_add(1, Ordering::Relaxed);
                c.sent = 0;
                c.next_byte = now;
            }
            if now < c.next_byte {
                continue;
            }
            let Some(stream) = c.stream.as_mut() else {
                continue;
            };
            let byte = &head[c.sent % head.len()..][..1];
            match stream.write(byte) {
                Ok(n) => {
                    c.sent += n;
                    c.next_byte += Duration::from_secs(1);
                    tally.bytes.fetch_add(n as u64, Ordering::Relaxed);
                }
                // Still connecting: the byte goes at the next pass.
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(_) => c.stream = None,
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Fetches `/hello.txt` on a fresh `Connection: close` connection; returns
/// its status and the time from the connect to the end of the answer, or
/// why there was no answer within `limit`.
fn timed_fetch(addr: SocketAddr, limit: Duration) -> Result<(u16, Duration), String> {
    let start = Instant::now();
    let mut stream =
        TcpStream::connect_timeout(&addr, limit).map_err(|e| format!("connect: {e}"))?;
    stream
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .map_err(|e| format!("write: {e}"))?;
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    // Bounded: hello.txt is small, and every read has the time left.
    for _ in 0..64 {
        let left = limit.saturating_sub(start.elapsed());
        if left.is_zero() {
            break;
        }
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read after {:?}: {e}", start.elapsed())),
        }
    }
    let took = start.elapsed();
    match status_of(&out) {
        Some(status) if took <= limit => Ok((status, took)),
        _ => Err(format!(
            "no whole answer in {took:?}: {:?}",
            String::from_utf8_lossy(&out)
        )),
    }
}

#[test]
fn two_thousand_connections_dripping_a_header_byte_a_second_do_not_lock_out_new_clients() {
    const DRIPPERS: usize = 2_000;
    const ATTACK: Duration = Duration::from_secs(15);
    const SAMPLE_EVERY: Duration = Duration::from_millis(500);
    if !can_open(DRIPPERS as u64 + 200) {
        return;
    }
    let _many = many_sockets();
    let server = Server::start(&sample_site(), &["--workers", "2", "--max-conns", "512"]);
    let drip = Drip::start(server.addr, DRIPPERS, 4, ATTACK + TIMEOUT);
    // Let the first wave connect and fill every slot before sampling.
    std::thread::sleep(Duration::from_secs(2));
    let start = Instant::now();
    let mut waits = Vec::new();
    let mut failures = Vec::new();
    let mut tried = 0;
    while start.elapsed() < ATTACK {
        let due = start + SAMPLE_EVERY * tried;
        tried += 1;
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        match timed_fetch(server.addr, SERVED_WITHIN) {
            Ok((200, took)) => waits.push(took),
            Ok((status, _)) => failures.push(format!("status {status}")),
            Err(e) => failures.push(e),
        }
    }
    let tally = drip.stop();
    let max = waits.iter().max().copied().unwrap_or_default();
    eprintln!(
        "drip: {} fresh clients served, slowest in {max:?}; {} failed; drippers opened {} \
         connections, sent {} bytes, got {} answers (408) and {} closes without one",
        waits.len(),
        failures.len(),
        tally.opened.load(Ordering::Relaxed),
        tally.bytes.load(Ordering::Relaxed),
        tally.answered.load(Ordering::Relaxed),
        tally.dropped.load(Ordering::Relaxed),
    );
    assert!(
        failures.is_empty(),
        "fresh clients not served: {failures:?}"
    );
    // One sample per half second for 15 s, less the time the samples took.
    assert!(
        waits.len() >= 20,
        "only {} fresh clients were tried",
        waits.len()
    );
    // The pressure held: far more connections than slots came and went.
    assert!(tally.opened.load(Ordering::Relaxed) > DRIPPERS as u64 * 2);
}

#[test]
fn idle_keep_alive_connections_holding_every_slot_make_way_for_a_new_client() {
    let server = Server::start(&sample_site(), &["--max-conns", "4", "--workers", "1"]);
    let mut idle: Vec<TcpStream> = (0..4).map(|_| idle_keep_alive(&server)).collect();
    assert_eq!(fresh_status(&server, TIMEOUT), 200);
    // The one idle longest gave up its slot: the server closed it.
    let closed = idle
        .iter_mut()
        .take(1)
        .map(|s| read_until_close(s, TIMEOUT))
        .all(|bytes| bytes.is_empty());
    assert!(closed, "the oldest idle connection is still open");
}

#[test]
fn slow_heads_holding_every_slot_make_way_and_the_slowest_gets_408() {
    let server = Server::start(&sample_site(), &["--max-conns", "4", "--workers", "1"]);
    // Large first bursts keep every head above the minimum head rate for
    // seconds; the smallest, sent first, has the lowest rate.
    let mut heads: Vec<TcpStream> = [3_000, 4_000, 5_000, 6_000]
        .iter()
        .map(|&len| {
            let mut s = server.connect();
            s.write_all(&partial_head(len)).unwrap();
            s
        })
        .collect();
    // Let the worker accept and read all four before the fifth arrives.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(fresh_status(&server, Duration::from_secs(5)), 200);
    let answer = read_until_close(&mut heads[0], TIMEOUT);
    assert_eq!(
        status_of(&answer),
        Some(408),
        "the slowest head got {:?}",
        String::from_utf8_lossy(&answer)
    );
}

#[test]
fn two_hundred_connections_under_ulimit_64_pause_accepting_cheaply_and_service_recovers() {
    const HELD: usize = 200;
    const WATCH: Duration = Duration::from_secs(5);
    let _many = many_sockets();
    let server = Server::start_with_nofile(
        64,
        &sample_site(),
        &["--workers", "2", "--max-conns", "512"],
    );
    let log = server.stderr();
    assert!(
        log.contains("RLIMIT_NOFILE soft limit 64"),
        "no warning about the descriptor limit:\n{log}"
    );
    // More silent connections than the workers have descriptors: accept4
    // fails with EMFILE and each worker pauses instead of spinning.
    let held: Vec<TcpStream> = (0..HELD).map(|_| server.connect()).collect();
    server.wait_for_log("pausing new connections");
    // While paused a worker sleeps in epoll_wait. CPU time is counted in
    // clock ticks (a count, not a duration): half a core over 5 s is
    // 2.5 s of CPU; a paused worker uses about none, a spinning one all.
    let tick = clock_ticks_per_second();
    let workers = server.workers();
    let before: Vec<u64> = workers.iter().map(|&pid| cpu_ticks(pid)).collect();
    std::thread::sleep(WATCH);
    let used: Vec<u64> = workers
        .iter()
        .zip(&before)
        .map(|(&pid, b)| cpu_ticks(pid) - b)
        .collect();
    let half_a_core = tick * WATCH.as_secs() / 2;
    eprintln!(
        "ulimit -n 64: {HELD} connections held, worker CPU over {WATCH:?}: {used:?} ticks of {tick}/s (limit {half_a_core})"
    );
    for (pid, used) in workers.iter().zip(&used) {
        assert!(
            *used < half_a_core,
            "worker {pid} used {used} ticks in {WATCH:?} with accept failing"
        );
    }
    assert!(
        server.stderr().matches("pausing new connections").count() >= 2,
        "the pause was not logged by each worker or again after it"
    );
    drop(held);
    assert_eq!(fresh_status(&server, TIMEOUT), 200);
    let mut again = idle_keep_alive(&server);
    again
        .write_all(b"GET /hello.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_responses(&mut again, 1)[0].status, 200);
}

/// The kernel's clock ticks per second (`getconf CLK_TCK`; 100 on Linux).
fn clock_ticks_per_second() -> u64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(100)
}

/// User plus system CPU time of a process, in clock ticks, from
/// `/proc/PID/stat`.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the parenthesised command name, which may hold spaces.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// The epilogue every file page ends with.
const PAGE_END: &[u8] = b"</pre>\n</body>\n</html>\n";

/// Reads the head of a response from `stream`; returns it and the body
/// bytes that came with it.
fn read_head(stream: &mut TcpStream) -> (String, Vec<u8>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    for _ in 0..1000 {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8(buf[..end].to_vec()).unwrap();
            return (head, buf[end + 4..].to_vec());
        }
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed before the end of the head");
        buf.extend_from_slice(&chunk[..n]);
    }
    panic!("no head in {} bytes", buf.len());
}

/// A file that grows while it is served is sent as it was when it was
/// looked up: its first N bytes (N the size then), as a whole page of
/// exactly Content-Length bytes, and the connection stays open for the
/// next request, which sees the new size. (One that shrinks ends short and
/// closes: `a_file_that_shrinks_while_sent_ends_the_connection_short` in
/// e2e.rs.)
#[test]
fn a_file_that_grows_while_sent_is_sent_whole_at_its_length_when_looked_up() {
    let scratch = Scratch::new("grow");
    let file = scratch.0.join("log.txt");
    let line = "0123456789 abcdefghijklmnopqrstuvwxyz\n";
    // Far beyond the page cache's 1 MiB and the socket buffers, so the
    // server is still reading the file while it grows.
    let original = line.repeat(16 * 1024 * 1024 / line.len());
    std::fs::write(&file, &original).unwrap();
    let server = Server::start(&scratch.0, &[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /log.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (head, mut body) = read_head(&mut stream);
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let announced: usize = header(&head, "content-length").unwrap().parse().unwrap();
    let mut appender = std::fs::OpenOptions::new()
        .append(true)
        .open(&file)
        .unwrap();
    let growth = "GROWN while served\n".repeat(1024);
    let mut appended = 0;
    let mut chunk = vec![0u8; 1 << 20];
    // Bounded: at most the announced length, in reads of up to 1 MiB.
    for _ in 0..100_000 {
        if body.len() >= announced {
            break;
        }
        // Grows by 19 KiB after every read, all through the download.
        appender.write_all(growth.as_bytes()).unwrap();
        appended += growth.len();
        let want = (announced - body.len()).min(chunk.len());
        let n = stream.read(&mut chunk[..want]).unwrap();
        assert!(n > 0, "closed after {} of {announced} bytes", body.len());
        body.extend_from_slice(&chunk[..n]);
    }
    assert_eq!(body.len(), announced);
    assert!(
        appended > 1024 * 1024,
        "the file grew only {appended} bytes"
    );
    let text = String::from_utf8(body).unwrap();
    let pre = text.find("<pre>\n").unwrap() + "<pre>\n".len();
    assert!(text.ends_with(std::str::from_utf8(PAGE_END).unwrap()));
    assert_eq!(&text[pre..text.len() - PAGE_END.len()], original);
    // Nothing beyond Content-Length came: the next answer starts cleanly
    // on the same connection, with the length the file has now.
    stream
        .write_all(b"HEAD /log.txt HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let next = read_responses_to(&mut stream, &[true]).pop().unwrap();
    assert_eq!(next.status, 200);
    let now: usize = next.header("content-length").unwrap().parse().unwrap();
    assert_eq!(now, announced + appended);
}

/// An 8 GiB sparse file (8 Gi NULs, each shown as U+FFFD: a 24 GiB page)
/// is measured, then streamed, through the worker's fixed buffers: its RSS
/// stays where it was.
///
/// Ignored in `cargo test`: .ci/run runs it against the release binary
/// (`TXTD_BIN=target/release/txtd cargo test -p txtd --test hostile --
/// --ignored`). Measured on this 2-core box shared with three other
/// builds: the release binary served the 24 GiB in 143 s (27 s of
/// measuring, RSS 1868 -> 2056 KiB); the debug binary did not finish
/// measuring 1 GiB within the 300 s connection lifetime; with
/// `opt-level = 3` for txtd-core in the dev profile it took 223 s (86 s
/// measuring) and made a clean debug build 17 s longer (33 s -> 50 s). So
/// the case is not in every developer's `cargo test`: it is
/// run once, in CI, where the release binary is built anyway.
#[test]
#[ignore = "minutes long: .ci/run runs it against the release binary"]
fn an_eight_gib_sparse_file_downloads_with_the_worker_rss_unchanged() {
    const SIZE: u64 = 8 << 30;
    /// The most the serving worker's RSS may grow: the file would take
    /// thousands of times more.
    const RSS_BOUND_KIB: u64 = 4 * 1024;
    let _many = many_sockets();
    let scratch = Scratch::new("sparse");
    let file = std::fs::File::create(scratch.0.join("sparse.txt")).unwrap();
    // set_len past the end leaves a hole: no block is written.
    file.set_len(SIZE).unwrap();
    drop(file);
    let binary = std::env::var_os("TXTD_BIN").map_or_else(
        || env!("CARGO_BIN_EXE_txtd").into(),
        std::path::PathBuf::from,
    );
    eprintln!("sparse: serving with {}", binary.display());
    let server = Server::start_in(std::process::Command::new(binary), &scratch.0, &[]);
    let workers = server.workers();
    let rss_before: Vec<u64> = workers.iter().map(|&pid| rss_kib(pid)).collect();
    let mut stream = server.connect();
    // Measuring 8 GiB comes before the head: allow the connection lifetime.
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    stream
        .write_all(b"GET /sparse.txt HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let start = Instant::now();
    let (head, first) = read_head(&mut stream);
    let measured_in = start.elapsed();
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let announced: u64 = header(&head, "content-length").unwrap().parse().unwrap();
    // The worker holding the file open is the one serving it.
    let serving = *workers
        .iter()
        .find(|&&pid| holds_open(pid, "sparse.txt"))
        .expect("no worker holds the file open");
    let index = workers.iter().position(|&p| p == serving).unwrap();
    let replacement = "\u{FFFD}".as_bytes();
    let pattern: Vec<u8> = replacement.repeat((1 << 20) / 3 + 2);
    let pre = first
        .windows(6)
        .position(|w| w == b"<pre>\n")
        .expect("no <pre> in the first bytes")
        + 6;
    let prologue = pre as u64;
    assert_eq!(announced, prologue + 3 * SIZE + PAGE_END.len() as u64);
    // Checks body bytes [at, at + bytes.len()): the text must be U+FFFD
    // after U+FFFD, the end the epilogue.
    let text_end = prologue + 3 * SIZE;
    let mut tail = Vec::new();
    let mut check = |at: u64, bytes: &[u8]| {
        let text_from = at.max(prologue);
        let text_to = (at + bytes.len() as u64).min(text_end);
        if text_from < text_to {
            let phase = ((text_from - prologue) % 3) as usize;
            let slice = &bytes[(text_from - at) as usize..(text_to - at) as usize];
            assert!(
                slice == &pattern[phase..phase + slice.len()],
                "a byte other than U+FFFD within {text_from}..{text_to}"
            );
        }
        if at + bytes.len() as u64 > text_end {
            tail.extend_from_slice(&bytes[(text_end.saturating_sub(at)) as usize..]);
        }
    };
    check(0, &first);
    let mut received = first.len() as u64;
    let mut rss_max = rss_kib(serving);
    let mut next_sample = 1u64 << 30;
    let mut chunk = vec![0u8; 1 << 20];
    // Bounded: the announced length in reads of at most 1 MiB, each with
    // a read timeout.
    while received < announced {
        let n = stream.read(&mut chunk).unwrap();
        assert!(n > 0, "closed after {received} of {announced} bytes");
        check(received, &chunk[..n]);
        received += n as u64;
        if received >= next_sample {
            rss_max = rss_max.max(rss_kib(serving));
            next_sample += 1 << 30;
        }
    }
    let took = start.elapsed();
    assert_eq!(received, announced);
    assert_eq!(tail, PAGE_END);
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty(), "{} bytes past Content-Length", rest.len());
    let rss_after = rss_kib(serving);
    eprintln!(
        "sparse: {received} bytes in {took:?} (head after {measured_in:?}); serving worker \
         RSS {} KiB before, at most {rss_max} KiB during, {rss_after} KiB after",
        rss_before[index]
    );
    for rss in [rss_max, rss_after] {
        assert!(
            rss <= rss_before[index] + RSS_BOUND_KIB,
            "the worker's RSS grew from {} KiB to {rss} KiB",
            rss_before[index]
        );
    }
}

/// Resident memory of process `pid` in KiB (`VmRSS` of /proc/PID/status).
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap()
}

/// Whether process `pid` has a file whose path ends with `name` open.
fn holds_open(pid: u32, name: &str) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .any(|target| target.to_string_lossy().ends_with(name))
        })
        .unwrap_or(false)
}
