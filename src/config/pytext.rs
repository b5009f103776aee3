//! Python's `str()` and `repr()` of configuration values, in one place.
//!
//! Patroni shows values the way Python formats them (`str(value)`, which
//! for containers means `repr` of their items: `{'port': '5432'}`,
//! `[1, 'a']`, `datetime.date(2024, 1, 2)`): in `--validate-config` lines,
//! in REST answers that embed configuration values, and in comparisons
//! (`patch_config` and `deep_compare` compare `str()` forms). Operators and
//! tests compare these texts with Python Patroni's, so we reproduce the
//! formatting rather than printing JSON.

use crate::config::value::{TimeOfDay, Timestamp, Value};
use regex::Regex;
use std::sync::OnceLock;

/// Python `str(value)`.
pub fn py_str(value: &Value) -> String {
    match value {
        Value::Str(s) => s.clone(),
        Value::Timestamp(t) => timestamp_str(t),
        other => py_repr(other),
    }
}

/// Python `repr(value)`.
pub fn py_repr(value: &Value) -> String {
    let mut out = String::new();
    write_repr(&mut out, value);
    out
}

fn write_repr(out: &mut String, value: &Value) {
    match value {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Int(i) => out.push_str(&i.to_string()),
        Value::BigInt(s) => out.push_str(s),
        Value::Float(f) => out.push_str(&float_repr(*f)),
        Value::Str(s) => out.push_str(&str_repr(s)),
        Value::Timestamp(t) => out.push_str(&timestamp_repr(t)),
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, item);
            }
            out.push(']');
        }
        Value::Map(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(out, k);
                out.push_str(": ");
                write_repr(out, v);
            }
            out.push('}');
        }
    }
}

/// Python `repr(float)` (shared with the rest of the configuration code).
pub use crate::config::value::python_float_repr as float_repr;

/// Python `repr(str)`: single quotes unless the text holds a single quote
/// and no double quote; control and other non-printable characters escaped.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if !is_printable(c) => {
                let n = c as u32;
                if n < 0x100 {
                    out.push_str(&format!("\\x{n:02x}"));
                } else if n < 0x10000 {
                    out.push_str(&format!("\\u{n:04x}"));
                } else {
                    out.push_str(&format!("\\U{n:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str.isprintable` for one character: false for control,
/// format, surrogate, private-use and unassigned code points and for
/// separators other than the ASCII space. The categories come from the
/// `regex` crate's Unicode tables, which may be a newer Unicode version than
/// the Python build's (characters assigned since then differ).
fn is_printable(c: char) -> bool {
    static NON_PRINTABLE: OnceLock<Option<Regex>> = OnceLock::new();
    if c == ' ' {
        return true;
    }
    if c.is_ascii() {
        return !c.is_ascii_control();
    }
    let re = NON_PRINTABLE
        .get_or_init(|| Regex::new(r"^[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}\p{Zs}]$").ok());
    let mut buf = [0u8; 4];
    match re {
        Some(re) => !re.is_match(c.encode_utf8(&mut buf)),
        None => !c.is_control(),
    }
}

/// `str(datetime.date)` / `str(datetime.datetime)`: ISO format with a space.
fn timestamp_str(t: &Timestamp) -> String {
    let date = format!("{:04}-{:02}-{:02}", t.year, t.month, t.day);
    let Some(time) = &t.time else {
        return date;
    };
    let mut out = format!(
        "{date} {:02}:{:02}:{:02}",
        time.hour, time.minute, time.second
    );
    if time.microsecond != 0 {
        out.push_str(&format!(".{:06}", time.microsecond));
    }
    if let Some(offset) = time.utc_offset {
        let sign = if offset < 0 { '-' } else { '+' };
        let abs = offset.unsigned_abs();
        out.push_str(&format!("{sign}{:02}:{:02}", abs / 3600, abs % 3600 / 60));
        if abs % 60 != 0 {
            out.push_str(&format!(":{:02}", abs % 60));
        }
    }
    out
}

/// `repr(datetime.date)` / `repr(datetime.datetime)`: trailing zero
/// seconds/microseconds are left out, as Python does.
fn timestamp_repr(t: &Timestamp) -> String {
    let Some(time) = &t.time else {
        return format!("datetime.date({}, {}, {})", t.year, t.month, t.day);
    };
    let TimeOfDay {
        hour,
        minute,
        second,
        microsecond,
        utc_offset,
    } = time;
    let mut out = format!(
        "datetime.datetime({}, {}, {}, {hour}, {minute}",
        t.year, t.month, t.day
    );
    if *microsecond != 0 {
        out.push_str(&format!(", {second}, {microsecond}"));
    } else if *second != 0 {
        out.push_str(&format!(", {second}"));
    }
    if let Some(offset) = utc_offset {
        out.push_str(", tzinfo=");
        out.push_str(&timezone_repr(*offset));
    }
    out.push(')');
    out
}

fn timezone_repr(offset: i32) -> String {
    if offset == 0 {
        return "datetime.timezone.utc".into();
    }
    let days = offset.div_euclid(86_400);
    let seconds = offset.rem_euclid(86_400);
    let delta = if days == 0 {
        format!("datetime.timedelta(seconds={seconds})")
    } else {
        format!("datetime.timedelta(days={days}, seconds={seconds})")
    };
    format!("datetime.timezone({delta})")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::Map;

    #[test]
    fn strings_are_bare_at_top_level_and_quoted_inside_containers() {
        let s = Value::Str("it's".into());
        assert_eq!(py_str(&s), "it's");
        assert_eq!(py_repr(&Value::Seq(vec![s])), "[\"it's\"]");
        assert_eq!(str_repr("a'b\"c"), "'a\\'b\"c'");
        assert_eq!(str_repr("tab\there\u{7}"), "'tab\\there\\x07'");
        assert_eq!(str_repr("é"), "'é'");
        assert_eq!(
            str_repr("\u{a0}\u{2028}\u{200b}\u{feff}"),
            "'\\xa0\\u2028\\u200b\\ufeff'"
        );
        assert_eq!(str_repr("\u{18cd6}\u{e000}"), "'\\U00018cd6\\ue000'");
        assert_eq!(str_repr("中😀"), "'中😀'");
    }

    #[test]
    fn floats_format_like_python_repr() {
        for (f, want) in [
            (6.103515625e-05, "6.103515625e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123.5, "123.5"),
            (-2.0, "-2.0"),
            (9.223372036854776e18, "9.223372036854776e+18"),
        ] {
            assert_eq!(float_repr(f), want);
        }
    }

    #[test]
    fn dicts_and_scalars_format_like_python() {
        let mut m = Map::new();
        m.set("port", Value::Int(5432));
        m.set("on", Value::Bool(true));
        m.insert(Value::Int(1), Value::Null);
        m.set("f", Value::Float(1.0));
        assert_eq!(
            py_str(&Value::Map(m)),
            "{'port': 5432, 'on': True, 1: None, 'f': 1.0}"
        );
    }

    #[test]
    fn timestamps_format_like_datetime() {
        let date = Timestamp {
            year: 2024,
            month: 1,
            day: 2,
            time: None,
        };
        assert_eq!(py_str(&Value::Timestamp(date.clone())), "2024-01-02");
        assert_eq!(
            py_repr(&Value::Timestamp(date)),
            "datetime.date(2024, 1, 2)"
        );
        let dt = Timestamp {
            year: 2001,
            month: 12,
            day: 14,
            time: Some(TimeOfDay {
                hour: 21,
                minute: 59,
                second: 43,
                microsecond: 100_000,
                utc_offset: Some(-5 * 3600),
            }),
        };
        assert_eq!(
            py_str(&Value::Timestamp(dt.clone())),
            "2001-12-14 21:59:43.100000-05:00"
        );
        assert_eq!(
            py_repr(&Value::Timestamp(dt)),
            "datetime.datetime(2001, 12, 14, 21, 59, 43, 100000, tzinfo=datetime.timezone(datetime.timedelta(days=-1, seconds=68400)))"
        );
    }
}
