//! A blocking driver: runs one [`Conn`] over any `embedded_io` stream.
//!
//! For single-connection servers (a microcontroller serving one socket at a
//! time, a test over a mock stream). A blocking read cannot be interrupted,
//! so deadlines are checked between reads and writes only; a stream with
//! its own read timeout (returning an error) bounds the wait.

use embedded_io::{Read, Write};

use crate::conn::{Close, Conn, Log, Now};
use crate::site::Site;

/// How a connection driven by [`serve`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Ended {
    /// The connection finished: the client closed, a response asked for a
    /// close, or a deadline passed.
    Closed,
    /// The stream refused more bytes (`write` returned 0).
    WriteZero,
}

/// Serves `conn` over `io` until the connection ends.
///
/// `clock` is asked for the time before each step. Responses are flushed
/// before each blocking read, so a client waiting for its answer gets it.
///
/// # Errors
///
/// The stream's error, if a read, write or flush fails; the connection is
/// closed (and an unfinished response logged) first.
pub fn serve<T, S, L, C, const MAX_FIELDS: usize>(
    conn: &mut Conn<'_, S, MAX_FIELDS>,
    io: &mut T,
    site: &mut S,
    log: &mut L,
    mut clock: C,
) -> Result<Ended, T::Error>
where
    T: Read + Write,
    S: Site,
    L: Log,
    C: FnMut() -> Now,
{
    loop {
        let interest = conn.poll(site, log, clock());
        let [head, body] = conn.output(site);
        let chunk = if head.is_empty() { body } else { head };
        if !chunk.is_empty() {
            let n = match io.write(chunk) {
                Ok(0) => {
                    conn.close(log);
                    return Ok(Ended::WriteZero);
                }
                Ok(n) => n,
                Err(e) => {
                    conn.close(log);
                    return Err(e);
                }
            };
            conn.sent(n, clock());
            continue;
        }
        if interest.again {
            continue;
        }
        if interest.close == Close::Now {
            let flushed = io.flush();
            conn.close(log);
            return flushed.map(|()| Ended::Closed);
        }
        if interest.read && !conn.read_buf().is_empty() {
            if let Err(e) = io.flush() {
                conn.close(log);
                return Err(e);
            }
            match io.read(conn.read_buf()) {
                Ok(n) => conn.received(n, clock()),
                Err(e) => {
                    conn.close(log);
                    return Err(e);
                }
            }
            continue;
        }
        // Nothing to read, write or compute: only a deadline can move the
        // connection on, and a blocking driver cannot wait for one without
        // a read. Give it up.
        conn.time_out();
        let interest = conn.poll(site, log, clock());
        let stuck =
            !interest.again && !interest.read && conn.output(site).iter().all(|s| s.is_empty());
        if stuck {
            let flushed = io.flush();
            conn.close(log);
            return flushed.map(|()| Ended::Closed);
        }
    }
}
