//! JSON text exactly as Python's `json.dumps` writes it.
//!
//! Patroni writes DCS values with `separators=(',', ':')` (compact) and REST
//! bodies and `patroni.dynamic.json` with the default `', '`/`': '`
//! (spaced). Both escape every non-ASCII character as `\uXXXX` (lower-case
//! hex, surrogate pairs above the BMP), keep object keys in insertion order,
//! and print floats with Python's `repr`. Other nodes, patronictl and
//! byte-level diffs see these bytes, so they must match.

use crate::config::value::python_float_repr;
use serde_json::Value;

/// Separators between items and between a key and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// `{"a":1,"b":[1,2]}`: DCS values.
    Compact,
    /// `{"a": 1, "b": [1, 2]}`: REST bodies, `patroni.dynamic.json`.
    Spaced,
}

/// Serialize `value` as `json.dumps` would with the given separators.
pub fn dumps(value: &Value, style: Style) -> String {
    let mut out = String::new();
    write_value(&mut out, value, style);
    out
}

/// Compact form, for values stored in the DCS.
pub fn compact(value: &Value) -> String {
    dumps(value, Style::Compact)
}

/// Spaced form, for REST bodies.
pub fn spaced(value: &Value) -> String {
    dumps(value, Style::Spaced)
}

fn write_value(out: &mut String, value: &Value, style: Style) {
    let (item_sep, key_sep) = match style {
        Style::Compact => (",", ":"),
        Style::Spaced => (", ", ": "),
    };
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => {
            if let Some(f) = n.as_f64().filter(|_| n.is_f64()) {
                out.push_str(&json_float(f));
            } else {
                out.push_str(&n.to_string());
            }
        }
        Value::String(s) => write_string(out, s),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_value(out, item, style);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, v)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                write_string(out, k);
                out.push_str(key_sep);
                write_value(out, v, style);
            }
            out.push('}');
        }
    }
}

/// `float.__repr__`, with JSON's names for the non-finite values (Python
/// writes `NaN`/`Infinity` by default).
pub fn json_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".into()
    } else if f.is_infinite() {
        if f > 0.0 { "Infinity" } else { "-Infinity" }.into()
    } else {
        python_float_repr(f)
    }
}

/// A JSON string with `ensure_ascii=True` escaping.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{08}' => out.push_str("\\b"),
            '\u{0c}' => out.push_str("\\f"),
            // Everything outside printable ASCII (' '..='~'), DEL included.
            c if !(' '..='~').contains(&c) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    out.push_str(&format!("\\u{unit:04x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn compact_and_spaced() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"a":[true,null,"x"],"c":{"d":1.5}}"#).expect("json");
        assert_eq!(compact(&v), r#"{"b":1,"a":[true,null,"x"],"c":{"d":1.5}}"#);
        assert_eq!(
            spaced(&v),
            r#"{"b": 1, "a": [true, null, "x"], "c": {"d": 1.5}}"#
        );
    }

    #[test]
    fn ascii_escaping_like_python() {
        let v = json!("é\u{1F600}\"\\\n\u{1}\u{7f}/");
        assert_eq!(compact(&v), r#""\u00e9\ud83d\ude00\"\\\n\u0001\u007f/""#);
    }

    #[test]
    fn floats_like_python() {
        assert_eq!(compact(&json!(1.0)), "1.0");
        assert_eq!(compact(&json!(1e20)), "1e+20");
        assert_eq!(compact(&json!(0.0001)), "0.0001");
        assert_eq!(compact(&json!(-3)), "-3");
        assert_eq!(compact(&json!(u64::MAX)), "18446744073709551615");
    }
}
