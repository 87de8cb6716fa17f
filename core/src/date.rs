//! HTTP-dates (RFC 9110 §5.6.7): IMF-fixdate out, all three formats in.
//!
//! Times are seconds since the Unix epoch, in UTC. Formatting writes a
//! fixed 29-byte array; parsing accepts IMF-fixdate, the obsolete RFC 850
//! form and asctime, and refuses anything else (an unparseable
//! `If-Modified-Since` is ignored, as RFC 9110 §13.1.3 says). No clock is
//! read, nothing allocates or panics.

/// Bytes in an IMF-fixdate: `Sun, 06 Nov 1994 08:49:37 GMT`.
pub const HTTP_DATE_LEN: usize = 29;

/// The latest time that formats with a four-digit year: 9999-12-31T23:59:59Z.
const MAX_UNIX_SECS: u64 = 253_402_300_799;

const DAY_NAMES: [&[u8; 3]; 7] = [b"Thu", b"Fri", b"Sat", b"Sun", b"Mon", b"Tue", b"Wed"];
const LONG_DAY_NAMES: [&[u8]; 7] = [
    b"Thursday",
    b"Friday",
    b"Saturday",
    b"Sunday",
    b"Monday",
    b"Tuesday",
    b"Wednesday",
];
const MONTH_NAMES: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Formats `unix_secs` as an IMF-fixdate; times past year 9999 are clamped.
///
/// # Examples
///
/// ```
/// use txtd_core::date::http_date;
///
/// assert_eq!(&http_date(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
/// ```
pub fn http_date(unix_secs: u64) -> [u8; HTTP_DATE_LEN] {
    let secs = unix_secs.min(MAX_UNIX_SECS);
    let days = secs / 86_400;
    let rem = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let weekday = DAY_NAMES
        .get((days % 7) as usize)
        .copied()
        .unwrap_or(b"Thu");
    let month_name = MONTH_NAMES
        .get(usize::from(month).saturating_sub(1))
        .copied()
        .unwrap_or(b"Jan");

    let mut out = *b"Thu, 01 Jan 1970 00:00:00 GMT";
    let two = |n: u64| [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8];
    let fields: [(usize, &[u8]); 8] = [
        (0, weekday),
        (5, &two(u64::from(day))),
        (8, month_name),
        (12, &two(year / 100)),
        (14, &two(year % 100)),
        (17, &two(rem / 3600)),
        (20, &two(rem / 60 % 60)),
        (23, &two(rem % 60)),
    ];
    for (at, bytes) in fields {
        if let Some(dst) = out.get_mut(at..at + bytes.len()) {
            dst.copy_from_slice(bytes);
        }
    }
    out
}

/// Parses an HTTP-date in any of the three formats of RFC 9110 §5.6.7.
///
/// Returns `None` for anything else, including impossible dates such as
/// 31 April and times before 1970. A two-digit RFC 850 year is taken as
/// 1970–2069.
///
/// # Examples
///
/// ```
/// use txtd_core::date::parse_http_date;
///
/// let t = Some(784_111_777);
/// assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 GMT"), t);
/// assert_eq!(parse_http_date(b"Sunday, 06-Nov-94 08:49:37 GMT"), t);
/// assert_eq!(parse_http_date(b"Sun Nov  6 08:49:37 1994"), t);
/// ```
pub fn parse_http_date(bytes: &[u8]) -> Option<u64> {
    parse_imf_fixdate(bytes)
        .or_else(|| parse_rfc850(bytes))
        .or_else(|| parse_asctime(bytes))
}

/// `Sun, 06 Nov 1994 08:49:37 GMT`
fn parse_imf_fixdate(b: &[u8]) -> Option<u64> {
    if b.len() != HTTP_DATE_LEN {
        return None;
    }
    let weekday = DAY_NAMES.iter().position(|d| b.get(..3) == Some(&d[..]))?;
    expect(b, 3, b", ")?;
    let day = digits(b, 5, 2)?;
    expect(b, 7, b" ")?;
    let month = month(b.get(8..11)?)?;
    expect(b, 11, b" ")?;
    let year = digits(b, 12, 4)?;
    expect(b, 16, b" ")?;
    let time = time(b, 17)?;
    expect(b, 25, b" GMT")?;
    to_unix(year, month, day, time, Some(weekday))
}

/// `Sunday, 06-Nov-94 08:49:37 GMT`
fn parse_rfc850(b: &[u8]) -> Option<u64> {
    let comma = b.iter().position(|&c| c == b',')?;
    let weekday = LONG_DAY_NAMES
        .iter()
        .position(|d| b.get(..comma) == Some(*d))?;
    let b = b.get(comma..)?;
    if b.len() != 24 {
        return None;
    }
    expect(b, 0, b", ")?;
    let day = digits(b, 2, 2)?;
    expect(b, 4, b"-")?;
    let month = month(b.get(5..8)?)?;
    expect(b, 8, b"-")?;
    let yy = digits(b, 9, 2)?;
    let year = if yy < 70 { 2000 + yy } else { 1900 + yy };
    expect(b, 11, b" ")?;
    let time = time(b, 12)?;
    expect(b, 20, b" GMT")?;
    to_unix(year, month, day, time, Some(weekday))
}

/// `Sun Nov  6 08:49:37 1994`
fn parse_asctime(b: &[u8]) -> Option<u64> {
    if b.len() != 24 {
        return None;
    }
    let weekday = DAY_NAMES.iter().position(|d| b.get(..3) == Some(&d[..]))?;
    expect(b, 3, b" ")?;
    let month = month(b.get(4..7)?)?;
    expect(b, 7, b" ")?;
    let day = match b.get(8)? {
        b' ' => digits(b, 9, 1)?,
        _ => digits(b, 8, 2)?,
    };
    expect(b, 10, b" ")?;
    let time = time(b, 11)?;
    expect(b, 19, b" ")?;
    let year = digits(b, 20, 4)?;
    to_unix(year, month, day, time, Some(weekday))
}

fn expect(b: &[u8], at: usize, literal: &[u8]) -> Option<()> {
    (b.get(at..at + literal.len())? == literal).then_some(())
}

fn digits(b: &[u8], at: usize, n: usize) -> Option<u64> {
    b.get(at..at + n)?.iter().try_fold(0u64, |acc, &c| {
        c.is_ascii_digit().then(|| acc * 10 + u64::from(c - b'0'))
    })
}

fn month(name: &[u8]) -> Option<u64> {
    MONTH_NAMES
        .iter()
        .position(|m| &m[..] == name)
        .map(|i| i as u64 + 1)
}

/// `hh:mm:ss` at `at`, as seconds into the day.
fn time(b: &[u8], at: usize) -> Option<u64> {
    let h = digits(b, at, 2)?;
    expect(b, at + 2, b":")?;
    let m = digits(b, at + 3, 2)?;
    expect(b, at + 5, b":")?;
    // 60 allows a leap second, as RFC 5322 §3.3 does.
    let s = digits(b, at + 6, 2)?;
    (h < 24 && m < 60 && s <= 60).then_some(h * 3600 + m * 60 + s)
}

fn to_unix(year: u64, month: u64, day: u64, time: u64, weekday: Option<usize>) -> Option<u64> {
    if year < 1970 || day == 0 || day > days_in_month(year, month) {
        return None;
    }
    let days = days_from_civil(year, month, day);
    // A weekday that disagrees with the date makes the date invalid.
    if weekday.is_some_and(|w| w as u64 != days % 7) {
        return None;
    }
    Some(days * 86_400 + time)
}

fn is_leap(year: u64) -> bool {
    year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => 0,
    }
}

/// Days since 1970-01-01 of a date from 1970 on (Howard Hinnant's
/// `days_from_civil`, restricted to non-negative results).
fn days_from_civil(year: u64, month: u64, day: u64) -> u64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y / 400;
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe).saturating_sub(719_468)
}

/// (year, month, day) of a day count since 1970-01-01 (Hinnant's
/// `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u8, u8) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epoch_and_leap_days_format_right() {
        assert_eq!(&http_date(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&http_date(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&http_date(u64::MAX), b"Fri, 31 Dec 9999 23:59:59 GMT");
    }

    #[test]
    fn formatting_and_parsing_round_trip_over_centuries() {
        let mut t = 0u64;
        while t < MAX_UNIX_SECS {
            assert_eq!(parse_http_date(&http_date(t)), Some(t));
            t += 86_400 * 37 + 3_607;
        }
    }

    #[test]
    fn impossible_dates_are_refused() {
        assert_eq!(parse_http_date(b"Thu, 31 Apr 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 24:00:00 GMT"), None);
        assert_eq!(parse_http_date(b"Mon, 06 Nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date(b"Sun, 06 Nov 1994 08:49:37 UTC"), None);
        assert_eq!(parse_http_date(b"Wed, 31 Dec 1969 23:59:59 GMT"), None);
        assert_eq!(parse_http_date(b""), None);
    }

    #[test]
    fn rfc850_two_digit_years_span_1970_to_2069() {
        assert_eq!(
            parse_http_date(b"Thursday, 01-Jan-70 00:00:00 GMT"),
            Some(0)
        );
        assert_eq!(
            parse_http_date(b"Friday, 01-Jan-60 00:00:00 GMT"),
            parse_http_date(b"Fri, 01 Jan 2060 00:00:00 GMT")
        );
    }

    #[test]
    fn asctime_takes_one_or_two_digit_days() {
        assert_eq!(
            parse_http_date(b"Mon Nov 14 08:49:37 1994"),
            parse_http_date(b"Mon, 14 Nov 1994 08:49:37 GMT")
        );
    }
}
