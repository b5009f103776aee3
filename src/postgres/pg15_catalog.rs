//! A [`GucCatalog`] for PostgreSQL 15, from PostgreSQL's own description of
//! its settings.
//!
//! Patroni validates parameter values against a table of GUC types and
//! ranges per version. For PostgreSQL 15 that table agrees with what the
//! server reports in `pg_settings` (type, unit, bounds, enum values), so
//! we validate with a capture of `pg_settings` from PostgreSQL 15.20
//! (`data/pg15_settings.tsv`) and apply Patroni's rules to it:
//!
//! - `bool`: kept if it parses as a boolean, else dropped;
//! - `integer`/`real`: parsed in the setting's unit; below the minimum or
//!   above the maximum it is replaced by that bound, unparsable is dropped;
//! - `enum`: kept if its lower-cased text is one of the values; enums that
//!   also accept `on`/`off` accept every boolean spelling;
//! - `string`: kept.
//!
//! Settings PostgreSQL marks `internal` (read-only facts such as
//! `block_size`) have no validator; like any name without one, they are
//! kept only if `postgres --describe-config` lists them, which it does not.
//! Other versions are passed through unvalidated.

use std::collections::HashMap;

use crate::config::units::{parse_bool, parse_int, parse_real};
use crate::config::Value;
use crate::postgres::guc::GucCatalog;
use crate::postgres::pystr::py_str;

const TABLE: &str = include_str!("data/pg15_settings.tsv");

/// Settings in the capture that Patroni has no validator for although
/// PostgreSQL does not mark them internal (distribution patches).
const NOT_VALIDATED: [&str; 1] = ["composite_type_mismatch"];

#[derive(Debug, Clone)]
enum Kind {
    Bool,
    Integer {
        unit: Option<String>,
        min: i64,
        max: i64,
    },
    Real {
        unit: Option<String>,
        min: f64,
        max: f64,
        min_text: String,
        max_text: String,
    },
    Enum {
        values: Vec<String>,
        accepts_bool: bool,
    },
    Text,
}

#[derive(Debug, Clone)]
struct Setting {
    /// `None`: no validator (internal or unknown to Patroni's table).
    kind: Option<Kind>,
    /// Listed by `postgres --describe-config`.
    described: bool,
}

/// PostgreSQL 15's settings, as a validation catalog.
#[derive(Debug, Clone)]
pub struct Pg15Catalog {
    settings: HashMap<String, Setting>,
}

impl Default for Pg15Catalog {
    fn default() -> Self {
        Self::new()
    }
}

/// A bound as Patroni writes it when clamping: integral bounds as ints,
/// others as floats.
fn bound_value(text: &str, number: f64) -> Value {
    match text.parse::<i64>() {
        Ok(i) => Value::Int(i),
        Err(_) => Value::Float(number),
    }
}

impl Pg15Catalog {
    /// Build from the embedded capture. Malformed lines are skipped (the
    /// table is ours and tested; a bad line must not take the daemon down).
    pub fn new() -> Pg15Catalog {
        let mut settings = HashMap::new();
        for line in TABLE
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let f: Vec<&str> = line.split('\t').collect();
            let [name, vartype, context, unit, min, max, enumvals, described] = f[..] else {
                continue;
            };
            let unit = (!unit.is_empty()).then(|| unit.to_owned());
            let kind = if context == "internal" || NOT_VALIDATED.contains(&name) {
                None
            } else {
                match vartype {
                    "bool" => Some(Kind::Bool),
                    "integer" => match (min.parse(), max.parse()) {
                        (Ok(min), Ok(max)) => Some(Kind::Integer { unit, min, max }),
                        _ => None,
                    },
                    "real" => match (min.parse(), max.parse()) {
                        (Ok(lo), Ok(hi)) => Some(Kind::Real {
                            unit,
                            min: lo,
                            max: hi,
                            min_text: min.to_owned(),
                            max_text: max.to_owned(),
                        }),
                        _ => None,
                    },
                    "enum" => {
                        let values: Vec<String> =
                            enumvals.split(',').map(str::to_lowercase).collect();
                        let accepts_bool =
                            values.iter().any(|v| v == "on") && values.iter().any(|v| v == "off");
                        Some(Kind::Enum {
                            values,
                            accepts_bool,
                        })
                    }
                    _ => Some(Kind::Text),
                }
            };
            settings.insert(
                name.to_lowercase(),
                Setting {
                    kind,
                    described: described == "1",
                },
            );
        }
        Pg15Catalog { settings }
    }

    fn applies(version: i64) -> bool {
        (150000..160000).contains(&version)
    }

    fn setting(&self, name: &str) -> Option<&Setting> {
        self.settings.get(&name.to_lowercase())
    }
}

impl GucCatalog for Pg15Catalog {
    fn transform(&self, version: i64, name: &str, value: &Value) -> Option<Value> {
        if !Self::applies(version) {
            return Some(value.clone());
        }
        let setting = self.setting(name)?;
        let Some(kind) = &setting.kind else {
            return setting.described.then(|| value.clone());
        };
        match kind {
            Kind::Bool => parse_bool(value).map(|_| value.clone()),
            Kind::Integer { unit, min, max } => {
                let n = parse_int(value, unit.as_deref())
                    .map(|n| n as f64)
                    .or_else(|| {
                        // Beyond i64: Python still has a number, which clamps.
                        parse_real(value, unit.as_deref()).filter(|r| r.abs() >= 9.2e18)
                    })?;
                Some(if n < *min as f64 {
                    Value::Int(*min)
                } else if n > *max as f64 {
                    Value::Int(*max)
                } else {
                    value.clone()
                })
            }
            Kind::Real {
                unit,
                min,
                max,
                min_text,
                max_text,
            } => {
                let r = parse_real(value, unit.as_deref())?;
                Some(if r < *min {
                    bound_value(min_text, *min)
                } else if r > *max {
                    bound_value(max_text, *max)
                } else {
                    value.clone()
                })
            }
            Kind::Enum {
                values,
                accepts_bool,
            } => {
                if *accepts_bool && parse_bool(value).is_some() {
                    return Some(value.clone());
                }
                let text = py_str(value).to_lowercase();
                values.contains(&text).then(|| value.clone())
            }
            Kind::Text => Some(value.clone()),
        }
    }

    fn has_validator(&self, name: &str) -> bool {
        self.setting(name).is_some_and(|s| s.kind.is_some())
    }

    fn is_available(&self, name: &str) -> bool {
        // Unknown names are not PostgreSQL 15 settings at all.
        self.setting(name).is_some_and(|s| s.described)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Value {
        Value::Str(v.to_owned())
    }

    #[test]
    fn table_loads_completely() {
        let c = Pg15Catalog::new();
        assert!(c.settings.len() > 340, "{}", c.settings.len());
        assert!(c.has_validator("shared_buffers"));
        assert!(c.has_validator("DateStyle"));
        assert!(!c.has_validator("block_size"));
        assert!(c.is_available("restore_command"));
        assert!(!c.is_available("trigger_file"));
    }

    #[test]
    fn patroni_rules() {
        let c = Pg15Catalog::new();
        let v = 150020;
        assert_eq!(c.transform(v, "work_mem", &s("4MB")), Some(s("4MB")));
        assert_eq!(
            c.transform(v, "work_mem", &Value::Int(1)),
            Some(Value::Int(64))
        );
        assert_eq!(c.transform(v, "work_mem", &s("lots")), None);
        assert_eq!(
            c.transform(v, "Max_Connections", &s("0")),
            Some(Value::Int(1))
        );
        assert_eq!(
            c.transform(v, "checkpoint_completion_target", &s("2")),
            Some(Value::Int(1))
        );
        assert_eq!(
            c.transform(v, "geqo_selection_bias", &s("1")),
            Some(Value::Float(1.5))
        );
        assert_eq!(
            c.transform(v, "wal_level", &s("LOGICAL")),
            Some(s("LOGICAL"))
        );
        assert_eq!(c.transform(v, "wal_level", &s("on")), None);
        assert_eq!(c.transform(v, "archive_mode", &s("yes")), Some(s("yes")));
        assert_eq!(
            c.transform(v, "archive_mode", &s("always")),
            Some(s("always"))
        );
        assert_eq!(c.transform(v, "fsync", &s("maybe")), None);
        assert_eq!(c.transform(v, "block_size", &s("8192")), None);
        assert_eq!(c.transform(v, "no_such_guc", &s("1")), None);
        // Other versions are not validated.
        assert_eq!(
            c.transform(160000, "work_mem", &Value::Int(1)),
            Some(Value::Int(1))
        );
    }
}
