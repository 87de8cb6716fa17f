//! The HTTP/1.x request head (RFC 9112 §2–§5): request line, field lines and
//! their limits, parsed incrementally and without copying. The only user of
//! nom in txtd.
//!
//! [`parse_request`] is handed whatever bytes have arrived and answers
//! [`Parsed::Complete`] (a [`Request`] borrowing the input), [`Parsed::Partial`]
//! or an [`Error`]. It never allocates, never panics, reads nothing past the
//! input and does work linear in the input. A request split into any pieces
//! gives the same answer as the same bytes in one piece, and a line past its
//! limit is refused as soon as the limit is crossed, not when the line ends.
//! Of two faults the one the bytes show first wins: a bad byte that lies
//! past a limit is answered with the limit, as it would be had the bytes
//! arrived one at a time.
//!
//! Line ends: CRLF, or a bare LF, everywhere (RFC 9112 §2.2 allows a
//! recipient to accept a lone LF). A CR that is not followed by LF is an
//! error (400) wherever it appears.

use core::fmt;

use nom::bytes::streaming::{tag, take_while1};
use nom::character::streaming::{char, satisfy};
use nom::error::{ErrorKind, ParseError};
use nom::{IResult, Input, Needed, Parser};

use crate::scan::{self, is_tchar};

/// Default limit on a request line, terminator excluded (Apache's
/// `LimitRequestLine`): one byte more is a 414.
pub const MAX_REQUEST_LINE: usize = 8190;
/// Default limit on one field line, terminator excluded (Apache's
/// `LimitRequestFieldSize`): one byte more is a 431.
pub const MAX_FIELD_LINE: usize = 8190;
/// Default number of field lines: above Apache's, gunicorn's and hyper's 100,
/// so whatever they accept passes here too. One more is a 431.
pub const MAX_FIELDS: usize = 128;
/// Default limit on the whole head, from the first byte through the blank
/// line (nginx's four 8 KiB `large_client_header_buffers`).
pub const MAX_HEAD: usize = 32 * 1024;

/// Limits on a request head. Every one is checked while the head arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Limits {
    /// Longest request line, terminator excluded (longer: 414).
    pub max_request_line: usize,
    /// Longest field line, terminator excluded (longer: 431).
    pub max_field_line: usize,
    /// Most field lines (more: 431). The caller's field slice caps it too.
    pub max_fields: usize,
    /// Longest head, leading empty lines and blank line included (longer: 431).
    pub max_head: usize,
}

impl Limits {
    /// The defaults: [`MAX_REQUEST_LINE`], [`MAX_FIELD_LINE`], [`MAX_FIELDS`], [`MAX_HEAD`].
    pub const DEFAULT: Self = Self {
        max_request_line: MAX_REQUEST_LINE,
        max_field_line: MAX_FIELD_LINE,
        max_fields: MAX_FIELDS,
        max_head: MAX_HEAD,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// One field line: name and value, both borrowed from the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Field<'a> {
    /// The field name, a token, as received (compare it case-insensitively).
    pub name: &'a [u8],
    /// The field value with leading and trailing whitespace removed.
    pub value: &'a [u8],
}

/// The protocol version from the request line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Version {
    /// The digit before the dot; always 1 in a parsed request.
    pub major: u8,
    /// The digit after the dot.
    pub minor: u8,
}

impl Version {
    /// `HTTP/1.0`.
    pub const HTTP_10: Self = Self { major: 1, minor: 0 };
    /// `HTTP/1.1`.
    pub const HTTP_11: Self = Self { major: 1, minor: 1 };
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP/{}.{}", self.major, self.minor)
    }
}

/// A parsed request head, borrowing the input and the caller's field slice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Request<'a, 'f> {
    /// The method token, case-sensitive (RFC 9110 §9.1).
    pub method: &'a [u8],
    /// The request-target, as received: visible ASCII, not yet decoded.
    pub request_target: &'a [u8],
    /// The protocol version; its major is always 1.
    pub version: Version,
    /// The field lines in the order received.
    pub fields: &'f [Field<'a>],
    /// Bytes of the head, up to and including the blank line that ends it.
    pub head_len: usize,
}

impl<'a> Request<'a, '_> {
    /// The request line without its line end, as received.
    ///
    /// It is the part of `input` from the method to the version; `input` is
    /// the buffer the request was parsed from.
    /// Empty if `input` is not that buffer.
    pub fn request_line(&self, input: &'a [u8]) -> &'a [u8] {
        let base = input.as_ptr() as usize;
        let start = (self.method.as_ptr() as usize).checked_sub(base);
        let target = (self.request_target.as_ptr() as usize).checked_sub(base);
        let (Some(start), Some(target)) = (start, target) else {
            return &[];
        };
        // SP and the eight bytes of `HTTP/x.y` follow the target.
        let end = target
            .saturating_add(self.request_target.len())
            .saturating_add(9);
        input.get(start..end).unwrap_or_default()
    }
}

/// The answer of [`parse_request`] for input without errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Parsed<T> {
    /// The input holds a whole head.
    Complete(T),
    /// The input is a proper prefix of a head that may still be valid.
    Partial,
}

/// Why a request head was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The method is empty or holds a byte that is not a token character (400).
    InvalidMethod,
    /// The request-target is empty or holds a byte that is not visible ASCII (400).
    InvalidTarget,
    /// The request line ends after the target: an HTTP/0.9 request (400).
    MissingVersion,
    /// The version is not `HTTP/` DIGIT `.` DIGIT followed by the line end (400).
    InvalidVersion,
    /// The version's major digit is not 1, e.g. `HTTP/2.0` (505).
    UnsupportedVersion,
    /// A field name is empty, holds a non-token byte, or whitespace precedes
    /// its colon (RFC 9112 §5.1) (400).
    InvalidFieldName,
    /// A field value holds a control character other than HTAB (400).
    InvalidFieldValue,
    /// A field line starts with whitespace: obsolete line folding (400).
    ObsoleteFold,
    /// A CR is not followed by LF (400).
    BareCr,
    /// The request line passed [`Limits::max_request_line`] (414).
    RequestLineTooLong,
    /// A field line passed [`Limits::max_field_line`] (431).
    FieldLineTooLong,
    /// The head has more field lines than [`Limits::max_fields`] (431).
    TooManyFields,
    /// The head passed [`Limits::max_head`] (431).
    HeadTooLarge,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::InvalidMethod => "invalid method",
            Self::InvalidTarget => "invalid request-target",
            Self::MissingVersion => "request line without a version",
            Self::InvalidVersion => "invalid protocol version",
            Self::UnsupportedVersion => "unsupported protocol version",
            Self::InvalidFieldName => "invalid field name",
            Self::InvalidFieldValue => "invalid field value",
            Self::ObsoleteFold => "obsolete line folding",
            Self::BareCr => "bare CR",
            Self::RequestLineTooLong => "request line too long",
            Self::FieldLineTooLong => "field line too long",
            Self::TooManyFields => "too many field lines",
            Self::HeadTooLarge => "request head too large",
        })
    }
}

impl core::error::Error for Error {}

/// The nom error type: the txtd error a sub-parser decided on, and where:
/// the length of the input from the byte that showed it (the byte whose
/// arrival turned a partial head into this error) to the end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fail(Error, usize);

impl<I: Input> ParseError<I> for Fail {
    // A nom combinator failing on its own (a `tag`, `satisfy`) means the
    // request line or the version is malformed; the callers map those
    // failures to the precise error with `or_fail`. The input is where the
    // combinator stood, which is the offending byte for all but `tag`.
    fn from_error_kind(input: I, _: ErrorKind) -> Self {
        Fail(Error::InvalidVersion, input.input_len())
    }

    fn append(_: I, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type PResult<'a, O> = IResult<&'a [u8], O, Fail>;

/// Replaces the error of any non-incomplete failure of `result` with
/// `error`, keeping where it was found.
#[inline(always)]
fn or_fail<'a, O>(result: PResult<'a, O>, error: Error) -> PResult<'a, O> {
    result.map_err(|e| e.map(|Fail(_, at)| Fail(error, at)))
}

/// Fails with `error`, shown by the first byte of `at`.
#[inline(always)]
fn fail<O>(error: Error, at: &[u8]) -> Result<O, nom::Err<Fail>> {
    Err(nom::Err::Error(Fail(error, at.len())))
}

/// Returns whether `b` is a token character (RFC 9110 §5.6.2).
pub fn is_token_byte(b: u8) -> bool {
    is_tchar(b)
}

/// CRLF or a bare LF; a CR followed by anything else is [`Error::BareCr`].
#[inline(always)]
fn line_end(i: &[u8]) -> PResult<'_, ()> {
    match i {
        [b'\n', rest @ ..] => Ok((rest, ())),
        [b'\r', b'\n', rest @ ..] => Ok((rest, ())),
        [b'\r'] | [] => Err(nom::Err::Incomplete(Needed::Unknown)),
        [b'\r', after @ ..] => fail(Error::BareCr, after),
        _ => fail(Error::InvalidVersion, i),
    }
}

/// The request-target: a run of visible ASCII ended by SP.
#[inline(always)]
fn request_target(i: &[u8]) -> PResult<'_, &[u8]> {
    let Some(end) = scan::find_non_vchar(i) else {
        return Err(nom::Err::Incomplete(Needed::Unknown));
    };
    let (target, rest) = i.split_at_checked(end).unwrap_or((i, &[]));
    match rest.first() {
        Some(b' ') if !target.is_empty() => Ok((rest, target)),
        // `GET /` then the line end: HTTP/0.9, which has no version.
        Some(b'\n') if !target.is_empty() => fail(Error::MissingVersion, rest),
        Some(b'\r') if !target.is_empty() => cr_after_target(rest),
        _ => fail(Error::InvalidTarget, rest),
    }
}

/// A CR right after the target: HTTP/0.9 if LF follows, else a bare CR.
/// Out of line, so the request line's hot path stays small.
#[cold]
#[inline(never)]
fn cr_after_target(rest: &[u8]) -> PResult<'_, &[u8]> {
    // RFC 9112 §2.2: a CR must start a line end; until its LF arrives this
    // may still be HTTP/0.9.
    let after = rest.get(1..).unwrap_or_default();
    match after.first() {
        Some(b'\n') => fail(Error::MissingVersion, after),
        Some(_) => fail(Error::BareCr, after),
        None => Err(nom::Err::Incomplete(Needed::Unknown)),
    }
}

/// `HTTP/` DIGIT `.` DIGIT (RFC 9112 §2.3). A major other than 1 is refused
/// here, before the rest of the line: its framing is not HTTP/1's.
#[inline(always)]
fn version(i: &[u8]) -> PResult<'_, Version> {
    let (i, major, minor) = match i {
        // All eight bytes at once, as nearly every request has them; nom's
        // parsers below name the failure, or ask for more, otherwise.
        [b'H', b'T', b'T', b'P', b'/', major, b'.', minor, rest @ ..]
            if major.is_ascii_digit() && minor.is_ascii_digit() =>
        {
            (rest, *major, *minor)
        }
        _ => {
            let digit = || satisfy(|c: char| c.is_ascii_digit());
            let (i, _) = tag(&b"HTTP/"[..])
                .parse(i)
                .map_err(|e| e.map(|_: Fail| tag_mismatch(i)))?;
            let (i, major) = or_fail(digit().parse(i), Error::InvalidVersion)?;
            let (i, _) = or_fail(tag(&b"."[..]).parse(i), Error::InvalidVersion)?;
            let (i, minor) = or_fail(digit().parse(i), Error::InvalidVersion)?;
            (i, major as u8, minor as u8)
        }
    };
    // Both are ASCII digits, so the subtraction cannot wrap.
    let version = Version {
        major: major.wrapping_sub(b'0'),
        minor: minor.wrapping_sub(b'0'),
    };
    if version.major != 1 {
        // Shown by the minor digit, the last of the eight bytes.
        return Err(nom::Err::Error(Fail(
            Error::UnsupportedVersion,
            i.len() + 1,
        )));
    }
    Ok((i, version))
}

/// The failure of `tag("HTTP/")` at the start of `i`, placed at the first
/// byte that differs from the tag, not at the tag's start where nom puts it.
#[cold]
fn tag_mismatch(i: &[u8]) -> Fail {
    let same = i.iter().zip(b"HTTP/").take_while(|(a, b)| a == b).count();
    Fail(Error::InvalidVersion, i.len() - same)
}

/// The method and the SP after it.
#[inline(always)]
fn method(i: &[u8]) -> PResult<'_, &[u8]> {
    // `GET` and `HEAD`, the two methods txtd serves, are matched whole, as
    // the version is; nom's parsers take every other token byte by byte.
    match i {
        [b'G', b'E', b'T', b' ', rest @ ..] => Ok((rest, i.get(..3).unwrap_or_default())),
        [b'H', b'E', b'A', b'D', b' ', rest @ ..] => Ok((rest, i.get(..4).unwrap_or_default())),
        _ => {
            let (i, method) = or_fail(take_while1(is_tchar).parse(i), Error::InvalidMethod)?;
            let (i, _) = or_fail(char(' ').parse(i), Error::InvalidMethod)?;
            Ok((i, method))
        }
    }
}

/// method SP request-target SP HTTP-version, without the line end.
#[inline(always)]
fn request_line(i: &[u8]) -> PResult<'_, (&[u8], &[u8], Version)> {
    let (i, method) = method(i)?;
    let (i, target) = request_target(i)?;
    let (i, _) = or_fail(char(' ').parse(i), Error::InvalidTarget)?;
    let (i, version) = version(i)?;
    Ok((i, (method, target, version)))
}

/// A field line read whole: its content (terminator excluded) is `len`
/// bytes, and `rest` is the input after its line end.
struct FieldLine<'a> {
    field: Field<'a>,
    len: usize,
    rest: &'a [u8],
}

/// Why a field line could not be read whole.
enum Stop {
    /// The line goes on past the input.
    Partial,
    /// The line breaks a rule, shown by the byte at this offset from the
    /// line's start.
    Invalid(Error, usize),
}

/// field-name ":" OWS field-value OWS line-end (RFC 9112 §5), from the
/// start of `i`.
///
/// One function with one cursor rather than a chain of nom parsers: this
/// runs once per field line, the hottest path of a head, and each parser
/// layer re-slices the input and wraps its result. nom's `take_while1`
/// would also test the name a byte per branch, where
/// [`scan::find_non_token`] tests sixteen at once.
#[inline(always)]
fn field_line(i: &[u8]) -> Result<FieldLine<'_>, Stop> {
    // The line's end is searched for from its start, not from the colon:
    // a name holds no control byte, so the first control is the same, and
    // the two searches do not wait for each other.
    let stop = scan::find_field_value_stop(i);
    let Some(name_len) = scan::find_non_token(i) else {
        return Err(Stop::Partial);
    };
    if name_len == 0 || i.get(name_len) != Some(&b':') {
        return Err(bad_name(i.get(name_len).copied(), name_len));
    }
    // The value, OWS on both sides included, runs to the first control
    // byte; HTAB is the one allowed.
    let Some(mut len) = stop else {
        return Err(Stop::Partial);
    };
    if i.get(len) == Some(&b'\t') {
        len = after_tabs(i, len)?;
    }
    let (content, end) = i.split_at_checked(len).unwrap_or((i, &[]));
    let rest = match end {
        [b'\r', b'\n', rest @ ..] => rest,
        _ => other_line_end(end, len)?,
    };
    let (name, value) = content.split_at_checked(name_len).unwrap_or_default();
    // Past the colon, nearly every value follows a single SP and ends
    // without OWS: skip that SP, and trim in a loop only when OWS remains.
    let value = match value {
        [_, b' ', value @ ..] | [_, value @ ..] => value,
        [] => value,
    };
    let value = match value {
        [b' ' | b'\t', ..] | [.., b' ' | b'\t'] => trim_ows(value),
        value => value,
    };
    Ok(FieldLine {
        field: Field { name, value },
        len,
        rest,
    })
}

/// Why a field name stopped at `stop` after `name_len` token characters
/// is no name followed by a colon.
#[cold]
fn bad_name(stop: Option<u8>, name_len: usize) -> Stop {
    match stop {
        None => Stop::Partial,
        Some(b' ' | b'\t') if name_len == 0 => Stop::Invalid(Error::ObsoleteFold, 0),
        // RFC 9112 §5.1: no whitespace between the field name and the colon.
        _ => Stop::Invalid(Error::InvalidFieldName, name_len),
    }
}

/// The first control byte of the value from the HTAB at `at` on, HTABs
/// skipped.
#[cold]
fn after_tabs(i: &[u8], mut at: usize) -> Result<usize, Stop> {
    while i.get(at) == Some(&b'\t') {
        let rest = i.get(at + 1..).unwrap_or_default();
        let Some(offset) = scan::find_field_value_stop(rest) else {
            return Err(Stop::Partial);
        };
        at += 1 + offset;
    }
    Ok(at)
}

/// The input after the line end that starts `end`, `len` bytes into the
/// line, when that is not CR LF: a bare LF, or one of the errors.
#[cold]
fn other_line_end(end: &[u8], len: usize) -> Result<&[u8], Stop> {
    match end {
        [b'\n', rest @ ..] => Ok(rest),
        [] | [b'\r'] => Err(Stop::Partial),
        // The byte after the CR shows it bare.
        [b'\r', ..] => Err(Stop::Invalid(Error::BareCr, len + 1)),
        [_, ..] => Err(Stop::Invalid(Error::InvalidFieldValue, len)),
    }
}

/// The field lines at the start of `i`, through the blank line that ends
/// the head, into `slots`: how many bytes that took and how many fields.
///
/// # Errors
///
/// Where the line that stopped the head starts, and why it stopped it.
/// Each complete line is held to `max_field_line` (the caller settles
/// which limit was crossed first, and checks an incomplete line).
#[inline(never)]
fn field_lines<'a>(
    i: &'a [u8],
    slots: &mut [Field<'a>],
    max_field_line: usize,
) -> Result<(usize, usize), (usize, Stop)> {
    let room = slots.len();
    let mut slots = slots.iter_mut();
    let mut rest = i;
    loop {
        let at = i.len() - rest.len();
        match rest {
            [b'\n', after @ ..] | [b'\r', b'\n', after @ ..] => {
                return Ok((i.len() - after.len(), room - slots.len()));
            }
            [] | [b'\r'] => return Err((at, Stop::Partial)),
            [b'\r', ..] => return Err((at, Stop::Invalid(Error::BareCr, 1))),
            _ => {}
        }
        let Some(slot) = slots.next() else {
            return Err((at, Stop::Invalid(Error::TooManyFields, 0)));
        };
        let line = field_line(rest).map_err(|stop| (at, stop))?;
        if line.len > max_field_line {
            return Err((at, Stop::Invalid(Error::FieldLineTooLong, line.len)));
        }
        *slot = line.field;
        rest = line.rest;
    }
}

/// `value` without the OWS (SP and HTAB) on either side.
///
/// Not `trim_ascii`: that also trims CR, LF and FF, which cannot occur
/// here, and it is not inlined.
#[cold]
fn trim_ows(mut value: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = value {
        value = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = value {
        value = rest;
    }
    value
}

/// Where the head is while it arrives, to pick the limit an incomplete line
/// is held to.
#[derive(Clone, Copy)]
enum Line {
    Request,
    Field,
}

/// Parses the request head at the start of `input`.
///
/// `fields` receives the field lines; its length caps their number together
/// with [`Limits::max_fields`]. Nothing is copied: the [`Request`] borrows
/// `input` and `fields`.
///
/// # Errors
///
/// An [`Error`] naming the first rule the input breaks. Limits are checked
/// on incomplete input too, so a head that can only grow past one is
/// refused at once.
///
/// # Examples
///
/// ```
/// use txtd_core::request::{parse_request, Field, Limits, Parsed};
///
/// let mut fields = [Field::default(); 16];
/// let input = b"GET /notes.txt HTTP/1.1\r\nHost: example.com\r\n\r\n";
/// let Ok(Parsed::Complete(request)) = parse_request(input, &mut fields, &Limits::DEFAULT) else {
///     panic!("a whole head");
/// };
/// assert_eq!(request.method, b"GET");
/// assert_eq!(request.request_target, b"/notes.txt");
/// assert_eq!(request.fields[0].value, b"example.com");
/// assert_eq!(request.head_len, input.len());
///
/// assert_eq!(parse_request(&input[..10], &mut fields, &Limits::DEFAULT), Ok(Parsed::Partial));
/// ```
pub fn parse_request<'a, 'f>(
    input: &'a [u8],
    fields: &'f mut [Field<'a>],
    limits: &Limits,
) -> Result<Parsed<Request<'a, 'f>>, Error> {
    let max_fields = limits.max_fields.min(fields.len());
    let mut rest = input;

    // RFC 9112 §2.2: ignore empty lines received before the request line.
    loop {
        match line_end(rest) {
            Ok((after, ())) => rest = after,
            Err(nom::Err::Incomplete(_)) if !rest.is_empty() => {
                return partial(input, input.len() - rest.len(), Line::Request, limits);
            }
            _ => break,
        }
    }

    let start = input.len() - rest.len();
    let (method, request_target, version) = match request_line(rest) {
        Ok((after, parts)) => {
            let len = rest.len() - after.len();
            if len > limits.max_request_line {
                let end = start + len;
                return Err(settle(
                    input,
                    start,
                    end,
                    Line::Request,
                    limits,
                    Error::RequestLineTooLong,
                ));
            }
            rest = after;
            parts
        }
        // A CR before the method is no empty line and no method byte:
        // name the bare CR (RFC 9112 §2.2), shown by the byte after it.
        Err(nom::Err::Error(Fail(Error::InvalidMethod, _))) if rest.first() == Some(&b'\r') => {
            let shown = start + 1;
            return Err(settle(
                input,
                start,
                shown,
                Line::Request,
                limits,
                Error::BareCr,
            ));
        }
        Err(e) => return refuse(e, input, start, Line::Request, limits),
    };
    match line_end(rest) {
        Ok((after, ())) => rest = after,
        Err(e) => return refuse(e, input, start, Line::Request, limits),
    }

    let slots = fields.get_mut(..max_fields).unwrap_or_default();
    let base = input.len() - rest.len();
    let count = match field_lines(rest, slots, limits.max_field_line) {
        Ok((len, count)) => {
            rest = rest.get(len..).unwrap_or_default();
            count
        }
        Err((at, Stop::Partial)) => return partial(input, base + at, Line::Field, limits),
        Err((at, Stop::Invalid(e, shown))) => {
            let start = base + at;
            return Err(settle(input, start, start + shown, Line::Field, limits, e));
        }
    };

    let head_len = input.len() - rest.len();
    if head_len > limits.max_head {
        return Err(Error::HeadTooLarge);
    }
    let fields = fields.get(..count).unwrap_or_default();
    Ok(Parsed::Complete(Request {
        method,
        request_target,
        version,
        fields,
        head_len,
    }))
}

/// The answer for a request-line parser's failure `e`, in the line that
/// starts at `start`.
#[cold]
fn refuse<'a, 'f>(
    e: nom::Err<Fail>,
    input: &'a [u8],
    start: usize,
    line: Line,
    limits: &Limits,
) -> Result<Parsed<Request<'a, 'f>>, Error> {
    match e {
        nom::Err::Incomplete(_) => partial(input, start, line, limits),
        nom::Err::Error(Fail(e, left)) | nom::Err::Failure(Fail(e, left)) => {
            let shown = input.len().saturating_sub(left);
            Err(settle(input, start, shown, line, limits, e))
        }
    }
}

/// The answer for a head that stops inside the line starting at `start`:
/// partial, unless that line or the head is already past its limit.
fn partial<'a, 'f>(
    input: &'a [u8],
    start: usize,
    line: Line,
    limits: &Limits,
) -> Result<Parsed<Request<'a, 'f>>, Error> {
    match first_limit(input, start, input.len(), line, limits) {
        Some(e) => Err(e),
        None => Ok(Parsed::Partial),
    }
}

/// `error`, shown by the byte at `shown` in the line that starts at
/// `start`, unless the bytes before it already crossed a limit: then that
/// limit, as if the bytes had arrived one at a time.
#[cold]
fn settle(
    input: &[u8],
    start: usize,
    shown: usize,
    line: Line,
    limits: &Limits,
    error: Error,
) -> Error {
    first_limit(input, start, shown, line, limits).unwrap_or(error)
}

/// The limit that the shortest prefix of `input[..end]` crosses, if any;
/// the head up to `end` holds no error and its last line starts at `start`.
///
/// A prefix crosses the line's limit when the line holds one byte more
/// than the limit, a CR at the very end excluded (it may be the first half
/// of the line end); it crosses the head's when it is `max_head` bytes
/// long, as a head that is not complete by then can only end past it. The
/// line's limit is checked first, so it wins a tie.
fn first_limit(
    input: &[u8],
    start: usize,
    end: usize,
    line: Line,
    limits: &Limits,
) -> Option<Error> {
    let (max_line, line_error) = match line {
        Line::Request => (limits.max_request_line, Error::RequestLineTooLong),
        Line::Field => (limits.max_field_line, Error::FieldLineTooLong),
    };
    // The first byte past the line's limit; a CR there leaves the line at
    // the limit until the byte after it arrives.
    let over = start.saturating_add(max_line);
    let line_crossed = match input.get(over) {
        Some(b'\r') => over.saturating_add(2),
        _ => over.saturating_add(1),
    };
    if line_crossed <= end && line_crossed <= limits.max_head {
        Some(line_error)
    } else if limits.max_head <= end {
        Some(Error::HeadTooLarge)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(input: &[u8]) -> Result<Parsed<(usize, usize)>, Error> {
        let mut fields = [Field::default(); 8];
        parse_request(input, &mut fields, &Limits::DEFAULT).map(|p| match p {
            Parsed::Complete(r) => Parsed::Complete((r.fields.len(), r.head_len)),
            Parsed::Partial => Parsed::Partial,
        })
    }

    #[test]
    fn minimal_request_is_complete() {
        assert_eq!(
            parse(b"GET / HTTP/1.0\r\n\r\n"),
            Ok(Parsed::Complete((0, 18)))
        );
    }

    #[test]
    fn bare_lf_ends_lines_everywhere() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\nHost: a\n\n"),
            Ok(Parsed::Complete((1, 24)))
        );
    }

    #[test]
    fn bare_cr_is_refused() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\rHost: a\r\n\r\n"),
            Err(Error::BareCr)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\r\n"),
            Err(Error::BareCr)
        );
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost: a\r\n\rx"),
            Err(Error::BareCr)
        );
    }

    #[test]
    fn bare_cr_before_or_after_the_target_is_refused() {
        assert_eq!(parse(b"\rGET / HTTP/1.1\r\n\r\n"), Err(Error::BareCr));
        assert_eq!(parse(b"GET /a\rb HTTP/1.1\r\n\r\n"), Err(Error::BareCr));
        assert_eq!(parse(b"GET /a\r"), Ok(Parsed::Partial));
        assert_eq!(parse(b"GET /a\r\n"), Err(Error::MissingVersion));
    }

    #[test]
    fn whitespace_before_colon_is_refused() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nHost : a\r\n\r\n"),
            Err(Error::InvalidFieldName)
        );
    }

    #[test]
    fn obs_fold_is_refused() {
        assert_eq!(
            parse(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n"),
            Err(Error::ObsoleteFold)
        );
    }

    #[test]
    fn two_digit_minor_version_is_refused() {
        assert_eq!(
            parse(b"GET / HTTP/1.10\r\n\r\n"),
            Err(Error::InvalidVersion)
        );
    }

    #[test]
    fn http_2_is_unsupported_before_the_line_ends() {
        assert_eq!(parse(b"PRI * HTTP/2.0"), Err(Error::UnsupportedVersion));
    }

    #[test]
    fn more_fields_than_the_slice_holds_is_refused() {
        let head = b"GET / HTTP/1.1\r\na:1\r\nb:2\r\nc:3\r\n\r\n";
        let mut fields = [Field::default(); 2];
        assert_eq!(
            parse_request(head, &mut fields, &Limits::DEFAULT),
            Err(Error::TooManyFields)
        );
    }

    #[test]
    fn request_line_slice_spans_method_to_version() {
        let input = b"\r\nGET /a?b HTTP/1.1\r\nHost: x\r\n\r\n";
        let mut fields = [Field::default(); 4];
        let Ok(Parsed::Complete(r)) = parse_request(input, &mut fields, &Limits::DEFAULT) else {
            panic!("complete");
        };
        assert_eq!(r.request_line(input), b"GET /a?b HTTP/1.1");
    }

    #[test]
    fn long_partial_request_line_is_refused_at_the_limit() {
        let mut line = [b'a'; 9000];
        line[..5].copy_from_slice(b"GET /");
        let limits = Limits::DEFAULT;
        let mut fields = [Field::default(); 1];
        assert_eq!(
            parse_request(&line[..limits.max_request_line], &mut fields, &limits),
            Ok(Parsed::Partial)
        );
        assert_eq!(
            parse_request(&line[..limits.max_request_line + 1], &mut fields, &limits),
            Err(Error::RequestLineTooLong)
        );
    }
}
