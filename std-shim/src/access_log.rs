//! The access log: one line per exchange, Combined Log Format (escaping
//! `"`, `\` and non-printable bytes as `\xHH`, so no line can be forged) or
//! JSON lines ([`json`]). Buffered like nginx's `buffer=64k flush=1s`: no
//! system call per request; one `write` of whole lines when full, once a
//! second ([`AccessLog::flush_due_ms`]), before a reopen and on drop.

pub mod json;

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;
use txtd_core::Exchange;
use txtd_core::date::http_date;

/// Bytes buffered before a write (nginx's `buffer=64k`).
pub const BUFFER_LEN: usize = 64 * 1024;
/// The longest a line waits in the buffer (nginx's `flush=1s`).
pub const FLUSH_MS: u64 = 1000;

/// The line format (`--access-log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// The Combined Log Format.
    #[default]
    Combined,
    /// One JSON object per line.
    Json,
}

/// Where access lines go.
enum Sink {
    /// Standard output.
    Stdout,
    /// A file opened for appending, and its path for reopening.
    File(File, std::path::PathBuf),
}

/// The access log: its sink, the block of lines not written yet, and a
/// line buffer reused for every request.
pub struct AccessLog {
    sink: Sink,
    format: Format,
    line: Vec<u8>,
    buffer: Vec<u8>,
    /// When the oldest buffered line must be written (monotonic ms);
    /// `None` while the buffer is empty.
    flush_at_ms: Option<u64>,
}

impl AccessLog {
    /// Opens the log at `path`; `-` is stdout.
    ///
    /// # Errors
    ///
    /// The file cannot be opened for appending.
    pub fn open(path: &Path, format: Format) -> io::Result<Self> {
        let sink = if path.as_os_str() == "-" {
            Sink::Stdout
        } else {
            let file = File::options().create(true).append(true).open(path)?;
            Sink::File(file, path.to_owned())
        };
        Ok(Self {
            sink,
            format,
            line: Vec::with_capacity(1024),
            buffer: Vec::with_capacity(BUFFER_LEN),
            flush_at_ms: None,
        })
    }

    /// Writes what is buffered, then opens the file again by its path
    /// (SIGUSR1, after log rotation): buffered lines land in the old file.
    ///
    /// # Errors
    ///
    /// The file cannot be opened; the old one stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        self.flush();
        if let Sink::File(file, path) = &mut self.sink {
            *file = File::options().create(true).append(true).open(&*path)?;
        }
        Ok(())
    }

    /// Buffers the line for one exchange; writes the buffer first if the
    /// line would not fit. `now_ms` (monotonic) starts the flush clock.
    pub fn write(
        &mut self,
        peer: &SocketAddr,
        unix_secs: u64,
        now_ms: u64,
        exchange: &Exchange<'_>,
    ) {
        match self.format {
            Format::Combined => format_line(&mut self.line, peer, unix_secs, exchange),
            Format::Json => json::format_line(&mut self.line, peer, unix_secs, exchange),
        }
        if self.buffer.len().saturating_add(self.line.len()) > BUFFER_LEN {
            self.flush();
        }
        self.buffer.extend_from_slice(&self.line);
        if self.flush_at_ms.is_none() {
            self.flush_at_ms = Some(now_ms.saturating_add(FLUSH_MS));
        }
        if self.buffer.len() >= BUFFER_LEN {
            self.flush();
        }
    }

    /// When the buffered lines must be written (monotonic ms), if any are
    /// buffered: the worker wakes for it.
    pub fn flush_due_ms(&self) -> Option<u64> {
        self.flush_at_ms
    }

    /// Writes the buffer if its oldest line has waited [`FLUSH_MS`].
    pub fn flush_if_due(&mut self, now_ms: u64) {
        if self.flush_at_ms.is_some_and(|at| at <= now_ms) {
            self.flush();
        }
    }

    /// Writes the buffered lines in one `write`.
    pub fn flush(&mut self) {
        self.flush_at_ms = None;
        if self.buffer.is_empty() {
            return;
        }
        // One `write` of whole lines: with O_APPEND, another worker's block
        // lands before or after ours, never inside. A full disk must not
        // stop serving: the lines are lost.
        let _ = match &mut self.sink {
            Sink::Stdout => io::stdout().lock().write_all(&self.buffer),
            Sink::File(file, _) => file.write_all(&self.buffer),
        };
        self.buffer.clear();
    }
}

impl Drop for AccessLog {
    fn drop(&mut self) {
        self.flush();
    }
}

/// Replaces `line` with one Combined Log Format line, newline included
/// (no allocation once `line` has grown to a line's size).
pub fn format_line(line: &mut Vec<u8>, peer: &SocketAddr, unix_secs: u64, exchange: &Exchange<'_>) {
    line.clear();
    let _ = write!(line, "{} - - [", peer.ip());
    // Rearranged from the IMF-fixdate `Www, DD Mon YYYY HH:MM:SS GMT` that
    // core already forms: `DD/Mon/YYYY:HH:MM:SS +0000`.
    let date = http_date(unix_secs);
    for (range, sep) in [(5..7, b'/'), (8..11, b'/'), (12..16, b':')] {
        line.extend_from_slice(date.get(range).unwrap_or_default());
        line.push(sep);
    }
    line.extend_from_slice(date.get(17..25).unwrap_or_default());
    line.extend_from_slice(b" +0000] \"");
    escape(line, exchange.request_line);
    let _ = write!(line, "\" {} ", exchange.status.code());
    if exchange.body_len == 0 {
        line.push(b'-');
    } else {
        let _ = write!(line, "{}", exchange.body_len);
    }
    line.extend_from_slice(b" \"");
    escape_or_dash(line, exchange.referer);
    line.extend_from_slice(b"\" \"");
    escape_or_dash(line, exchange.user_agent);
    line.extend_from_slice(b"\"\n");
}

/// Formats `unix_secs` as RFC 3339 UTC (`2025-11-25T10:00:00Z`) into
/// `line`, without allocating.
pub(crate) fn write_rfc3339(line: &mut Vec<u8>, unix_secs: u64) {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix_secs);
    let _ = write!(line, "{}", humantime::format_rfc3339_seconds(time));
}

fn escape_or_dash(line: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) if !v.is_empty() => escape(line, v),
        _ => line.push(b'-'),
    }
}

fn escape(line: &mut Vec<u8>, bytes: &[u8]) {
    for &b in bytes {
        match b {
            b'"' | b'\\' => {
                line.push(b'\\');
                line.push(b);
            }
            0x20..=0x7e => line.push(b),
            _ => {
                let _ = write!(line, "\\x{b:02X}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use txtd_core::Status;

    fn exchange() -> Exchange<'static> {
        Exchange {
            request_line: b"GET /a HTTP/1.1",
            status: Status::OK,
            body_len: 10,
            referer: None,
            user_agent: None,
            refusal: None,
            complete: true,
        }
    }

    #[test]
    fn lines_wait_in_the_buffer_until_it_fills_or_a_second_passes() {
        let path = std::env::temp_dir().join(format!("txtd-access-{}.log", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut log = AccessLog::open(&path, Format::Combined).unwrap();
        log.write(&peer, 0, 5000, &exchange());
        log.write(&peer, 0, 5500, &exchange());
        assert_eq!(std::fs::read(&path).unwrap().len(), 0);
        assert_eq!(log.flush_due_ms(), Some(5000 + FLUSH_MS));
        log.flush_if_due(5999);
        assert_eq!(std::fs::read(&path).unwrap().len(), 0);
        log.flush_if_due(6000);
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert_eq!(log.flush_due_ms(), None);
        // Lines up to a full buffer: written in blocks of whole lines.
        let line_len = text.len() / 2;
        for _ in 0..(BUFFER_LEN / line_len + 1) {
            log.write(&peer, 0, 7000, &exchange());
        }
        let written = std::fs::read_to_string(&path).unwrap();
        assert!(written.len() > text.len() && written.ends_with('\n'));
        drop(log);
        let all = std::fs::read_to_string(&path).unwrap();
        assert_eq!(all.lines().count(), 2 + BUFFER_LEN / line_len + 1);
        std::fs::remove_file(&path).unwrap();
    }

    #[test]
    fn a_line_has_the_combined_fields_and_escapes_request_bytes() {
        let exchange = Exchange {
            request_line: b"GET /a\"b\x1b HTTP/1.1",
            status: Status::OK,
            body_len: 1234,
            referer: None,
            user_agent: Some(b"curl/8.5.0"),
            refusal: None,
            complete: true,
        };
        let peer: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        let mut line = b"previous line".to_vec();
        format_line(&mut line, &peer, 1_764_064_800, &exchange);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            "127.0.0.1 - - [25/Nov/2025:10:00:00 +0000] \"GET /a\\\"b\\x1B HTTP/1.1\" 200 1234 \"-\" \"curl/8.5.0\"\n"
        );
    }
}
