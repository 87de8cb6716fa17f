//! Word-at-a-time byte-class searches, shared by the parser and the renderer.
//!
//! Each search reads eight bytes per step as a `u64` (safe Rust, no
//! `unsafe`), flags the bytes of a class with the classic SWAR bit tricks
//! and returns the index of the first flagged byte; where the compiler
//! vectorises, sixteen bytes per step. Token characters, which no bit trick
//! covers cheaply, also have a table. Work is linear in the bytes skipped;
//! nothing panics on any input.
//!
//! The `memchr` crate does this and more, but txtd-core may depend only on
//! nom, heapless, embedded-io and defmt (see the crate docs), so the few
//! searches it needs are written here.

/// `0x01` in every byte lane.
const LO: u64 = 0x0101_0101_0101_0101;
/// `0x80` in every byte lane.
const HI: u64 = 0x8080_8080_8080_8080;

/// Flags (bit 7 of a lane) the lanes of `x` that are below `n`.
///
/// Exact for the lowest flagged lane, which is all the searches use; valid
/// for `n <= 0x80`. Lanes with bit 7 set are never flagged.
#[inline(always)]
const fn lanes_below(x: u64, n: u8) -> u64 {
    x.wrapping_sub(LO.wrapping_mul(n as u64)) & !x & HI
}

/// Flags the lanes of `x` equal to `b` (exact for the lowest flagged lane).
#[inline(always)]
const fn lanes_equal(x: u64, b: u8) -> u64 {
    let y = x ^ LO.wrapping_mul(b as u64);
    y.wrapping_sub(LO) & !y & HI
}

/// Index of the lowest flagged lane of a non-zero mask.
#[inline(always)]
const fn first_lane(mask: u64) -> usize {
    (mask.trailing_zeros() / 8) as usize
}

/// Finds the first byte of a class: `is_special` says whether a byte is
/// in it, `flag` flags the lanes of a word that are (exact for the lowest).
///
/// On x86-64 and AArch64 the input goes sixteen bytes per step through
/// `is_special` folded with `|`, a shape LLVM turns into SSE2/NEON compares
/// and one movemask, without `unsafe` or `core::arch`; the hit inside a
/// block is then found with `flag`. Elsewhere (the microcontrollers) words
/// of eight go through `flag`. Both end with the same eight-byte steps and
/// the scalar tail, so `is_special` and `flag` must agree on every byte:
/// the tests below check each pair on all 256.
#[inline(always)]
fn find(bytes: &[u8], flag: impl Fn(u64) -> u64, is_special: impl Fn(u8) -> bool) -> Option<usize> {
    let mut base = 0;
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let bytes = {
        let mut blocks = bytes.chunks_exact(16);
        for block in blocks.by_ref() {
            let block: &[u8; 16] = block.try_into().unwrap_or(&[0; 16]);
            if block.iter().fold(false, |any, &b| any | is_special(b)) {
                let (a, b) = block.split_at(8);
                let a = flag(word(a));
                return Some(if a != 0 {
                    base + first_lane(a)
                } else {
                    base + 8 + first_lane(flag(word(b)))
                });
            }
            base += 16;
        }
        blocks.remainder()
    };
    let mut words = bytes.chunks_exact(8);
    for w in words.by_ref() {
        let mask = flag(word(w));
        if mask != 0 {
            return Some(base + first_lane(mask));
        }
        base += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| is_special(b))
        .map(|i| base + i)
}

/// The eight bytes of `bytes` (exactly eight long) as a little-endian word.
#[inline(always)]
fn word(bytes: &[u8]) -> u64 {
    let mut lanes = [0u8; 8];
    lanes.copy_from_slice(bytes);
    u64::from_le_bytes(lanes)
}

/// Whether `b` is a token character (RFC 9110 §5.6.2 tchar): a letter, a
/// digit or one of ``!#$%&'*+-.^_`|~``.
///
/// Written as range and equality tests rather than a table lookup: LLVM
/// turns these into vector compares across a whole block, which it cannot
/// do with a table. Byte by byte, [`is_tchar`] (the same set as a table)
/// is cheaper.
#[inline(always)]
const fn is_tchar_by_ranges(b: u8) -> bool {
    let letter = (b | 0x20).wrapping_sub(b'a') < 26;
    let digit = b.wrapping_sub(b'0') < 10;
    // `#$%&'`, `^_` and the backtick, `*+`, `-.`: four runs of neighbours.
    let runs = (b.wrapping_sub(b'#') < 5)
        | (b.wrapping_sub(b'^') < 3)
        | (b.wrapping_sub(b'*') < 2)
        | (b.wrapping_sub(b'-') < 2);
    // `|` and `~` differ only in bit 1.
    let bar_tilde = (b & 0xfd) == b'|';
    letter | digit | runs | bar_tilde | (b == b'!')
}

/// [`is_tchar_by_ranges`] as a table: one load per byte.
#[expect(
    clippy::indexing_slicing,
    reason = "the loop keeps b below 256, the table's length"
)]
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        table[b] = is_tchar_by_ranges(b as u8);
        b += 1;
    }
    table
};

/// Whether `b` is a token character (RFC 9110 §5.6.2), by table.
#[inline(always)]
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR.get(usize::from(b)).copied().unwrap_or(false)
}

/// Whether `b` is a letter, a digit or `-`: what nearly every field name
/// is made of. Range tests, so that LLVM compares a block at once.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
const fn is_name_common(b: u8) -> bool {
    ((b | 0x20).wrapping_sub(b'a') < 26) | (b.wrapping_sub(b'0') < 10) | (b == b'-')
}

/// First byte that is not a token character: ends a field name.
///
/// On x86-64 and AArch64, sixteen bytes at a time (vector compares) skip
/// the letters, digits and hyphens that nearly every name is made of. The
/// first other byte is usually the colon, which ends the name at once;
/// otherwise the table takes over byte by byte. Elsewhere the table goes
/// four bytes per branch.
#[inline(always)]
pub(crate) fn find_non_token(bytes: &[u8]) -> Option<usize> {
    #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
    let skip = name_common_len(bytes);
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    let skip = tchar_quads_len(bytes);
    // The colon is no token character: comparing with it directly spares
    // the table load that would follow the byte's.
    if bytes.get(skip) == Some(&b':') {
        return Some(skip);
    }
    find_non_tchar_from(bytes, skip)
}

/// How many whole 16-byte blocks at the start of `bytes` hold only
/// letters, digits and hyphens, in bytes, plus the lanes of the next block
/// before its first other byte.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn name_common_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    for block in bytes.chunks_exact(16) {
        let block: &[u8; 16] = block.try_into().unwrap_or(&[0; 16]);
        if let Some(lane) = first_in_block(block, |b| !is_name_common(b)) {
            return at + lane;
        }
        at += 16;
    }
    at
}

/// How many token characters start `bytes`, counted four per branch and
/// stopping at the first group of four that is not all tokens.
#[cfg(any(test, not(any(target_arch = "x86_64", target_arch = "aarch64"))))]
#[inline(always)]
fn tchar_quads_len(bytes: &[u8]) -> usize {
    let mut at = 0;
    for quad in bytes.chunks_exact(4) {
        match *quad {
            [a, b, c, d] if is_tchar(a) & is_tchar(b) & is_tchar(c) & is_tchar(d) => at += 4,
            _ => break,
        }
    }
    at
}

/// First byte from `at` on that is not a token character, by table; the
/// bytes before `at` must all be token characters.
#[inline(always)]
fn find_non_tchar_from(bytes: &[u8], mut at: usize) -> Option<usize> {
    while let Some(&b) = bytes.get(at) {
        if !is_tchar(b) {
            return Some(at);
        }
        at += 1;
    }
    None
}

/// Index of the first byte of `block` that `is_special` flags.
///
/// Each lane becomes `0xff` or `0`, written so LLVM compiles the sixteen
/// tests as vector compares and the test for any flagged lane as one
/// movemask; only then does the block, as a `u128`, go to the integer
/// registers to yield the first flagged lane from its trailing zeros.
/// (Testing the `u128` itself against zero sent it through the stack on
/// every block.)
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
#[inline(always)]
fn first_in_block(block: &[u8; 16], is_special: impl Fn(u8) -> bool) -> Option<usize> {
    let lanes = block.map(|b| u8::from(is_special(b)).wrapping_neg());
    if lanes.iter().fold(false, |any, &lane| any | (lane != 0)) {
        Some((u128::from_le_bytes(lanes).trailing_zeros() / 8) as usize)
    } else {
        None
    }
}

/// First byte that cannot appear inside a field value or that ends one:
/// a control other than HTAB is flagged, and so is HTAB itself (callers
/// skip it), DEL too. Bytes from 0x80 (obs-text) are not flagged.
#[inline]
pub(crate) fn find_field_value_stop(bytes: &[u8]) -> Option<usize> {
    find(
        bytes,
        |x| lanes_below(x, 0x20) | lanes_equal(x, 0x7f),
        |b| (b < 0x20) | (b == 0x7f),
    )
}

/// First byte that is not VCHAR (0x21..=0x7E): SP, a control, DEL or a
/// byte from 0x80. Ends a request-target.
#[inline]
pub(crate) fn find_non_vchar(bytes: &[u8]) -> Option<usize> {
    find(
        bytes,
        |x| lanes_below(x, 0x21) | lanes_equal(x, 0x7f) | (x & HI),
        |b| !(0x21..=0x7e).contains(&b),
    )
}

/// First byte that HTML text cannot carry as it is: one of `& < > " '`, a
/// control other than HTAB, LF, FF and CR (those are flagged too, callers
/// copy them), DEL, or any byte from 0x80 (callers validate UTF-8).
#[inline]
pub(crate) fn find_html_special(bytes: &[u8]) -> Option<usize> {
    find(
        bytes,
        |x| {
            lanes_below(x, 0x20)
                | lanes_equal(x, 0x7f)
                | (x & HI)
                | lanes_equal(x, b'&')
                | lanes_equal(x, b'<')
                | lanes_equal(x, b'>')
                | lanes_equal(x, b'"')
                | lanes_equal(x, b'\'')
        },
        |b| !(0x20..=0x7e).contains(&b) | html_markup(b),
    )
}

/// First byte that HTML text cannot carry as it is, in text already known
/// to be valid UTF-8: one of `& < > " '`, a control (HTAB, LF, FF and CR
/// included, callers copy them) or DEL. Bytes from 0x80 are not flagged.
#[inline]
pub(crate) fn find_html_special_ascii(bytes: &[u8]) -> Option<usize> {
    find(
        bytes,
        |x| {
            lanes_below(x, 0x20)
                | lanes_equal(x, 0x7f)
                | lanes_equal(x, b'&')
                | lanes_equal(x, b'<')
                | lanes_equal(x, b'>')
                | lanes_equal(x, b'"')
                | lanes_equal(x, b'\'')
        },
        |b| (b < 0x20) | (b == 0x7f) | html_markup(b),
    )
}

/// One of the five bytes HTML text escapes, without a branch per byte.
#[inline(always)]
fn html_markup(b: u8) -> bool {
    (b == b'&') | (b == b'<') | (b == b'>') | (b == b'"') | (b == b'\'')
}

/// First LF in `bytes`.
#[inline]
pub(crate) fn find_lf(bytes: &[u8]) -> Option<usize> {
    find(bytes, |x| lanes_equal(x, b'\n'), |b| b == b'\n')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(bytes: &[u8], special: impl Fn(u8) -> bool) -> Option<usize> {
        bytes.iter().position(|&b| special(b))
    }

    #[test]
    fn every_byte_in_every_lane_is_classified_like_the_scalar_rule() {
        for b in 0..=255u8 {
            // 27 bytes: a 16-byte block, an 8-byte word and a scalar tail.
            for lane in 0..27 {
                let mut buf = [b'a'; 27];
                buf[lane] = b;
                assert_eq!(
                    find_field_value_stop(&buf),
                    naive(&buf, |c| c < 0x20 || c == 0x7f),
                    "value byte {b:#x} lane {lane}"
                );
                assert_eq!(
                    find_non_vchar(&buf),
                    naive(&buf, |c| !(0x21..=0x7e).contains(&c)),
                    "vchar byte {b:#x} lane {lane}"
                );
                assert_eq!(
                    find_html_special(&buf),
                    naive(&buf, |c| !(0x20..0x7f).contains(&c)
                        || b"&<>\"'".contains(&c)),
                    "html byte {b:#x} lane {lane}"
                );
                assert_eq!(find_lf(&buf), naive(&buf, |c| c == b'\n'));
            }
        }
    }

    #[test]
    fn the_token_table_is_rfc_9110_tchar() {
        for b in 0..=255u8 {
            let rfc = b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            assert_eq!(is_tchar(b), rfc, "byte {b:#x}");
            assert_eq!(is_tchar_by_ranges(b), rfc, "byte {b:#x}");
        }
    }

    #[test]
    fn every_byte_in_every_lane_ends_a_token_like_the_table() {
        for b in 0..=255u8 {
            // 37 bytes: two 16-byte blocks and a byte-by-byte tail.
            for lane in 0..37 {
                for background in [b'a', b'_', b'9'] {
                    let mut buf = [background; 37];
                    buf[lane] = b;
                    let expected = naive(&buf, |c| !is_tchar(c));
                    assert_eq!(
                        find_non_token(&buf),
                        expected,
                        "byte {b:#x} lane {lane} background {background:#x}"
                    );
                    // The microcontrollers' path, which this host does not take.
                    let quads = tchar_quads_len(&buf);
                    assert_eq!(
                        find_non_tchar_from(&buf, quads),
                        expected,
                        "quads: byte {b:#x} lane {lane} background {background:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn html_special_ascii_ignores_bytes_from_0x80_in_every_lane() {
        let special = |c: u8| c < 0x20 || c == 0x7f || b"&<>\"'".contains(&c);
        for background in [b'a', 0x80, 0xbf, 0xe4, 0xff] {
            for b in 0..=255u8 {
                for lane in 0..19 {
                    let mut buf = [background; 19];
                    buf[lane] = b;
                    assert_eq!(
                        find_html_special_ascii(&buf),
                        naive(&buf, special),
                        "byte {b:#x} lane {lane} background {background:#x}"
                    );
                }
            }
        }
    }

    #[test]
    fn a_flagged_byte_after_a_borrowing_lane_is_still_found_first() {
        // 0x00 borrows into the next lane; the first hit must stay exact.
        let buf = [0x00, 0x01, b'a', b'a', b'a', b'a', b'a', b'a'];
        assert_eq!(find_field_value_stop(&buf), Some(0));
        let buf = [b'a', 0x80, 0x00, b'a', b'a', b'a', b'a', b'a', b'a'];
        assert_eq!(find_field_value_stop(&buf), Some(2));
    }

    #[test]
    fn empty_input_finds_nothing() {
        assert_eq!(find_lf(b""), None);
        assert_eq!(find_html_special(b""), None);
    }
}
