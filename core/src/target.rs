//! The request-target turned into a path inside the site root: forms,
//! percent-decoding, dot segments (RFC 9112 §3.2, RFC 3986 §2.1, §5.2.4).
//!
//! The result is a relative path in the caller's buffer that never starts
//! with `/`, never holds an empty, `.` or `..` segment, a NUL or an encoded
//! `/`, so joining it to the root can never leave the root. Work is linear
//! in the target; nothing allocates or panics.

use core::fmt;

/// The form of a request-target (RFC 9112 §3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Form {
    /// `/path?query`.
    Origin,
    /// `http://authority/path?query`.
    Absolute,
    /// `*`, only with OPTIONS.
    Asterisk,
}

/// A normalised request-target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Target<'a, 'p> {
    /// The form the target came in.
    pub form: Form,
    /// The decoded, normalised path relative to the root: `""` for the root,
    /// `a/b` for `/a/./c/../b`. Empty for the asterisk form.
    pub path: &'p [u8],
    /// Whether the path named a directory form: it ended with `/` (or was
    /// the root). `/dir` without it is redirected to `/dir/`.
    pub trailing_slash: bool,
    /// The query without its `?`, as received (not decoded).
    pub query: Option<&'a [u8]>,
}

/// Why a request-target is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// Not origin-form, not absolute-form with an http(s) scheme, and not `*` (400).
    InvalidForm,
    /// `*` with a method other than OPTIONS (400).
    AsteriskNotOptions,
    /// A `%` not followed by two hex digits (400).
    MalformedPercent,
    /// `%00`: a NUL byte can name no file (400).
    EncodedNul,
    /// `%2F`: an encoded slash would hide a segment boundary (400).
    EncodedSlash,
    /// A `#`: clients never send fragments (RFC 9110 §7.1) (400).
    Fragment,
    /// `..` segments climb above the site root (400).
    AboveRoot,
    /// The decoded path does not fit the caller's buffer (414).
    TooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidForm => "invalid request-target form",
            Self::AsteriskNotOptions => "asterisk-form without options",
            Self::MalformedPercent => "malformed percent-encoding",
            Self::EncodedNul => "encoded nul",
            Self::EncodedSlash => "encoded slash",
            Self::Fragment => "fragment in request-target",
            Self::AboveRoot => "path above the root",
            Self::TooLong => "path too long",
        })
    }
}

impl core::error::Error for Error {}

/// Normalises `request_target` into `out`.
///
/// `is_options` allows the asterisk form. The path is percent-decoded once,
/// then dot segments are removed and empty segments merged; a `..` that
/// would climb above the root is refused rather than clamped.
///
/// # Errors
///
/// The first [`Error`] found, scanning left to right.
///
/// # Examples
///
/// ```
/// use txtd_core::target::{parse_target, Error};
///
/// let mut buf = [0u8; 64];
/// let target = parse_target(b"/docs/./a%20b/../notes.txt?x=1", false, &mut buf).unwrap();
/// assert_eq!(target.path, b"docs/notes.txt");
/// assert_eq!(target.query, Some(&b"x=1"[..]));
///
/// assert_eq!(parse_target(b"/a/%2e%2e/%2e%2e/etc/passwd", false, &mut buf), Err(Error::AboveRoot));
/// ```
pub fn parse_target<'a, 'p>(
    request_target: &'a [u8],
    is_options: bool,
    out: &'p mut [u8],
) -> Result<Target<'a, 'p>, Error> {
    if request_target == b"*" {
        if !is_options {
            return Err(Error::AsteriskNotOptions);
        }
        return Ok(Target {
            form: Form::Asterisk,
            path: &[],
            trailing_slash: false,
            query: None,
        });
    }
    let (form, path_and_query) = match request_target.first() {
        Some(b'/') => (Form::Origin, request_target),
        _ => (Form::Absolute, strip_absolute(request_target)?),
    };
    if path_and_query.contains(&b'#') {
        return Err(Error::Fragment);
    }
    let (raw_path, query) = match path_and_query.iter().position(|&b| b == b'?') {
        Some(q) => {
            let (path, query) = path_and_query
                .split_at_checked(q)
                .unwrap_or((path_and_query, &[]));
            (path, query.get(1..))
        }
        None => (path_and_query, None),
    };
    let (len, trailing_slash) = normalise(raw_path, out)?;
    let path = out.get(..len).unwrap_or_default();
    Ok(Target {
        form,
        path,
        trailing_slash,
        query,
    })
}

/// The path-and-query of an absolute-form target: scheme `http` or `https`,
/// `://`, an authority without userinfo (RFC 9110 §4.2.4), then the rest.
/// An empty path is `/`.
fn strip_absolute(target: &[u8]) -> Result<&[u8], Error> {
    let colon = target
        .iter()
        .position(|&b| b == b':')
        .ok_or(Error::InvalidForm)?;
    let (scheme, rest) = target.split_at_checked(colon).ok_or(Error::InvalidForm)?;
    if !scheme.eq_ignore_ascii_case(b"http") && !scheme.eq_ignore_ascii_case(b"https") {
        return Err(Error::InvalidForm);
    }
    let rest = rest.strip_prefix(b"://").ok_or(Error::InvalidForm)?;
    let end = rest
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#'))
        .unwrap_or(rest.len());
    let (authority, path) = rest.split_at_checked(end).ok_or(Error::InvalidForm)?;
    if authority.is_empty() || authority.contains(&b'@') {
        return Err(Error::InvalidForm);
    }
    match path.first() {
        Some(b'/') => Ok(path),
        // `http://host` and `http://host?q` name the root.
        None | Some(b'?') | Some(b'#') => Ok(if path.is_empty() { b"/" } else { path }),
        Some(_) => Err(Error::InvalidForm),
    }
}

/// Decodes and normalises `raw` (starting with `/`, or `?`-led for an
/// absolute target with an empty path) into `out`; returns the length and
/// whether the last segment was a directory form.
fn normalise(raw: &[u8], out: &mut [u8]) -> Result<(usize, bool), Error> {
    let mut len = 0usize;
    let mut trailing_slash = true;
    for raw_segment in raw.split(|&b| b == b'/') {
        if raw_segment.is_empty() {
            // `//` merges; a final empty segment means a trailing slash,
            // which is already the state after any segment is closed.
            continue;
        }
        let start = if len == 0 { 0 } else { len + 1 };
        let segment_len = decode_segment(raw_segment, out.get_mut(start..).ok_or(Error::TooLong)?)?;
        let segment = out.get(start..start + segment_len).unwrap_or_default();
        match segment {
            b"." => trailing_slash = true,
            b".." => {
                if len == 0 && start == 0 {
                    return Err(Error::AboveRoot);
                }
                // Drop the last segment and its separating slash.
                let kept = out.get(..len).unwrap_or_default();
                len = kept.iter().rposition(|&b| b == b'/').unwrap_or(0);
                trailing_slash = true;
                if len == 0 && kept.is_empty() {
                    return Err(Error::AboveRoot);
                }
            }
            _ => {
                if start > 0 {
                    *out.get_mut(len).ok_or(Error::TooLong)? = b'/';
                }
                len = start + segment_len;
                trailing_slash = false;
            }
        }
    }
    // A path ending in `/` (or only slashes) is a directory form.
    if raw.last() == Some(&b'/') {
        trailing_slash = true;
    }
    Ok((len, trailing_slash))
}

/// Percent-decodes one segment into `out`; returns its length.
fn decode_segment(raw: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut written = 0;
    let mut bytes = raw.iter();
    while let Some(&b) = bytes.next() {
        let decoded = if b == b'%' {
            let hi = bytes.next().and_then(|&h| hex_value(h));
            let lo = bytes.next().and_then(|&l| hex_value(l));
            let (Some(hi), Some(lo)) = (hi, lo) else {
                return Err(Error::MalformedPercent);
            };
            match hi << 4 | lo {
                0 => return Err(Error::EncodedNul),
                b'/' => return Err(Error::EncodedSlash),
                byte => byte,
            }
        } else {
            b
        };
        *out.get_mut(written).ok_or(Error::TooLong)? = decoded;
        written += 1;
    }
    Ok(written)
}

fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Whether any segment of a normalised path starts with `.`: dotfiles and
/// dot-directories are hidden (served as 404, never listed).
pub fn is_hidden(path: &[u8]) -> bool {
    path.split(|&b| b == b'/')
        .any(|segment| segment.first() == Some(&b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(target: &[u8]) -> Result<([u8; 64], usize, bool), Error> {
        let mut buf = [0u8; 64];
        let t = parse_target(target, false, &mut buf)?;
        let (len, slash) = (t.path.len(), t.trailing_slash);
        Ok((buf, len, slash))
    }

    fn path(target: &[u8]) -> Result<([u8; 64], usize), Error> {
        norm(target).map(|(b, l, _)| (b, l))
    }

    fn assert_path(target: &[u8], expected: &[u8]) {
        let (buf, len) = path(target).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(&buf[..len], expected);
    }

    #[test]
    fn dot_segments_are_removed() {
        assert_path(b"/a/b/../c/./d", b"a/c/d");
        assert_path(b"/a/b/..", b"a");
        assert_path(b"/a/%2e%2E/b", b"b");
        assert_path(b"/", b"");
        assert_path(b"//a///b", b"a/b");
    }

    #[test]
    fn dot_dot_segment_is_refused_above_the_root() {
        assert_eq!(path(b"/.."), Err(Error::AboveRoot));
        assert_eq!(path(b"/a/../../b"), Err(Error::AboveRoot));
        assert_eq!(path(b"/%2e%2e/etc/passwd"), Err(Error::AboveRoot));
        assert_eq!(path(b"/.%2e/x"), Err(Error::AboveRoot));
    }

    #[test]
    fn double_encoding_and_overlong_utf8_stay_literal() {
        assert_path(b"/%252e%252e/x", b"%2e%2e/x");
        assert_path(b"/%c0%ae%c0%ae/x", b"\xc0\xae\xc0\xae/x");
        assert_path(b"/..\\..\\etc", b"..\\..\\etc");
    }

    #[test]
    fn encoded_slash_and_nul_and_bad_escapes_are_refused() {
        assert_eq!(path(b"/a%2fb"), Err(Error::EncodedSlash));
        assert_eq!(path(b"/..%2f..%2fetc"), Err(Error::EncodedSlash));
        assert_eq!(path(b"/a%00"), Err(Error::EncodedNul));
        assert_eq!(path(b"/a%zz"), Err(Error::MalformedPercent));
        assert_eq!(path(b"/a%2"), Err(Error::MalformedPercent));
        assert_eq!(path(b"/a#b"), Err(Error::Fragment));
    }

    #[test]
    fn trailing_slash_marks_a_directory_form() {
        assert!(norm(b"/a/").unwrap().2);
        assert!(!norm(b"/a").unwrap().2);
        assert!(norm(b"/a/.").unwrap().2);
        assert!(norm(b"/a/b/..").unwrap().2);
        assert!(norm(b"/").unwrap().2);
    }

    #[test]
    fn absolute_form_keeps_only_the_path() {
        assert_path(b"http://example.com/a/b?q", b"a/b");
        assert_path(b"HTTPS://example.com", b"");
        assert_eq!(path(b"ftp://example.com/a"), Err(Error::InvalidForm));
        assert_eq!(path(b"http://user@example.com/a"), Err(Error::InvalidForm));
        assert_eq!(path(b"example.com:80"), Err(Error::InvalidForm));
    }

    #[test]
    fn asterisk_is_only_for_options() {
        let mut buf = [0u8; 4];
        assert_eq!(
            parse_target(b"*", false, &mut buf),
            Err(Error::AsteriskNotOptions)
        );
        assert_eq!(
            parse_target(b"*", true, &mut buf).map(|t| t.form),
            Ok(Form::Asterisk)
        );
    }

    #[test]
    fn a_path_longer_than_the_buffer_is_too_long() {
        let mut buf = [0u8; 4];
        assert_eq!(
            parse_target(b"/abcde", false, &mut buf),
            Err(Error::TooLong)
        );
        assert_eq!(
            parse_target(b"/ab/cd", false, &mut buf),
            Err(Error::TooLong)
        );
        assert!(parse_target(b"/ab/c", false, &mut buf).is_ok());
    }

    #[test]
    fn hidden_segments_are_found_anywhere() {
        assert!(is_hidden(b".git/config"));
        assert!(is_hidden(b"a/.env"));
        assert!(!is_hidden(b"a/b.txt"));
    }
}
