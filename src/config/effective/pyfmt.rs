//! Python's `str()`, `repr()`, `int()` and `json.dump` over [`Value`].
//!
//! Patroni compares configuration values by their string form (`str(a) !=
//! str(b)` in `patch_config` and `deep_compare`), so `1` and `"1"` count as
//! equal at the top level while `[1]` and `["1"]` do not. Reproducing that
//! needs Python's `str` for scalars and `repr` inside containers. The
//! `repr` here is exact for everything a YAML or JSON document can hold
//! except that non-ASCII characters are never escaped, which keeps it
//! injective and is all an equality test needs.

use std::fmt::Write;

use crate::config::value::python_float_repr;
use crate::config::Value;

pub(crate) use crate::config::pytext::{py_repr, py_str};

/// Python `int(value)` for what a configuration can hold: ints, bools,
/// floats (truncated) and decimal strings with optional sign, surrounding
/// whitespace and single `_` between digits. Values outside `i64` are
/// rejected (Python would accept them; no timeout is that large).
pub(crate) fn py_int(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Float(f) if f.is_finite() && f.trunc().abs() < 9.2e18 => Ok(f.trunc() as i64),
        Value::Float(f) => Err(format!(
            "cannot convert float {} to integer",
            python_float_repr(*f)
        )),
        Value::Str(s) => parse_py_int_str(s)
            .ok_or_else(|| format!("invalid literal for int() with base 10: {}", py_repr(v))),
        Value::BigInt(s) => Err(format!("integer {s} is out of range")),
        other => Err(format!(
            "int() argument must be a string, a bytes-like object or a real number, not '{}'",
            other.type_name()
        )),
    }
}

fn parse_py_int_str(s: &str) -> Option<i64> {
    let t = crate::config::env::py_strip(s);
    let (neg, digits) = match t.as_bytes().first()? {
        b'-' => (true, &t[1..]),
        b'+' => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty()
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return None;
    }
    let mut n: i64 = 0;
    for c in digits.chars().filter(|c| *c != '_') {
        let d = c.to_digit(10)?;
        n = n.checked_mul(10)?.checked_add(i64::from(d))?;
    }
    Some(if neg { -n } else { n })
}

/// `json.dumps(value)` with Python's defaults: `", "`/`": "` separators,
/// ASCII-only output, `NaN`/`Infinity` for non-finite floats, and scalar
/// keys turned into strings. This is the format of `patroni.dynamic.json`.
pub(crate) fn json_dumps(v: &Value) -> Result<String, String> {
    let mut out = String::new();
    write_json(&mut out, v)?;
    Ok(out)
}

fn write_json(out: &mut String, v: &Value) -> Result<(), String> {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::BigInt(s) => out.push_str(s),
        Value::Float(f) => out.push_str(&json_float(*f)),
        Value::Str(s) => write_json_str(out, s),
        Value::Timestamp(_) => {
            return Err(format!(
                "Object of type {} is not JSON serializable",
                v.type_name()
            ))
        }
        Value::Seq(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(out, item)?;
            }
            out.push(']');
        }
        Value::Map(m) => {
            out.push('{');
            for (i, (k, v)) in m.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                let key = match k {
                    Value::Str(s) => s.clone(),
                    Value::Null => "null".into(),
                    Value::Bool(b) => b.to_string(),
                    Value::Int(i) => i.to_string(),
                    Value::BigInt(s) => s.clone(),
                    Value::Float(f) => json_float(*f),
                    other => {
                        return Err(format!(
                            "keys must be str, int, float, bool or None, not {}",
                            other.type_name()
                        ))
                    }
                };
                write_json_str(out, &key);
                out.push_str(": ");
                write_json(out, v)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

use crate::model::json::{json_float, write_string as write_json_str};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Map;

    #[test]
    fn str_and_repr_follow_python() {
        assert_eq!(py_str(&Value::Bool(true)), "True");
        assert_eq!(py_str(&Value::Float(1.0)), "1.0");
        let mut m = Map::new();
        m.set(
            "a",
            Value::Seq(vec![Value::Int(1), Value::Str("it's".into()), Value::Null]),
        );
        assert_eq!(py_str(&Value::Map(m)), r#"{'a': [1, "it's", None]}"#);
        assert_eq!(py_repr(&Value::Str("a'b\"c\n".into())), r#"'a\'b"c\n'"#);
    }

    #[test]
    fn float_repr_switches_notation_like_python() {
        for (f, want) in [
            (6.103515625e-05, "6.103515625e-05"),
            (0.0001, "0.0001"),
            (1e16, "1e+16"),
            (123456789012345.6, "123456789012345.6"),
            (-2.5e-7, "-2.5e-07"),
            (3.0, "3.0"),
        ] {
            assert_eq!(python_float_repr(f), want);
        }
    }

    #[test]
    fn int_conversion_matches_python() {
        assert_eq!(py_int(&Value::Str(" 3_0 ".into())), Ok(30));
        assert_eq!(py_int(&Value::Str("-7".into())), Ok(-7));
        assert_eq!(py_int(&Value::Float(29.9)), Ok(29));
        assert_eq!(py_int(&Value::Bool(true)), Ok(1));
        assert!(py_int(&Value::Str("30.5".into())).is_err());
        assert!(py_int(&Value::Str("3__0".into())).is_err());
        assert!(py_int(&Value::Null).is_err());
    }

    #[test]
    fn json_dump_is_spaced_and_ascii() {
        let mut m = Map::new();
        m.set("ttl", Value::Int(30));
        m.set("s", Value::Str("é\u{1F600}\"".into()));
        m.insert(
            Value::Int(1),
            Value::Seq(vec![Value::Float(0.5), Value::Bool(false)]),
        );
        assert_eq!(
            json_dumps(&Value::Map(m)).unwrap(),
            r#"{"ttl": 30, "s": "\u00e9\ud83d\ude00\"", "1": [0.5, false]}"#
        );
    }
}
