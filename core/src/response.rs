//! Response heads forged into a caller's buffer: the status line and header
//! fields (RFC 9112 §4, RFC 9110 §6, §8, §10, §14).
//!
//! [`write_head`] writes a whole head or nothing useful: it returns
//! [`Error::BufferTooSmall`] if the head does not fit, never a truncated
//! head; `write_head_from` writes any window of the same bytes, so a head
//! goes out through a buffer smaller than itself. It never allocates and
//! formats numbers and dates by hand.

use core::fmt;

use crate::date::http_date;
use crate::message::Method;
use crate::status::Status;

/// The value of `Content-Type` for every page txtd sends.
pub const CONTENT_TYPE: &[u8] = b"text/html; charset=utf-8";

/// What the `Connection` field says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Connection {
    /// No field: HTTP/1.1 persistence applies.
    Default,
    /// `Connection: keep-alive`, for an HTTP/1.0 client that asked for it.
    KeepAlive,
    /// `Connection: close`: the server closes after this response.
    Close,
}

/// A `Content-Range` value (RFC 9110 §14.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ContentRange {
    /// `bytes first-last/complete` on a 206.
    Bytes {
        /// First byte sent.
        first: u64,
        /// Last byte sent (inclusive).
        last: u64,
        /// Length of the whole page.
        complete: u64,
    },
    /// `bytes */complete` on a 416.
    Unsatisfied {
        /// Length of the whole page.
        complete: u64,
    },
}

/// Everything a response head says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Head<'a> {
    /// The status.
    pub status: Status,
    /// `Date`, seconds since the Unix epoch.
    pub date: u64,
    /// `Content-Length`; `None` on 204 and 304, which have none.
    pub content_length: Option<u64>,
    /// Whether to send `Content-Type: text/html; charset=utf-8`.
    pub content_type: bool,
    /// `Last-Modified`, seconds since the Unix epoch.
    pub last_modified: Option<u64>,
    /// `ETag`, the whole quoted value.
    pub etag: Option<&'a [u8]>,
    /// Whether to send `Accept-Ranges: bytes`.
    pub accept_ranges: bool,
    /// `Content-Range`.
    pub content_range: Option<ContentRange>,
    /// `Location`: a root-relative directory path, percent-encoded here and
    /// written as `/path/` (never bytes from the request as received).
    pub location: Option<&'a [u8]>,
    /// Whether to send `Allow: GET, HEAD, OPTIONS`.
    pub allow: bool,
    /// `Retry-After`, in seconds.
    pub retry_after: Option<u32>,
    /// `Connection`.
    pub connection: Connection,
}

impl<'a> Head<'a> {
    /// A head with only the status and date set.
    pub const fn new(status: Status, date: u64) -> Self {
        Self {
            status,
            date,
            content_length: None,
            content_type: false,
            last_modified: None,
            etag: None,
            accept_ranges: false,
            content_range: None,
            location: None,
            allow: false,
            retry_after: None,
            connection: Connection::Default,
        }
    }
}

/// Why a head could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The head does not fit the buffer (500, from a smaller fallback head).
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("response head does not fit the buffer")
    }
}

impl core::error::Error for Error {}

/// A window over the head's bytes: passes over the first `skip`, writes
/// what fits `out`, and counts the whole head. Never fails, so one pass
/// gives both a window and the head's length.
struct Cursor<'o> {
    out: &'o mut [u8],
    /// Head bytes still to pass over.
    skip: usize,
    /// Bytes written to `out`.
    len: usize,
    /// Bytes of the head so far, written or not.
    total: usize,
}

impl Cursor<'_> {
    #[inline(always)]
    fn put(&mut self, bytes: &[u8]) {
        self.total = self.total.saturating_add(bytes.len());
        let skipped = self.skip.min(bytes.len());
        self.skip -= skipped;
        let rest = bytes.get(skipped..).unwrap_or_default();
        let free = self.out.get_mut(self.len..).unwrap_or_default();
        let n = rest.len().min(free.len());
        if let (Some(dst), Some(src)) = (free.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len += n;
    }

    #[inline(always)]
    fn put_u64(&mut self, n: u64) {
        let mut digits = [0u8; 20];
        let len = write_decimal(n, &mut digits);
        self.put(digits.get(digits.len() - len..).unwrap_or_default());
    }

    fn put_percent_encoded(&mut self, bytes: &[u8]) {
        // A byte becomes at most 3, so each chunk fits the scratch.
        let mut scratch = [0u8; 48];
        for chunk in bytes.chunks(16) {
            let n = crate::html::write_percent_encoded(chunk, &mut scratch).unwrap_or(0);
            self.put(scratch.get(..n).unwrap_or_default());
        }
    }
}

/// Writes `n` right-aligned at the end of `digits`; returns how many digits.
#[inline(always)]
fn write_decimal(mut n: u64, digits: &mut [u8; 20]) -> usize {
    let mut i = digits.len();
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            return digits.len() - i;
        }
    }
}

/// Writes the head of a response into `out`: status line, fields and the
/// blank line.
///
/// Returns the number of bytes written.
///
/// # Errors
///
/// [`Error::BufferTooSmall`] if the head does not fit; `out` then holds
/// partial bytes that must not be sent.
///
/// # Examples
///
/// ```
/// use txtd_core::response::{write_head, Head};
/// use txtd_core::Status;
///
/// let mut out = [0u8; 256];
/// let mut head = Head::new(Status::NOT_FOUND, 784_111_777);
/// head.content_length = Some(0);
/// let len = write_head(&head, &mut out).unwrap();
/// assert_eq!(
///     &out[..len],
///     b"HTTP/1.1 404 Not Found\r\nServer: txtd\r\nDate: Sun, 06 Nov 1994 08:49:37 GMT\r\nContent-Length: 0\r\n\r\n"
/// );
/// ```
pub fn write_head(head: &Head<'_>, out: &mut [u8]) -> Result<usize, Error> {
    let capacity = out.len();
    let (len, total) = write_head_from(head, 0, out);
    if total > capacity {
        return Err(Error::BufferTooSmall);
    }
    Ok(len)
}

/// Writes what fits `out` of [`write_head`]'s bytes from `skip` on, for a
/// buffer too small to hold the whole head: called again with a larger
/// `skip`, it goes on where the last window ended.
///
/// Returns the bytes written and the length of the whole head (the bytes
/// written are `0` once `skip` reaches it).
pub(crate) fn write_head_from(head: &Head<'_>, skip: usize, out: &mut [u8]) -> (usize, usize) {
    let mut c = Cursor {
        out,
        skip,
        len: 0,
        total: 0,
    };
    c.put(b"HTTP/1.1 ");
    c.put_u64(u64::from(head.status.code()));
    c.put(b" ");
    c.put(head.status.reason_phrase().as_bytes());
    c.put(b"\r\nServer: txtd\r\nDate: ");
    c.put(&http_date(head.date));
    if head.content_type {
        c.put(b"\r\nContent-Type: ");
        c.put(CONTENT_TYPE);
    }
    if let Some(len) = head.content_length {
        c.put(b"\r\nContent-Length: ");
        c.put_u64(len);
    }
    if let Some(modified) = head.last_modified {
        c.put(b"\r\nLast-Modified: ");
        c.put(&http_date(modified));
    }
    if let Some(etag) = head.etag {
        c.put(b"\r\nETag: ");
        c.put(etag);
    }
    if head.accept_ranges {
        c.put(b"\r\nAccept-Ranges: bytes");
    }
    match head.content_range {
        Some(ContentRange::Bytes {
            first,
            last,
            complete,
        }) => {
            c.put(b"\r\nContent-Range: bytes ");
            c.put_u64(first);
            c.put(b"-");
            c.put_u64(last);
            c.put(b"/");
            c.put_u64(complete);
        }
        Some(ContentRange::Unsatisfied { complete }) => {
            c.put(b"\r\nContent-Range: bytes */");
            c.put_u64(complete);
        }
        None => {}
    }
    if let Some(path) = head.location {
        // Built from the normalised path only: every byte but unreserved
        // ones and `/` is percent-encoded, and the path never starts with
        // `/`, so no `//host`, CR, LF or `\` can reach the field.
        c.put(b"\r\nLocation: /");
        c.put_percent_encoded(path);
        if !path.is_empty() {
            c.put(b"/");
        }
    }
    if head.allow {
        c.put(b"\r\nAllow: ");
        c.put(Method::ALLOW);
    }
    if let Some(secs) = head.retry_after {
        c.put(b"\r\nRetry-After: ");
        c.put_u64(u64::from(secs));
    }
    match head.connection {
        Connection::Default => {}
        Connection::KeepAlive => c.put(b"\r\nConnection: keep-alive"),
        Connection::Close => c.put(b"\r\nConnection: close"),
    }
    c.put(b"\r\n\r\n");
    (c.len, c.total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_bytes(head: &Head<'_>) -> ([u8; 512], usize) {
        let mut out = [0u8; 512];
        let len = write_head(head, &mut out).unwrap();
        (out, len)
    }

    #[test]
    fn every_field_is_written_in_order() {
        let head = Head {
            content_length: Some(12),
            content_type: true,
            last_modified: Some(0),
            etag: Some(b"\"abc\""),
            accept_ranges: true,
            content_range: Some(ContentRange::Bytes {
                first: 0,
                last: 11,
                complete: 100,
            }),
            connection: Connection::KeepAlive,
            ..Head::new(Status::PARTIAL_CONTENT, 0)
        };
        let (out, len) = head_bytes(&head);
        assert_eq!(
            &out[..len],
            &b"HTTP/1.1 206 Partial Content\r\nServer: txtd\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
Content-Type: text/html; charset=utf-8\r\nContent-Length: 12\r\n\
Last-Modified: Thu, 01 Jan 1970 00:00:00 GMT\r\nETag: \"abc\"\r\nAccept-Ranges: bytes\r\n\
Content-Range: bytes 0-11/100\r\nConnection: keep-alive\r\n\r\n"[..]
        );
    }

    #[test]
    fn location_is_percent_encoded_from_the_path() {
        let head = Head {
            location: Some(b"a b/\r\n\\x"),
            ..Head::new(Status::MOVED_PERMANENTLY, 0)
        };
        let (out, len) = head_bytes(&head);
        let text = &out[..len];
        assert!(
            text.windows(29)
                .any(|w| w == b"Location: /a%20b/%0D%0A%5Cx/\r")
        );
    }

    #[test]
    fn unsatisfied_range_and_retry_after_and_allow_are_written() {
        let head = Head {
            content_range: Some(ContentRange::Unsatisfied { complete: 7 }),
            retry_after: Some(5),
            allow: true,
            connection: Connection::Close,
            ..Head::new(Status::SERVICE_UNAVAILABLE, 0)
        };
        let (out, len) = head_bytes(&head);
        let text = &out[..len];
        for needle in [
            &b"Content-Range: bytes */7\r\n"[..],
            b"Retry-After: 5\r\n",
            b"Allow: GET, HEAD, OPTIONS\r\n",
            b"Connection: close\r\n\r\n",
        ] {
            assert!(text.windows(needle.len()).any(|w| w == needle));
        }
    }

    #[test]
    fn a_head_that_does_not_fit_is_an_error() {
        let mut out = [0u8; 20];
        assert_eq!(
            write_head(&Head::new(Status::OK, 0), &mut out),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn windows_of_any_size_give_the_whole_head() {
        let head = Head {
            content_length: Some(12),
            content_type: true,
            etag: Some(b"\"abc\""),
            location: Some(b"a b/\r\n\\x/&'<&'<&'<&'<&'<&'<&'<"),
            connection: Connection::Close,
            ..Head::new(Status::MOVED_PERMANENTLY, 0)
        };
        let (whole, len) = head_bytes(&head);
        for size in 1..=len + 1 {
            let mut joined = [0u8; 512];
            let mut at = 0;
            loop {
                let mut window = [0u8; 600];
                let (n, total) = write_head_from(&head, at, &mut window[..size]);
                assert_eq!(total, len);
                if n == 0 {
                    break;
                }
                joined[at..at + n].copy_from_slice(&window[..n]);
                at += n;
            }
            assert_eq!(&joined[..at], &whole[..len], "window of {size}");
        }
    }

    #[test]
    fn decimals_are_exact_at_the_edges() {
        for (n, text) in [
            (0u64, &b"0"[..]),
            (9, b"9"),
            (10, b"10"),
            (u64::MAX, b"18446744073709551615"),
        ] {
            let mut digits = [0u8; 20];
            let len = write_decimal(n, &mut digits);
            assert_eq!(&digits[20 - len..], text);
        }
    }
}
