//! Python's `str()` of a configuration value, which is what Patroni writes
//! into PostgreSQL's files (`'{0}'.format(value)`).
//!
//! Scalars print as Python prints them (`True`, `None`, `0.5`, `1e+20`),
//! dates and datetimes in ISO form with a space, and containers as their
//! `repr` (a list in `postgresql.parameters` ends up as `['a', 'b']`,
//! which PostgreSQL then rejects, exactly as it does under Patroni).

use std::fmt::Write;

use crate::config::value::{python_float_repr, Timestamp};
use crate::config::Value;

/// Python `str(value)`.
pub fn py_str(v: &Value) -> String {
    match v {
        Value::Str(s) => s.clone(),
        Value::Timestamp(t) => timestamp_str(t),
        Value::Seq(_) | Value::Map(_) => {
            let mut out = String::new();
            repr(&mut out, v);
            out
        }
        Value::Null => "None".into(),
        Value::Bool(b) => if *b { "True" } else { "False" }.into(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(s) => s.clone(),
        Value::Float(f) => python_float_repr(*f),
    }
}

fn timestamp_str(t: &Timestamp) -> String {
    let mut s = format!("{:04}-{:02}-{:02}", t.year, t.month, t.day);
    if let Some(tm) = &t.time {
        let _ = write!(s, " {:02}:{:02}:{:02}", tm.hour, tm.minute, tm.second);
        if tm.microsecond != 0 {
            let _ = write!(s, ".{:06}", tm.microsecond);
        }
        if let Some(off) = tm.utc_offset {
            let sign = if off < 0 { '-' } else { '+' };
            let off = off.unsigned_abs();
            let _ = write!(s, "{sign}{:02}:{:02}", off / 3600, off / 60 % 60);
            if off % 60 != 0 {
                let _ = write!(s, ":{:02}", off % 60);
            }
        }
    }
    s
}

fn repr(out: &mut String, v: &Value) {
    match v {
        Value::Str(s) => str_repr(out, s),
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(out, item);
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, item)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                repr(out, k);
                out.push_str(": ");
                repr(out, item);
            }
            out.push('}');
        }
        Value::Timestamp(t) => match &t.time {
            None => {
                let _ = write!(out, "datetime.date({}, {}, {})", t.year, t.month, t.day);
            }
            // Rare enough in PostgreSQL parameters that the exact tzinfo
            // repr is not reproduced; the date and time parts are.
            Some(tm) => {
                let _ = write!(
                    out,
                    "datetime.datetime({}, {}, {}, {}, {}",
                    t.year, t.month, t.day, tm.hour, tm.minute
                );
                if tm.second != 0 || tm.microsecond != 0 {
                    let _ = write!(out, ", {}", tm.second);
                }
                if tm.microsecond != 0 {
                    let _ = write!(out, ", {}", tm.microsecond);
                }
                out.push(')');
            }
        },
        other => out.push_str(&py_str(other)),
    }
}

/// Python's `repr(str)`: single quotes unless the text holds a single
/// quote and no double quote; backslash escapes for the quote, `\\`,
/// `\n`, `\r`, `\t` and other non-printable characters.
fn str_repr(out: &mut String, s: &str) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
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
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if (0x80..0xa0).contains(&(c as u32)) => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::TimeOfDay;
    use crate::config::Map;

    #[test]
    fn scalars_and_containers() {
        assert_eq!(py_str(&Value::Bool(true)), "True");
        assert_eq!(py_str(&Value::Null), "None");
        assert_eq!(py_str(&Value::Float(1e20)), "1e+20");
        let mut m = Map::new();
        m.set(
            "k",
            Value::Seq(vec![Value::Str("it's".into()), Value::Int(1)]),
        );
        assert_eq!(py_str(&Value::Map(m)), "{'k': [\"it's\", 1]}");
        assert_eq!(
            py_str(&Value::Seq(vec![Value::Str("a\\b'\"\n".into())])),
            "['a\\\\b\\'\"\\n']"
        );
    }

    #[test]
    fn timestamps_like_datetime_str() {
        let date = Timestamp {
            year: 2024,
            month: 2,
            day: 9,
            time: None,
        };
        assert_eq!(py_str(&Value::Timestamp(date.clone())), "2024-02-09");
        let dt = Timestamp {
            time: Some(TimeOfDay {
                hour: 1,
                minute: 2,
                second: 3,
                microsecond: 40,
                utc_offset: Some(-19800),
            }),
            ..date
        };
        assert_eq!(
            py_str(&Value::Timestamp(dt)),
            "2024-02-09 01:02:03.000040-05:30"
        );
    }
}
