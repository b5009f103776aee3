//! The `log:` configuration section, read with Patroni's defaults and its
//! lenient handling of odd values.
//!
//! Patroni does not validate this section at start-up (only
//! `--validate-config` does); it feeds the values to Python's logging, which
//! either accepts them, falls back with a warning, or raises. We mirror that:
//! where Patroni falls back (a format of the wrong type, a non-string date
//! format) the fallback is taken and the warning Patroni would log is kept in
//! [`LogSettings::warnings`]; where Python raises (an unknown level name, a
//! non-numeric `file_size`) parsing fails with a [`SettingsError`].

use std::path::PathBuf;

use crate::config::{Map, Value};

use super::record;

/// `PatroniLogger.DEFAULT_FORMAT`.
pub const DEFAULT_FORMAT: &str = "%(asctime)s %(levelname)s: %(message)s";
pub const DEFAULT_MAX_QUEUE_SIZE: i64 = 1000;
pub const DEFAULT_FILE_SIZE: i64 = 25_000_000;
pub const DEFAULT_FILE_NUM: i64 = 4;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SettingsError {
    #[error("log section must be a mapping, not {0}")]
    NotAMap(&'static str),
    #[error("log.{key}: unknown level {value:?} (expected DEBUG, INFO, WARNING, WARN, ERROR, CRITICAL, FATAL, NOTSET or a number)")]
    UnknownLevel { key: String, value: String },
    #[error("log.{key}: level must be a string or an integer, not {ty}")]
    LevelType { key: String, ty: &'static str },
    #[error("log.{key}: invalid integer {value:?}")]
    NotAnInteger { key: String, value: String },
    #[error("log.{key}: expected {expected}, got {ty}")]
    WrongType {
        key: String,
        expected: &'static str,
        ty: &'static str,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogType {
    Plain,
    Json,
}

/// What the format setting resolved to for the chosen log type.
#[derive(Debug, Clone, PartialEq)]
pub enum FormatSpec {
    /// A `%`-style format string (plain type, or json with a string format).
    Text(String),
    /// json with a list format: field names in order, and renames.
    Fields {
        fields: Vec<String>,
        renames: Vec<(String, String)>,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct LogSettings {
    pub log_type: LogType,
    /// Root logger level (Python level number).
    pub level: i64,
    /// `traceback_level: DEBUG`: exceptions are logged in full only at DEBUG.
    pub traceback_debug: bool,
    pub format: FormatSpec,
    pub dateformat: Option<String>,
    pub static_fields: Map,
    /// `<= 0` means unbounded, as for Python's `queue.Queue`.
    pub max_queue_size: i64,
    pub dir: Option<PathBuf>,
    /// File mode for `patroni.log`; `None`: `0o666 & ~umask`.
    pub mode: Option<u32>,
    pub file_size: i64,
    pub file_num: i64,
    /// Per-logger levels, e.g. `patroni.dcs` -> DEBUG.
    pub loggers: Vec<(String, i64)>,
    pub deduplicate_heartbeat_logs: bool,
    /// Warnings Patroni would log when applying these settings.
    pub warnings: Vec<String>,
    /// Errors Patroni would log (it still starts, with a fallback).
    pub errors: Vec<String>,
}

impl Default for LogSettings {
    fn default() -> LogSettings {
        LogSettings {
            log_type: LogType::Plain,
            level: record::INFO,
            traceback_debug: false,
            format: FormatSpec::Text(DEFAULT_FORMAT.to_owned()),
            dateformat: None,
            static_fields: Map::new(),
            max_queue_size: DEFAULT_MAX_QUEUE_SIZE,
            dir: None,
            mode: None,
            file_size: DEFAULT_FILE_SIZE,
            file_num: DEFAULT_FILE_NUM,
            loggers: Vec::new(),
            deduplicate_heartbeat_logs: false,
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }
}

/// Python's `logging._checkLevel`: a level number, or one of the registered
/// names (case-sensitive).
pub fn parse_level(key: &str, v: &Value) -> Result<i64, SettingsError> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Str(s) => match s.as_str() {
            "CRITICAL" | "FATAL" => Ok(record::CRITICAL),
            "ERROR" => Ok(record::ERROR),
            "WARNING" | "WARN" => Ok(record::WARNING),
            "INFO" => Ok(record::INFO),
            "DEBUG" => Ok(record::DEBUG),
            "NOTSET" => Ok(0),
            _ => Err(SettingsError::UnknownLevel {
                key: key.to_owned(),
                value: s.clone(),
            }),
        },
        other => Err(SettingsError::LevelType {
            key: key.to_owned(),
            ty: other.type_name(),
        }),
    }
}

/// Python's `int(x)` for the numeric settings: ints, bools, floats
/// (truncated) and decimal strings (surrounding whitespace and `_` allowed).
fn python_int(key: &str, v: &Value) -> Result<i64, SettingsError> {
    let bad = |s: String| SettingsError::NotAnInteger {
        key: key.to_owned(),
        value: s,
    };
    match v {
        Value::Int(i) => Ok(*i),
        Value::Bool(b) => Ok(i64::from(*b)),
        Value::Float(f) if f.is_finite() && f.abs() < 9.2e18 => Ok(f.trunc() as i64),
        Value::Str(s) => {
            let t = s.trim();
            let digits = t.strip_prefix(['+', '-']).unwrap_or(t);
            let well_formed = !digits.is_empty()
                && !digits.starts_with('_')
                && !digits.ends_with('_')
                && !digits.contains("__")
                && digits.chars().all(|c| c.is_ascii_digit() || c == '_');
            if !well_formed {
                return Err(bad(s.clone()));
            }
            t.replace('_', "").parse().map_err(|_| bad(s.clone()))
        }
        other => Err(SettingsError::WrongType {
            key: key.to_owned(),
            expected: "an integer",
            ty: other.type_name(),
        }),
    }
}

/// Patroni reads `mode` with its `parse_int` (so `"0640"` is octal and
/// anything unparsable means "not set"). Values outside `0..=0o7777` cannot
/// be file modes; they are treated as not set.
fn parse_mode(v: &Value) -> Option<u32> {
    let n = crate::config::units::parse_int(v, None)?;
    u32::try_from(n).ok().filter(|m| *m <= 0o7777)
}

impl LogSettings {
    /// Settings from the `log` section; `Value::Null` (no section) gives
    /// the defaults.
    pub fn from_value(section: &Value) -> Result<LogSettings, SettingsError> {
        let map = match section {
            Value::Null => return Ok(LogSettings::default()),
            Value::Map(m) => m,
            other => return Err(SettingsError::NotAMap(other.type_name())),
        };
        Self::from_map(map)
    }

    pub fn from_map(map: &Map) -> Result<LogSettings, SettingsError> {
        let mut s = LogSettings::default();
        if let Some(v) = map.get("type") {
            // Patroni compares with 'json'; anything else is plain.
            if v.as_str() == Some("json") {
                s.log_type = LogType::Json;
            }
        }
        if let Some(v) = map.get("level") {
            s.level = parse_level("level", v)?;
        }
        if let Some(v) = map.get("traceback_level") {
            match v {
                Value::Str(t) => s.traceback_debug = t.eq_ignore_ascii_case("debug"),
                other => {
                    return Err(SettingsError::WrongType {
                        key: "traceback_level".into(),
                        expected: "a string",
                        ty: other.type_name(),
                    })
                }
            }
        }
        match map.get("dateformat") {
            None | Some(Value::Null) => {}
            Some(Value::Str(d)) if d.is_empty() => {}
            Some(Value::Str(d)) => s.dateformat = Some(d.clone()),
            Some(v) if !v.truthy() => {}
            Some(other) => s.warnings.push(format!(
                "Expected log dateformat to be a string, but got \"{}\"",
                other.type_name()
            )),
        }
        let format = map.get("format");
        s.format = match s.log_type {
            LogType::Plain => plain_format(format, &mut s.warnings),
            LogType::Json => json_format(format, &mut s.warnings),
        };
        // Only the json formatter reads static_fields. When it cannot use
        // them, Patroni logs an error and falls back to a plain formatter
        // over the same fields.
        if s.log_type == LogType::Json {
            match map.get("static_fields") {
                None | Some(Value::Null) => {}
                Some(Value::Map(m)) => s.static_fields = m.clone(),
                Some(Value::Str(t)) if t.is_empty() => {}
                Some(other) => {
                    s.errors.push(format!(
                        "Failed to initialize JsonFormatter: static_fields must be a mapping, not {}. \
                         Falling back to the plain logger",
                        other.type_name()
                    ));
                    s.log_type = LogType::Plain;
                    s.format = FormatSpec::Text(s.format.as_percent_format());
                }
            }
        }
        if let Some(v) = map.get("max_queue_size") {
            s.max_queue_size = python_int("max_queue_size", v)?;
        }
        if let Some(v) = map.get("dir") {
            match v {
                Value::Str(d) => s.dir = Some(PathBuf::from(d)),
                other => {
                    return Err(SettingsError::WrongType {
                        key: "dir".into(),
                        expected: "a string",
                        ty: other.type_name(),
                    })
                }
            }
        }
        s.mode = map.get("mode").and_then(parse_mode);
        if let Some(v) = map.get("file_size") {
            s.file_size = python_int("file_size", v)?;
        }
        if let Some(v) = map.get("file_num") {
            s.file_num = python_int("file_num", v)?;
        }
        match map.get("loggers") {
            None => {}
            Some(v) if !v.truthy() => {}
            Some(Value::Map(m)) => {
                for (k, v) in m.iter() {
                    let name = k.to_string();
                    let level = parse_level(&format!("loggers.{name}"), v)?;
                    s.loggers.push((name, level));
                }
            }
            Some(other) => {
                return Err(SettingsError::WrongType {
                    key: "loggers".into(),
                    expected: "a mapping",
                    ty: other.type_name(),
                })
            }
        }
        if let Some(v) = map.get("deduplicate_heartbeat_logs") {
            s.deduplicate_heartbeat_logs = v.truthy();
        }
        Ok(s)
    }

    /// The level that applies to logger `name`: the most specific configured
    /// ancestor (dotted prefix) whose level is not NOTSET, else the root
    /// level, like Python's `Logger.getEffectiveLevel()`.
    pub fn effective_level(&self, name: &str) -> i64 {
        let mut best: Option<(usize, i64)> = None;
        for (logger, level) in &self.loggers {
            if *level == 0 {
                continue;
            }
            let matches = name == logger
                || (name.len() > logger.len()
                    && name.starts_with(logger.as_str())
                    && name.as_bytes()[logger.len()] == b'.');
            if matches && best.is_none_or(|(len, _)| logger.len() > len) {
                best = Some((logger.len(), *level));
            }
        }
        best.map(|(_, l)| l).unwrap_or(self.level)
    }

    /// The most verbose level any logger can emit at, for `log::set_max_level`.
    pub fn most_verbose_level(&self) -> i64 {
        self.loggers
            .iter()
            .map(|(_, l)| *l)
            .filter(|l| *l != 0)
            .chain(std::iter::once(self.level))
            .min()
            .unwrap_or(self.level)
    }
}

impl FormatSpec {
    /// The `%`-style string equivalent: a list of fields becomes
    /// `%(a)s %(b)s`, as Patroni builds it for python-json-logger.
    pub fn as_percent_format(&self) -> String {
        match self {
            FormatSpec::Text(t) => t.clone(),
            FormatSpec::Fields { fields, .. } => fields
                .iter()
                .map(|f| format!("%({f})s"))
                .collect::<Vec<_>>()
                .join(" "),
        }
    }
}

fn plain_format(v: Option<&Value>, warnings: &mut Vec<String>) -> FormatSpec {
    match v {
        None => FormatSpec::Text(DEFAULT_FORMAT.to_owned()),
        Some(Value::Str(f)) => FormatSpec::Text(f.clone()),
        Some(other) => {
            warnings.push(format!(
                "Expected log format to be a string when log type is plain, but got \"{}\"",
                other.type_name()
            ));
            FormatSpec::Text(DEFAULT_FORMAT.to_owned())
        }
    }
}

fn json_format(v: Option<&Value>, warnings: &mut Vec<String>) -> FormatSpec {
    match v {
        None => FormatSpec::Text(DEFAULT_FORMAT.to_owned()),
        Some(Value::Str(f)) => FormatSpec::Text(f.clone()),
        Some(Value::Seq(items)) => {
            let mut fields = Vec::new();
            let mut renames: Vec<(String, String)> = Vec::new();
            for item in items {
                match item {
                    Value::Str(f) => fields.push(f.clone()),
                    Value::Map(m) => {
                        for (k, to) in m.iter() {
                            match to {
                                Value::Str(to) => {
                                    let from = k.to_string();
                                    fields.push(from.clone());
                                    match renames.iter_mut().find(|(f, _)| *f == from) {
                                        Some(slot) => slot.1 = to.clone(),
                                        None => renames.push((from, to.clone())),
                                    }
                                }
                                other => warnings.push(format!(
                                    "Expected renamed log field to be a string, but got \"{}\"",
                                    other.type_name()
                                )),
                            }
                        }
                    }
                    other => warnings.push(format!(
                        "Expected each item of log format to be a string or dictionary, but got \"{}\"",
                        other.type_name()
                    )),
                }
            }
            if fields.is_empty() {
                FormatSpec::Text(DEFAULT_FORMAT.to_owned())
            } else {
                FormatSpec::Fields { fields, renames }
            }
        }
        Some(other) => {
            warnings.push(format!(
                "Expected log format to be a string or a list, but got \"{}\"",
                other.type_name()
            ));
            FormatSpec::Text(DEFAULT_FORMAT.to_owned())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, Value)]) -> Result<LogSettings, SettingsError> {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.set(k, v.clone());
        }
        LogSettings::from_value(&Value::Map(m))
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn defaults() {
        let d = LogSettings::from_value(&Value::Null).expect("defaults");
        assert_eq!(d.level, 20);
        assert_eq!(d.format, FormatSpec::Text(DEFAULT_FORMAT.into()));
        assert_eq!(
            (d.file_size, d.file_num, d.max_queue_size),
            (25_000_000, 4, 1000)
        );
        assert!(d.dir.is_none() && d.mode.is_none() && !d.traceback_debug);
    }

    #[test]
    fn levels_like_python() {
        assert_eq!(parse(&[("level", s("WARN"))]).map(|x| x.level), Ok(30));
        assert_eq!(parse(&[("level", Value::Int(15))]).map(|x| x.level), Ok(15));
        assert!(matches!(
            parse(&[("level", s("info"))]),
            Err(SettingsError::UnknownLevel { .. })
        ));
        let t = parse(&[("traceback_level", s("debug"))]).expect("ok");
        assert!(t.traceback_debug);
    }

    #[test]
    fn numbers_accept_python_int_inputs() {
        let x = parse(&[
            ("file_size", s(" 1_000 ")),
            ("file_num", Value::Float(2.9)),
            ("mode", s("0600")),
        ])
        .expect("ok");
        assert_eq!((x.file_size, x.file_num, x.mode), (1000, 2, Some(0o600)));
        assert!(parse(&[("file_size", s("10MB"))]).is_err());
        assert_eq!(parse(&[("mode", s("rw"))]).map(|x| x.mode), Ok(None));
        assert_eq!(
            parse(&[("mode", s(" 0x1a4 "))]).map(|x| x.mode),
            Ok(Some(0o644))
        );
        assert_eq!(parse(&[("mode", Value::Int(-1))]).map(|x| x.mode), Ok(None));
    }

    #[test]
    fn json_list_format_with_renames() {
        let mut rename = Map::new();
        rename.set("levelname", s("level"));
        rename.set("bad", Value::Int(1));
        let x = parse(&[
            ("type", s("json")),
            (
                "format",
                Value::Seq(vec![s("asctime"), Value::Map(rename), Value::Int(3)]),
            ),
        ])
        .expect("ok");
        assert_eq!(
            x.format,
            FormatSpec::Fields {
                fields: vec!["asctime".into(), "levelname".into()],
                renames: vec![("levelname".into(), "level".into())],
            }
        );
        assert_eq!(x.warnings.len(), 2, "{:?}", x.warnings);
    }

    #[test]
    fn unusable_static_fields_fall_back_to_plain() {
        let x = parse(&[
            ("type", s("json")),
            ("format", Value::Seq(vec![s("levelname"), s("message")])),
            ("static_fields", Value::Seq(vec![s("a")])),
        ])
        .expect("ok");
        assert_eq!(x.log_type, LogType::Plain);
        assert_eq!(
            x.format,
            FormatSpec::Text("%(levelname)s %(message)s".into())
        );
        assert_eq!(x.errors.len(), 1);
        let plain = parse(&[("static_fields", Value::Int(3))]).expect("ok");
        assert!(plain.errors.is_empty() && plain.static_fields.is_empty());
    }

    #[test]
    fn plain_type_with_list_format_falls_back() {
        let x = parse(&[("format", Value::Seq(vec![s("message")]))]).expect("ok");
        assert_eq!(x.format, FormatSpec::Text(DEFAULT_FORMAT.into()));
        assert_eq!(x.warnings.len(), 1);
    }

    #[test]
    fn hierarchical_levels() {
        let x = parse(&[(
            "loggers",
            Value::Map(
                [
                    (s("patroni.dcs"), s("DEBUG")),
                    (s("patroni.dcs.etcd3"), s("ERROR")),
                    (s("urllib3"), s("NOTSET")),
                ]
                .into_iter()
                .collect(),
            ),
        )])
        .expect("ok");
        assert_eq!(x.effective_level("patroni.dcs.kubernetes"), 10);
        assert_eq!(x.effective_level("patroni.dcs.etcd3"), 40);
        assert_eq!(x.effective_level("patroni.dcsx"), 20);
        assert_eq!(x.effective_level("urllib3.pool"), 20);
        assert_eq!(x.most_verbose_level(), 10);
    }
}
