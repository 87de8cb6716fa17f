//! One admin request to one response: parsed by core's parser and
//! `Message`, routed, written by core's head writer plus the admin media
//! type. `/healthz`: 503 `starting` until the first `READY=1`, 200 `ok`
//! through reloads and upgrades, 503 `stopping` once a stop began, so a load
//! balancer moves away while the draining workers finish.

use txtd_core::message::Method;
use txtd_core::request::{Field, Limits, Parsed, parse_request};
use txtd_core::response::{Connection, Head, write_head};
use txtd_core::{Message, Refusal, Status};

use crate::scoreboard::{MasterSnapshot, Scoreboard};

/// Field lines an admin request may have.
const MAX_FIELDS: usize = 32;
/// Bytes of an admin response head before the fields added here.
const HEAD_LEN: usize = 512;
/// The Prometheus text exposition format, version 0.0.4.
const METRICS_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
const TEXT_TYPE: &str = "text/plain; charset=utf-8";
const HTML_TYPE: &str = "text/html; charset=utf-8";

/// What a response is built from: the scoreboard, which slot answers, and
/// the time.
pub struct View {
    /// The shared scoreboard.
    pub scoreboard: Scoreboard,
    /// The answering worker's slot.
    pub slot: usize,
    /// `CLOCK_MONOTONIC` milliseconds (heartbeat ages).
    pub now_ms: u64,
    /// Seconds since the Unix epoch (`Date`, uptime).
    pub unix_secs: u64,
}

/// What `/healthz` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// The pool has not served yet (503).
    Starting,
    /// The pool serves (200).
    Serving,
    /// A stop began (503).
    Stopping,
}

impl Health {
    /// The health the master area shows. A master that handed over to a
    /// new one by a binary upgrade is not stopping the service.
    pub fn of(master: &MasterSnapshot) -> Self {
        if master.stopping {
            Self::Stopping
        } else if master.ready || master.handed_over {
            Self::Serving
        } else {
            Self::Starting
        }
    }

    /// The lowercase word for pages.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::Serving => "ok",
            Self::Stopping => "stopping",
        }
    }
}

/// Builds the response to the request head at the start of `input` into
/// `out` (replacing its contents); `body` is scratch space. Returns false
/// while the head is incomplete and `full` is false (more bytes may come).
pub fn respond(
    input: &[u8],
    full: bool,
    view: &View,
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> bool {
    let mut fields = [Field::default(); MAX_FIELDS];
    let limits = Limits {
        max_fields: MAX_FIELDS,
        max_head: super::INPUT_LEN,
        ..Limits::DEFAULT
    };
    body.clear();
    let request = match parse_request(input, &mut fields, &limits) {
        Ok(Parsed::Complete(request)) => request,
        Ok(Parsed::Partial) if !full => return false,
        Ok(Parsed::Partial) => {
            let status = Status::REQUEST_HEADER_FIELDS_TOO_LARGE;
            error(status, view, body, out);
            return true;
        }
        Err(e) => {
            error(Refusal::Request(e).status(), view, body, out);
            return true;
        }
    };
    let message = match Message::from_request(&request) {
        Ok(message) => message,
        Err(e) => {
            error(Refusal::Message(e).status(), view, body, out);
            return true;
        }
    };
    if message.method == Method::Options {
        write(Status::NO_CONTENT, TEXT_TYPE, view, body, false, out);
        return true;
    }
    let target = request.request_target;
    let (path, query) = match target.iter().position(|&b| b == b'?') {
        Some(at) => (
            target.get(..at).unwrap_or_default(),
            target.get(at + 1..).unwrap_or_default(),
        ),
        None => (target, &b""[..]),
    };
    let (status, media_type) = match path {
        b"/healthz" => {
            let health = Health::of(&view.scoreboard.master().read());
            body.extend_from_slice(health.as_str().as_bytes());
            body.push(b'\n');
            let status = match health {
                Health::Serving => Status::OK,
                Health::Starting | Health::Stopping => Status::SERVICE_UNAVAILABLE,
            };
            (status, TEXT_TYPE)
        }
        b"/metrics" => {
            super::metrics::write(body, view);
            (Status::OK, METRICS_TYPE)
        }
        // Apache's `server-status?auto`: the same facts as `Key: value` lines.
        b"/status" if query == b"auto" => {
            super::status::write_auto(body, view);
            (Status::OK, TEXT_TYPE)
        }
        b"/status" => {
            super::status::write_html(body, view);
            (Status::OK, HTML_TYPE)
        }
        _ => {
            body.extend_from_slice(b"not found: try /healthz, /metrics or /status\n");
            (Status::NOT_FOUND, TEXT_TYPE)
        }
    };
    let head_only = message.method == Method::Head;
    write(status, media_type, view, body, head_only, out);
    true
}

/// An error response with its reason phrase as the body.
fn error(status: Status, view: &View, body: &mut Vec<u8>, out: &mut Vec<u8>) {
    body.clear();
    body.extend_from_slice(status.reason_phrase().as_bytes());
    body.push(b'\n');
    write(status, TEXT_TYPE, view, body, false, out);
}

/// Head and (unless `head_only`) body into `out`.
fn write(
    status: Status,
    media_type: &str,
    view: &View,
    body: &[u8],
    head_only: bool,
    out: &mut Vec<u8>,
) {
    out.clear();
    let has_body = !status.has_no_body();
    let head = Head {
        content_length: has_body.then_some(body.len() as u64),
        allow: status == Status::NO_CONTENT || status == Status::METHOD_NOT_ALLOWED,
        connection: Connection::Close,
        ..Head::new(status, view.unix_secs)
    };
    let mut buf = [0u8; HEAD_LEN];
    let len = write_head(&head, &mut buf).unwrap_or(0);
    // Core's head ends with the blank line; the admin fields go before it.
    let fields = buf.get(..len.saturating_sub(2)).unwrap_or_default();
    out.extend_from_slice(fields);
    if has_body {
        out.extend_from_slice(b"Content-Type: ");
        out.extend_from_slice(media_type.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    // Health and counters are of this moment: no cache may keep them.
    out.extend_from_slice(b"Cache-Control: no-store\r\n\r\n");
    if has_body && !head_only {
        out.extend_from_slice(body);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn view() -> View {
        let scoreboard = Scoreboard::new(2).unwrap();
        View {
            scoreboard,
            slot: 0,
            now_ms: 1000,
            unix_secs: 0,
        }
    }

    fn answer(view: &View, input: &[u8]) -> Option<String> {
        let (mut body, mut out) = (Vec::new(), Vec::new());
        respond(input, false, view, &mut body, &mut out).then(|| String::from_utf8(out).unwrap())
    }

    #[test]
    fn healthz_is_starting_then_ok_then_stopping() {
        let view = view();
        let get = b"GET /healthz HTTP/1.1\r\nHost: a\r\n\r\n";
        let text = answer(&view, get).unwrap();
        assert!(
            text.starts_with("HTTP/1.1 503 Service Unavailable\r\n"),
            "{text}"
        );
        assert!(text.ends_with("\r\nConnection: close\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\n\r\nstarting\n"), "{text}");
        view.scoreboard.master().set_ready();
        let text = answer(&view, get).unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\nok\n"));
        assert!(text.contains("\r\nContent-Length: 3\r\n"), "{text}");
        view.scoreboard.master().set_stopping();
        let text = answer(&view, get).unwrap();
        assert!(text.starts_with("HTTP/1.1 503 ") && text.ends_with("\r\n\r\nstopping\n"));
    }

    #[test]
    fn a_partial_head_waits_and_a_head_too_large_for_the_buffer_is_431() {
        let view = view();
        assert_eq!(answer(&view, b"GET /healthz HTTP/1.1\r\nHo"), None);
        let (mut body, mut out) = (Vec::new(), Vec::new());
        assert!(respond(
            b"GET /healthz HTTP/1.1\r\nHo",
            true,
            &view,
            &mut body,
            &mut out
        ));
        assert!(out.starts_with(b"HTTP/1.1 431 "));
    }

    #[test]
    fn unknown_paths_are_404_other_methods_405_and_head_has_no_body() {
        let view = view();
        let text = answer(&view, b"GET /nope HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"), "{text}");
        let text = answer(&view, b"POST /metrics HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(text.starts_with("HTTP/1.1 405 ") && text.contains("\r\nAllow: "));
        let text = answer(&view, b"HEAD /status?auto HTTP/1.1\r\nHost: a\r\n\r\n").unwrap();
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n") && text.ends_with("\r\n\r\n"));
        let text = answer(&view, b"GET /x HTTP/1.1\r\n\r\n").unwrap();
        assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    }
}
