//! Patroni's built-in defaults and the rules for what the dynamic (DCS)
//! configuration may override.
//!
//! The PostgreSQL parameters below are the ones Patroni passes on the
//! `postgres` command line (its `CMDLINE_OPTIONS`): they must be identical
//! on every member, so they are only ever taken from the dynamic
//! configuration, validated, and never from a member's local file.

use crate::config::units::{parse_bool, parse_int};
use crate::config::{Map, Value};

use super::pyfmt::{py_int, py_str};
use super::{ConfigError, ConfigEvent};
use crate::config::case_insensitive::ci_update;

/// How a command-line parameter's dynamic value is checked.
#[derive(Debug, Clone, Copy)]
enum Check {
    /// Never settable: Patroni derives it (listen address, port, cluster name).
    Never,
    /// One of these words, any case, and it must be a string.
    OneOf(&'static [&'static str]),
    /// Must parse as a boolean and be true (`hot_standby`).
    BoolTrue,
    /// Must parse as a boolean.
    Bool,
    /// Must parse as an integer in `base_unit` that is at least `min`.
    Int {
        min: i64,
        base_unit: Option<&'static str>,
    },
}

/// One `postgres` command-line parameter: name, default, check.
struct CmdlineOption {
    name: &'static str,
    default: Option<DefaultValue>,
    check: Check,
}

#[derive(Clone, Copy)]
enum DefaultValue {
    Str(&'static str),
    Int(i64),
}

impl DefaultValue {
    fn to_value(self) -> Value {
        match self {
            DefaultValue::Str(s) => Value::Str(s.to_owned()),
            DefaultValue::Int(i) => Value::Int(i),
        }
    }
}

const fn opt(name: &'static str, default: Option<DefaultValue>, check: Check) -> CmdlineOption {
    CmdlineOption {
        name,
        default,
        check,
    }
}

use DefaultValue::{Int as DInt, Str as DStr};

static CMDLINE_OPTIONS: [CmdlineOption; 15] = [
    opt("listen_addresses", None, Check::Never),
    opt("port", None, Check::Never),
    opt("cluster_name", None, Check::Never),
    opt(
        "wal_level",
        Some(DStr("hot_standby")),
        Check::OneOf(&["hot_standby", "replica", "logical"]),
    ),
    opt("hot_standby", Some(DStr("on")), Check::BoolTrue),
    opt(
        "max_connections",
        Some(DInt(100)),
        Check::Int {
            min: 25,
            base_unit: None,
        },
    ),
    opt(
        "max_wal_senders",
        Some(DInt(10)),
        Check::Int {
            min: 3,
            base_unit: None,
        },
    ),
    opt(
        "wal_keep_segments",
        Some(DInt(8)),
        Check::Int {
            min: 1,
            base_unit: None,
        },
    ),
    opt(
        "wal_keep_size",
        Some(DStr("128MB")),
        Check::Int {
            min: 16,
            base_unit: Some("MB"),
        },
    ),
    opt(
        "max_prepared_transactions",
        Some(DInt(0)),
        Check::Int {
            min: 0,
            base_unit: None,
        },
    ),
    opt(
        "max_locks_per_transaction",
        Some(DInt(64)),
        Check::Int {
            min: 32,
            base_unit: None,
        },
    ),
    opt("track_commit_timestamp", Some(DStr("off")), Check::Bool),
    opt(
        "max_replication_slots",
        Some(DInt(10)),
        Check::Int {
            min: 4,
            base_unit: None,
        },
    ),
    opt(
        "max_worker_processes",
        Some(DInt(8)),
        Check::Int {
            min: 2,
            base_unit: None,
        },
    ),
    opt("wal_log_hints", Some(DStr("on")), Check::Bool),
];

/// Keys of `standby_cluster` the dynamic configuration may set.
pub(crate) const STANDBY_CLUSTER_KEYS: [&str; 7] = [
    "create_replica_methods",
    "host",
    "port",
    "primary_slot_name",
    "restore_command",
    "archive_cleanup_command",
    "recovery_min_apply_delay",
];

/// `postgresql` keys that describe one member and are therefore ignored
/// when they come from the dynamic configuration.
const LOCAL_ONLY_POSTGRESQL_KEYS: [&str; 7] = [
    "connect_address",
    "proxy_address",
    "listen",
    "config_dir",
    "data_dir",
    "pgpass",
    "authentication",
];

/// Case-insensitive lookup, as PostgreSQL (and Patroni) treat GUC names.
fn cmdline_option(name: &str) -> Option<&'static CmdlineOption> {
    let lower = name.to_lowercase();
    CMDLINE_OPTIONS.iter().find(|o| o.name == lower)
}

/// The default value of timeout `name` (`ttl`, `loop_wait`, `retry_timeout`).
pub(crate) fn default_timeout(name: &str) -> i64 {
    match name {
        "ttl" => 30,
        _ => 10,
    }
}

/// A fresh copy of Patroni's defaults: the timeouts, an empty
/// `standby_cluster`, replication slots on, and the command-line parameter
/// defaults (without `wal_keep_segments`/`wal_keep_size`, which depend on the
/// PostgreSQL major version and are filled in later).
pub fn default_config() -> Map {
    let mut config = Map::new();
    for name in ["ttl", "loop_wait", "retry_timeout"] {
        config.set(name, Value::Int(default_timeout(name)));
    }
    let mut standby = Map::new();
    for key in STANDBY_CLUSTER_KEYS {
        standby.set(key, Value::Str(String::new()));
    }
    config.set("standby_cluster", Value::Map(standby));
    let mut parameters = Map::new();
    for o in &CMDLINE_OPTIONS {
        if let Some(d) = o.default {
            if !matches!(o.name, "wal_keep_segments" | "wal_keep_size") {
                parameters.set(o.name, d.to_value());
            }
        }
    }
    let mut postgresql = Map::new();
    postgresql.set("use_slots", Value::Bool(true));
    postgresql.set("parameters", Value::Map(parameters));
    config.set("postgresql", Value::Map(postgresql));
    config
}

/// Filter `postgresql.parameters`.
///
/// From the local configuration every command-line parameter is dropped.
/// From the dynamic configuration they are validated: an invalid value is
/// dropped with a warning (the default stays), a valid integer is stored as
/// an integer (`"200"` becomes `200`). `listen_addresses`, `port` and
/// `cluster_name` never pass. Other parameters are kept as they are.
///
/// Names must be strings: Patroni looks them up case-insensitively, which
/// fails on any other key type.
pub(crate) fn process_postgresql_parameters(
    parameters: &Value,
    is_local: bool,
    events: &mut Vec<ConfigEvent>,
) -> Result<Map, ConfigError> {
    let params = match parameters {
        p if !p.truthy() => return Ok(Map::new()),
        Value::Map(m) => m,
        _ => {
            return Err(ConfigError::Parse(
                "postgresql.parameters is not a dictionary".into(),
            ))
        }
    };
    let mut out = Map::new();
    for (key, value) in params.iter() {
        let Value::Str(name) = key else {
            return Err(ConfigError::Invalid(format!(
                "postgresql.parameters: parameter name {} is not a string",
                py_str(key)
            )));
        };
        match cmdline_option(name) {
            None => out.insert(key.clone(), value.clone()),
            Some(_) if is_local => {}
            Some(o) => {
                if check(o.check, value) {
                    let as_int = match o.check {
                        Check::Int { .. } => parse_int(value, None),
                        _ => None,
                    };
                    out.insert(
                        key.clone(),
                        as_int.map_or_else(|| value.clone(), Value::Int),
                    );
                } else {
                    let default = o.default.map_or(Value::Null, DefaultValue::to_value);
                    events.push(ConfigEvent::warning(format!(
                        "postgresql parameter {name}={} failed validation, defaulting to {}",
                        py_str(value),
                        py_str(&default)
                    )));
                }
            }
        }
    }
    Ok(out)
}

fn check(c: Check, value: &Value) -> bool {
    match c {
        Check::Never => false,
        Check::OneOf(words) => {
            matches!(value, Value::Str(s) if words.contains(&s.to_lowercase().as_str()))
        }
        Check::BoolTrue => parse_bool(value) == Some(true),
        Check::Bool => parse_bool(value).is_some(),
        Check::Int { min, base_unit } => parse_int(value, base_unit).is_some_and(|v| v >= min),
    }
}

/// Defaults overlaid with the dynamic configuration, keeping only what the
/// dynamic configuration is allowed to set: the three timeouts (as
/// integers), `standby_cluster`'s known keys, and `postgresql` minus the
/// member-local keys. Everything else stays in the dynamic configuration
/// for the HA loop to read but is not part of this merge.
pub(crate) fn safe_copy_dynamic_configuration(
    dynamic: &Map,
    events: &mut Vec<ConfigEvent>,
) -> Result<Map, ConfigError> {
    let mut config = default_config();
    for (key, value) in dynamic.iter() {
        let Value::Str(name) = key else { continue };
        match name.as_str() {
            "postgresql" => {
                for (sub, v) in sub_items(value, "postgresql")? {
                    if sub.as_str() == Some("parameters") {
                        let params = process_postgresql_parameters(v, false, events)?;
                        ci_update(
                            config.entry_map("postgresql").entry_map("parameters"),
                            params,
                        );
                    } else if !sub
                        .as_str()
                        .is_some_and(|s| LOCAL_ONLY_POSTGRESQL_KEYS.contains(&s))
                    {
                        config
                            .entry_map("postgresql")
                            .insert(sub.clone(), v.clone());
                    }
                }
            }
            "standby_cluster" => {
                for (sub, v) in sub_items(value, "standby_cluster")? {
                    if let Some(s) = sub.as_str().filter(|s| STANDBY_CLUSTER_KEYS.contains(s)) {
                        config.entry_map("standby_cluster").set(s, v.clone());
                    }
                }
            }
            "ttl" | "loop_wait" | "retry_timeout" => {
                let i = py_int(value).map_err(|e| ConfigError::Invalid(format!("{name}: {e}")))?;
                config.set(name, Value::Int(i));
            }
            _ => {}
        }
    }
    Ok(config)
}

/// `(value or {}).items()`: a false-y value is an empty mapping, anything
/// else that is not a mapping is an error.
pub(crate) fn sub_items<'a>(
    value: &'a Value,
    section: &str,
) -> Result<Vec<(&'a Value, &'a Value)>, ConfigError> {
    match value {
        Value::Map(m) => Ok(m.iter().collect()),
        v if !v.truthy() => Ok(Vec::new()),
        v => Err(ConfigError::Invalid(format!(
            "{section} must be a mapping, not {}",
            v.type_name()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, Value)]) -> Value {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.set(k, v.clone());
        }
        Value::Map(m)
    }

    #[test]
    fn defaults_hold_command_line_parameters() {
        let d = default_config();
        let keys: Vec<_> = d.str_entries().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "ttl",
                "loop_wait",
                "retry_timeout",
                "standby_cluster",
                "postgresql"
            ]
        );
        let p = d.get("postgresql").and_then(Value::as_map).unwrap();
        let params = p.get("parameters").and_then(Value::as_map).unwrap();
        assert_eq!(params.len(), 10);
        assert_eq!(params.get("max_connections"), Some(&Value::Int(100)));
        assert!(params.get("wal_keep_size").is_none());
    }

    #[test]
    fn local_parameters_lose_command_line_options_case_insensitively() {
        let mut ev = Vec::new();
        let p = params(&[
            ("Max_Connections", Value::Int(500)),
            ("shared_buffers", Value::Str("1GB".into())),
        ]);
        let out = process_postgresql_parameters(&p, true, &mut ev).unwrap();
        assert_eq!(out.len(), 1);
        assert!(out.get("shared_buffers").is_some());
    }

    #[test]
    fn dynamic_parameters_are_validated_and_converted() {
        let mut ev = Vec::new();
        let p = params(&[
            ("max_connections", Value::Str("200".into())),
            ("max_wal_senders", Value::Int(1)),
            ("wal_keep_size", Value::Str("1GB".into())),
            ("port", Value::Int(5432)),
            ("WAL_LEVEL", Value::Str("Logical".into())),
        ]);
        let out = process_postgresql_parameters(&p, false, &mut ev).unwrap();
        assert_eq!(out.get("max_connections"), Some(&Value::Int(200)));
        assert!(out.get("max_wal_senders").is_none());
        assert_eq!(out.get("wal_keep_size"), Some(&Value::Str("1GB".into())));
        assert!(out.get("port").is_none());
        assert_eq!(out.get("WAL_LEVEL"), Some(&Value::Str("Logical".into())));
        assert_eq!(ev.len(), 2);
        assert_eq!(
            ev[0].message,
            "postgresql parameter max_wal_senders=1 failed validation, defaulting to 10"
        );
    }

    #[test]
    fn non_mapping_parameters_are_rejected() {
        let mut ev = Vec::new();
        let err = process_postgresql_parameters(&Value::Str("x".into()), true, &mut ev);
        assert_eq!(
            err.unwrap_err().to_string(),
            "postgresql.parameters is not a dictionary"
        );
        assert!(process_postgresql_parameters(&Value::Null, true, &mut ev)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn dynamic_copy_keeps_only_allowed_keys() {
        let mut dynamic = Map::new();
        dynamic.set("ttl", Value::Str("40".into()));
        dynamic.set("maximum_lag_on_failover", Value::Int(5));
        let mut pg = Map::new();
        pg.set("data_dir", Value::Str("/x".into()));
        pg.set("use_slots", Value::Bool(false));
        dynamic.set("postgresql", Value::Map(pg));
        let mut ev = Vec::new();
        let c = safe_copy_dynamic_configuration(&dynamic, &mut ev).unwrap();
        assert_eq!(c.get("ttl"), Some(&Value::Int(40)));
        assert!(c.get("maximum_lag_on_failover").is_none());
        let pg = c.get("postgresql").and_then(Value::as_map).unwrap();
        assert!(pg.get("data_dir").is_none());
        assert_eq!(pg.get("use_slots"), Some(&Value::Bool(false)));
    }
}
