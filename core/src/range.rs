//! Byte ranges over a rendered page (RFC 9110 §14.1–§14.2).
//!
//! txtd honours one range; a request for several is answered with the
//! whole page (RFC 9110 §14.2 lets a server ignore `Range`), and so is a
//! `Range` it cannot parse. Parsing reads the value in place and never
//! overflows.

/// What a `Range` value asks of a page of a given length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum Ranges {
    /// Send the whole page (no range, several, or one that is malformed).
    Whole,
    /// Send bytes `first..=last` (206).
    One {
        /// First byte.
        first: u64,
        /// Last byte, inclusive, below the page length.
        last: u64,
    },
    /// No byte of the page is in the range (416).
    Unsatisfiable,
}

/// Interprets a `Range` field value for a page of `len` bytes.
///
/// # Examples
///
/// ```
/// use txtd_core::range::{parse_range, Ranges};
///
/// assert_eq!(parse_range(b"bytes=0-99", 1000), Ranges::One { first: 0, last: 99 });
/// assert_eq!(parse_range(b"bytes=-10", 1000), Ranges::One { first: 990, last: 999 });
/// assert_eq!(parse_range(b"bytes=2000-", 1000), Ranges::Unsatisfiable);
/// assert_eq!(parse_range(b"bytes=0-1,5-6", 1000), Ranges::Whole);
/// ```
pub fn parse_range(value: &[u8], len: u64) -> Ranges {
    let Some((unit, set)) = value.split_at_checked(6) else {
        return Ranges::Whole;
    };
    if !unit.eq_ignore_ascii_case(b"bytes=") {
        return Ranges::Whole;
    }
    let mut specs = set
        .split(|&b| b == b',')
        .map(<[u8]>::trim_ascii)
        .filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return Ranges::Whole;
    };
    let Some(dash) = spec.iter().position(|&b| b == b'-') else {
        return Ranges::Whole;
    };
    let (first, last) = spec.split_at_checked(dash).unwrap_or((spec, &[]));
    let last = last.get(1..).unwrap_or_default();
    match (parse_u64(first), parse_u64(last)) {
        // `-n`: the last n bytes.
        (None, Some(suffix)) if first.is_empty() => {
            if suffix == 0 || len == 0 {
                Ranges::Unsatisfiable
            } else {
                Ranges::One {
                    first: len.saturating_sub(suffix),
                    last: len - 1,
                }
            }
        }
        // `a-` and `a-b`.
        (Some(a), b) if last.is_empty() || b.is_some() => {
            if b.is_some_and(|b| b < a) {
                return Ranges::Whole;
            }
            if a >= len {
                return Ranges::Unsatisfiable;
            }
            let end = b.map_or(len - 1, |b| b.min(len - 1));
            Ranges::One {
                first: a,
                last: end,
            }
        }
        _ => Ranges::Whole,
    }
}

/// A run of ASCII digits as a number; `None` if empty, not digits, or too big.
fn parse_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &d| {
        if d.is_ascii_digit() {
            n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_and_closed_ranges_are_clamped_to_the_page() {
        assert_eq!(
            parse_range(b"bytes=5-", 10),
            Ranges::One { first: 5, last: 9 }
        );
        assert_eq!(
            parse_range(b"bytes=5-100", 10),
            Ranges::One { first: 5, last: 9 }
        );
        assert_eq!(
            parse_range(b"Bytes=0-0", 10),
            Ranges::One { first: 0, last: 0 }
        );
        assert_eq!(
            parse_range(b"bytes=-100", 10),
            Ranges::One { first: 0, last: 9 }
        );
    }

    #[test]
    fn ranges_past_the_end_are_unsatisfiable() {
        assert_eq!(parse_range(b"bytes=10-", 10), Ranges::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=-0", 10), Ranges::Unsatisfiable);
        assert_eq!(parse_range(b"bytes=0-", 0), Ranges::Unsatisfiable);
    }

    #[test]
    fn malformed_or_multiple_ranges_mean_the_whole_page() {
        for value in [
            &b"bytes=5-1"[..],
            b"bytes=a-b",
            b"bytes=",
            b"items=0-1",
            b"bytes=0-1,3-4",
            b"bytes=1",
            b"bytes=99999999999999999999999-",
            b"",
        ] {
            assert_eq!(parse_range(value, 10), Ranges::Whole, "{value:?}");
        }
    }
}
