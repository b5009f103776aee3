//! Python's text renderings of numbers and strings, as the `%` operator and
//! `json.dumps` produce them.
//!
//! Log lines are compared byte for byte with Python Patroni's, so `%(created)f`
//! or a float in a JSON record must print exactly as CPython prints it. Rust's
//! float formatting is correctly rounded like CPython's, but the layout differs
//! (exponent spelling, when to switch to exponent form, `-0.0`), which is what
//! this module bridges.

/// `repr(float)`: the shortest digits that round-trip, in fixed notation for
/// decimal exponents in `-4..16`, otherwise `d.ddde±XX`.
pub fn float_repr(x: f64) -> String {
    if x.is_nan() {
        return "nan".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "inf" } else { "-inf" }.into();
    }
    let sign = if x.is_sign_negative() { "-" } else { "" };
    // `{:e}` gives the shortest round-trip digits: "1.2345e3".
    let sci = format!("{:e}", x.abs());
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let body = if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                format!("{digits}{}.0", "0".repeat(int_len - digits.len()))
            } else {
                format!("{}.{}", &digits[..int_len], &digits[int_len..])
            }
        } else {
            format!("0.{}{digits}", "0".repeat((-exp - 1) as usize))
        }
    } else {
        let rest = &digits[1..];
        let dot = if rest.is_empty() { "" } else { "." };
        format!("{}{dot}{rest}e{}", &digits[..1], exp_suffix(exp))
    };
    format!("{sign}{body}")
}

/// CPython writes exponents with a sign and at least two digits.
fn exp_suffix(exp: i32) -> String {
    let sign = if exp < 0 { '-' } else { '+' };
    format!("{sign}{:02}", exp.unsigned_abs())
}

/// `'%.<prec>f' % x` without sign handling (the caller passes `|x|`).
pub fn fixed(x: f64, prec: usize, alt: bool) -> String {
    let mut s = format!("{x:.prec$}");
    if alt && prec == 0 {
        s.push('.');
    }
    s
}

/// `'%.<prec>e' % x` for a finite, non-negative `x`.
pub fn exponent(x: f64, prec: usize, alt: bool, upper: bool) -> String {
    let s = format!("{x:.prec$e}");
    let (mantissa, exp) = s.split_once('e').unwrap_or((&s, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let dot = if alt && prec == 0 { "." } else { "" };
    let e = if upper { 'E' } else { 'e' };
    format!("{mantissa}{dot}{e}{}", exp_suffix(exp))
}

/// `'%.<prec>g' % x` for a finite, non-negative `x`: exponent form when the
/// exponent is below -4 or at least the precision, trailing zeros removed
/// unless `#` was given.
pub fn general(x: f64, prec: usize, alt: bool, upper: bool) -> String {
    let p = prec.max(1);
    // The exponent after rounding to `p` significant digits decides the form.
    let probe = format!("{x:.*e}", p - 1);
    let exp: i32 = probe
        .split_once('e')
        .and_then(|(_, e)| e.parse().ok())
        .unwrap_or(0);
    let mut s = if exp < -4 || exp >= p as i32 {
        exponent(x, p - 1, alt, upper)
    } else {
        fixed(x, (p as i32 - 1 - exp) as usize, alt)
    };
    if !alt {
        let (num, tail) = match s.find(['e', 'E']) {
            Some(i) => s.split_at(i),
            None => (s.as_str(), ""),
        };
        if num.contains('.') {
            let trimmed = num.trim_end_matches('0').trim_end_matches('.');
            s = format!("{trimmed}{tail}");
        }
    }
    s
}

/// `repr(str)`: single quotes unless the text holds a `'` and no `"`;
/// backslash escapes for quotes, `\\`, `\t\n\r` and other control characters.
/// Non-ASCII printable characters are kept, as Python 3 does.
pub fn str_repr(s: &str) -> String {
    quote(s, false)
}

/// `ascii(str)`: like [`str_repr`], but every non-ASCII character is escaped
/// as `\xNN`, `\uNNNN` or `\UNNNNNNNN`.
pub fn str_ascii(s: &str) -> String {
    quote(s, true)
}

fn quote(s: &str, ascii_only: bool) -> String {
    let q = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(q);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if c == q => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if (c as u32) >= 0x80 && (ascii_only || is_unprintable(c)) => {
                let n = c as u32;
                if n <= 0xff {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n <= 0xffff {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(q);
    out
}

/// An approximation of `not str.isprintable()` for non-ASCII characters:
/// C1 controls, the Latin-1 no-break space and soft hyphen, line and
/// paragraph separators, and the zero-width/format characters operators are
/// likely to meet. Python consults the full Unicode database; the rare
/// characters outside this list print unescaped here.
fn is_unprintable(c: char) -> bool {
    matches!(c as u32,
        0x80..=0xa0 | 0xad | 0x2000..=0x200f | 0x2028..=0x202f | 0x205f..=0x206f
        | 0x3000 | 0xfeff | 0xfff9..=0xfffb | 0xe000..=0xf8ff)
}

/// A string as `json.dumps(..., ensure_ascii=True)` writes it.
pub fn json_str(s: &str, out: &mut String) {
    crate::model::json::write_string(out, s);
}

pub use crate::model::json::json_float;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_switches_to_exponent_like_cpython() {
        let cases = [
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e-4, "0.0001"),
            (1e-5, "1e-05"),
            (1.5e-7, "1.5e-07"),
            (1e16, "1e+16"),
            (1234567890123456.0, "1234567890123456.0"),
            (1.2345e20, "1.2345e+20"),
            (-0.0, "-0.0"),
            (1763781020.1234567, "1763781020.1234567"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (x, want) in cases {
            assert_eq!(float_repr(x), want, "{x:e}");
        }
    }

    #[test]
    fn percent_e_and_g() {
        assert_eq!(exponent(12345.678, 2, false, false), "1.23e+04");
        assert_eq!(exponent(0.0, 0, true, true), "0.E+00");
        assert_eq!(general(0.0001, 6, false, false), "0.0001");
        assert_eq!(general(0.00001, 6, false, false), "1e-05");
        assert_eq!(general(123456789.0, 6, false, false), "1.23457e+08");
        assert_eq!(general(100.0, 6, false, false), "100");
        assert_eq!(general(100.0, 6, true, false), "100.000");
        assert_eq!(general(999999.5, 6, false, false), "1e+06");
        assert_eq!(general(2.5, 0, false, false), "2");
    }

    #[test]
    fn string_reprs() {
        assert_eq!(str_repr("it's"), "\"it's\"");
        assert_eq!(str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(str_repr("tab\there\u{1}"), "'tab\\there\\x01'");
        assert_eq!(str_repr("é"), "'é'");
        assert_eq!(str_ascii("é€😀"), "'\\xe9\\u20ac\\U0001f600'");
    }

    #[test]
    fn json_strings_escape_like_ensure_ascii() {
        let mut out = String::new();
        json_str("a\"\\\n\u{7f}é😀\u{1}", &mut out);
        assert_eq!(out, "\"a\\\"\\\\\\n\\u007f\\u00e9\\ud83d\\ude00\\u0001\"");
        assert_eq!(json_float(f64::NAN), "NaN");
        assert_eq!(json_float(2.0), "2.0");
    }
}
