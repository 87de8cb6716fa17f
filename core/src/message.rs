//! What a parsed request head asks for: method, `Host`, body framing and
//! connection options (RFC 9110 §7.2, §9; RFC 9112 §3.2, §6, §9.3).
//!
//! [`Message::from_request`] checks the rules that are about meaning rather
//! than syntax and refuses a request whose framing is in doubt, so the
//! connection never reads a body it cannot delimit. It borrows the request;
//! nothing is copied, and the work is linear in the number of fields.

use core::fmt;

use crate::request::{Field, Request, Version};

/// The request methods txtd knows (RFC 9110 §9, RFC 5789).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Method {
    /// `GET`: served.
    Get,
    /// `HEAD`: served, the same head as `GET` without the body.
    Head,
    /// `OPTIONS`: answered with `Allow`.
    Options,
    /// `POST`: refused with 405.
    Post,
    /// `PUT`: refused with 405.
    Put,
    /// `DELETE`: refused with 405.
    Delete,
    /// `CONNECT`: refused with 405.
    Connect,
    /// `TRACE`: refused with 405.
    Trace,
    /// `PATCH`: refused with 405.
    Patch,
}

impl Method {
    /// The methods txtd serves, as the value of an `Allow` field.
    pub const ALLOW: &'static [u8] = b"GET, HEAD, OPTIONS";

    /// Recognises a method token; methods are case-sensitive (RFC 9110 §9.1).
    pub fn parse_method(token: &[u8]) -> Option<Self> {
        Some(match token {
            b"GET" => Self::Get,
            b"HEAD" => Self::Head,
            b"OPTIONS" => Self::Options,
            b"POST" => Self::Post,
            b"PUT" => Self::Put,
            b"DELETE" => Self::Delete,
            b"CONNECT" => Self::Connect,
            b"TRACE" => Self::Trace,
            b"PATCH" => Self::Patch,
            _ => return None,
        })
    }

    /// Whether txtd answers this method (with a page or with `Allow`).
    pub const fn is_allowed(self) -> bool {
        matches!(self, Self::Get | Self::Head | Self::Options)
    }
}

/// Why a well-formed head is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// An HTTP/1.1 request has no `Host` field (RFC 9112 §3.2) (400).
    MissingHost,
    /// More than one `Host` field line (400).
    DuplicateHost,
    /// The `Host` value is not `uri-host [ ":" port ]` (400).
    InvalidHost,
    /// A `Content-Length` value is not a list of the same decimal number (400).
    InvalidContentLength,
    /// `Content-Length` field lines disagree (RFC 9110 §8.6) (400).
    ConflictingContentLength,
    /// Both `Content-Length` and `Transfer-Encoding`: a smuggling form (RFC 9112 §6.1) (400).
    ContentLengthWithTransferEncoding,
    /// `Transfer-Encoding` in an HTTP/1.0 request: faulty framing (RFC 9112 §6.1) (400).
    TransferEncodingInHttp10,
    /// `Transfer-Encoding` names a coding txtd does not know, and `chunked` is last (501).
    UnknownTransferCoding,
    /// `Transfer-Encoding` does not end with `chunked` (RFC 9112 §6.3), whatever
    /// codings precede it (400).
    ChunkedNotLast,
    /// The method token is not one txtd knows (501).
    UnknownMethod,
    /// A known method other than GET, HEAD and OPTIONS (405).
    MethodNotAllowed,
    /// The request carries a body; txtd takes none (413).
    BodyNotAccepted,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::MissingHost => "missing host",
            Self::DuplicateHost => "duplicate host",
            Self::InvalidHost => "invalid host",
            Self::InvalidContentLength => "invalid content-length",
            Self::ConflictingContentLength => "conflicting content-length",
            Self::ContentLengthWithTransferEncoding => "content-length with transfer-encoding",
            Self::TransferEncodingInHttp10 => "transfer-encoding in http/1.0",
            Self::UnknownTransferCoding => "unknown transfer coding",
            Self::ChunkedNotLast => "chunked is not the last transfer coding",
            Self::UnknownMethod => "unknown method",
            Self::MethodNotAllowed => "method not allowed",
            Self::BodyNotAccepted => "request body not accepted",
        })
    }
}

impl core::error::Error for Error {}

/// A request the server can answer: the facts the response depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Message<'a, 'f> {
    /// The method, one of GET, HEAD and OPTIONS.
    pub method: Method,
    /// The version as received (a minor above 1 is answered as 1.1, RFC 9110 §2.5).
    pub version: Version,
    /// The `Host` value, absent only in HTTP/1.0.
    pub host: Option<&'a [u8]>,
    /// Whether the client may send another request on this connection.
    pub keep_alive: bool,
    /// All field lines, for the conditional and range fields.
    pub fields: &'f [Field<'a>],
}

impl<'a, 'f> Message<'a, 'f> {
    /// Checks a parsed request's semantics and keeps what the answer needs.
    ///
    /// Checks run in this order, so the status of a request that breaks
    /// several rules is stable: `Host`, body framing, method, body.
    ///
    /// # Errors
    ///
    /// The first [`Error`] the request breaks.
    ///
    /// # Examples
    ///
    /// ```
    /// use txtd_core::message::{Message, Method};
    /// use txtd_core::request::{parse_request, Field, Limits, Parsed};
    ///
    /// let mut fields = [Field::default(); 8];
    /// let input = b"HEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    /// let Ok(Parsed::Complete(request)) = parse_request(input, &mut fields, &Limits::DEFAULT) else {
    ///     panic!("complete");
    /// };
    /// let message = Message::from_request(&request).unwrap();
    /// assert_eq!(message.method, Method::Head);
    /// assert!(message.keep_alive);
    /// ```
    pub fn from_request(request: &Request<'a, 'f>) -> Result<Self, Error> {
        let version = request.version;
        let mut host = None;
        let mut host_count = 0u32;
        let mut content_length: Option<u64> = None;
        let mut transfer_encoding = false;
        let mut chunked_last = false;
        let mut unknown_coding = false;
        let mut close = false;
        let mut keep_alive_token = false;

        for field in request.fields {
            let name = field.name;
            if name.eq_ignore_ascii_case(b"host") {
                host_count += 1;
                host = Some(field.value);
            } else if name.eq_ignore_ascii_case(b"content-length") {
                let value = parse_content_length(field.value)?;
                match content_length {
                    Some(previous) if previous != value => {
                        return Err(Error::ConflictingContentLength);
                    }
                    _ => content_length = Some(value),
                }
            } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
                transfer_encoding = true;
                // Codings accumulate across field lines (RFC 9110 §5.3);
                // only the last one decides whether chunked is last.
                for coding in list_items(field.value) {
                    chunked_last = match coding_name(coding) {
                        Some(Coding::Chunked) => true,
                        Some(Coding::Other) => false,
                        None => {
                            unknown_coding = true;
                            false
                        }
                    };
                }
            } else if name.eq_ignore_ascii_case(b"connection") {
                for option in list_items(field.value) {
                    close |= option.eq_ignore_ascii_case(b"close");
                    keep_alive_token |= option.eq_ignore_ascii_case(b"keep-alive");
                }
            }
        }

        // RFC 9112 §3.2: 400 for a 1.1 request without Host, with two, or
        // with an invalid one.
        match host_count {
            0 if version >= Version::HTTP_11 => return Err(Error::MissingHost),
            0 | 1 => {}
            _ => return Err(Error::DuplicateHost),
        }
        if let Some(value) = host
            && !is_valid_host(value)
        {
            return Err(Error::InvalidHost);
        }

        if transfer_encoding {
            if content_length.is_some() {
                return Err(Error::ContentLengthWithTransferEncoding);
            }
            if version < Version::HTTP_11 {
                return Err(Error::TransferEncodingInHttp10);
            }
            // RFC 9112 §6.3: chunked not last is a MUST 400, so it wins over
            // the 501 an unknown coding SHOULD get (§6.1).
            if !chunked_last {
                return Err(Error::ChunkedNotLast);
            }
            if unknown_coding {
                return Err(Error::UnknownTransferCoding);
            }
        }

        let method = match Method::parse_method(request.method) {
            Some(method) if method.is_allowed() => method,
            Some(_) => return Err(Error::MethodNotAllowed),
            None => return Err(Error::UnknownMethod),
        };

        if transfer_encoding || content_length.is_some_and(|n| n > 0) {
            return Err(Error::BodyNotAccepted);
        }

        let keep_alive = !close && (version >= Version::HTTP_11 || keep_alive_token);
        Ok(Self {
            method,
            version,
            host,
            keep_alive,
            fields: request.fields,
        })
    }

    /// The value of the only field line named `name`, or `None` if there is
    /// none or more than one.
    pub fn field_value(&self, name: &[u8]) -> Option<&'a [u8]> {
        let mut found = None;
        for field in self.fields {
            if field.name.eq_ignore_ascii_case(name) {
                if found.is_some() {
                    return None;
                }
                found = Some(field.value);
            }
        }
        found
    }

    /// The values of every field line named `name`, in order.
    pub fn field_values<'s>(&'s self, name: &'s [u8]) -> impl Iterator<Item = &'a [u8]> + 's {
        self.fields
            .iter()
            .filter(move |field| field.name.eq_ignore_ascii_case(name))
            .map(|field| field.value)
    }
}

/// A `Content-Length` value: digits, or a list of identical numbers
/// (RFC 9110 §8.6 allows a recipient to accept `5, 5`).
fn parse_content_length(value: &[u8]) -> Result<u64, Error> {
    let mut result = None;
    for item in list_items_keep_empty(value) {
        if item.is_empty() || !item.iter().all(u8::is_ascii_digit) {
            return Err(Error::InvalidContentLength);
        }
        let mut n: u64 = 0;
        for &digit in item {
            n = n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(digit - b'0')))
                .ok_or(Error::InvalidContentLength)?;
        }
        match result {
            Some(previous) if previous != n => return Err(Error::ConflictingContentLength),
            _ => result = Some(n),
        }
    }
    result.ok_or(Error::InvalidContentLength)
}

enum Coding {
    Chunked,
    Other,
}

/// A transfer coding name (RFC 9112 §7), parameters ignored; `None` if it
/// is not one txtd knows.
fn coding_name(item: &[u8]) -> Option<Coding> {
    let name = item
        .split(|&b| b == b';')
        .next()
        .unwrap_or_default()
        .trim_ascii();
    if name.eq_ignore_ascii_case(b"chunked") {
        Some(Coding::Chunked)
    } else if [
        &b"gzip"[..],
        b"x-gzip",
        b"deflate",
        b"compress",
        b"x-compress",
    ]
    .iter()
    .any(|known| name.eq_ignore_ascii_case(known))
    {
        Some(Coding::Other)
    } else {
        None
    }
}

/// The non-empty items of a comma-separated list, whitespace trimmed
/// (RFC 9110 §5.6.1: empty elements are ignored).
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    list_items_keep_empty(value).filter(|item| !item.is_empty())
}

fn list_items_keep_empty(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b',').map(<[u8]>::trim_ascii)
}

/// `uri-host [ ":" port ]` (RFC 9110 §7.2, RFC 3986 §3.2.2); empty is
/// allowed (RFC 9112 §3.2).
fn is_valid_host(value: &[u8]) -> bool {
    let (host, port) = match value.first() {
        Some(b'[') => {
            let Some(end) = value.iter().position(|&b| b == b']') else {
                return false;
            };
            let (literal, rest) = value.split_at_checked(end + 1).unwrap_or((value, &[]));
            let inner = literal.get(1..end).unwrap_or_default();
            if inner.is_empty()
                || !inner
                    .iter()
                    .all(|&b| b.is_ascii_hexdigit() || matches!(b, b':' | b'.' | b'v' | b'V'))
            {
                return false;
            }
            (literal, rest)
        }
        _ => {
            let end = value.iter().position(|&b| b == b':').unwrap_or(value.len());
            value.split_at_checked(end).unwrap_or((value, &[]))
        }
    };
    let host_ok = host.first() == Some(&b'[')
        || host.iter().all(|&b| {
            b.is_ascii_alphanumeric()
                || matches!(
                    b,
                    b'-' | b'.'
                        | b'_'
                        | b'~'
                        | b'%'
                        | b'!'
                        | b'$'
                        | b'&'
                        | b'\''
                        | b'('
                        | b')'
                        | b'*'
                        | b'+'
                        | b','
                        | b';'
                        | b'='
                )
        });
    let port_ok = match port.split_first() {
        None => true,
        Some((b':', digits)) => digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    };
    host_ok && port_ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Limits, Parsed, parse_request};

    fn check(input: &[u8]) -> Result<(Method, bool), Error> {
        let mut fields = [Field::default(); 16];
        let Ok(Parsed::Complete(request)) = parse_request(input, &mut fields, &Limits::DEFAULT)
        else {
            panic!("test input must parse");
        };
        Message::from_request(&request).map(|m| (m.method, m.keep_alive))
    }

    #[test]
    fn http_11_keeps_alive_unless_told_to_close() {
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok((Method::Get, true))
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, Close\r\n\r\n"),
            Ok((Method::Get, false))
        );
    }

    #[test]
    fn http_10_keeps_alive_only_when_asked() {
        assert_eq!(check(b"GET / HTTP/1.0\r\n\r\n"), Ok((Method::Get, false)));
        assert_eq!(
            check(b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"),
            Ok((Method::Get, true))
        );
    }

    #[test]
    fn host_is_required_once_in_http_11() {
        assert_eq!(check(b"GET / HTTP/1.1\r\n\r\n"), Err(Error::MissingHost));
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"),
            Err(Error::DuplicateHost)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n"),
            Err(Error::InvalidHost)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"),
            Ok((Method::Get, true))
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost:\r\n\r\n"),
            Ok((Method::Get, true))
        );
    }

    #[test]
    fn smuggling_forms_are_refused() {
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"),
            Err(Error::ContentLengthWithTransferEncoding)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"),
            Err(Error::ConflictingContentLength)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n"),
            Err(Error::ChunkedNotLast)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n"),
            Err(Error::ChunkedNotLast)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xgzip, chunked\r\n\r\n"),
            Err(Error::UnknownTransferCoding)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: +3\r\n\r\n"),
            Err(Error::InvalidContentLength)
        );
    }

    #[test]
    fn methods_get_their_statuses() {
        assert_eq!(
            check(b"POST / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(Error::MethodNotAllowed)
        );
        assert_eq!(
            check(b"BREW / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(Error::UnknownMethod)
        );
        assert_eq!(
            check(b"get / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Err(Error::UnknownMethod)
        );
        assert_eq!(
            check(b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n"),
            Ok((Method::Options, true))
        );
    }

    #[test]
    fn a_body_is_refused_but_a_zero_length_is_not() {
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\n"),
            Err(Error::BodyNotAccepted)
        );
        assert_eq!(
            check(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0, 0\r\n\r\n"),
            Ok((Method::Get, true))
        );
    }
}
