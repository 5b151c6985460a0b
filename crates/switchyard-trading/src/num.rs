//! Exact fixed-point numbers for prices, quantities and money.
//!
//! Money is never an `f64` here. [`Price`], [`Quantity`] and [`Money`] are `i64` newtypes
//! counting billionths (9 decimal places, [`SCALE`] = 10⁹), so every value that a venue
//! prints with up to 9 decimals is represented exactly. The range is ±9,223,372,036.854775807,
//! enough for any price, order size or P&L of a single account in one currency; anything
//! beyond it is an [`ArithmeticError::Overflow`], never a silent wrap.
//!
//! # Contract
//!
//! - **Signed.** All three types are signed: a [`Quantity`] is signed when it is a position
//!   (long > 0, short < 0) and must be positive in an order (the risk guard and the exchange
//!   check this); a [`Price`] may be negative (some futures have traded below zero).
//! - **Parsing** ([`FromStr`]): an optional sign, digits with an optional `.` fraction
//!   (`"9682"`, `"9681.92"`, `"0.003"`, `"-1.5"`, `"+.5"`, `"7."`), and an optional exponent
//!   (`"1e-3"`, `"2.5E+2"`). The value must be exact in 9 decimals: `"0.0000000001"` is an
//!   error ([`ParseNumError::TooPrecise`]), `"1.0000000000"` is fine (trailing zeros).
//! - **Display** prints the shortest exact decimal, without trailing zeros and without
//!   exponent: `9681.92`, `0.003`, `-1.5`, `9682`. `parse(display(x)) == x` for every value.
//! - **Serde**: serialized as that decimal *string* (exact, and readable by clients in any
//!   language — JSON numbers are often parsed as doubles). Deserialization accepts the
//!   string, or a JSON/TOML integer; floating-point input is refused because it is
//!   already inexact.
//! - **Arithmetic** is checked and returns `Result<_, ArithmeticError>`: `checked_add`,
//!   `checked_sub`, `checked_neg`, `checked_abs`. Products of two 9-decimal values
//!   ([`Price::checked_mul_qty`] → [`Money`]) are computed in `i128` and rounded to 9
//!   decimals, half away from zero; divisions ([`Money::checked_div_qty`]) likewise.
//! - [`Price::to_f64`] and friends exist for display and statistics only.
//!
//! ```
//! use switchyard_trading::num::{Price, Quantity, Money};
//! let p: Price = "9681.92".parse().unwrap();
//! let q: Quantity = "0.003".parse().unwrap();
//! let notional: Money = p.checked_mul_qty(q).unwrap();
//! assert_eq!(notional.to_string(), "29.04576");
//! assert!("1e-10".parse::<Price>().is_err());
//! ```

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Number of decimal places of every fixed-point type.
pub const DECIMALS: u32 = 9;
/// Raw units per whole unit: 10^[`DECIMALS`].
pub const SCALE: i64 = 1_000_000_000;

/// An arithmetic result does not fit, or a division by zero was asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ArithmeticError {
    /// The exact result is outside the range of the target type.
    #[error("arithmetic overflow")]
    Overflow,
    /// Division by zero.
    #[error("division by zero")]
    DivisionByZero,
}

/// Why a decimal string is not a valid fixed-point number.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ParseNumError {
    /// The input is empty (or only a sign).
    #[error("empty number")]
    Empty,
    /// A character that is not part of a decimal number.
    #[error("unexpected character {0:?}")]
    InvalidChar(char),
    /// The input has no digits in its mantissa, e.g. `"."` or `"e5"`.
    #[error("no digits")]
    NoDigits,
    /// The exponent after `e` is missing or not an integer.
    #[error("invalid exponent")]
    InvalidExponent,
    /// The value needs more than 9 decimal places to be exact.
    #[error("more than 9 decimal places")]
    TooPrecise,
    /// The value is outside ±9,223,372,036.854775807.
    #[error("out of range")]
    OutOfRange,
}

/// Rounds `num / den` to the nearest integer, ties away from zero. `den != 0`.
fn div_round(num: i128, den: i128) -> i128 {
    let q = num / den;
    let r = num % den;
    if r.unsigned_abs() * 2 >= den.unsigned_abs() {
        if (num < 0) == (den < 0) { q + 1 } else { q - 1 }
    } else {
        q
    }
}

fn to_i64(v: i128) -> Result<i64, ArithmeticError> {
    i64::try_from(v).map_err(|_| ArithmeticError::Overflow)
}

/// `a * b / SCALE`, rounded, checked: the product of two fixed-point values.
fn mul_fixed(a: i64, b: i64) -> Result<i64, ArithmeticError> {
    to_i64(div_round(a as i128 * b as i128, SCALE as i128))
}

/// `a * SCALE / b`, rounded, checked: the quotient of two fixed-point values.
fn div_fixed(a: i64, b: i64) -> Result<i64, ArithmeticError> {
    if b == 0 {
        return Err(ArithmeticError::DivisionByZero);
    }
    to_i64(div_round(a as i128 * SCALE as i128, b as i128))
}

/// Parses a decimal string into raw units of 10⁻⁹.
fn parse_raw(s: &str) -> Result<i64, ParseNumError> {
    match parse_plain(s.as_bytes()) {
        Some(raw) => Ok(raw),
        None => parse_raw_general(s),
    }
}

/// The value of eight ASCII digits (the first the most significant), or `None` if one
/// is not a digit: the digits checked and combined in pairs, fours and eights inside one
/// word (three multiplications instead of eight).
#[inline]
pub(crate) fn eight_digits(b: [u8; 8]) -> Option<u64> {
    let w = u64::from_le_bytes(b);
    // Each byte in 0x30..=0x39: its high nibble is 3, and adding 6 does not carry into it.
    let all_digits = (w & 0xf0f0_f0f0_f0f0_f0f0) == 0x3030_3030_3030_3030
        && ((w.wrapping_add(0x0606_0606_0606_0606)) & 0xf0f0_f0f0_f0f0_f0f0)
            == 0x3030_3030_3030_3030;
    if !all_digits {
        return None;
    }
    let v = w - 0x3030_3030_3030_3030;
    // Pairs: byte k holds digit k (little-endian), so 10 * d[2j] + d[2j+1].
    let v = (v.wrapping_mul(10) + (v >> 8)) & 0x00ff_00ff_00ff_00ff;
    // Fours, then eight.
    let v = (v.wrapping_mul(100) + (v >> 16)) & 0x0000_ffff_0000_ffff;
    let v = (v.wrapping_mul(10_000) + (v >> 32)) & 0x0000_0000_ffff_ffff;
    Some(v)
}

/// `0x30` (`'0'`) in every byte.
const ZEROS: u64 = 0x3030_3030_3030_3030;

/// The raw value of the plain decimal `[digits][.digits]` (at least one digit) that is
/// the last `n` bytes of the little-endian word `w` (`n` in `1..=8`; the bytes before it
/// are ignored), or `None` if it is not one of those (then the caller parses the bytes
/// the general way). One word: the bytes before the number become `0`s, the point is
/// taken out by shifting the integer digits up one byte, and eight digits convert at once.
#[inline]
pub(crate) fn plain_in_word(w: u64, n: usize) -> Option<i64> {
    if !(1..=8).contains(&n) {
        return None;
    }
    let keep = u64::MAX << (8 * (8 - n));
    let w = (w & keep) | (ZEROS & !keep);
    const DOTS: u64 = u64::from_ne_bytes([b'.'; 8]);
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let x = w ^ DOTS;
    let dots = !(((x & LOW7) + LOW7) | x | LOW7);
    let (w, frac) = if dots == 0 {
        (w, 0)
    } else {
        if dots & (dots - 1) != 0 || n == 1 {
            return None; // two points, or nothing but a point
        }
        let p = dots.trailing_zeros() / 8; // the point's byte
        let below = (1u64 << (8 * p)) - 1;
        let above = u64::MAX.checked_shl(8 * p + 8).unwrap_or(0);
        ((w & above) | ((w & below) << 8) | 0x30, 7 - p as usize)
    };
    let v = eight_digits(w.to_le_bytes())?;
    // v < 10^8 and the scale ≤ 10^9: well inside an i64.
    Some((v * FRAC_SCALE[frac]) as i64)
}

/// [`parse_raw`] of bytes: the fast path on them, the general parser on their text
/// (lossy only for bytes that are not UTF-8, which no caller passes).
#[inline]
fn parse_raw_bytes(b: &[u8]) -> Result<i64, ParseNumError> {
    match parse_plain(b) {
        Some(raw) => Ok(raw),
        None => parse_raw_general(&String::from_utf8_lossy(b)),
    }
}

/// `10^(DECIMALS - frac)` for `frac` in `0..=DECIMALS`: the scale of a plain number with
/// `frac` fraction digits.
const FRAC_SCALE: [u64; DECIMALS as usize + 1] = {
    let mut t = [0u64; DECIMALS as usize + 1];
    let mut f = 0;
    while f <= DECIMALS as usize {
        t[f] = 10u64.pow(DECIMALS - f as u32);
        f += 1;
    }
    t
};

/// The fast path for what market data is made of — `[-]digits[.digits]` with at most
/// 18 digits in all and at most [`DECIMALS`] after the point — in one `u64`
/// accumulation; `None` for anything else (signs, exponents, long or odd input), which
/// the general parser handles. Agrees with it wherever it answers (a property test).
#[inline]
fn parse_plain(b: &[u8]) -> Option<i64> {
    let (negative, b) = match b.first()? {
        b'-' => (true, &b[1..]),
        _ => (false, b),
    };
    if b.is_empty() || b.len() > 19 {
        return None;
    }
    // Integer digits, then (after one `.`) fraction digits; any other byte: not plain.
    let mut acc: u64 = 0;
    let mut i = 0usize;
    while i < b.len() {
        let d = b[i].wrapping_sub(b'0');
        if d > 9 {
            break;
        }
        acc = acc * 10 + u64::from(d);
        i += 1;
    }
    let int_digits = i;
    let mut frac = 0usize;
    if i < b.len() {
        if b[i] != b'.' {
            return None;
        }
        i += 1;
        let start = i;
        while i < b.len() {
            let d = b[i].wrapping_sub(b'0');
            if d > 9 {
                return None;
            }
            acc = acc * 10 + u64::from(d);
            i += 1;
        }
        frac = i - start;
    }
    let digits = int_digits + frac;
    if digits == 0 || digits > 18 || frac > DECIMALS as usize {
        return None;
    }
    let raw = acc.checked_mul(FRAC_SCALE[frac])?;
    let raw = i64::try_from(raw).ok()?;
    Some(if negative { -raw } else { raw })
}

/// Any decimal the types accept (signs, exponents, long zero tails), into raw units.
fn parse_raw_general(s: &str) -> Result<i64, ParseNumError> {
    let bytes = s.as_bytes();
    if bytes.is_empty() {
        return Err(ParseNumError::Empty);
    }
    let mut i = 0;
    let negative = match bytes[0] {
        b'-' => {
            i = 1;
            true
        }
        b'+' => {
            i = 1;
            false
        }
        _ => false,
    };
    if i == bytes.len() {
        return Err(ParseNumError::Empty);
    }
    // Mantissa digits, accumulated without trailing zeros of the fraction so that long
    // zero tails cannot overflow the accumulator.
    let mut mantissa: i128 = 0;
    let mut digits = 0usize;
    let mut frac_digits: i64 = 0; // significant fraction digits folded into `mantissa`
    let mut pending_zeros: i64 = 0; // fraction zeros not yet folded in
    let mut seen_dot = false;
    const MANTISSA_LIMIT: i128 = 1_000_000_000_000_000_000_000_000_000_000; // 1e30
    while i < bytes.len() {
        let c = bytes[i];
        match c {
            b'0'..=b'9' => {
                digits += 1;
                let d = (c - b'0') as i128;
                if seen_dot {
                    if d == 0 {
                        pending_zeros += 1;
                    } else {
                        for _ in 0..pending_zeros {
                            mantissa = mantissa.checked_mul(10).ok_or(ParseNumError::TooPrecise)?;
                        }
                        frac_digits += pending_zeros + 1;
                        pending_zeros = 0;
                        // Checked: the zeros just folded in may have taken the mantissa
                        // past the limit (checked below only after this digit).
                        mantissa = mantissa
                            .checked_mul(10)
                            .and_then(|m| m.checked_add(d))
                            .ok_or(ParseNumError::TooPrecise)?;
                    }
                } else {
                    mantissa = mantissa * 10 + d;
                }
                if mantissa > MANTISSA_LIMIT {
                    return Err(if seen_dot {
                        ParseNumError::TooPrecise
                    } else {
                        ParseNumError::OutOfRange
                    });
                }
                if frac_digits > DECIMALS as i64 + 40 {
                    return Err(ParseNumError::TooPrecise);
                }
            }
            b'.' if !seen_dot => seen_dot = true,
            b'e' | b'E' => break,
            _ => {
                return Err(ParseNumError::InvalidChar(
                    s[i..].chars().next().unwrap_or('?'),
                ));
            }
        }
        i += 1;
    }
    if digits == 0 {
        return Err(ParseNumError::NoDigits);
    }
    let mut exponent: i64 = 0;
    if i < bytes.len() {
        // bytes[i] is 'e' or 'E'
        let exp = &s[i + 1..];
        let (exp_neg, exp_digits) = match exp.as_bytes().first() {
            Some(b'-') => (true, &exp[1..]),
            Some(b'+') => (false, &exp[1..]),
            _ => (false, exp),
        };
        if exp_digits.is_empty() || !exp_digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ParseNumError::InvalidExponent);
        }
        if exp_digits.len() > 6 {
            return Err(if mantissa == 0 {
                ParseNumError::InvalidExponent
            } else if exp_neg {
                ParseNumError::TooPrecise
            } else {
                ParseNumError::OutOfRange
            });
        }
        let e: i64 = exp_digits
            .parse()
            .map_err(|_| ParseNumError::InvalidExponent)?;
        exponent = if exp_neg { -e } else { e };
    }
    if mantissa == 0 {
        return Ok(0);
    }
    // value = mantissa × 10^(exponent − frac_digits); raw = value × 10^9
    let shift = DECIMALS as i64 + exponent - frac_digits;
    let raw = if shift >= 0 {
        let mut v = mantissa;
        for _ in 0..shift {
            v = v.checked_mul(10).ok_or(ParseNumError::OutOfRange)?;
            if v > i64::MAX as i128 + 1 {
                return Err(ParseNumError::OutOfRange);
            }
        }
        v
    } else {
        let mut v = mantissa;
        for _ in 0..(-shift) {
            if v % 10 != 0 {
                return Err(ParseNumError::TooPrecise);
            }
            v /= 10;
        }
        v
    };
    let signed = if negative { -raw } else { raw };
    i64::try_from(signed).map_err(|_| ParseNumError::OutOfRange)
}

/// Writes raw units as the shortest exact decimal.
fn fmt_raw(raw: i64, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    let abs = raw.unsigned_abs();
    let int = abs / SCALE as u64;
    let mut frac = abs % SCALE as u64;
    let mut buf = [0u8; 32];
    let mut len = 0;
    if raw < 0 {
        buf[len] = b'-';
        len += 1;
    }
    let int_str = int.to_string();
    buf[len..len + int_str.len()].copy_from_slice(int_str.as_bytes());
    len += int_str.len();
    if frac != 0 {
        let mut width = DECIMALS as usize;
        while frac % 10 == 0 {
            frac /= 10;
            width -= 1;
        }
        buf[len] = b'.';
        len += 1;
        for k in (0..width).rev() {
            buf[len + k] = b'0' + (frac % 10) as u8;
            frac /= 10;
        }
        len += width;
    }
    // Only ASCII digits, '-' and '.' were written.
    let s = std::str::from_utf8(&buf[..len]).map_err(|_| fmt::Error)?;
    f.pad(s)
}

struct RawVisitor(&'static str);

impl Visitor<'_> for RawVisitor {
    type Value = i64;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "a {} as a decimal string such as \"9681.92\", or an integer",
            self.0
        )
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<i64, E> {
        parse_raw(v).map_err(|e| E::custom(format_args!("invalid number {v:?}: {e}")))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<i64, E> {
        v.checked_mul(SCALE)
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<i64, E> {
        i64::try_from(v)
            .ok()
            .and_then(|v| v.checked_mul(SCALE))
            .ok_or_else(|| E::custom("number out of range"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<i64, E> {
        Err(E::custom(format_args!(
            "floating-point {v} is inexact; write the {} as a string, e.g. \"{v}\"",
            self.0
        )))
    }
}

macro_rules! fixed_type {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub struct $name(i64);

        impl $name {
            /// Zero.
            pub const ZERO: $name = $name(0);
            /// One whole unit.
            pub const ONE: $name = $name(SCALE);
            /// The largest value.
            pub const MAX: $name = $name(i64::MAX);
            /// The smallest (most negative) value.
            pub const MIN: $name = $name(i64::MIN);

            /// From raw units of 10⁻⁹ (`from_raw(1_500_000_000)` is 1.5).
            pub const fn from_raw(raw: i64) -> Self {
                $name(raw)
            }

            /// The raw count of 10⁻⁹ units.
            pub const fn raw(self) -> i64 {
                self.0
            }

            /// A whole number of units, checked.
            pub const fn from_int(units: i64) -> Result<Self, ArithmeticError> {
                match units.checked_mul(SCALE) {
                    Some(raw) => Ok($name(raw)),
                    None => Err(ArithmeticError::Overflow),
                }
            }

            /// `mantissa × 10^-decimals`, checked; `decimals` ≤ 9.
            /// `from_scaled(968192, 2)` is 9681.92.
            pub const fn from_scaled(mantissa: i64, decimals: u32) -> Result<Self, ArithmeticError> {
                if decimals > DECIMALS {
                    return Err(ArithmeticError::Overflow);
                }
                match mantissa.checked_mul(10i64.pow(DECIMALS - decimals)) {
                    Some(raw) => Ok($name(raw)),
                    None => Err(ArithmeticError::Overflow),
                }
            }

            /// `true` if zero.
            pub const fn is_zero(self) -> bool {
                self.0 == 0
            }

            /// `true` if strictly greater than zero.
            pub const fn is_positive(self) -> bool {
                self.0 > 0
            }

            /// `true` if strictly less than zero.
            pub const fn is_negative(self) -> bool {
                self.0 < 0
            }

            /// -1, 0 or 1.
            pub const fn signum(self) -> i64 {
                self.0.signum()
            }

            /// `self + rhs`, checked.
            pub const fn checked_add(self, rhs: Self) -> Result<Self, ArithmeticError> {
                match self.0.checked_add(rhs.0) {
                    Some(v) => Ok($name(v)),
                    None => Err(ArithmeticError::Overflow),
                }
            }

            /// `self - rhs`, checked.
            pub const fn checked_sub(self, rhs: Self) -> Result<Self, ArithmeticError> {
                match self.0.checked_sub(rhs.0) {
                    Some(v) => Ok($name(v)),
                    None => Err(ArithmeticError::Overflow),
                }
            }

            /// `-self`, checked (only `MIN` overflows).
            pub const fn checked_neg(self) -> Result<Self, ArithmeticError> {
                match self.0.checked_neg() {
                    Some(v) => Ok($name(v)),
                    None => Err(ArithmeticError::Overflow),
                }
            }

            /// `|self|`, checked (only `MIN` overflows).
            pub const fn checked_abs(self) -> Result<Self, ArithmeticError> {
                match self.0.checked_abs() {
                    Some(v) => Ok($name(v)),
                    None => Err(ArithmeticError::Overflow),
                }
            }

            /// `self × n` for an integer `n`, checked.
            pub const fn checked_mul_int(self, n: i64) -> Result<Self, ArithmeticError> {
                match self.0.checked_mul(n) {
                    Some(v) => Ok($name(v)),
                    None => Err(ArithmeticError::Overflow),
                }
            }

            /// `self × num / den`, rounded half away from zero, checked. Used for basis
            /// points (`num = bps, den = 10_000`) and pro-rata splits.
            pub fn checked_mul_ratio(self, num: i64, den: i64) -> Result<Self, ArithmeticError> {
                if den == 0 {
                    return Err(ArithmeticError::DivisionByZero);
                }
                to_i64(div_round(self.0 as i128 * num as i128, den as i128)).map($name)
            }

            /// An approximation for display and statistics. Never compute money with it.
            pub fn to_f64(self) -> f64 {
                self.0 as f64 / SCALE as f64
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_raw(self.0, f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "({})"), self)
            }
        }

        impl FromStr for $name {
            type Err = ParseNumError;
            fn from_str(s: &str) -> Result<Self, ParseNumError> {
                parse_raw(s).map($name)
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.collect_str(self)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                d.deserialize_any(RawVisitor($what)).map($name)
            }
        }
    };
}

fixed_type!(
    /// A price per unit of an instrument, 9 decimal places.
    Price,
    "price"
);
fixed_type!(
    /// An amount of an instrument (order size, fill size, signed position), 9 decimal
    /// places.
    Quantity,
    "quantity"
);
fixed_type!(
    /// An amount of quote currency (notional, P&L, fees), signed, 9 decimal places.
    Money,
    "money amount"
);

impl Price {
    /// The notional `self × qty`, rounded to 9 decimals half away from zero, checked.
    pub fn checked_mul_qty(self, qty: Quantity) -> Result<Money, ArithmeticError> {
        mul_fixed(self.0, qty.0).map(Money)
    }

    /// The midpoint of two prices, rounded half away from zero (cannot overflow).
    pub fn midpoint(self, other: Price) -> Price {
        Price(div_round(self.0 as i128 + other.0 as i128, 2) as i64)
    }

    /// `true` if `self` is a whole multiple of `step` (a tick size). A zero `step`
    /// accepts everything.
    pub fn is_multiple_of(self, step: Price) -> bool {
        step.0 == 0 || self.0 % step.0 == 0
    }
}

impl Quantity {
    /// `true` if `self` is a whole multiple of `step` (a lot size). A zero `step`
    /// accepts everything.
    pub fn is_multiple_of(self, step: Quantity) -> bool {
        step.0 == 0 || self.0 % step.0 == 0
    }

    /// The smaller of `|self|` and `|other|`, as a non-negative quantity, checked.
    pub fn min_abs(self, other: Quantity) -> Result<Quantity, ArithmeticError> {
        Ok(self.checked_abs()?.min(other.checked_abs()?))
    }
}

impl Money {
    /// The price `self / qty` (e.g. an average entry price from a cost basis), rounded
    /// half away from zero, checked.
    pub fn checked_div_qty(self, qty: Quantity) -> Result<Price, ArithmeticError> {
        div_fixed(self.0, qty.0).map(Price)
    }
}

/// Parses the bytes of a decimal, as [`FromStr`] parses its text (the CSV readers'
/// path: no `str` needed for the common case).
macro_rules! from_ascii {
    ($($name:ident),*) => {$(
        impl $name {
            #[doc = concat!("A [`", stringify!($name), "`] from the raw value [`plain_in_word`] gave.")]
            #[inline]
            pub(crate) fn from_plain_raw(raw: i64) -> Self {
                $name(raw)
            }

            #[doc = concat!("A [`", stringify!($name), "`] from the bytes of a decimal, as [`FromStr`] parses its text.")]
            #[inline]
            pub(crate) fn from_ascii(b: &[u8]) -> Result<Self, ParseNumError> {
                parse_raw_bytes(b).map($name)
            }
        }
    )*};
}
from_ascii!(Price, Quantity);

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Price {
        s.parse().unwrap()
    }

    #[test]
    fn parses_venue_numbers() {
        assert_eq!(p("9682").raw(), 9_682_000_000_000);
        assert_eq!(p("9681.92").raw(), 9_681_920_000_000);
        assert_eq!(p("0.003").raw(), 3_000_000);
        assert_eq!(p("-1.5").raw(), -1_500_000_000);
        assert_eq!(p("+.5").raw(), 500_000_000);
        assert_eq!(p("7.").raw(), 7_000_000_000);
        assert_eq!(p("1e-3"), p("0.001"));
        assert_eq!(p("2.5E+2"), p("250"));
        assert_eq!(p("0.000000001").raw(), 1);
        assert_eq!(
            p("1.000000000000000000000000000000000000000000000000"),
            p("1")
        );
        assert_eq!(p("0e99999"), Price::ZERO);
        assert_eq!(p("9223372036.854775807"), Price::MAX);
        assert_eq!(p("-9223372036.854775808"), Price::MIN);
    }

    /// Found by fuzzing (`csv_trades`, `csv_bid_ask`): 30 fraction digits, zeros, then a
    /// digit overflowed the i128 mantissa (a panic with overflow checks; without them it
    /// wrapped silently).
    #[test]
    fn fraction_digits_after_inner_zeros_do_not_overflow_the_mantissa() {
        let e = |s: &str| s.parse::<Price>().unwrap_err();
        let nines = "9".repeat(30);
        for zeros in 1..12 {
            let s = format!("0.{nines}{}1", "0".repeat(zeros));
            assert_eq!(e(&s), ParseNumError::TooPrecise, "{s}");
            assert_eq!(e(&format!("-{s}e5")), ParseNumError::TooPrecise, "{s}");
        }
        assert!(
            "158.2320000000000954995042276225119"
                .parse::<Quantity>()
                .is_err()
        );
    }

    #[test]
    fn rejects_bad_numbers() {
        use ParseNumError::*;
        let e = |s: &str| s.parse::<Price>().unwrap_err();
        assert_eq!(e(""), Empty);
        assert_eq!(e("-"), Empty);
        assert_eq!(e("."), NoDigits);
        assert_eq!(e("abc"), InvalidChar('a'));
        assert_eq!(e("1.2.3"), InvalidChar('.'));
        assert_eq!(e("1,5"), InvalidChar(','));
        assert_eq!(e(" 1"), InvalidChar(' '));
        assert_eq!(e("1e"), InvalidExponent);
        assert_eq!(e("1e+"), InvalidExponent);
        assert_eq!(e("1e1.5"), InvalidExponent);
        assert_eq!(e("0.0000000001"), TooPrecise);
        assert_eq!(e("1e-10"), TooPrecise);
        assert_eq!(e("9223372036.854775808"), OutOfRange);
        assert_eq!(e("1e10"), OutOfRange);
        assert_eq!(e("99999999999999999999999999999999999999999"), OutOfRange);
        assert_eq!(e("1e9999999"), OutOfRange);
        assert_eq!(e("NaN"), InvalidChar('N'));
    }

    #[test]
    fn displays_without_trailing_zeros() {
        assert_eq!(p("9682.000").to_string(), "9682");
        assert_eq!(p("9681.920").to_string(), "9681.92");
        assert_eq!(p("0.003").to_string(), "0.003");
        assert_eq!(p("-0.5").to_string(), "-0.5");
        assert_eq!(Price::ZERO.to_string(), "0");
        assert_eq!(Price::MIN.to_string(), "-9223372036.854775808");
        assert_eq!(format!("{:>8}", p("1.5")), "     1.5");
        assert_eq!(format!("{:?}", p("1.5")), "Price(1.5)");
    }

    #[test]
    fn notional_and_rounding() {
        let q: Quantity = "0.003".parse().unwrap();
        assert_eq!(
            p("9681.92").checked_mul_qty(q).unwrap().to_string(),
            "29.04576"
        );
        // 0.000000001 × 0.5 = 5e-10 → rounds half away from zero to 1e-9
        let half: Quantity = "0.5".parse().unwrap();
        assert_eq!(Price::from_raw(1).checked_mul_qty(half).unwrap().raw(), 1);
        assert_eq!(Price::from_raw(-1).checked_mul_qty(half).unwrap().raw(), -1);
        assert_eq!(
            Price::MAX.checked_mul_qty(Quantity::from_int(2).unwrap()),
            Err(ArithmeticError::Overflow)
        );
        let cost: Money = "300".parse().unwrap();
        let avg = cost
            .checked_div_qty(Quantity::from_int(3).unwrap())
            .unwrap();
        assert_eq!(avg, p("100"));
        assert_eq!(
            cost.checked_div_qty(Quantity::ZERO),
            Err(ArithmeticError::DivisionByZero)
        );
        assert_eq!(p("10").midpoint(p("10.000000001")).raw(), 10_000_000_001);
        assert_eq!(
            Money::from_int(100)
                .unwrap()
                .checked_mul_ratio(5, 10_000)
                .unwrap()
                .to_string(),
            "0.05"
        );
        assert_eq!(Price::MIN.checked_neg(), Err(ArithmeticError::Overflow));
        assert_eq!(
            Price::MAX.checked_add(Price::from_raw(1)),
            Err(ArithmeticError::Overflow)
        );
    }

    #[test]
    fn serde_is_a_decimal_string() {
        let v = p("9681.92");
        assert_eq!(serde_json::to_string(&v).unwrap(), "\"9681.92\"");
        assert_eq!(serde_json::from_str::<Price>("\"9681.92\"").unwrap(), v);
        assert_eq!(serde_json::from_str::<Price>("12").unwrap(), p("12"));
        assert_eq!(serde_json::from_str::<Price>("-12").unwrap(), p("-12"));
        let err = serde_json::from_str::<Price>("1.5")
            .unwrap_err()
            .to_string();
        assert!(err.contains("inexact"), "{err}");
        let err = serde_json::from_str::<Price>("\"abc\"")
            .unwrap_err()
            .to_string();
        assert!(err.contains("invalid number \"abc\""), "{err}");
    }

    proptest! {
        /// Bytes parse as their text does, plain or not, valid or not.
        #[test]
        fn from_ascii_parses_as_from_str(s in "[-+.0-9eE ]{0,24}|[0-9]{1,12}[.][0-9]{0,12}|\\PC{0,8}") {
            prop_assert_eq!(Price::from_ascii(s.as_bytes()), s.parse::<Price>(), "{}", s);
            prop_assert_eq!(Quantity::from_ascii(s.as_bytes()), s.parse::<Quantity>(), "{}", s);
        }

        /// The one-word path agrees with the parser wherever it answers, whatever bytes
        /// come before the number, and answers for every plain number of up to 8 bytes.
        #[test]
        fn the_one_word_path_agrees_with_the_parser(
            before in any::<[u8; 8]>(),
            s in "[-+.0-9eE ]{1,8}|[0-9]{1,8}|[0-9]{0,4}[.][0-9]{0,3}",
        ) {
            let mut bytes = before.to_vec();
            bytes.extend_from_slice(s.as_bytes());
            let w = u64::from_le_bytes(bytes[bytes.len() - 8..].try_into().unwrap());
            let got = super::plain_in_word(w, s.len());
            let want = s.parse::<Price>().map(Price::raw);
            if let Some(raw) = got {
                prop_assert_eq!(Ok(raw), want.clone(), "{}", s);
            }
            let plain = s.bytes().any(|c| c.is_ascii_digit())
                && s.bytes().all(|c| c.is_ascii_digit() || c == b'.')
                && s.bytes().filter(|&c| c == b'.').count() <= 1;
            prop_assert_eq!(got.is_some(), plain, "{}", s);
        }

        /// The fast path agrees with the general parser wherever it answers.
        #[test]
        fn the_plain_fast_path_agrees_with_the_general_parser(
            neg in any::<bool>(),
            int in "[0-9]{0,12}",
            dot in any::<bool>(),
            frac in "[0-9]{0,11}",
        ) {
            let s = format!("{}{int}{}{frac}", if neg { "-" } else { "" }, if dot { "." } else { "" });
            if let Some(fast) = super::parse_plain(s.as_bytes()) {
                prop_assert_eq!(Ok(fast), super::parse_raw_general(&s), "{}", s);
            }
            prop_assert_eq!(super::parse_raw(&s).ok(), super::parse_raw_general(&s).ok(), "{}", s);
        }

        #[test]
        fn display_parse_roundtrip(raw in any::<i64>()) {
            let v = Money::from_raw(raw);
            prop_assert_eq!(v.to_string().parse::<Money>().unwrap(), v);
            let json = serde_json::to_string(&v).unwrap();
            prop_assert_eq!(serde_json::from_str::<Money>(&json).unwrap(), v);
        }

        #[test]
        fn exponent_form_roundtrip(raw in any::<i64>(), shift in 0u32..6) {
            // x written as mantissa e-shift with the point moved right
            let v = Price::from_raw(raw);
            let s = v.to_string();
            let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
            let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
            let mut frac = frac.to_string();
            while frac.len() < shift as usize { frac.push('0'); }
            let moved = format!("{sign}{int}{}.{}e-{shift}", &frac[..shift as usize], &frac[shift as usize..]);
            prop_assert_eq!(moved.parse::<Price>().unwrap(), v, "{}", moved);
        }

        #[test]
        fn add_sub_match_i128(a in any::<i64>(), b in any::<i64>()) {
            let (x, y) = (Quantity::from_raw(a), Quantity::from_raw(b));
            let sum = a as i128 + b as i128;
            match x.checked_add(y) {
                Ok(v) => prop_assert_eq!(v.raw() as i128, sum),
                Err(_) => prop_assert!(i64::try_from(sum).is_err()),
            }
            let diff = a as i128 - b as i128;
            match x.checked_sub(y) {
                Ok(v) => prop_assert_eq!(v.raw() as i128, diff),
                Err(_) => prop_assert!(i64::try_from(diff).is_err()),
            }
        }

        #[test]
        fn notional_matches_i128(a in any::<i64>(), b in any::<i64>()) {
            let prod = a as i128 * b as i128;
            let scale = SCALE as i128;
            // reference: round half away from zero
            let q = prod / scale;
            let r = prod % scale;
            let expect = if r.abs() * 2 >= scale { q + prod.signum() } else { q };
            match Price::from_raw(a).checked_mul_qty(Quantity::from_raw(b)) {
                Ok(m) => prop_assert_eq!(m.raw() as i128, expect),
                Err(e) => {
                    prop_assert_eq!(e, ArithmeticError::Overflow);
                    prop_assert!(i64::try_from(expect).is_err());
                }
            }
        }

        #[test]
        fn exact_products_are_exact(price_cents in 1i64..10_000_000, qty_milli in 1i64..1_000_000) {
            let p = Price::from_scaled(price_cents, 2).unwrap();
            let q = Quantity::from_scaled(qty_milli, 3).unwrap();
            let m = p.checked_mul_qty(q).unwrap();
            prop_assert_eq!(m.raw() as i128, price_cents as i128 * qty_milli as i128 * 10_000);
            prop_assert_eq!(m.checked_div_qty(q).unwrap(), p);
        }
    }
}
