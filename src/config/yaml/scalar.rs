//! Scalar constructors: the text of a scalar node to a [`Value`], once its
//! tag is known (implicitly resolved or explicit like `!!int`).
//!
//! PyYAML builds these values with Python's own `int()`, `float()` and
//! `datetime` constructors, and those are more lenient than the implicit
//! resolver regexes (an explicit `!!int 0o17` or `!!float 1e3` is accepted).
//! The helpers here reproduce Python's parsing rules for ASCII input so that
//! explicit tags give the same result as in Patroni. Integers are unbounded
//! in Python, so the arithmetic is done on a small arbitrary-precision
//! magnitude and only narrowed to `i64` at the end.

use std::cmp::Ordering;

use crate::config::value::{TimeOfDay, Timestamp, Value};
use regex::Regex;
use std::sync::OnceLock;

/// Python 3.11 refuses to convert decimal strings longer than this to int
/// (`sys.int_info.default_max_str_digits`).
const PY_MAX_STR_DIGITS: usize = 4300;

/// Sexagesimal floats with more parts than this overflow Python's
/// int-to-float conversion of the positional weight (60**k > 1.8e308).
const MAX_SEXAGESIMAL_FLOAT_PARTS: usize = 174;

/// Non-negative arbitrary-precision integer, little-endian base 10^9 limbs.
/// Only the few operations the constructors need.
#[derive(Debug, Clone, PartialEq, Eq)]
struct BigUint {
    limbs: Vec<u32>,
}

const LIMB: u64 = 1_000_000_000;

impl BigUint {
    fn zero() -> BigUint {
        BigUint { limbs: Vec::new() }
    }

    fn is_zero(&self) -> bool {
        self.limbs.is_empty()
    }

    fn trim(&mut self) {
        while self.limbs.last() == Some(&0) {
            self.limbs.pop();
        }
    }

    /// `self = self * mul + add` for small operands.
    fn mul_add_small(&mut self, mul: u32, add: u32) {
        let mut carry = u64::from(add);
        for limb in &mut self.limbs {
            let cur = u64::from(*limb) * u64::from(mul) + carry;
            *limb = (cur % LIMB) as u32;
            carry = cur / LIMB;
        }
        while carry > 0 {
            self.limbs.push((carry % LIMB) as u32);
            carry /= LIMB;
        }
        self.trim();
    }

    fn add(&mut self, other: &BigUint) {
        let mut carry = 0u64;
        for i in 0..self.limbs.len().max(other.limbs.len()) {
            let a = u64::from(self.limbs.get(i).copied().unwrap_or(0));
            let b = u64::from(other.limbs.get(i).copied().unwrap_or(0));
            let cur = a + b + carry;
            if i < self.limbs.len() {
                self.limbs[i] = (cur % LIMB) as u32;
            } else {
                self.limbs.push((cur % LIMB) as u32);
            }
            carry = cur / LIMB;
        }
        if carry > 0 {
            self.limbs.push(carry as u32);
        }
    }

    /// `self - other`, requires `self >= other`.
    fn sub(&mut self, other: &BigUint) {
        let mut borrow = 0i64;
        for i in 0..self.limbs.len() {
            let b = i64::from(other.limbs.get(i).copied().unwrap_or(0));
            let mut cur = i64::from(self.limbs[i]) - b - borrow;
            borrow = 0;
            if cur < 0 {
                cur += LIMB as i64;
                borrow = 1;
            }
            self.limbs[i] = cur as u32;
        }
        self.trim();
    }

    fn cmp_mag(&self, other: &BigUint) -> Ordering {
        self.limbs
            .len()
            .cmp(&other.limbs.len())
            .then_with(|| self.limbs.iter().rev().cmp(other.limbs.iter().rev()))
    }

    fn to_decimal(&self) -> String {
        let mut out = match self.limbs.last() {
            None => return "0".into(),
            Some(top) => top.to_string(),
        };
        for limb in self.limbs.iter().rev().skip(1) {
            out.push_str(&format!("{limb:09}"));
        }
        out
    }

    fn to_u64(&self) -> Option<u64> {
        let mut v: u64 = 0;
        for limb in self.limbs.iter().rev() {
            v = v.checked_mul(LIMB)?.checked_add(u64::from(*limb))?;
        }
        Some(v)
    }
}

/// A signed arbitrary-precision integer: what a Python `int` holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct PyInt {
    negative: bool,
    magnitude: BigUint,
}

impl PyInt {
    fn zero() -> PyInt {
        PyInt {
            negative: false,
            magnitude: BigUint::zero(),
        }
    }

    fn negate_if(mut self, negate: bool) -> PyInt {
        if negate && !self.magnitude.is_zero() {
            self.negative = !self.negative;
        }
        self
    }

    fn add(&mut self, other: &PyInt) {
        if self.negative == other.negative {
            self.magnitude.add(&other.magnitude);
        } else if self.magnitude.cmp_mag(&other.magnitude) != Ordering::Less {
            self.magnitude.sub(&other.magnitude);
        } else {
            let mut m = other.magnitude.clone();
            m.sub(&self.magnitude);
            self.magnitude = m;
            self.negative = other.negative;
        }
        if self.magnitude.is_zero() {
            self.negative = false;
        }
    }

    fn mul_small(&mut self, mul: u32) {
        self.magnitude.mul_add_small(mul, 0);
        if self.magnitude.is_zero() {
            self.negative = false;
        }
    }

    /// `Value::Int` when it fits in `i64`, `Value::BigInt` otherwise.
    pub(super) fn into_value(self) -> Value {
        if let Some(m) = self.magnitude.to_u64() {
            if self.negative {
                if m <= i64::MAX as u64 + 1 {
                    return Value::Int((m as i128).wrapping_neg() as i64);
                }
            } else if let Ok(i) = i64::try_from(m) {
                return Value::Int(i);
            }
        }
        let digits = self.magnitude.to_decimal();
        Value::BigInt(if self.negative {
            format!("-{digits}")
        } else {
            digits
        })
    }
}

/// Python's `str.strip()` for the characters `int()`/`float()` skip.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// Python's `int(text, base)` for ASCII digits (underscores already
/// removed by the caller, as PyYAML does before calling `int`).
pub(super) fn py_int(text: &str, base: u32) -> Result<PyInt, String> {
    let invalid = || format!("invalid literal for int() with base {base}: {text:?}");
    let s = py_strip(text);
    let (negative, mut digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let prefix = match base {
        2 => Some("0b"),
        8 => Some("0o"),
        16 => Some("0x"),
        _ => None,
    };
    if let Some(p) = prefix {
        // Compare bytes: the text may start with a multi-byte character.
        if digits
            .as_bytes()
            .get(..2)
            .is_some_and(|b| b.eq_ignore_ascii_case(p.as_bytes()))
        {
            digits = &digits[2..];
        }
    }
    if digits.is_empty() {
        return Err(invalid());
    }
    if base == 10 && digits.len() > PY_MAX_STR_DIGITS {
        return Err(format!(
            "exceeds the limit ({PY_MAX_STR_DIGITS} digits) for integer string conversion"
        ));
    }
    let mut magnitude = BigUint::zero();
    for c in digits.chars() {
        let d = c.to_digit(base).ok_or_else(invalid)?;
        magnitude.mul_add_small(base, d);
    }
    Ok(PyInt {
        negative: false,
        magnitude,
    }
    .negate_if(negative))
}

/// Python's `float(text)` for ASCII input: decimal literals with optional
/// exponent, `inf`/`infinity`/`nan` in any case, surrounding whitespace.
pub(super) fn py_float(text: &str) -> Result<f64, String> {
    let invalid = || format!("could not convert string to float: {text:?}");
    let s = py_strip(text);
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    let lower = unsigned.to_ascii_lowercase();
    let is_word = matches!(lower.as_str(), "inf" | "infinity" | "nan");
    if !is_word {
        // Python's grammar: digits [. digits] | . digits, then [e [sign] digits].
        let (mantissa, exponent) = match lower.split_once('e') {
            Some((m, e)) => (m, Some(e)),
            None => (lower.as_str(), None),
        };
        let (int_part, frac_part) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let all_digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
        if !all_digits(int_part)
            || !all_digits(frac_part)
            || (int_part.is_empty() && frac_part.is_empty())
        {
            return Err(invalid());
        }
        if let Some(e) = exponent {
            let e = e.strip_prefix(['+', '-']).unwrap_or(e);
            if e.is_empty() || !all_digits(e) {
                return Err(invalid());
            }
        }
    }
    s.parse::<f64>().map_err(|_| invalid())
}

/// `tag:yaml.org,2002:int`: PyYAML's integer construction, including its
/// `0b`/`0x`/leading-zero octal/sexagesimal forms.
pub(super) fn construct_int(text: &str) -> Result<Value, String> {
    let cleaned = text.replace('_', "");
    let negative = cleaned.starts_with('-');
    let rest = cleaned.strip_prefix(['+', '-']).unwrap_or(&cleaned);
    if rest.is_empty() {
        return Err(format!("cannot construct an int from {text:?}"));
    }
    let magnitude = if rest == "0" {
        PyInt::zero()
    } else if let Some(bin) = rest.strip_prefix("0b") {
        py_int(bin, 2)?
    } else if let Some(hex) = rest.strip_prefix("0x") {
        py_int(hex, 16)?
    } else if rest.starts_with('0') {
        py_int(rest, 8)?
    } else if rest.contains(':') {
        // Base 60, most significant part first; each part is a Python int.
        let mut total = PyInt::zero();
        for part in rest.split(':') {
            total.mul_small(60);
            total.add(&py_int(part, 10)?);
        }
        total
    } else {
        py_int(rest, 10)?
    };
    Ok(magnitude.negate_if(negative).into_value())
}

/// `tag:yaml.org,2002:float`: PyYAML's float construction (`.inf`, `.nan`,
/// sexagesimal `1:30.5`, otherwise Python's `float()`).
pub(super) fn construct_float(text: &str) -> Result<Value, String> {
    let cleaned = text.replace('_', "").to_lowercase();
    let sign = if cleaned.starts_with('-') { -1.0 } else { 1.0 };
    let rest = cleaned.strip_prefix(['+', '-']).unwrap_or(&cleaned);
    if rest.is_empty() {
        return Err(format!("cannot construct a float from {text:?}"));
    }
    let value = if rest == ".inf" {
        sign * f64::INFINITY
    } else if rest == ".nan" {
        f64::NAN
    } else if rest.contains(':') {
        let parts = rest
            .split(':')
            .map(py_float)
            .collect::<Result<Vec<_>, _>>()?;
        if parts.len() > MAX_SEXAGESIMAL_FLOAT_PARTS {
            return Err("int too large to convert to float".into());
        }
        // Least significant part first, like PyYAML, so rounding matches.
        let mut total = 0.0;
        let mut weight = 1.0;
        for digit in parts.iter().rev() {
            total += digit * weight;
            weight *= 60.0;
        }
        sign * total
    } else {
        sign * py_float(rest)?
    };
    Ok(Value::Float(value))
}

/// `tag:yaml.org,2002:bool`: one of the YAML 1.1 words, any case.
pub(super) fn construct_bool(text: &str) -> Result<Value, String> {
    match text.to_lowercase().as_str() {
        "yes" | "true" | "on" => Ok(Value::Bool(true)),
        "no" | "false" | "off" => Ok(Value::Bool(false)),
        _ => Err(format!("cannot construct a bool from {text:?}")),
    }
}

fn timestamp_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(concat!(
            r"^(?P<year>[0-9]{4})-(?P<month>[0-9][0-9]?)-(?P<day>[0-9][0-9]?)",
            r"(?:(?:[Tt]|[ \t]+)(?P<hour>[0-9][0-9]?):(?P<minute>[0-9]{2}):(?P<second>[0-9]{2})",
            r"(?:\.(?P<fraction>[0-9]*))?",
            r"(?:[ \t]*(?P<tz>Z|(?P<tz_sign>[-+])(?P<tz_hour>[0-9][0-9]?)(?::(?P<tz_minute>[0-9]{2}))?))?)?$",
        ))
        .expect("timestamp regex is valid")
    })
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => 31,
    }
}

/// `tag:yaml.org,2002:timestamp`: a `date`, or a `datetime` (aware when an
/// offset or `Z` is given). Out-of-range fields fail like Python's
/// `datetime` constructors do.
pub(super) fn construct_timestamp(text: &str) -> Result<Value, String> {
    let re = timestamp_regex();
    // Python's `$` also matches before one trailing newline.
    let caps = re
        .captures(text)
        .or_else(|| text.strip_suffix('\n').and_then(|t| re.captures(t)))
        .ok_or_else(|| format!("cannot construct a timestamp from {text:?}"))?;
    let num = |name: &str| -> u32 {
        caps.name(name)
            .and_then(|m| m.as_str().parse().ok())
            .unwrap_or(0)
    };
    let year = num("year") as i32;
    let (month, day) = (num("month"), num("day"));
    if !(1..=9999).contains(&year) {
        return Err(format!("year {year} is out of range"));
    }
    if !(1..=12).contains(&month) {
        return Err("month must be in 1..12".into());
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err("day is out of range for month".into());
    }
    if caps.name("hour").is_none() {
        return Ok(Value::Timestamp(Timestamp {
            year,
            month,
            day,
            time: None,
        }));
    }
    let (hour, minute, second) = (num("hour"), num("minute"), num("second"));
    if hour > 23 {
        return Err("hour must be in 0..23".into());
    }
    if minute > 59 {
        return Err("minute must be in 0..59".into());
    }
    if second > 59 {
        return Err("second must be in 0..59".into());
    }
    let microsecond = match caps.name("fraction").map(|m| m.as_str()) {
        Some(f) if !f.is_empty() => {
            let mut digits: String = f.chars().take(6).collect();
            while digits.len() < 6 {
                digits.push('0');
            }
            digits.parse().unwrap_or(0)
        }
        _ => 0,
    };
    let utc_offset = if let Some(sign) = caps.name("tz_sign") {
        let seconds = (num("tz_hour") * 3600 + num("tz_minute") * 60) as i32;
        if seconds >= 86_400 {
            return Err("offset must be a timedelta strictly between -timedelta(hours=24) and timedelta(hours=24)".into());
        }
        Some(if sign.as_str() == "-" {
            -seconds
        } else {
            seconds
        })
    } else if caps.name("tz").is_some() {
        Some(0)
    } else {
        None
    };
    Ok(Value::Timestamp(Timestamp {
        year,
        month,
        day,
        time: Some(TimeOfDay {
            hour,
            minute,
            second,
            microsecond,
            utc_offset,
        }),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn big(s: &str) -> Value {
        Value::BigInt(s.into())
    }

    #[test]
    fn ints_like_pyyaml() {
        let cases: &[(&str, Value)] = &[
            ("0", Value::Int(0)),
            ("-0", Value::Int(0)),
            ("0640", Value::Int(416)),
            ("-0_7", Value::Int(-7)),
            ("0_", Value::Int(0)),
            ("0b1010", Value::Int(10)),
            ("-0b1", Value::Int(-1)),
            ("0x1F", Value::Int(31)),
            ("0x_ff", Value::Int(255)),
            ("1_000", Value::Int(1000)),
            ("+12", Value::Int(12)),
            ("1:20", Value::Int(80)),
            ("-1:0:0", Value::Int(-3600)),
            ("190:20:30", Value::Int(685230)),
            ("9223372036854775807", Value::Int(i64::MAX)),
            ("-9223372036854775808", Value::Int(i64::MIN)),
            ("9223372036854775808", big("9223372036854775808")),
            ("-9223372036854775809", big("-9223372036854775809")),
            ("0xffffffffffffffffff", big("4722366482869645213695")),
            ("01777777777777777777777", big("18446744073709551615")),
            // Explicit `!!int` goes through Python's int(): prefixes, inner signs.
            ("0o17", Value::Int(15)),
            ("1:-5", Value::Int(55)),
            ("--1", Value::Int(1)),
            ("+-1", Value::Int(-1)),
            (" 12 ", Value::Int(12)),
        ];
        for (text, want) in cases {
            assert_eq!(&construct_int(text).unwrap(), want, "{text}");
        }
        for bad in [
            "", "-", "_", "0b_", "0x", "08", "1.5", "abc", "1:", "0b2", "0\u{e9}", "0x\u{e9}",
            "\u{e9}",
        ] {
            assert!(construct_int(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn huge_sexagesimal_and_decimal_limit() {
        let parts = vec!["59"; 30].join(":");
        let Value::BigInt(s) = construct_int(&parts).unwrap() else {
            panic!("expected a big int");
        };
        // 60**30 - 1, computed independently.
        let mut want = BigUint::zero();
        want.mul_add_small(1, 1);
        for _ in 0..30 {
            want.mul_add_small(60, 0);
        }
        let one = BigUint { limbs: vec![1] };
        want.sub(&one);
        assert_eq!(s, want.to_decimal());
        assert!(construct_int(&"1".repeat(4301)).is_err());
        assert!(construct_int(&"1".repeat(4300)).is_ok());
    }

    #[test]
    fn floats_like_pyyaml() {
        let cases: &[(&str, f64)] = &[
            ("1.5", 1.5),
            ("1.", 1.0),
            ("-1_000.5", -1000.5),
            ("1.0e+3", 1000.0),
            ("1.E-2", 0.01),
            (".5", 0.5),
            ("1:20.5", 80.5),
            ("-1:0:30.0", -3630.0),
            (".inf", f64::INFINITY),
            ("-.Inf", f64::NEG_INFINITY),
            ("+.INF", f64::INFINITY),
            ("1e3", 1000.0),
            (" 2.5 ", 2.5),
            ("1:-5", 55.0),
            ("infinity", f64::INFINITY),
            ("1e999", f64::INFINITY),
        ];
        for (text, want) in cases {
            assert_eq!(
                construct_float(text).unwrap(),
                Value::Float(*want),
                "{text}"
            );
        }
        assert!(matches!(construct_float(".nan"), Ok(Value::Float(f)) if f.is_nan()));
        let Ok(Value::Float(neg_zero)) = construct_float("-0.0") else {
            panic!("-0.0 is a float");
        };
        assert!(neg_zero == 0.0 && neg_zero.is_sign_negative());
        for bad in [
            "", "-", ".", "e3", "1e", "1.5.5", "abc", "1:", "0x10", ".inf\n",
        ] {
            assert!(construct_float(bad).is_err(), "{bad:?} should fail");
        }
    }

    #[test]
    fn bools_any_case() {
        assert_eq!(construct_bool("oN").unwrap(), Value::Bool(true));
        assert_eq!(construct_bool("NO").unwrap(), Value::Bool(false));
        assert!(construct_bool("y").is_err());
        assert!(construct_bool("yes\n").is_err());
    }

    #[test]
    fn timestamps() {
        let date = |y, m, d| {
            Value::Timestamp(Timestamp {
                year: y,
                month: m,
                day: d,
                time: None,
            })
        };
        assert_eq!(construct_timestamp("2024-01-02").unwrap(), date(2024, 1, 2));
        assert_eq!(construct_timestamp("2024-1-2").unwrap(), date(2024, 1, 2));
        assert_eq!(
            construct_timestamp("2024-02-29").unwrap(),
            date(2024, 2, 29)
        );
        let Value::Timestamp(t) = construct_timestamp("2001-12-14 21:59:43.10 -5").unwrap() else {
            panic!("a timestamp");
        };
        let time = t.time.unwrap();
        assert_eq!((time.hour, time.minute, time.second), (21, 59, 43));
        assert_eq!(time.microsecond, 100_000);
        assert_eq!(time.utc_offset, Some(-5 * 3600));
        let Value::Timestamp(t) = construct_timestamp("2001-12-14t21:59:43.1234567Z").unwrap()
        else {
            panic!("a timestamp");
        };
        assert_eq!(t.time.as_ref().unwrap().microsecond, 123_456);
        assert_eq!(t.time.unwrap().utc_offset, Some(0));
        let Value::Timestamp(t) = construct_timestamp("2001-12-14 21:59:43").unwrap() else {
            panic!("a timestamp");
        };
        assert_eq!(t.time.unwrap().utc_offset, None);
        for bad in [
            "2024-13-01",
            "2023-02-29",
            "0000-01-01",
            "2024-01-00",
            "2024-01-01 24:00:00",
            "2024-01-01 23:60:00",
            "2024-01-01 23:00:60",
            "2024-01-01 23:00:00+24",
            "2024-01-01 23:00:00+23:60",
            "2024-01-01x",
        ] {
            assert!(construct_timestamp(bad).is_err(), "{bad:?} should fail");
        }
        assert!(construct_timestamp("2024-01-01 23:00:00-23:59").is_ok());
    }
}
