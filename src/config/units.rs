//! Patroni's value parsers: `parse_bool`, `parse_int` and `parse_real`.
//!
//! PostgreSQL reads numeric settings with C's `strtol(3)`/`strtod(3)` and an
//! optional unit (`kB`, `MB`, `s`, `min`, ...). Patroni mimics that to compare
//! and convert values, and the same parsers read sizes and durations from the
//! configuration (`maximum_lag_on_failover: 1MB`, `?lag=10kB`). We follow
//! Patroni's observable results, including its rounding (Python's `round`,
//! half to even) and its quirks:
//!
//! - the number part may be hex (`0x400`), octal (`0640`) or decimal;
//! - a fractional number (`1.5MB`) is read as a double and rounded;
//! - units are case sensitive (`1mb` is invalid) and may follow one or more
//!   spaces; size and time units never convert into each other;
//! - a unit is only accepted when a base unit is given (`parse_int("1MB")`
//!   without one is `None`); the base unit may carry a multiplier (`16MB`,
//!   as `wal_segment_size` does).
//!
//! Values are taken as Python's `str(value)` would render them, so a YAML
//! integer, float or string all parse the same way.

use super::Value;

/// Patroni's `parse_bool`: `on`/`true`/`yes`/`1` and `off`/`false`/`no`/`0`
/// in any letter case; anything else is `None`.
pub fn parse_bool(value: &Value) -> Option<bool> {
    match python_str(value).to_lowercase().as_str() {
        "on" | "true" | "yes" | "1" => Some(true),
        "off" | "false" | "no" | "0" => Some(false),
        _ => None,
    }
}

/// Patroni's `parse_int(value, base_unit)`: an integer, converted to
/// `base_unit` when the value carries a unit.
pub fn parse_int(value: &Value, base_unit: Option<&str>) -> Option<i64> {
    if let Value::Int(i) = value {
        return Some(*i);
    }
    let text = python_str(value);
    let (mut number, mut rest) = match strtol(&text) {
        Some((n, rest)) => (Some(Number::Int(n)), rest),
        None => (None, py_strip(&text)),
    };
    let needs_double =
        (number.is_none() && rest.starts_with('.')) || rest.starts_with(['.', 'e', 'E']);
    if needs_double {
        match strtod(&text) {
            Some((d, r)) => {
                number = Some(Number::Real(d));
                rest = r;
            }
            None => {
                number = None;
                rest = py_strip(&text);
            }
        }
    }
    let number = number?;
    let unit = py_strip(rest);
    if unit.is_empty() {
        return number.round();
    }
    convert_to_base_unit(number, unit, base_unit)?.round()
}

/// Patroni's `parse_real(value, base_unit)`: a double, converted to
/// `base_unit` when the value carries a unit.
pub fn parse_real(value: &Value, base_unit: Option<&str>) -> Option<f64> {
    let text = python_str(value);
    let (number, rest) = strtod(&text)?;
    let unit = py_strip(rest);
    if unit.is_empty() {
        return Some(number);
    }
    match convert_to_base_unit(Number::Real(number), unit, base_unit)? {
        Number::Int(i) => Some(i as f64),
        Number::Real(r) => Some(r),
    }
}

/// Python's `str()` of a configuration scalar.
fn python_str(value: &Value) -> String {
    value.to_string()
}

/// An intermediate result: Python keeps ints exact until a conversion
/// factor turns them into floats.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Number {
    Int(i128),
    Real(f64),
}

impl Number {
    fn as_f64(self) -> f64 {
        match self {
            Number::Int(i) => i as f64,
            Number::Real(r) => r,
        }
    }

    /// Python's `round()`: exact for ints, half-to-even for floats.
    fn round(self) -> Option<i64> {
        match self {
            Number::Int(i) => i64::try_from(i).ok(),
            Number::Real(r) => py_round(r).and_then(|i| i64::try_from(i).ok()),
        }
    }
}

fn py_round(r: f64) -> Option<i128> {
    let rounded = r.round_ties_even();
    if !rounded.is_finite() || rounded.abs() >= 1.7e38 {
        return None;
    }
    Some(rounded as i128)
}

/// Python's `str.strip()`: Unicode whitespace plus the ASCII separators
/// U+001C..U+001F that Python also treats as whitespace.
fn py_strip(s: &str) -> &str {
    s.trim_matches(|c: char| c.is_whitespace() || ('\x1c'..='\x1f').contains(&c))
}

/// Leading sign, returning (negative, rest).
fn split_sign(s: &str) -> (bool, &str) {
    match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    }
}

/// `strtol` with base 0 on the stripped text: hex (`0x..`), octal (`0..`)
/// or decimal. Returns the number and the unparsed rest, or `None` when no
/// number starts the text.
fn strtol(text: &str) -> Option<(i128, &str)> {
    let s = py_strip(text);
    let (negative, body) = split_sign(s);
    let digits_end =
        |b: &str, pred: fn(&u8) -> bool| b.bytes().position(|c| !pred(&c)).unwrap_or(b.len());
    let (magnitude, rest) = if let Some(hex) = body.strip_prefix("0x") {
        let end = digits_end(hex, u8::is_ascii_hexdigit);
        if end == 0 {
            // "0x" alone: the octal rule takes the "0".
            (0, &body[1..])
        } else {
            (parse_radix(&hex[..end], 16)?, &hex[end..])
        }
    } else if let Some(oct) = body.strip_prefix('0') {
        let end = digits_end(oct, |c| (b'0'..=b'7').contains(c));
        (parse_radix(&oct[..end], 8).unwrap_or(0), &oct[end..])
    } else {
        let end = digits_end(body, u8::is_ascii_digit);
        if end == 0 {
            return None;
        }
        (parse_radix(&body[..end], 10)?, &body[end..])
    };
    Some((if negative { -magnitude } else { magnitude }, rest))
}

fn parse_radix(digits: &str, radix: u32) -> Option<i128> {
    if digits.is_empty() {
        return Some(0);
    }
    i128::from_str_radix(digits, radix).ok()
}

/// `strtod` as Patroni approximates it: `[-+]?[0-9]*\.?[0-9]+([eE][-+]?[0-9]+)?`.
fn strtod(text: &str) -> Option<(f64, &str)> {
    let s = py_strip(text);
    let b = s.as_bytes();
    let mut i = usize::from(matches!(b.first(), Some(b'-' | b'+')));
    let int_start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    let mut end = None;
    if i > int_start {
        end = Some(i);
    }
    if b.get(i) == Some(&b'.') {
        let frac_start = i + 1;
        let mut j = frac_start;
        while b.get(j).is_some_and(u8::is_ascii_digit) {
            j += 1;
        }
        if j > frac_start {
            end = Some(j);
        }
    } else if i > int_start {
        // `[0-9]*` then `[0-9]+`: backtracking makes plain digits match.
        end = Some(i);
    }
    let mut end = end?;
    if matches!(b.get(end), Some(b'e' | b'E')) {
        let mut k = end + 1;
        if matches!(b.get(k), Some(b'-' | b'+')) {
            k += 1;
        }
        let exp_start = k;
        while b.get(k).is_some_and(u8::is_ascii_digit) {
            k += 1;
        }
        if k > exp_start {
            end = k;
        }
    }
    let value: f64 = s[..end].parse().ok()?;
    Some((value, &s[end..]))
}

/// Units in descending order with their size in the three base units of
/// their family. The order drives Patroni's rounding to the next smaller
/// unit.
const MEMORY_UNITS: &[(&str, [f64; 3])] = &[
    ("TB", [1099511627776.0, 1073741824.0, 1048576.0]),
    ("GB", [1073741824.0, 1048576.0, 1024.0]),
    ("MB", [1048576.0, 1024.0, 1.0]),
    ("kB", [1024.0, 1.0, 1.0 / 1024.0]),
    ("B", [1.0, 1.0 / 1024.0, 1.0 / 1048576.0]),
];
const MEMORY_BASES: [&str; 3] = ["B", "kB", "MB"];

const TIME_UNITS: &[(&str, [f64; 3])] = &[
    ("d", [86_400_000.0, 86_400.0, 1_440.0]),
    ("h", [3_600_000.0, 3_600.0, 60.0]),
    ("min", [60_000.0, 60.0, 1.0]),
    ("s", [1_000.0, 1.0, 1.0 / 60.0]),
    ("ms", [1.0, 1.0 / 1_000.0, 1.0 / 60_000.0]),
    ("us", [1.0 / 1_000.0, 1.0 / 1_000_000.0, 1.0 / 60_000_000.0]),
];
const TIME_BASES: [&str; 3] = ["ms", "s", "min"];

/// Whether a factor is an integer in Python (the table holds ints for
/// factors >= 1 and floats for the fractional ones).
fn factor_is_int(f: f64) -> bool {
    f >= 1.0 && f.fract() == 0.0
}

/// Patroni's `convert_to_base_unit`.
fn convert_to_base_unit(value: Number, unit: &str, base_unit: Option<&str>) -> Option<Number> {
    let base_text = base_unit.unwrap_or("None");
    let (multiplier, base_name) = match strtol(base_text) {
        Some((m, rest)) => (m, rest),
        None => (1, py_strip(base_text)),
    };
    let (table, bases) = if MEMORY_BASES.contains(&base_name) {
        (MEMORY_UNITS, MEMORY_BASES)
    } else if TIME_BASES.contains(&base_name) {
        (TIME_UNITS, TIME_BASES)
    } else {
        return None;
    };
    let base_idx = bases.iter().position(|b| *b == base_name)?;
    let unit_idx = table.iter().position(|(name, _)| *name == unit)?;
    if multiplier == 0 {
        return None; // Python divides by zero here
    }
    let factor = table[unit_idx].1[base_idx];
    let mut result = value.as_f64() * (factor / multiplier as f64);
    let next = table.get(unit_idx + 1);
    match next {
        Some((_, factors)) => {
            let step = factors[base_idx];
            let steps = py_round(result / step)?;
            if factor_is_int(step) {
                return Some(Number::Int(steps.checked_mul(step as i128)?));
            }
            result = steps as f64 * step;
            Some(Number::Real(result))
        }
        None => Some(Number::Real(result)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    #[test]
    fn bools() {
        for (text, want) in [
            ("on", Some(true)),
            ("ON", Some(true)),
            ("Yes", Some(true)),
            ("1", Some(true)),
            ("off", Some(false)),
            ("False", Some(false)),
            ("0", Some(false)),
            ("y", None),
            ("t", None),
            ("", None),
        ] {
            assert_eq!(parse_bool(&s(text)), want, "{text:?}");
        }
        assert_eq!(parse_bool(&Value::Bool(true)), Some(true));
        assert_eq!(parse_bool(&Value::Int(0)), Some(false));
        assert_eq!(parse_bool(&Value::Int(2)), None);
    }

    #[test]
    fn ints_with_units() {
        let cases: &[(&str, Option<&str>, Option<i64>)] = &[
            ("1", None, Some(1)),
            (" 0x400 MB ", Some("16384kB"), Some(64)),
            ("1MB", Some("kB"), Some(1024)),
            ("1000 ms", Some("s"), Some(1)),
            ("1TB", Some("GB"), None),
            ("nonsense", Some("kB"), None),
            ("6GB", Some("16MB"), Some(384)),
            ("4097.4kB", Some("kB"), Some(4097)),
            ("4097.5kB", Some("kB"), Some(4098)),
            ("1.5MB", Some("B"), Some(1572864)),
            ("1mb", Some("B"), None),
            ("1MB", None, None),
            ("100ms", Some("s"), Some(0)),
            ("1d", Some("s"), Some(86400)),
            ("1s", Some("B"), None),
            ("0640", None, Some(416)),
            ("-1", Some("kB"), Some(-1)),
            ("2.5", None, Some(2)),
            ("3.5", None, Some(4)),
            ("08", None, None),
            ("1e3", None, Some(1000)),
            (".5", None, Some(0)),
            ("0x", None, None),
            ("abc", None, None),
        ];
        for (text, base, want) in cases {
            assert_eq!(parse_int(&s(text), *base), *want, "{text:?} in {base:?}");
        }
        assert_eq!(parse_int(&Value::Int(50), None), Some(50));
        assert_eq!(parse_int(&Value::Float(1.5), None), Some(2));
        assert_eq!(parse_int(&Value::Bool(true), None), None);
    }

    #[test]
    fn reals() {
        assert_eq!(parse_real(&s(" +0.0005 "), None), Some(0.0005));
        assert_eq!(parse_real(&s("0.0005ms"), Some("ms")), Some(0.0));
        assert_eq!(parse_real(&s("0.00051ms"), Some("ms")), Some(0.001));
        assert_eq!(parse_real(&s("1min"), Some("s")), Some(60.0));
        assert_eq!(parse_real(&s("x"), Some("s")), None);
    }

    #[test]
    fn golden_parsers() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../shared/compat/golden/config_env/env_and_yaml_parsing.json"
        );
        let Ok(text) = std::fs::read_to_string(path) else {
            assert!(
                std::env::var_os("CI").is_none(),
                "golden captures missing at {path}"
            );
            eprintln!("golden captures not present at {path}; skipped");
            return;
        };
        let golden: serde_json::Value = serde_json::from_str(&text).expect("golden json");
        let parsers = &golden["patroni_utils_parsers"];
        let mut checked = 0;
        for (input, want) in parsers["parse_bool"].as_object().expect("map") {
            assert_eq!(
                parse_bool(&s(input)),
                want.as_bool(),
                "parse_bool({input:?})"
            );
            checked += 1;
        }
        for (section, base) in [
            ("parse_int_unit_B", Some("B")),
            ("parse_int_unit_kB", Some("kB")),
            ("parse_int_unit_s", Some("s")),
            ("parse_int_no_unit", None),
        ] {
            for (input, want) in parsers[section].as_object().expect("map") {
                assert_eq!(
                    parse_int(&s(input), base),
                    want.as_i64(),
                    "{section}({input:?})"
                );
                checked += 1;
            }
        }
        assert!(checked > 60, "golden vectors went missing: {checked}");
    }
}
