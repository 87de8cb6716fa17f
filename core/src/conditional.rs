//! Validators and preconditions (RFC 9110 §8.8, §13): the ETag of a page,
//! `If-None-Match`, `If-Modified-Since` and `If-Range`.
//!
//! A page's ETag is strong and changes whenever its bytes can: it hashes
//! the file's identity, length, modification time, the path (which is the
//! page's title) and the renderer version. Evaluation reads field values
//! in place; nothing allocates or panics.

use crate::date::parse_http_date;
use crate::html::RENDER_VERSION;
use crate::message::{Message, Method, list_items};
use crate::site::Entry;

/// Bytes of an ETag value: a quote, 16 hex digits, a quote.
pub const ETAG_LEN: usize = 18;

/// A strong entity tag, quoted, ready to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ETag([u8; ETAG_LEN]);

impl ETag {
    /// The ETag of the page rendered for `entry` at `path`.
    pub fn new(entry: &Entry, path: &[u8]) -> Self {
        // FNV-1a, 64 bits: no table, no allocation, and collisions only
        // matter between versions of one path.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        let mut feed = |bytes: &[u8]| {
            for &b in bytes {
                hash ^= u64::from(b);
                hash = hash.wrapping_mul(0x0100_0000_01b3);
            }
        };
        feed(&RENDER_VERSION.to_le_bytes());
        feed(&entry.identity.to_le_bytes());
        feed(&entry.len.to_le_bytes());
        feed(&entry.modified.to_le_bytes());
        feed(&entry.modified_nanos.to_le_bytes());
        feed(&[u8::from(entry.kind == crate::site::Kind::Directory)]);
        feed(path);
        let mut value = [b'"'; ETAG_LEN];
        for (i, slot) in value.iter_mut().skip(1).take(16).enumerate() {
            let nibble = (hash >> (60 - 4 * i)) & 0xf;
            *slot = b"0123456789abcdef"
                .get(nibble as usize)
                .copied()
                .unwrap_or(b'0');
        }
        Self(value)
    }

    /// The quoted value.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// Whether a GET or HEAD must be answered 304 Not Modified (RFC 9110 §13.2.2).
///
/// `If-None-Match` decides when present (any line, `*`, or a tag equal by
/// weak comparison); otherwise a parseable `If-Modified-Since` at or after
/// `modified` does. An unparseable date is ignored.
pub fn is_not_modified(message: &Message<'_, '_>, etag: &ETag, modified: u64) -> bool {
    if !matches!(message.method, Method::Get | Method::Head) {
        return false;
    }
    let mut has_if_none_match = false;
    for value in message.field_values(b"if-none-match") {
        has_if_none_match = true;
        for tag in list_items(value) {
            if tag == b"*" || opaque(tag) == Some(opaque_of(etag)) {
                return true;
            }
        }
    }
    if has_if_none_match {
        return false;
    }
    message
        .field_value(b"if-modified-since")
        .and_then(parse_http_date)
        .is_some_and(|since| modified <= since)
}

/// Whether a `Range` may be honoured given `If-Range` (RFC 9110 §13.1.5):
/// yes without one; with one, only if it names the current page by a
/// strong ETag match or by exactly its `Last-Modified` date.
pub fn is_range_current(message: &Message<'_, '_>, etag: &ETag, modified: u64) -> bool {
    let mut lines = message.field_values(b"if-range");
    let Some(value) = lines.next() else {
        return true;
    };
    if lines.next().is_some() {
        return false;
    }
    if value.first() == Some(&b'"') {
        return value == etag.as_bytes();
    }
    parse_http_date(value) == Some(modified)
}

/// The opaque part of an entity tag, `W/` prefix removed, quotes kept;
/// `None` if it is not a quoted tag.
fn opaque(tag: &[u8]) -> Option<&[u8]> {
    let tag = tag.strip_prefix(b"W/").unwrap_or(tag);
    (tag.len() >= 2 && tag.first() == Some(&b'"') && tag.last() == Some(&b'"')).then_some(tag)
}

fn opaque_of(etag: &ETag) -> &[u8] {
    etag.as_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::{Field, Limits, Parsed, parse_request};
    use crate::site::Kind;

    const ENTRY: Entry = Entry {
        kind: Kind::File,
        len: 5,
        modified: 784_111_777,
        modified_nanos: 0,
        identity: 7,
    };

    fn with_message(head: &[u8], check: impl FnOnce(&Message<'_, '_>)) {
        let mut fields = [Field::default(); 8];
        let Ok(Parsed::Complete(request)) = parse_request(head, &mut fields, &Limits::DEFAULT)
        else {
            panic!("test head must parse");
        };
        check(&Message::from_request(&request).unwrap());
    }

    #[test]
    fn etag_changes_with_path_length_and_time() {
        let base = ETag::new(&ENTRY, b"a.txt");
        assert_ne!(base, ETag::new(&ENTRY, b"b.txt"));
        assert_ne!(base, ETag::new(&Entry { len: 6, ..ENTRY }, b"a.txt"));
        assert_ne!(
            base,
            ETag::new(
                &Entry {
                    modified: 1,
                    ..ENTRY
                },
                b"a.txt"
            )
        );
        assert_eq!(base, ETag::new(&ENTRY, b"a.txt"));
        assert_eq!(base.as_bytes().len(), ETAG_LEN);
    }

    #[test]
    fn if_none_match_uses_weak_comparison_over_lists_and_lines() {
        let etag = ETag::new(&ENTRY, b"a.txt");
        let tag = core::str::from_utf8(etag.as_bytes()).unwrap();
        let mut head = [0u8; 256];
        let text = "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\nIf-None-Match: \"y\", W/";
        let n = text.len();
        head[..n].copy_from_slice(text.as_bytes());
        head[n..n + tag.len()].copy_from_slice(tag.as_bytes());
        head[n + tag.len()..n + tag.len() + 4].copy_from_slice(b"\r\n\r\n");
        with_message(&head[..n + tag.len() + 4], |m| {
            assert!(is_not_modified(m, &etag, 0))
        });
        with_message(
            b"GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: *\r\n\r\n",
            |m| {
                assert!(is_not_modified(m, &etag, 0));
            },
        );
        with_message(
            b"GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"nope\"\r\n\r\n",
            |m| {
                assert!(!is_not_modified(m, &etag, 0));
            },
        );
    }

    #[test]
    fn if_modified_since_compares_dates_in_every_format() {
        let etag = ETag::new(&ENTRY, b"a.txt");
        for date in [
            &b"Sun, 06 Nov 1994 08:49:37 GMT"[..],
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            b"Sun Nov  6 08:49:37 1994",
        ] {
            let mut head = [0u8; 128];
            let prefix = b"GET / HTTP/1.1\r\nHost: a\r\nIf-Modified-Since: ";
            head[..prefix.len()].copy_from_slice(prefix);
            head[prefix.len()..prefix.len() + date.len()].copy_from_slice(date);
            let end = prefix.len() + date.len();
            head[end..end + 4].copy_from_slice(b"\r\n\r\n");
            with_message(&head[..end + 4], |m| {
                assert!(is_not_modified(m, &etag, 784_111_777));
                assert!(!is_not_modified(m, &etag, 784_111_778));
            });
        }
    }

    #[test]
    fn if_none_match_wins_over_if_modified_since() {
        let etag = ETag::new(&ENTRY, b"a.txt");
        with_message(
            b"GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"other\"\r\nIf-Modified-Since: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
            |m| assert!(!is_not_modified(m, &etag, 0)),
        );
    }

    #[test]
    fn if_range_needs_a_strong_match_or_the_exact_date() {
        let etag = ETag::new(&ENTRY, b"a.txt");
        with_message(
            b"GET / HTTP/1.1\r\nHost: a\r\nIf-Range: \"old\"\r\n\r\n",
            |m| {
                assert!(!is_range_current(m, &etag, 0));
            },
        );
        with_message(
            b"GET / HTTP/1.1\r\nHost: a\r\nIf-Range: Sun, 06 Nov 1994 08:49:37 GMT\r\n\r\n",
            |m| {
                assert!(is_range_current(m, &etag, 784_111_777));
                assert!(!is_range_current(m, &etag, 784_111_778));
            },
        );
        with_message(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", |m| {
            assert!(is_range_current(m, &etag, 0))
        });
    }
}
