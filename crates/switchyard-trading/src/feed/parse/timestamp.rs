//! Timestamps of a field: microseconds since the Unix epoch (all digits), else ISO-8601.

use switchyard::Timestamp;

use super::ParseErrorKind;
use super::line::text;
use crate::num::eight_digits;

/// The timestamp in field `v` of `column` (already trimmed): microseconds if all digits,
/// else ISO-8601 ([`parse_iso8601`]).
#[inline]
pub(super) fn parse_timestamp(
    column: &'static str,
    v: impl AsRef<[u8]>,
) -> Result<Timestamp, ParseErrorKind> {
    let b = v.as_ref();
    // Sixteen digits, what Tardis writes (microseconds of the years 2001 to 2286): two
    // words; below 10^16, so times 1,000 fits a u64.
    if let Some((hi, lo)) = b.split_first_chunk::<8>().and_then(|(hi, rest)| {
        let lo: &[u8; 8] = rest.try_into().ok()?;
        Some((eight_digits(*hi)?, eight_digits(*lo)?))
    }) {
        return Ok(Timestamp::from_nanos((hi * 100_000_000 + lo) * 1_000));
    }
    parse_timestamp_general(column, b)
}

/// [`parse_timestamp`] of any field.
fn parse_timestamp_general(column: &'static str, b: &[u8]) -> Result<Timestamp, ParseErrorKind> {
    let bad = |reason| ParseErrorKind::InvalidTimestamp {
        column,
        value: text(b).into_owned(),
        reason,
    };
    if b.is_empty() {
        return Err(ParseErrorKind::EmptyField { column });
    }
    // Microseconds: eight digits at a time while eight are left, then one at a time; at
    // most 19 digits stay below 10^19, within u64 (no overflow check per digit).
    let mut micros = 0u64;
    let mut digits = true;
    let head = b.len().min(19);
    let mut i = 0usize;
    while i + 8 <= head {
        match eight_digits(b[i..i + 8].try_into().expect("8 bytes")) {
            Some(n) => micros = micros * 100_000_000 + n,
            None => {
                digits = false;
                break;
            }
        }
        i += 8;
    }
    while digits && i < head {
        let d = b[i].wrapping_sub(b'0');
        if d > 9 {
            digits = false;
            break;
        }
        micros = micros * 10 + u64::from(d);
        i += 1;
    }
    if digits && b.len() > 19 {
        digits = b.iter().all(u8::is_ascii_digit);
        micros = if digits {
            // All ASCII digits: the text is the bytes.
            text(b).parse().map_err(|_| bad("out of range"))?
        } else {
            0
        };
    }
    if digits {
        let nanos = micros
            .checked_mul(1_000)
            .ok_or_else(|| bad("out of range"))?;
        return Ok(Timestamp::from_nanos(nanos));
    }
    parse_iso8601(b).map_err(bad)
}

/// Parses `YYYY-MM-DD[T ]HH:MM:SS[.f{1,9}][Z|±HH:MM|±HHMM]` to a timestamp.
pub(crate) fn parse_iso8601(v: impl AsRef<[u8]>) -> Result<Timestamp, &'static str> {
    let b = v.as_ref();
    let num = |range: std::ops::Range<usize>| -> Result<i64, &'static str> {
        let s = b.get(range).ok_or("too short")?;
        if s.is_empty() || !s.iter().all(u8::is_ascii_digit) {
            return Err("expected digits");
        }
        Ok(s.iter().fold(0i64, |acc, d| acc * 10 + (d - b'0') as i64))
    };
    if b.len() < 19 {
        return Err("expected YYYY-MM-DD HH:MM:SS");
    }
    if b[4] != b'-'
        || b[7] != b'-'
        || !(b[10] == b' ' || b[10] == b'T')
        || b[13] != b':'
        || b[16] != b':'
    {
        return Err("expected YYYY-MM-DD HH:MM:SS");
    }
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || day < 1 || day > days_in_month(year, month) {
        return Err("invalid date");
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err("invalid time of day");
    }
    let mut i = 19;
    let mut nanos: i64 = 0;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        let digits = i - start;
        if digits == 0 || digits > 9 {
            return Err("fraction must have 1 to 9 digits");
        }
        nanos = num(start..i)? * 10i64.pow(9 - digits as u32);
    }
    let offset_secs = match b.get(i) {
        None => 0,
        Some(b'Z') | Some(b'z') if i + 1 == b.len() => 0,
        Some(&sign @ (b'+' | b'-')) => {
            let rest = &b[i + 1..];
            let (h, m) = match rest.len() {
                5 if rest[2] == b':' => (num(i + 1..i + 3)?, num(i + 4..i + 6)?),
                4 => (num(i + 1..i + 3)?, num(i + 3..i + 5)?),
                2 => (num(i + 1..i + 3)?, 0),
                _ => return Err("invalid UTC offset"),
            };
            if h > 23 || m > 59 {
                return Err("invalid UTC offset");
            }
            let s = h * 3600 + m * 60;
            if sign == b'+' { s } else { -s }
        }
        _ => return Err("unexpected text after the time"),
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    if secs < 0 {
        return Err("before 1970");
    }
    let total = (secs as u64)
        .checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(nanos as u64))
        .ok_or("out of range")?;
    Ok(Timestamp::from_nanos(total))
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if (y % 4 == 0 && y % 100 != 0) || y % 400 == 0 => 29,
        _ => 28,
    }
}

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}
