//! HTML pages of text files and directories: escaping and page bodies.
//!
//! Text is escaped for HTML (`& < > " '`); invalid UTF-8 becomes U+FFFD
//! exactly as `String::from_utf8_lossy` does (Unicode §3.9, substitution of
//! maximal subparts), and so does every C0 control but TAB, LF, FF and CR, and DEL
//! (C1 controls, U+0080 to U+009F, are valid text and kept).
//!
//! Bodies stream through caller buffers of any size: [`Escaper`] carries a
//! UTF-8 sequence cut by a buffer boundary from one call to the next, and
//! its [`Escaper::measure`] runs the same state machine without writing, so
//! the exact body length (for `Content-Length`) is known before the first
//! byte is sent. Page framing comes as a prologue writer, the escaped text
//! or the index entries, and a constant epilogue; every `write_*` has a
//! `*_len` twin that gives its exact byte count.
//!
//! Nothing here allocates or panics, and work is linear in the input.

use core::{fmt, str};

use crate::scan;

/// The version of the page bytes; it goes into ETags, so bump it whenever
/// any page renders to different bytes.
pub const RENDER_VERSION: u32 = 1;

/// The end of a file page, written after the escaped text.
pub const PAGE_EPILOGUE: &[u8] = b"</pre>\n</body>\n</html>\n";

/// The end of a directory index page, written after the last entry.
pub const INDEX_EPILOGUE: &[u8] = b"</ul>\n</body>\n</html>\n";

/// U+FFFD REPLACEMENT CHARACTER, in UTF-8.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// The start of every page, up to the page-specific `<head>` lines.
const DOC_HEAD: &[u8] = b"<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n";
/// Text pages and indexes are read on phones too.
const VIEWPORT: &[u8] =
    b"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
const TITLE_OPEN: &[u8] = b"<title>";
/// HTML drops one newline right after `<pre>`: the `\n` here is that one,
/// so a file that starts with a newline keeps it.
const PAGE_AFTER_TITLE: &[u8] = b"</title>\n</head>\n<body>\n<pre>\n";
const INDEX_TITLE_OPEN: &[u8] = b"<title>Index of ";
const INDEX_AFTER_TITLE: &[u8] = b"</title>\n</head>\n<body>\n<h1>Index of ";
const INDEX_AFTER_HEADING: &[u8] = b"</h1>\n<ul>\n";
const PARENT_ENTRY: &[u8] = b"<li><a href=\"../\">../</a></li>\n";
const ENTRY_OPEN: &[u8] = b"<li><a href=\"";
const ENTRY_MIDDLE: &[u8] = b"\">";
const ENTRY_CLOSE: &[u8] = b"</a></li>\n";
const ERROR_AFTER_TITLE: &[u8] = b"</title>\n</head>\n<body>\n<h1>";
const ERROR_CLOSE: &[u8] = b"</h1>\n</body>\n</html>\n";

/// Why a page could not be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Error {
    /// The output buffer cannot hold the bytes. Callers size buffers with
    /// the `*_len` functions, so this is an internal condition (500).
    BufferTooSmall,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::BufferTooSmall => "output buffer too small",
        })
    }
}

impl core::error::Error for Error {}

/// Where the escaper puts its output: a buffer, or a counter.
trait Sink {
    /// How many more bytes fit.
    fn room(&self) -> usize;
    /// Appends all of `bytes` and answers true, or appends nothing and
    /// answers false when they do not fit.
    fn put(&mut self, bytes: &[u8]) -> bool;
}

/// A caller's buffer and how much of it is written.
struct Buf<'o> {
    out: &'o mut [u8],
    len: usize,
}

impl<'o> Buf<'o> {
    /// Starts writing `out`, refusing at once when `len` bytes cannot fit,
    /// so that a writer which fails leaves `out` untouched.
    fn fitting(out: &'o mut [u8], len: usize) -> Result<Self, Error> {
        if len > out.len() {
            debug!("html: {} bytes do not fit a buffer of {}", len, out.len());
            return Err(Error::BufferTooSmall);
        }
        Ok(Self { out, len: 0 })
    }
}

/// The pieces pages are made of, written into any [`Sink`].
trait Push: Sink + Sized {
    fn push(&mut self, bytes: &[u8]) -> Result<(), Error> {
        if self.put(bytes) {
            Ok(())
        } else {
            Err(Error::BufferTooSmall)
        }
    }

    fn push_escaped(&mut self, text: &[u8]) -> Result<(), Error> {
        if Escaper::new().run(text, self, true) == text.len() {
            Ok(())
        } else {
            Err(Error::BufferTooSmall)
        }
    }

    /// Pushes a name (or a path shown as a title) escaped, see [`name_len`].
    fn push_name(&mut self, name: &[u8]) -> Result<(), Error> {
        if Escaper::for_name().run(name, self, true) == name.len() {
            Ok(())
        } else {
            Err(Error::BufferTooSmall)
        }
    }

    fn push_percent_encoded(&mut self, bytes: &[u8], keep_slash: bool) -> Result<(), Error> {
        let mut rest = bytes;
        while !rest.is_empty() {
            let plain = rest
                .iter()
                .position(|&b| !is_kept(b, keep_slash))
                .unwrap_or(rest.len());
            let (run, after) = rest.split_at_checked(plain).unwrap_or((rest, &[]));
            self.push(run)?;
            let Some((&byte, after)) = after.split_first() else {
                break;
            };
            self.push(&[b'%', hex_digit(byte >> 4), hex_digit(byte & 0x0f)])?;
            rest = after;
        }
        Ok(())
    }

    /// Pushes `/dir/` escaped, or `/` for the root.
    fn push_shown_dir(&mut self, dir: &[u8]) -> Result<(), Error> {
        self.push(b"/")?;
        if !dir.is_empty() {
            self.push_name(dir)?;
            self.push(b"/")?;
        }
        Ok(())
    }

    /// Pushes a status code and its reason phrase, escaped: `404 Not Found`.
    fn push_status(&mut self, code: &Decimal, reason_phrase: &[u8]) -> Result<(), Error> {
        self.push(code.as_bytes())?;
        self.push(b" ")?;
        self.push_escaped(reason_phrase)
    }
}

impl<S: Sink> Push for S {}

impl Sink for Buf<'_> {
    fn room(&self) -> usize {
        self.out.len().saturating_sub(self.len)
    }

    fn put(&mut self, bytes: &[u8]) -> bool {
        let end = self.len.saturating_add(bytes.len());
        match self.out.get_mut(self.len..end) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = end;
                true
            }
            None => false,
        }
    }
}

/// Counts what would be written; never full.
struct Count(u64);

impl Sink for Count {
    fn room(&self) -> usize {
        usize::MAX
    }

    fn put(&mut self, bytes: &[u8]) -> bool {
        self.0 = self.0.saturating_add(bytes.len() as u64);
        true
    }
}

/// Writes the part of a unit that starts `skip` bytes in and fits `out`:
/// for a unit longer than the buffer, sent in pieces. Never full.
struct Window<'o> {
    out: &'o mut [u8],
    /// Bytes of the unit still to pass over.
    skip: usize,
    len: usize,
}

impl Sink for Window<'_> {
    fn room(&self) -> usize {
        usize::MAX
    }

    fn put(&mut self, bytes: &[u8]) -> bool {
        let skipped = self.skip.min(bytes.len());
        self.skip -= skipped;
        let rest = bytes.get(skipped..).unwrap_or_default();
        let free = self.out.get_mut(self.len..).unwrap_or_default();
        let n = rest.len().min(free.len());
        if let (Some(dst), Some(src)) = (free.get_mut(..n), rest.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.len += n;
        true
    }
}

/// Streaming HTML text escaper that replaces invalid UTF-8 and controls.
///
/// Feed it the text in pieces of any size, into output buffers of any size:
/// the concatenated output is always the same. Its only state is an
/// incomplete UTF-8 sequence (at most 3 bytes) cut by the end of a piece.
///
/// | input | output |
/// |---|---|
/// | `&` `<` `>` `"` `'` | `&amp;` `&lt;` `&gt;` `&quot;` `&#39;` |
/// | TAB, LF, FF, CR | copied (U+FFFD in a name) |
/// | any other control (0x00–0x1F), DEL | U+FFFD |
/// | each maximal invalid UTF-8 subpart | U+FFFD |
/// | everything else | copied |
///
/// One input unit becomes at most 6 bytes (`&quot;`), so an output buffer
/// of 6 bytes or more always makes progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Escaper {
    /// The start of a UTF-8 sequence that the input so far left incomplete.
    held: [u8; 3],
    /// How many bytes of `held` are in use.
    held_len: u8,
    /// Escaping a file or directory name (a title, a link text): it has no
    /// lines, so HTML's whitespace controls become U+FFFD too, and a name
    /// with a newline never puts a raw newline in the page.
    in_name: bool,
}

impl Escaper {
    /// An escaper at the start of a text, holding nothing.
    pub const fn new() -> Self {
        Self {
            held: [0; 3],
            held_len: 0,
            in_name: false,
        }
    }

    /// An escaper for a name: as [`Escaper::new`], but TAB, LF, FF and CR
    /// become U+FFFD like every other control.
    const fn for_name() -> Self {
        Self {
            in_name: true,
            ..Self::new()
        }
    }

    /// Escapes as much of `input` as fits in `out`; returns `(consumed, written)`.
    ///
    /// `out[..written]` holds the escaped form of `input[..consumed]`, and
    /// the next call must go on with `input[consumed..]` (followed by any
    /// later input). A unit is never written in part: when the next one does
    /// not fit, the call stops, and `consumed` ends at a unit boundary.
    ///
    /// With `last` false, an incomplete UTF-8 sequence at the very end of
    /// `input` that could still become valid is taken into the escaper
    /// (counted as consumed) and finished by the next call. With `last`
    /// true, the input is final: such a sequence becomes U+FFFD, so once a
    /// call with `last` consumes all its input, [`Escaper::is_empty`] holds.
    ///
    /// # Examples
    ///
    /// ```
    /// use txtd_core::html::Escaper;
    ///
    /// let mut escaper = Escaper::new();
    /// let mut out = [0u8; 64];
    /// // "é" (C3 A9) is cut between two reads.
    /// let (consumed, written) = escaper.escape(b"a<b \xC3", &mut out, false);
    /// assert_eq!((consumed, &out[..written]), (5, &b"a&lt;b "[..]));
    /// assert!(!escaper.is_empty());
    /// let (consumed, written) = escaper.escape(b"\xA9\xFF", &mut out, true);
    /// assert_eq!((consumed, &out[..written]), (2, "é\u{FFFD}".as_bytes()));
    ///
    /// // A full buffer stops before the unit that does not fit.
    /// let mut small = [0u8; 8];
    /// assert_eq!(Escaper::new().escape(b"1234&5", &mut small, true), (4, 4));
    /// ```
    pub fn escape(&mut self, input: &[u8], out: &mut [u8], last: bool) -> (usize, usize) {
        let mut buf = Buf { out, len: 0 };
        let consumed = self.run(input, &mut buf, last);
        (consumed, buf.len)
    }

    /// The number of bytes [`Escaper::escape`] would write for all of
    /// `input` with the same state; advances the state the same way.
    ///
    /// Calls over the same pieces of text, with the same `last` flags, add up
    /// to the exact length of the escaped text.
    ///
    /// # Examples
    ///
    /// ```
    /// use txtd_core::html::Escaper;
    ///
    /// let mut escaper = Escaper::new();
    /// let len = escaper.measure(b"a < b \xE2\x82", false) + escaper.measure(b"\xAC", true);
    /// assert_eq!(len, "a &lt; b €".len() as u64);
    /// ```
    pub fn measure(&mut self, input: &[u8], last: bool) -> u64 {
        let mut count = Count(0);
        self.run(input, &mut count, last);
        count.0
    }

    /// Whether no partial UTF-8 sequence is held.
    pub fn is_empty(&self) -> bool {
        self.held_len == 0
    }

    /// Escapes `input` into `sink` until it is full; returns the bytes consumed.
    fn run<S: Sink>(&mut self, input: &[u8], sink: &mut S, last: bool) -> usize {
        let Some(mut pos) = self.finish_held(input, sink, last) else {
            return 0;
        };
        if !self.is_empty() {
            // All of the input went into the held sequence.
            return pos;
        }
        // Input from `pos` up to `valid_end` is known to be valid UTF-8,
        // where only ASCII bytes can be special.
        let mut valid_end = 0;
        while let Some(rest) = input.get(pos..).filter(|rest| !rest.is_empty()) {
            let in_valid = pos < valid_end;
            let (text, run) = if in_valid {
                let text = rest.get(..valid_end.saturating_sub(pos)).unwrap_or(rest);
                (text, scan::find_html_special_ascii(text))
            } else {
                (rest, scan::find_html_special(rest))
            };
            let run = run.unwrap_or(text.len());
            let plain = text.get(..run).unwrap_or_default();
            // A short buffer cuts the run, but never inside a character.
            let fit = char_floor(plain, run.min(sink.room()));
            if !sink.put(plain.get(..fit).unwrap_or_default()) {
                return pos;
            }
            pos = pos.saturating_add(fit);
            if fit < run {
                return pos;
            }
            let Some(&byte) = text.get(run) else {
                // The end of the valid stretch, or of the input.
                continue;
            };
            if byte < 0x80 {
                // The whole run of flagged ASCII bytes here, without a scan
                // per byte: a NUL-filled (sparse) or binary file is one run.
                let flagged = text.get(run..).unwrap_or_default();
                for unit in flagged.iter().take_while(|&&b| is_flagged_ascii(b)) {
                    if !sink.put(ascii_unit(unit, self.in_name)) {
                        return pos;
                    }
                    pos = pos.saturating_add(1);
                }
                continue;
            }
            // Non-ASCII outside a validated stretch: validate what can still
            // be written. Output is never shorter than its input, so four
            // bytes past the room hold any sequence that starts within it.
            let tail = rest.get(run..).unwrap_or_default();
            let window = tail.get(..sink.room().saturating_add(4)).unwrap_or(tail);
            match str::from_utf8(window) {
                Ok(valid) => valid_end = pos.saturating_add(valid.len()),
                Err(e) if e.valid_up_to() > 0 => valid_end = pos.saturating_add(e.valid_up_to()),
                // A maximal invalid subpart: one U+FFFD, as from_utf8_lossy.
                Err(e) => match e.error_len() {
                    Some(bad) => {
                        if !sink.put(REPLACEMENT) {
                            return pos;
                        }
                        pos = pos.saturating_add(bad);
                    }
                    // A sequence cut by the end of the input.
                    None if window.len() == tail.len() => {
                        if (last || !self.hold(tail)) && !sink.put(REPLACEMENT) {
                            return pos;
                        }
                        return input.len();
                    }
                    // Unreachable: a window of four bytes or more holds any
                    // incomplete sequence whole.
                    None => return pos,
                },
            }
        }
        pos
    }

    /// Finishes the held sequence with the first bytes of `input`; returns
    /// how many it took, or `None` when its output did not fit.
    fn finish_held<S: Sink>(&mut self, input: &[u8], sink: &mut S, last: bool) -> Option<usize> {
        let held = self
            .held
            .get(..usize::from(self.held_len))
            .unwrap_or_default();
        let Some(&lead) = held.first() else {
            return Some(0);
        };
        // The lead byte gives the sequence length; a held lead is always
        // one of C2..=F4, since only a prefix that could become valid is held.
        let width: usize = match lead {
            0xc2..=0xdf => 2,
            0xe0..=0xef => 3,
            _ => 4,
        };
        let take = width.saturating_sub(held.len()).min(input.len());
        let end = held.len().saturating_add(take);
        let mut sequence = [0u8; 4];
        if let Some(dst) = sequence.get_mut(..held.len()) {
            dst.copy_from_slice(held);
        }
        if let (Some(dst), Some(src)) = (sequence.get_mut(held.len()..end), input.get(..take)) {
            dst.copy_from_slice(src);
        }
        let candidate = sequence.get(..end).unwrap_or_default();
        let (unit, taken) = match str::from_utf8(candidate) {
            Ok(_) => (candidate, take),
            // The held prefix was valid, so the invalid subpart covers it whole.
            Err(e) => match e.error_len() {
                Some(bad) => (REPLACEMENT, bad.saturating_sub(held.len())),
                None if last => (REPLACEMENT, take),
                None => {
                    // Still incomplete: the input ran out (take < width - held).
                    if self.hold(candidate) {
                        return Some(take);
                    }
                    (REPLACEMENT, take)
                }
            },
        };
        if !sink.put(unit) {
            return None;
        }
        self.held_len = 0;
        Some(taken)
    }

    /// Keeps an incomplete sequence of at most 3 bytes for the next call.
    fn hold(&mut self, sequence: &[u8]) -> bool {
        match (
            self.held.get_mut(..sequence.len()),
            u8::try_from(sequence.len()),
        ) {
            (Some(dst), Ok(len)) => {
                dst.copy_from_slice(sequence);
                self.held_len = len;
                true
            }
            _ => false,
        }
    }
}

/// The largest character boundary of valid UTF-8 `text` at or below `n`
/// (`text.len()` counts as one).
fn char_floor(text: &[u8], mut n: usize) -> usize {
    // Continuation bytes are 10xxxxxx; a character has at most 3 of them.
    while n > 0 && text.get(n).is_some_and(|&b| b & 0xc0 == 0x80) {
        n -= 1;
    }
    n
}

/// Whether [`scan::find_html_special`] flags this byte and it is ASCII: a
/// control, DEL or one of `& < > " '`.
#[inline(always)]
fn is_flagged_ascii(b: u8) -> bool {
    b < 0x20 || b == 0x7f || matches!(b, b'&' | b'<' | b'>' | b'"' | b'\'')
}

/// The output for an ASCII byte that [`scan::find_html_special`] flags.
fn ascii_unit(byte: &u8, in_name: bool) -> &[u8] {
    match byte {
        b'&' => b"&amp;",
        b'<' => b"&lt;",
        b'>' => b"&gt;",
        b'"' => b"&quot;",
        // `&#39;`, not `&apos;`, which HTML 4 does not know.
        b'\'' => b"&#39;",
        // HTML's ASCII whitespace; every other control is a parse error.
        b'\t' | b'\n' | 0x0c | b'\r' if !in_name => core::slice::from_ref(byte),
        0x00..=0x1f | 0x7f => REPLACEMENT,
        _ => core::slice::from_ref(byte),
    }
}

/// The length of `text` escaped as one whole, final text.
///
/// For short strings; see [`Escaper`] for the rules. The pages' names and
/// titles go through the same rules, but with HTAB, LF, FF and CR shown as
/// U+FFFD too.
pub fn escaped_len(text: &[u8]) -> usize {
    usize::try_from(Escaper::new().measure(text, true)).unwrap_or(usize::MAX)
}

/// The length of a name (a title, a link text) escaped as the pages show
/// it: as [`escaped_len`], but with HTAB, LF, FF and CR as U+FFFD too.
fn name_len(name: &[u8]) -> usize {
    usize::try_from(Escaper::for_name().measure(name, true)).unwrap_or(usize::MAX)
}

/// Writes `text`, escaped as one whole, final text, to the start of `out`;
/// returns the bytes written.
///
/// For short strings; see [`Escaper`] for the rules. The pages' names and
/// titles go through the same rules, but with HTAB, LF, FF and CR shown as
/// U+FFFD too.
///
/// # Errors
///
/// [`Error::BufferTooSmall`] when `out` is shorter than [`escaped_len`];
/// `out` is then left untouched.
///
/// # Examples
///
/// ```
/// use txtd_core::html::write_escaped;
///
/// let mut out = [0u8; 32];
/// let n = write_escaped(b"Tom & \"Jerry\"\xFF", &mut out)?;
/// assert_eq!(&out[..n], "Tom &amp; &quot;Jerry&quot;\u{FFFD}".as_bytes());
/// # Ok::<(), txtd_core::html::Error>(())
/// ```
pub fn write_escaped(text: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut buf = Buf::fitting(out, escaped_len(text))?;
    buf.push_escaped(text)?;
    Ok(buf.len)
}

/// Whether percent-encoding leaves `byte` as it is: RFC 3986 §2.3
/// unreserved, and `/` when it separates segments.
fn is_kept(byte: u8, keep_slash: bool) -> bool {
    byte.is_ascii_alphanumeric()
        || matches!(byte, b'-' | b'.' | b'_' | b'~')
        || (keep_slash && byte == b'/')
}

/// An uppercase hexadecimal digit (RFC 3986 §2.1 prefers uppercase).
fn hex_digit(nibble: u8) -> u8 {
    b"0123456789ABCDEF"
        .get(usize::from(nibble))
        .copied()
        .unwrap_or(b'0')
}

/// The length of `bytes` percent-encoded.
fn encoded_len(bytes: &[u8], keep_slash: bool) -> usize {
    bytes.iter().fold(0usize, |len, &b| {
        len.saturating_add(if is_kept(b, keep_slash) { 1 } else { 3 })
    })
}

/// The length of `bytes` percent-encoded by [`write_percent_encoded`].
pub fn percent_encoded_len(bytes: &[u8]) -> usize {
    encoded_len(bytes, true)
}

/// Writes `bytes` percent-encoded for a URI path to the start of `out`;
/// returns the bytes written.
///
/// Every byte but the RFC 3986 unreserved ones (`A-Z a-z 0-9 - . _ ~`) and
/// `/` becomes `%XX` in uppercase hex, so the result is safe in an HTML
/// attribute and in a `Location` field, and can never start a scheme.
///
/// # Errors
///
/// [`Error::BufferTooSmall`] when `out` is shorter than
/// [`percent_encoded_len`]; `out` is then left untouched.
///
/// # Examples
///
/// ```
/// use txtd_core::html::write_percent_encoded;
///
/// let mut out = [0u8; 32];
/// let n = write_percent_encoded("/a b/ü?".as_bytes(), &mut out)?;
/// assert_eq!(&out[..n], b"/a%20b/%C3%BC%3F");
/// # Ok::<(), txtd_core::html::Error>(())
/// ```
pub fn write_percent_encoded(bytes: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut buf = Buf::fitting(out, percent_encoded_len(bytes))?;
    buf.push_percent_encoded(bytes, true)?;
    Ok(buf.len)
}

/// Adds up lengths, saturating.
fn sum(lens: &[usize]) -> usize {
    lens.iter()
        .fold(0usize, |sum, &len| sum.saturating_add(len))
}

/// The name a file page carries in its title: the path's last segment.
pub(crate) fn file_name(path: &[u8]) -> &[u8] {
    path.rsplit(|&b| b == b'/').next().unwrap_or(path)
}

/// The length of the whole page of the file at normalised `path` holding
/// `text`.
///
/// For a cache of rendered pages (see [`crate::Site::page`]): the same
/// bytes as core streams for that file.
pub fn page_len(path: &[u8], text: &[u8]) -> u64 {
    let frame = page_prologue_len(file_name(path)).saturating_add(PAGE_EPILOGUE.len()) as u64;
    frame.saturating_add(Escaper::new().measure(text, true))
}

/// Writes the whole page of the file at normalised `path` holding `text`;
/// returns its length, which is [`page_len`].
///
/// # Errors
///
/// [`Error::BufferTooSmall`] if `out` is shorter than the page.
///
/// # Examples
///
/// ```
/// use txtd_core::html::{page_len, write_page};
///
/// let mut out = [0u8; 512];
/// let n = write_page(b"notes/a.txt", b"x < y\n", &mut out)?;
/// assert_eq!(n as u64, page_len(b"notes/a.txt", b"x < y\n"));
/// assert!(out[..n].windows(20).any(|w| w == b"<title>a.txt</title>"));
/// assert!(out[..n].ends_with(b"<pre>\nx &lt; y\n</pre>\n</body>\n</html>\n"));
/// # Ok::<(), txtd_core::html::Error>(())
/// ```
pub fn write_page(path: &[u8], text: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut at = write_page_prologue(file_name(path), out)?;
    let rest = out.get_mut(at..).ok_or(Error::BufferTooSmall)?;
    let (consumed, written) = Escaper::new().escape(text, rest, true);
    if consumed < text.len() {
        return Err(Error::BufferTooSmall);
    }
    at = at.saturating_add(written);
    let end = at.saturating_add(PAGE_EPILOGUE.len());
    out.get_mut(at..end)
        .ok_or(Error::BufferTooSmall)?
        .copy_from_slice(PAGE_EPILOGUE);
    Ok(end)
}

/// The length of the file page prologue for a file called `name`.
pub fn page_prologue_len(name: &[u8]) -> usize {
    sum(&[
        DOC_HEAD.len(),
        VIEWPORT.len(),
        TITLE_OPEN.len(),
        name_len(name),
        PAGE_AFTER_TITLE.len(),
    ])
}

/// Writes the start of a file page, through the `<pre>` that holds the
/// text, to the start of `out`; returns the bytes written.
///
/// `name` is the file name, shown escaped as the title. A page is this
/// prologue, the text escaped by an [`Escaper`], then [`PAGE_EPILOGUE`].
///
/// # Errors
///
/// [`Error::BufferTooSmall`] when `out` is shorter than
/// [`page_prologue_len`]; `out` is then left untouched.
///
/// # Examples
///
/// ```
/// use txtd_core::html::{Escaper, PAGE_EPILOGUE, page_prologue_len, write_page_prologue};
///
/// let text = b"1 < 2\n";
/// let mut escaper = Escaper::new();
/// let body_len = page_prologue_len(b"a&b.txt") as u64
///     + Escaper::new().measure(text, true)
///     + PAGE_EPILOGUE.len() as u64;
///
/// let mut out = [0u8; 256];
/// let mut n = write_page_prologue(b"a&b.txt", &mut out)?;
/// let (_, written) = escaper.escape(text, &mut out[n..], true);
/// n += written;
/// out[n..n + PAGE_EPILOGUE.len()].copy_from_slice(PAGE_EPILOGUE);
/// n += PAGE_EPILOGUE.len();
///
/// assert_eq!(n as u64, body_len);
/// assert!(out[..n].starts_with(b"<!DOCTYPE html>\n"));
/// assert!(out[..n].ends_with(b"<title>a&amp;b.txt</title>\n</head>\n<body>\n<pre>\n1 &lt; 2\n</pre>\n</body>\n</html>\n"));
/// # Ok::<(), txtd_core::html::Error>(())
/// ```
pub fn write_page_prologue(name: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut buf = Buf::fitting(out, page_prologue_len(name))?;
    push_page_prologue(&mut buf, name)?;
    Ok(buf.len)
}

/// Writes what fits of [`write_page_prologue`]'s bytes from `skip` on;
/// returns the bytes written. For a buffer shorter than the prologue.
pub(crate) fn write_page_prologue_from(name: &[u8], skip: usize, out: &mut [u8]) -> usize {
    let mut window = Window { out, skip, len: 0 };
    // A window is never full, so pushing cannot fail.
    let _ = push_page_prologue(&mut window, name);
    window.len
}

fn push_page_prologue<S: Push>(buf: &mut S, name: &[u8]) -> Result<(), Error> {
    buf.push(DOC_HEAD)?;
    buf.push(VIEWPORT)?;
    buf.push(TITLE_OPEN)?;
    buf.push_name(name)?;
    buf.push(PAGE_AFTER_TITLE)
}

/// The length of `/dir/` (or `/` for the root) escaped.
fn shown_dir_len(dir: &[u8]) -> usize {
    if dir.is_empty() {
        1
    } else {
        // `/` is plain ASCII: it ends any sequence `dir` leaves open, as a
        // final input would, so the parts escape separately.
        name_len(dir).saturating_add(2)
    }
}

/// The length of the index page prologue for directory `dir`.
pub fn index_prologue_len(dir: &[u8]) -> usize {
    let shown = shown_dir_len(dir);
    sum(&[
        DOC_HEAD.len(),
        VIEWPORT.len(),
        INDEX_TITLE_OPEN.len(),
        shown,
        INDEX_AFTER_TITLE.len(),
        shown,
        INDEX_AFTER_HEADING.len(),
        if dir.is_empty() {
            0
        } else {
            PARENT_ENTRY.len()
        },
    ])
}

/// Writes the start of a directory index page, through the link to the
/// parent directory, to the start of `out`; returns the bytes written.
///
/// `dir` is the directory's decoded path relative to the site root, without
/// a leading or trailing `/`, and empty for the root; it is shown as
/// `/dir/`, or `/` for the root, which alone has no `../` entry. An index is
/// this prologue, one [`write_index_entry`] per entry, then
/// [`INDEX_EPILOGUE`].
///
/// # Errors
///
/// [`Error::BufferTooSmall`] when `out` is shorter than
/// [`index_prologue_len`]; `out` is then left untouched.
///
/// # Examples
///
/// ```
/// use txtd_core::html::{INDEX_EPILOGUE, write_index_entry, write_index_prologue};
///
/// let mut out = [0u8; 512];
/// let mut n = write_index_prologue(b"notes", &mut out)?;
/// n += write_index_entry(b"old", true, &mut out[n..])?;
/// n += write_index_entry(b"to do.txt", false, &mut out[n..])?;
/// out[n..n + INDEX_EPILOGUE.len()].copy_from_slice(INDEX_EPILOGUE);
/// n += INDEX_EPILOGUE.len();
///
/// let page = core::str::from_utf8(&out[..n]).unwrap();
/// assert!(page.contains("<title>Index of /notes/</title>"));
/// assert!(page.ends_with(concat!(
///     "<h1>Index of /notes/</h1>\n<ul>\n",
///     "<li><a href=\"../\">../</a></li>\n",
///     "<li><a href=\"old/\">old/</a></li>\n",
///     "<li><a href=\"to%20do.txt\">to do.txt</a></li>\n",
///     "</ul>\n</body>\n</html>\n",
/// )));
/// # Ok::<(), txtd_core::html::Error>(())
/// ```
pub fn write_index_prologue(dir: &[u8], out: &mut [u8]) -> Result<usize, Error> {
    let mut buf = Buf::fitting(out, index_prologue_len(dir))?;
    push_index_prologue(&mut buf, dir)?;
    Ok(buf.len)
}

/// Writes what fits of [`write_index_prologue`]'s bytes from `skip` on;
/// returns the bytes written. For a buffer shorter than the prologue.
pub(crate) fn write_index_prologue_from(dir: &[u8], skip: usize, out: &mut [u8]) -> usize {
    let mut window = Window { out, skip, len: 0 };
    // A window is never full, so pushing cannot fail.
    let _ = push_index_prologue(&mut window, dir);
    window.len
}

fn push_index_prologue<S: Push>(buf: &mut S, dir: &[u8]) -> Result<(), Error> {
    buf.push(DOC_HEAD)?;
    buf.push(VIEWPORT)?;
    buf.push(INDEX_TITLE_OPEN)?;
    buf.push_shown_dir(dir)?;
    buf.push(INDEX_AFTER_TITLE)?;
    buf.push_shown_dir(dir)?;
    buf.push(INDEX_AFTER_HEADING)?;
    if !dir.is_empty() {
        buf.push(PARENT_ENTRY)?;
    }
    Ok(())
}

/// The length of the index line for entry `name`.
pub fn index_entry_len(name: &[u8], is_dir: bool) -> usize {
    let slash = usize::from(is_dir);
    sum(&[
        ENTRY_OPEN.len(),
        encoded_len(name, false),
        slash,
        ENTRY_MIDDLE.len(),
        name_len(name),
        slash,
        ENTRY_CLOSE.len(),
    ])
}

/// Writes one index line, a link to entry `name` of the directory, to the
/// start of `out`; returns the bytes written.
///
/// The link is `name` percent-encoded, relative to the directory, and the
/// text is `name` escaped (not UTF-8 and every control, HTAB and LF
/// included: shown with U+FFFD, linked by its bytes); a directory gets a trailing `/` on both. A name is one path
/// segment, so a `/` inside it is encoded too (`%2F`), unlike in
/// [`write_percent_encoded`]. Order and hiding are up to the caller.
///
/// # Errors
///
/// [`Error::BufferTooSmall`] when `out` is shorter than
/// [`index_entry_len`]; `out` is then left untouched.
///
/// # Examples
///
/// ```
/// use txtd_core::html::write_index_entry;
///
/// let mut out = [0u8; 128];
/// let n = write_index_entry(b"a:b<\xFF>", false, &mut out)?;
/// assert_eq!(
///     &out[..n],
///     "<li><a href=\"a%3Ab%3C%FF%3E\">a:b&lt;\u{FFFD}&gt;</a></li>\n".as_bytes()
/// );
/// # Ok::<(), txtd_core::html::Error>(())
/// ```
pub fn write_index_entry(name: &[u8], is_dir: bool, out: &mut [u8]) -> Result<usize, Error> {
    let mut buf = Buf::fitting(out, index_entry_len(name, is_dir))?;
    push_index_entry(&mut buf, name, is_dir)?;
    Ok(buf.len)
}

/// Writes what fits of [`write_index_entry`]'s bytes from `skip` on;
/// returns the bytes written. For a buffer shorter than the entry.
pub(crate) fn write_index_entry_from(
    name: &[u8],
    is_dir: bool,
    skip: usize,
    out: &mut [u8],
) -> usize {
    let mut window = Window { out, skip, len: 0 };
    // A window is never full, so pushing cannot fail.
    let _ = push_index_entry(&mut window, name, is_dir);
    window.len
}

fn push_index_entry<S: Push>(buf: &mut S, name: &[u8], is_dir: bool) -> Result<(), Error> {
    let slash: &[u8] = if is_dir { b"/" } else { b"" };
    buf.push(ENTRY_OPEN)?;
    buf.push_percent_encoded(name, false)?;
    buf.push(slash)?;
    buf.push(ENTRY_MIDDLE)?;
    buf.push_name(name)?;
    buf.push(slash)?;
    buf.push(ENTRY_CLOSE)
}

/// The decimal digits of a status code.
struct Decimal {
    digits: [u8; 5],
    start: usize,
}

impl Decimal {
    fn new(mut n: u16) -> Self {
        let mut digits = [b'0'; 5];
        let mut start = digits.len();
        for (i, digit) in digits.iter_mut().enumerate().rev() {
            *digit = b'0' + (n % 10) as u8;
            n /= 10;
            start = i;
            if n == 0 {
                break;
            }
        }
        Self { digits, start }
    }

    fn as_bytes(&self) -> &[u8] {
        self.digits.get(self.start..).unwrap_or_default()
    }
}

/// The length of the error page for `status_code` and `reason_phrase`.
pub fn error_page_len(status_code: u16, reason_phrase: &[u8]) -> usize {
    // The status line text, `404 Not Found`, shows twice.
    let shown = sum(&[
        Decimal::new(status_code).as_bytes().len(),
        1,
        escaped_len(reason_phrase),
    ]);
    sum(&[
        DOC_HEAD.len(),
        TITLE_OPEN.len(),
        shown,
        ERROR_AFTER_TITLE.len(),
        shown,
        ERROR_CLOSE.len(),
    ])
}

/// Writes a whole error page body, such as `404 Not Found`, to the start of
/// `out`; returns the bytes written.
///
/// The title and heading are the status code in decimal, a space and the
/// reason phrase, escaped.
///
/// # Errors
///
/// [`Error::BufferTooSmall`] when `out` is shorter than
/// [`error_page_len`]; `out` is then left untouched.
///
/// # Examples
///
/// ```
/// use txtd_core::html::write_error_page;
///
/// let mut out = [0u8; 256];
/// let n = write_error_page(404, b"Not Found", &mut out)?;
/// assert_eq!(
///     &out[..n],
///     concat!(
///         "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n",
///         "<title>404 Not Found</title>\n</head>\n<body>\n",
///         "<h1>404 Not Found</h1>\n</body>\n</html>\n",
///     )
///     .as_bytes()
/// );
/// # Ok::<(), txtd_core::html::Error>(())
/// ```
pub fn write_error_page(
    status_code: u16,
    reason_phrase: &[u8],
    out: &mut [u8],
) -> Result<usize, Error> {
    let mut buf = Buf::fitting(out, error_page_len(status_code, reason_phrase))?;
    push_error_page(&mut buf, status_code, reason_phrase)?;
    Ok(buf.len)
}

/// Writes what fits of [`write_error_page`]'s bytes from `skip` on;
/// returns the bytes written. For a buffer shorter than the page.
pub(crate) fn write_error_page_from(
    status_code: u16,
    reason_phrase: &[u8],
    skip: usize,
    out: &mut [u8],
) -> usize {
    let mut window = Window { out, skip, len: 0 };
    // A window is never full, so pushing cannot fail.
    let _ = push_error_page(&mut window, status_code, reason_phrase);
    window.len
}

fn push_error_page<S: Push>(
    buf: &mut S,
    status_code: u16,
    reason_phrase: &[u8],
) -> Result<(), Error> {
    let code = Decimal::new(status_code);
    buf.push(DOC_HEAD)?;
    buf.push(TITLE_OPEN)?;
    buf.push_status(&code, reason_phrase)?;
    buf.push(ERROR_AFTER_TITLE)?;
    buf.push_status(&code, reason_phrase)?;
    buf.push(ERROR_CLOSE)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FFFD: &str = "\u{FFFD}";

    /// Checks `input` against `expected` in one piece, one byte at a time
    /// and through a 6-byte output buffer, and checks the lengths.
    fn assert_escapes(input: &[u8], expected: &[u8]) {
        let mut out = [0u8; 256];
        let n = write_escaped(input, &mut out).unwrap();
        assert_eq!(&out[..n], expected, "whole {input:x?}");
        assert_eq!(escaped_len(input), expected.len(), "len {input:x?}");

        let mut escaper = Escaper::new();
        let mut n = 0;
        let mut measured = 0;
        let mut measurer = Escaper::new();
        for (i, byte) in input.iter().enumerate() {
            let last = i + 1 == input.len();
            let piece = core::slice::from_ref(byte);
            measured += measurer.measure(piece, last);
            let mut rest = piece;
            loop {
                let (consumed, written) = escaper.escape(rest, &mut out[n..n + 6], last);
                assert!(consumed > 0 || written > 0 || rest.is_empty(), "stalled");
                n += written;
                rest = &rest[consumed..];
                if rest.is_empty() {
                    break;
                }
            }
        }
        if input.is_empty() {
            let (_, written) = escaper.escape(b"", &mut out, true);
            n += written;
        }
        assert!(escaper.is_empty() && measurer.is_empty());
        assert_eq!(&out[..n], expected, "bytewise {input:x?}");
        assert_eq!(measured, expected.len() as u64, "bytewise len {input:x?}");
    }

    #[test]
    fn each_special_character_becomes_its_reference() {
        assert_escapes(b"&", b"&amp;");
        assert_escapes(b"<", b"&lt;");
        assert_escapes(b">", b"&gt;");
        assert_escapes(b"\"", b"&quot;");
        assert_escapes(b"'", b"&#39;");
        assert_escapes(b"a<b>&\"c'", b"a&lt;b&gt;&amp;&quot;c&#39;");
    }

    #[test]
    fn tab_lf_ff_and_cr_are_copied() {
        assert_escapes(b"a\tb\nc\x0cd\re", b"a\tb\nc\x0cd\re");
    }

    #[test]
    fn every_other_control_and_del_become_one_replacement_character() {
        for byte in (0x00..0x20).chain([0x7f]) {
            if matches!(byte, b'\t' | b'\n' | 0x0c | b'\r') {
                continue;
            }
            assert_escapes(&[b'a', byte, b'b'], "a\u{FFFD}b".as_bytes());
        }
    }

    #[test]
    fn plain_text_and_valid_utf8_are_copied() {
        assert_escapes(b"", b"");
        assert_escapes(b"hello, world", b"hello, world");
        let text = "caf\u{e9} \u{20ac}5 \u{65e5}\u{672c} \u{1f600}!";
        assert_escapes(text.as_bytes(), text.as_bytes());
    }

    #[test]
    fn a_lone_continuation_byte_becomes_one_replacement_character() {
        assert_escapes(b"a\x80b", "a\u{FFFD}b".as_bytes());
        assert_escapes(b"\xbf", FFFD.as_bytes());
    }

    #[test]
    fn overlong_c0_ae_becomes_two_replacement_characters() {
        assert_escapes(b"\xc0\xae", "\u{FFFD}\u{FFFD}".as_bytes());
    }

    #[test]
    fn surrogate_ed_a0_80_becomes_three_replacement_characters() {
        assert_escapes(b"\xed\xa0\x80", "\u{FFFD}\u{FFFD}\u{FFFD}".as_bytes());
    }

    #[test]
    fn a_truncated_sequence_is_one_replacement_character() {
        // Maximal subparts: the valid prefix F0 9F 98 is replaced as a whole.
        assert_escapes(b"\xf0\x9f\x98", FFFD.as_bytes());
        assert_escapes(b"\xf0\x9f\x98<", "\u{FFFD}&lt;".as_bytes());
        assert_escapes(b"\xe2\x82\xf0\x9f\x98\x80", "\u{FFFD}\u{1f600}".as_bytes());
        // E0 needs A0..=BF next, so E0 80 is two subparts.
        assert_escapes(b"\xe0\x80", "\u{FFFD}\u{FFFD}".as_bytes());
        assert_escapes(
            b"\xf4\x90\x80\x80",
            "\u{FFFD}\u{FFFD}\u{FFFD}\u{FFFD}".as_bytes(),
        );
    }

    #[test]
    fn a_sequence_cut_between_calls_is_held_and_finished() {
        let mut escaper = Escaper::new();
        let mut out = [0u8; 16];
        assert_eq!(escaper.escape(b"x\xf0\x9f", &mut out, false), (3, 1));
        assert!(!escaper.is_empty());
        assert_eq!(escaper.escape(b"\x98", &mut out, false), (1, 0));
        let (consumed, written) = escaper.escape(b"\x80y", &mut out, true);
        assert_eq!((consumed, &out[..written]), (2, "\u{1f600}y".as_bytes()));
        assert!(escaper.is_empty());
    }

    #[test]
    fn a_held_sequence_becomes_a_replacement_character_at_the_end() {
        let mut escaper = Escaper::new();
        let mut out = [0u8; 16];
        assert_eq!(escaper.escape(b"\xe2\x82", &mut out, false), (2, 0));
        let (consumed, written) = escaper.escape(b"", &mut out, true);
        assert_eq!((consumed, &out[..written]), (0, FFFD.as_bytes()));
        assert!(escaper.is_empty());
    }

    #[test]
    fn a_held_sequence_broken_by_the_next_input_keeps_that_input() {
        let mut escaper = Escaper::new();
        let mut out = [0u8; 16];
        assert_eq!(escaper.escape(b"\xe2", &mut out, false), (1, 0));
        let (consumed, written) = escaper.escape(b"<", &mut out, false);
        assert_eq!((consumed, &out[..written]), (1, "\u{FFFD}&lt;".as_bytes()));
    }

    #[test]
    fn a_full_buffer_stops_before_a_unit_and_the_rest_follows() {
        let mut escaper = Escaper::new();
        let mut out = [0u8; 5];
        assert_eq!(escaper.escape(b"ab\"c", &mut out, true), (2, 2));
        assert_eq!(escaper.escape(b"\"c", &mut out, true), (0, 0));
        let mut out = [0u8; 6];
        assert_eq!(escaper.escape(b"\"c", &mut out, true), (1, 6));
        assert_eq!(&out, b"&quot;");
    }

    #[test]
    fn a_full_buffer_never_cuts_a_character() {
        let text = "\u{65e5}\u{672c}\u{8a9e}".as_bytes();
        let mut escaper = Escaper::new();
        let mut out = [0u8; 5];
        assert_eq!(escaper.escape(text, &mut out, true), (3, 3));
        assert_eq!(&out[..3], "\u{65e5}".as_bytes());
        let mut out = [0u8; 2];
        assert_eq!(escaper.escape(&text[3..], &mut out, true), (0, 0));
    }

    #[test]
    fn a_held_sequence_waits_for_room() {
        let mut escaper = Escaper::new();
        let mut out = [0u8; 2];
        assert_eq!(escaper.escape(b"\xe2\x82", &mut out, false), (2, 0));
        assert_eq!(escaper.escape(b"\xaca", &mut out, true), (0, 0));
        assert!(!escaper.is_empty());
        let mut out = [0u8; 4];
        assert_eq!(escaper.escape(b"\xaca", &mut out, true), (2, 4));
        assert_eq!(&out, "\u{20ac}a".as_bytes());
    }

    #[test]
    fn a_name_with_whitespace_controls_shows_them_as_replacement_characters() {
        let mut out = [0u8; 256];
        let n = write_index_entry(b"a\tb\nc\rd\x0ce", false, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            "<li><a href=\"a%09b%0Ac%0Dd%0Ce\">a\u{FFFD}b\u{FFFD}c\u{FFFD}d\u{FFFD}e</a></li>\n"
                .as_bytes()
        );
        assert_eq!(index_entry_len(b"a\tb\nc\rd\x0ce", false), n);
        let n = write_page_prologue(b"new\nline.txt", &mut out).unwrap();
        assert!(!out[..n].windows(9).any(|w| w == b"new\nline."));
        assert_eq!(page_prologue_len(b"new\nline.txt"), n);
        // The text of a page keeps its lines.
        assert_eq!(write_escaped(b"a\nb", &mut out), Ok(3));
    }

    #[test]
    fn write_escaped_refuses_a_short_buffer_and_leaves_it_untouched() {
        let mut out = [b'x'; 8];
        assert_eq!(
            write_escaped(b"a&b&c", &mut out),
            Err(Error::BufferTooSmall)
        );
        assert_eq!(out, [b'x'; 8]);
        let mut out = [0u8; 13];
        assert_eq!(write_escaped(b"a&b&c", &mut out), Ok(13));
    }

    #[test]
    fn percent_encoding_keeps_unreserved_bytes_and_slash() {
        let kept = b"AZaz09-._~/";
        let mut out = [0u8; 64];
        let n = write_percent_encoded(kept, &mut out).unwrap();
        assert_eq!(&out[..n], kept);
        assert_eq!(percent_encoded_len(kept), kept.len());
    }

    #[test]
    fn percent_encoding_encodes_everything_else_in_uppercase_hex() {
        let mut out = [0u8; 64];
        let n = write_percent_encoded(b":?#% ()'\"<\\\xc3\xbc\x00\x7f", &mut out).unwrap();
        assert_eq!(
            &out[..n],
            b"%3A%3F%23%25%20%28%29%27%22%3C%5C%C3%BC%00%7F".as_slice()
        );
        assert_eq!(percent_encoded_len(b":\xff"), 6);
        let mut short = [0u8; 5];
        assert_eq!(
            write_percent_encoded(b":\xff", &mut short),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn a_file_page_prologue_has_the_escaped_name_as_title() {
        let expected = concat!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>a&lt;b&gt;.txt</title>\n</head>\n<body>\n<pre>\n",
        );
        let mut out = [0u8; 256];
        let n = write_page_prologue(b"a<b>.txt", &mut out).unwrap();
        assert_eq!(&out[..n], expected.as_bytes());
        assert_eq!(page_prologue_len(b"a<b>.txt"), n);
        assert_eq!(
            write_page_prologue(b"a<b>.txt", &mut out[..n - 1]),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn an_index_prologue_below_the_root_links_to_the_parent() {
        let expected = concat!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>Index of /notes/&amp;co/</title>\n</head>\n<body>\n",
            "<h1>Index of /notes/&amp;co/</h1>\n<ul>\n",
            "<li><a href=\"../\">../</a></li>\n",
        );
        let mut out = [0u8; 512];
        let n = write_index_prologue(b"notes/&co", &mut out).unwrap();
        assert_eq!(&out[..n], expected.as_bytes());
        assert_eq!(index_prologue_len(b"notes/&co"), n);
    }

    #[test]
    fn the_root_index_prologue_shows_a_slash_and_no_parent() {
        let expected = concat!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n",
            "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
            "<title>Index of /</title>\n</head>\n<body>\n",
            "<h1>Index of /</h1>\n<ul>\n",
        );
        let mut out = [0u8; 512];
        let n = write_index_prologue(b"", &mut out).unwrap();
        assert_eq!(&out[..n], expected.as_bytes());
        assert_eq!(index_prologue_len(b""), n);
    }

    #[test]
    fn index_entries_link_encoded_names_and_show_escaped_ones() {
        let mut out = [0u8; 256];
        let n = write_index_entry(b"my dir", true, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            b"<li><a href=\"my%20dir/\">my dir/</a></li>\n".as_slice()
        );
        assert_eq!(index_entry_len(b"my dir", true), n);

        let n = write_index_entry(b"\"q\"&\xff/x", false, &mut out).unwrap();
        assert_eq!(
            &out[..n],
            "<li><a href=\"%22q%22%26%FF%2Fx\">&quot;q&quot;&amp;\u{FFFD}/x</a></li>\n".as_bytes()
        );
        assert_eq!(index_entry_len(b"\"q\"&\xff/x", false), n);
    }

    #[test]
    fn the_error_page_shows_the_status_code_and_reason_phrase() {
        let expected = concat!(
            "<!DOCTYPE html>\n<html>\n<head>\n<meta charset=\"utf-8\">\n",
            "<title>404 Not Found</title>\n</head>\n<body>\n",
            "<h1>404 Not Found</h1>\n</body>\n</html>\n",
        );
        let mut out = [0u8; 256];
        let n = write_error_page(404, b"Not Found", &mut out).unwrap();
        assert_eq!(&out[..n], expected.as_bytes());
        assert_eq!(error_page_len(404, b"Not Found"), n);
        assert_eq!(
            write_error_page(404, b"Not Found", &mut out[..n - 1]),
            Err(Error::BufferTooSmall)
        );
    }

    #[test]
    fn status_codes_are_written_in_decimal_without_leading_zeros() {
        assert_eq!(Decimal::new(0).as_bytes(), b"0");
        assert_eq!(Decimal::new(7).as_bytes(), b"7");
        assert_eq!(Decimal::new(500).as_bytes(), b"500");
        assert_eq!(Decimal::new(u16::MAX).as_bytes(), b"65535");
        let mut out = [0u8; 256];
        let n = write_error_page(505, b"HTTP Version Not Supported", &mut out).unwrap();
        assert!(out[..n].ends_with(b"<h1>505 HTTP Version Not Supported</h1>\n</body>\n</html>\n"));
    }

    /// Writes a unit through `from` in pieces of `piece` bytes and checks
    /// the pieces make up `whole`.
    fn check_pieces(whole: &[u8], from: impl Fn(usize, &mut [u8]) -> usize) {
        for piece in [1, 2, 5, 64, 4096] {
            let mut joined = [0u8; 4096];
            let mut at = 0;
            while at < whole.len() {
                let end = (at + piece).min(joined.len());
                let n = from(at, &mut joined[at..end]);
                assert!(n > 0 && n <= piece, "piece {piece} at {at}");
                at += n;
            }
            assert_eq!(&joined[..at], whole, "pieces of {piece}");
            assert_eq!(from(at, &mut joined), 0);
        }
    }

    #[test]
    fn units_written_in_pieces_join_to_the_whole_unit() {
        let name = b"a&b'<c> \xC3\xA9 x.txt";
        let mut whole = [0u8; 1024];
        let n = write_page_prologue(name, &mut whole).unwrap();
        check_pieces(&whole[..n], |skip, out| {
            write_page_prologue_from(name, skip, out)
        });
        for dir in [&b""[..], b"sub/d&r"] {
            let n = write_index_prologue(dir, &mut whole).unwrap();
            check_pieces(&whole[..n], |skip, out| {
                write_index_prologue_from(dir, skip, out)
            });
        }
        for is_dir in [false, true] {
            let n = write_index_entry(name, is_dir, &mut whole).unwrap();
            check_pieces(&whole[..n], |skip, out| {
                write_index_entry_from(name, is_dir, skip, out)
            });
        }
        let n = write_error_page(404, b"Not <Found>", &mut whole).unwrap();
        check_pieces(&whole[..n], |skip, out| {
            write_error_page_from(404, b"Not <Found>", skip, out)
        });
    }
}
