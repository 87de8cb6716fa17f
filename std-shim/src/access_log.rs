//! The access log in the Combined Log Format (Apache's `combined`,
//! nginx's default): `host - - [time] "request" status bytes "referer"
//! "user-agent"`. Request bytes are escaped as nginx does (`"`, `\` and
//! non-printable bytes as `\xHH`) so a client cannot forge log lines.

use std::fs::File;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::Path;

use txtd_core::Exchange;
use txtd_core::date::http_date;

/// Where access lines go.
enum Sink {
    /// Standard output.
    Stdout,
    /// A file opened for appending, and its path for reopening.
    File(File, std::path::PathBuf),
}

/// The access log: its sink and a line buffer reused for every request.
pub struct AccessLog {
    sink: Sink,
    line: Vec<u8>,
}

impl AccessLog {
    /// Opens the log at `path`; `-` is stdout.
    ///
    /// # Errors
    ///
    /// The file cannot be opened for appending.
    pub fn open(path: &Path) -> io::Result<Self> {
        let sink = if path.as_os_str() == "-" {
            Sink::Stdout
        } else {
            let file = File::options().create(true).append(true).open(path)?;
            Sink::File(file, path.to_owned())
        };
        Ok(Self {
            sink,
            line: Vec::with_capacity(1024),
        })
    }

    /// Opens the file again by its path (SIGUSR1, after log rotation).
    ///
    /// # Errors
    ///
    /// The file cannot be opened; the old one stays in use.
    pub fn reopen(&mut self) -> io::Result<()> {
        if let Sink::File(file, path) = &mut self.sink {
            *file = File::options().create(true).append(true).open(&*path)?;
        }
        Ok(())
    }

    /// Writes the line for one exchange, in one `write`.
    pub fn write(&mut self, peer: &SocketAddr, unix_secs: u64, exchange: &Exchange<'_>) {
        format_line(&mut self.line, peer, unix_secs, exchange);
        // A full disk must not stop serving: the line is lost.
        let _ = match &mut self.sink {
            Sink::Stdout => io::stdout().lock().write_all(&self.line),
            Sink::File(file, _) => file.write_all(&self.line),
        };
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
