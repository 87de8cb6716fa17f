//! Word-at-a-time byte-class searches, shared by the parser and the renderer.
//!
//! Each search reads eight bytes per step as a `u64` (safe Rust, no
//! `unsafe`), flags the bytes of a class with the classic SWAR bit tricks
//! and returns the index of the first flagged byte. Work is linear in the
//! bytes skipped; nothing panics on any input.
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
