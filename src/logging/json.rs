//! `log.type: json`: one JSON object per record, as python-json-logger's
//! `JsonFormatter` writes it the way Patroni sets it up.
//!
//! The object holds, in this order: each field named in the format (a `%(x)`
//! placeholder or a list item), renamed when the format says so, then the
//! static fields (which override a field of the same output name in place).
//! Values keep their Python types: `levelno` and `lineno` are numbers,
//! `created` a float, attributes the record does not have are `null`.
//! Serialisation is `json.dumps` with its defaults: `", "` and `": "`
//! separators, ASCII-only output, `NaN`/`Infinity` for non-finite floats.

use super::pyfmt;
use super::record::{format_time, Attr, Record};
use crate::config::{Map, Value};

/// The fields python-json-logger extracts from a `%`-style format: every
/// match of `%\((.+?)\)`, i.e. the text after `%(` up to the next `)` (at
/// least one character, no newline), whatever the conversion after it.
pub fn fields_of(fmt: &str) -> Vec<String> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i + 1 < chars.len() {
        if chars[i] == '%' && chars[i + 1] == '(' {
            let start = i + 2;
            if start < chars.len() && chars[start] != '\n' {
                let mut k = start + 1;
                while k < chars.len() && chars[k] != ')' && chars[k] != '\n' {
                    k += 1;
                }
                if k < chars.len() && chars[k] == ')' {
                    out.push(chars[start..k].iter().collect());
                    i = k + 1;
                    continue;
                }
            }
        }
        i += 1;
    }
    out
}

/// python-json-logger's formatter, configured from Patroni's `log` section.
#[derive(Debug, Clone)]
pub struct JsonFormatter {
    fields: Vec<String>,
    renames: Vec<(String, String)>,
    static_fields: Map,
    datefmt: Option<String>,
}

impl JsonFormatter {
    /// `fields` in output order; `renames` maps a field (or static field)
    /// name to the key it is written under.
    pub fn new(
        fields: Vec<String>,
        renames: Vec<(String, String)>,
        static_fields: Map,
        datefmt: Option<&str>,
    ) -> JsonFormatter {
        JsonFormatter {
            fields,
            renames,
            static_fields,
            datefmt: datefmt.filter(|d| !d.is_empty()).map(str::to_owned),
        }
    }

    fn rename<'a>(&'a self, key: &'a str) -> &'a str {
        self.renames
            .iter()
            .find(|(from, _)| from == key)
            .map(|(_, to)| to.as_str())
            .unwrap_or(key)
    }

    /// One JSON line, without the trailing newline.
    pub fn format(&self, rec: &Record) -> String {
        // An insertion-ordered dict: a repeated key keeps its first position.
        let mut entries: Vec<(String, String)> = Vec::new();
        let mut put = |key: &str, json: String| match entries.iter_mut().find(|(k, _)| k == key) {
            Some(slot) => slot.1 = json,
            None => entries.push((key.to_owned(), json)),
        };
        // asctime is only set on the record when the format asks for it.
        let wants_time = self.fields.iter().any(|f| f == "asctime");
        for field in &self.fields {
            let json = if field == "asctime" && wants_time {
                let t = format_time(rec.created, rec.msecs(), self.datefmt.as_deref());
                attr_json(&Attr::Str(t))
            } else {
                attr_json(&rec.attr(field).unwrap_or(Attr::None))
            };
            put(self.rename(field), json);
        }
        for (key, value) in self.static_fields.iter() {
            let key = json_key(key);
            put(self.rename(&key), value_json(value));
        }
        // The error detail travels in the record's extra dict, after the
        // static fields.
        if let Some(exc) = rec.exc_text.as_deref().filter(|t| !t.is_empty()) {
            put(
                self.rename("exc_info"),
                attr_json(&Attr::Str(exc.to_owned())),
            );
        }
        let mut out = String::from("{");
        for (i, (k, v)) in entries.iter().enumerate() {
            if i > 0 {
                out.push_str(", ");
            }
            pyfmt::json_str(k, &mut out);
            out.push_str(": ");
            out.push_str(v);
        }
        out.push('}');
        out
    }
}

fn attr_json(a: &Attr) -> String {
    match a {
        Attr::Str(s) => {
            let mut out = String::new();
            pyfmt::json_str(s, &mut out);
            out
        }
        Attr::Int(i) => i.to_string(),
        Attr::Float(f) => pyfmt::json_float(*f),
        Attr::None => "null".to_owned(),
    }
}

/// `json.dumps` turns scalar keys into strings. Timestamps cannot be keys in
/// Python (it raises); we write their ISO form instead of failing the record.
fn json_key(k: &Value) -> String {
    match k {
        Value::Str(s) => s.clone(),
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(s) => s.clone(),
        Value::Float(f) => pyfmt::json_float(*f),
        Value::Timestamp(t) => iso(t),
        other => other.to_string(),
    }
}

/// A datetime/date as python-json-logger's encoder writes it: `isoformat()`.
fn iso(t: &crate::config::value::Timestamp) -> String {
    let date = format!("{:04}-{:02}-{:02}", t.year, t.month, t.day);
    let Some(tod) = &t.time else {
        return date;
    };
    let mut s = format!("{date}T{:02}:{:02}:{:02}", tod.hour, tod.minute, tod.second);
    if tod.microsecond != 0 {
        s.push_str(&format!(".{:06}", tod.microsecond));
    }
    if let Some(off) = tod.utc_offset {
        let sign = if off < 0 { '-' } else { '+' };
        let a = off.unsigned_abs();
        s.push_str(&format!("{sign}{:02}:{:02}", a / 3600, a % 3600 / 60));
        if a % 60 != 0 {
            s.push_str(&format!(":{:02}", a % 60));
        }
    }
    s
}

/// A configuration value (a static field) as `json.dumps` writes it.
pub fn value_json(v: &Value) -> String {
    match v {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::BigInt(s) => s.clone(),
        Value::Float(f) => pyfmt::json_float(*f),
        Value::Str(s) => attr_json(&Attr::Str(s.clone())),
        Value::Timestamp(t) => attr_json(&Attr::Str(iso(t))),
        Value::Seq(items) => {
            let parts: Vec<String> = items.iter().map(value_json).collect();
            format!("[{}]", parts.join(", "))
        }
        Value::Map(m) => {
            let parts: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{}: {}", attr_json(&Attr::Str(json_key(k))), value_json(v)))
                .collect();
            format!("{{{}}}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::logging::record;

    #[test]
    fn field_extraction_matches_the_regex() {
        assert_eq!(
            fields_of("%(asctime)s %(levelname)-8s: %(message)d"),
            ["asctime", "levelname", "message"]
        );
        assert_eq!(fields_of("%())s %(a(b)c)"), [")", "a(b"]);
        assert_eq!(fields_of("%(a\nb)s %(c)s"), ["c"]);
        assert!(fields_of("%(").is_empty());
    }

    #[test]
    fn object_layout_renames_and_static_fields() {
        let mut statics = Map::new();
        statics.set("app", Value::Str("patroni".into()));
        statics.set("level", Value::Int(1));
        statics.set("tags", Value::Seq(vec![Value::Bool(true), Value::Null]));
        let f = JsonFormatter::new(
            vec![
                "levelname".into(),
                "lineno".into(),
                "created".into(),
                "user".into(),
            ],
            vec![("levelname".into(), "level".into())],
            statics,
            None,
        );
        let mut rec = Record::now("patroni", record::INFO, "x".into(), "a.py", 3);
        rec.created = 1.5;
        assert_eq!(
            f.format(&rec),
            "{\"level\": 1, \"lineno\": 3, \"created\": 1.5, \"user\": null, \
             \"app\": \"patroni\", \"tags\": [true, null]}"
        );
        rec.exc_text = Some("boom\nCaused by: io".into());
        assert!(f
            .format(&rec)
            .ends_with(", \"exc_info\": \"boom\\nCaused by: io\"}"));
    }
}
