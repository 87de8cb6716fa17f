//! The access log as JSON lines: one object per exchange and line. Valid
//! JSON (RFC 8259) whatever the client sent: `"`, `\` and control bytes
//! escaped (§7), bytes that are not UTF-8 as U+FFFD, as txtd's pages show
//! them. No allocation once the line buffer has grown to a line's size.

use std::io::Write;
use std::net::SocketAddr;

use txtd_core::Exchange;

/// Replaces `line` with the JSON object for one exchange, newline included.
pub fn format_line(line: &mut Vec<u8>, peer: &SocketAddr, unix_secs: u64, exchange: &Exchange<'_>) {
    line.clear();
    line.extend_from_slice(b"{\"time\":\"");
    super::write_rfc3339(line, unix_secs);
    let _ = write!(line, "\",\"remote_addr\":\"{}\",\"request\":", peer.ip());
    write_string(line, exchange.request_line);
    let _ = write!(
        line,
        ",\"status\":{},\"body_bytes_sent\":{},\"referer\":",
        exchange.status.code(),
        exchange.body_len
    );
    write_optional(line, exchange.referer);
    line.extend_from_slice(b",\"user_agent\":");
    write_optional(line, exchange.user_agent);
    let _ = writeln!(line, ",\"complete\":{}}}", exchange.complete);
}

/// A string, or `null` for a field the request did not have.
fn write_optional(line: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        Some(v) => write_string(line, v),
        None => line.extend_from_slice(b"null"),
    }
}

/// `bytes` as a JSON string, quotes included.
fn write_string(line: &mut Vec<u8>, bytes: &[u8]) {
    line.push(b'"');
    for chunk in bytes.utf8_chunks() {
        for &b in chunk.valid().as_bytes() {
            match b {
                b'"' | b'\\' => {
                    line.push(b'\\');
                    line.push(b);
                }
                b'\n' => line.extend_from_slice(b"\\n"),
                b'\r' => line.extend_from_slice(b"\\r"),
                b'\t' => line.extend_from_slice(b"\\t"),
                // RFC 8259 §7: control characters must be escaped; DEL too,
                // so a terminal showing the log cannot be steered.
                0x00..=0x1f | 0x7f => {
                    let _ = write!(line, "\\u{b:04x}");
                }
                _ => line.push(b),
            }
        }
        if !chunk.invalid().is_empty() {
            // One U+FFFD per invalid sequence, as String::from_utf8_lossy.
            line.extend_from_slice("\u{fffd}".as_bytes());
        }
    }
    line.push(b'"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use txtd_core::Status;

    #[test]
    fn a_line_escapes_quotes_controls_and_bytes_that_are_not_utf8() {
        let exchange = Exchange {
            request_line: b"GET /a\"b\\c\x1b\x7f HTTP/1.1",
            status: Status::NOT_FOUND,
            body_len: 0,
            referer: None,
            user_agent: Some(b"agent \xff\xfe caf\xc3\xa9\n"),
            refusal: None,
            complete: false,
        };
        let peer: SocketAddr = "[::1]:5000".parse().unwrap();
        let mut line = b"previous".to_vec();
        format_line(&mut line, &peer, 1_764_064_800, &exchange);
        let text = String::from_utf8(line).unwrap();
        assert_eq!(
            text,
            "{\"time\":\"2025-11-25T10:00:00Z\",\"remote_addr\":\"::1\",\
\"request\":\"GET /a\\\"b\\\\c\\u001b\\u007f HTTP/1.1\",\"status\":404,\
\"body_bytes_sent\":0,\"referer\":null,\
\"user_agent\":\"agent \u{fffd}\u{fffd} caf\u{e9}\\n\",\"complete\":false}\n"
        );
    }
}
