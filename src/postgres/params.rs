//! From the `postgresql` configuration section to the server parameters
//! Patroni manages, and the GUC validation hook.
//!
//! Patroni never hands `postgresql.parameters` to PostgreSQL untouched: it
//! adds `cluster_name`, `listen_addresses` and `port`, renames values that
//! changed between major versions (`wal_level`, `wal_keep_segments` /
//! `wal_keep_size`), drops the command-line options the running version
//! does not know, and anchors `hba_file`/`ident_file` in the configuration
//! directory. [`server_parameters`] does exactly that, purely. Value
//! validation lives in [`guc`](super::guc).
//!
//! Parameter names are case-insensitive (Patroni keeps them in a
//! `CaseInsensitiveDict`). A [`Map`] keeps them here; every write goes
//! through [`ci_set`], which replaces an entry matching in any letter case
//! and gives it the new spelling, as Patroni's dictionary does.

use crate::config::units::{parse_int, parse_real};
use crate::config::{Map, Value};
use crate::dcs::settings::split_host_port;

pub use crate::postgres::guc::{
    is_recovery_parameter, transform_parameter, transform_recovery_parameter, GucCatalog,
    PassThroughGucs, RECOVERY_PARAMETERS,
};

/// Parameters Patroni always passes on the `postgres` command line, in the
/// order it passes them, with the first major version that knows each.
///
/// Passing them as options (rather than in `postgresql.conf`) stops
/// `ALTER SYSTEM` from changing them behind Patroni's back; several must
/// agree between primary and replicas. `wal_keep_segments`/`wal_keep_size`
/// belong to the set but are never put on the command line.
pub const CMDLINE_OPTIONS: [(&str, i64); 15] = [
    ("listen_addresses", 90100),
    ("port", 90100),
    ("cluster_name", 90500),
    ("wal_level", 90100),
    ("hot_standby", 90100),
    ("max_connections", 90100),
    ("max_wal_senders", 90100),
    ("wal_keep_segments", 90100),
    ("wal_keep_size", 130000),
    ("max_prepared_transactions", 90100),
    ("max_locks_per_transaction", 90100),
    ("track_commit_timestamp", 90500),
    ("max_replication_slots", 90400),
    ("max_worker_processes", 90400),
    ("wal_log_hints", 90400),
];

/// What goes wrong turning the configuration into server parameters: the
/// cases where Python Patroni would raise instead of starting PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    #[error("postgresql.{0} is missing")]
    Missing(&'static str),
    #[error("postgresql.{key} is invalid: {reason}")]
    Invalid { key: String, reason: String },
}

pub use crate::config::case_insensitive::{ci_contains, ci_get, ci_remove, ci_set, ci_setdefault};

/// Synchronous replication state that decides `synchronous_standby_names`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncState {
    /// `synchronous_mode_strict` is on.
    pub strict: bool,
    /// This node runs as primary (or is being promoted).
    pub is_primary: bool,
    /// The value Patroni currently maintains, if any.
    pub current: Option<String>,
}

/// Inputs of [`server_parameters`].
#[derive(Debug, Clone)]
pub struct ServerParamsInput<'a> {
    /// The effective `postgresql` section (local merged with dynamic).
    pub postgresql: &'a Map,
    /// The cluster `scope`, which becomes `cluster_name`.
    pub scope: &'a str,
    /// The major version from `PG_VERSION` (150000 for 15); 0 if unknown,
    /// in which case no version rules apply.
    pub major_version: i64,
    /// Absolute configuration directory (`config_dir`, else the data dir).
    pub config_dir: &'a str,
    /// `None` when synchronous mode is off.
    pub sync: Option<SyncState>,
}

/// Patroni's `ConfigHandler.get_server_parameters`.
pub fn server_parameters(input: &ServerParamsInput<'_>) -> Result<Map, ParamsError> {
    let mut params = match input.postgresql.get("parameters") {
        // Patroni holds parameters in a case-insensitive dictionary: two
        // spellings of one name collapse into the first position with the
        // last spelling and value.
        Some(Value::Map(m)) => {
            let mut collapsed = Map::new();
            for (k, v) in m.str_entries() {
                ci_set(&mut collapsed, k, v.clone());
            }
            collapsed
        }
        Some(Value::Null) | None => return Err(ParamsError::Missing("parameters")),
        Some(other) => {
            return Err(ParamsError::Invalid {
                key: "parameters".into(),
                reason: format!("expected a mapping, got {}", other.type_name()),
            })
        }
    };
    let listen = match input.postgresql.get("listen") {
        Some(Value::Str(s)) => s.as_str(),
        Some(_) | None => return Err(ParamsError::Missing("listen")),
    };
    let (listen_addresses, port) =
        split_host_port(listen, 5432).map_err(|reason| ParamsError::Invalid {
            key: "listen".into(),
            reason,
        })?;
    ci_set(
        &mut params,
        "cluster_name",
        Value::Str(input.scope.to_owned()),
    );
    ci_set(
        &mut params,
        "listen_addresses",
        Value::Str(listen_addresses),
    );
    ci_set(&mut params, "port", Value::Str(port.to_string()));

    if let Some(sync) = &input.sync {
        match &sync.current {
            Some(current) => ci_set(
                &mut params,
                "synchronous_standby_names",
                Value::Str(current.clone()),
            ),
            None if sync.strict && sync.is_primary => ci_set(
                &mut params,
                "synchronous_standby_names",
                Value::Str("*".into()),
            ),
            None => {
                ci_remove(&mut params, "synchronous_standby_names");
            }
        }
    }

    let major = input.major_version;
    // `hot_standby` and `replica` are the same wal_level under the name
    // each version understands.
    let (old_level, new_level) = if major >= 90600 {
        ("hot_standby", "replica")
    } else {
        ("replica", "hot_standby")
    };
    if ci_get(&params, "wal_level").and_then(Value::as_str) == Some(old_level) {
        ci_set(&mut params, "wal_level", Value::Str(new_level.into()));
    }

    // Translate between segment count and size, assuming 16MB segments.
    if major >= 130000 {
        let segments = ci_remove(&mut params, "wal_keep_segments").unwrap_or(Value::Int(8));
        let segments = python_int(&segments).ok_or_else(|| ParamsError::Invalid {
            key: "parameters.wal_keep_segments".into(),
            reason: format!("not an integer: {segments}"),
        })?;
        let size = segments
            .checked_mul(16)
            .ok_or_else(|| ParamsError::Invalid {
                key: "parameters.wal_keep_segments".into(),
                reason: "out of range".into(),
            })?;
        ci_setdefault(
            &mut params,
            "wal_keep_size",
            Value::Str(format!("{size}MB")),
        );
    } else if major != 0 {
        let size = ci_remove(&mut params, "wal_keep_size").unwrap_or(Value::Str("128MB".into()));
        // Python's parse_int has no upper bound; past i64 only a float
        // can carry the value, as the division below makes one anyway.
        let size = match parse_int(&size, Some("MB")) {
            Some(n) => n as f64,
            None => parse_real(&size, Some("MB"))
                .filter(|r| r.is_finite() && r.abs() >= 9.2e18)
                .unwrap_or(0.0),
        };
        // Python's int() of a float truncates towards zero.
        let segments = ((size + 8.0) / 16.0).trunc();
        let segments = if segments.abs() < 9.2e18 {
            Value::Int(segments as i64)
        } else {
            Value::BigInt(format!("{segments:.0}"))
        };
        ci_setdefault(&mut params, "wal_keep_segments", segments);
    }

    if major != 0 {
        params = params
            .into_iter()
            .filter(|(k, _)| {
                let name = k.as_str().unwrap_or_default().to_lowercase();
                let since = CMDLINE_OPTIONS
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map_or(90100, |(_, v)| *v);
                major >= since
            })
            .collect();
    }

    for key in ["hba_file", "ident_file"] {
        let joined = match ci_get(&params, key) {
            None => continue,
            Some(Value::Str(path)) => join_path(input.config_dir, path),
            Some(other) => {
                return Err(ParamsError::Invalid {
                    key: format!("parameters.{key}"),
                    reason: format!("expected a path, got {}", other.type_name()),
                })
            }
        };
        ci_set(&mut params, key, Value::Str(joined));
    }
    Ok(params)
}

/// Python's `os.path.join(base, path)` for two components.
pub fn join_path(base: &str, path: &str) -> String {
    if path.starts_with('/') || base.is_empty() {
        path.to_owned()
    } else if base.ends_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

/// Python's `int(value)` for what a YAML document can hold: booleans
/// count as 0/1, floats truncate, strings must be a plain integer. Wider
/// than `i64` because Python's ints are unbounded and `1e20` is a valid
/// (if silly) segment count.
fn python_int(value: &Value) -> Option<i128> {
    match value {
        Value::Int(i) => Some(i128::from(*i)),
        Value::BigInt(s) => s.parse().ok(),
        Value::Bool(b) => Some(i128::from(*b)),
        // Integral floats below 2^127 convert exactly.
        Value::Float(f) if f.is_finite() && f.abs() < 1.7e38 => Some(f.trunc() as i128),
        Value::Str(s) => {
            let t = s.trim().replace('_', "");
            t.parse::<i128>().ok()
        }
        _ => None,
    }
}

/// The `pg_controldata` fields holding a parameter's value at the last
/// checkpoint, for the parameters a replica cannot run below.
fn controldata_fields(major: i64) -> Vec<(&'static str, &'static str)> {
    let mut fields = vec![
        ("max_connections", "max_connections setting"),
        ("max_prepared_transactions", "max_prepared_xacts setting"),
        ("max_locks_per_transaction", "max_locks_per_xact setting"),
    ];
    if major >= 90400 {
        fields.push(("max_worker_processes", "max_worker_processes setting"));
    }
    if major >= 120000 {
        fields.push(("max_wal_senders", "max_wal_senders setting"));
    }
    fields
}

/// A parameter raised to its `pg_controldata` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaisedParameter {
    pub name: &'static str,
    /// The value recorded in `pg_control` (used to start).
    pub controldata: i64,
    /// The value the configuration asks for (pending restart).
    pub configured: i64,
}

/// Patroni's `effective_configuration` for a node that is not primary: a
/// replica cannot start with `max_connections` and friends below what the
/// primary had at the last checkpoint, so those take the `pg_controldata`
/// value and are reported for the pending-restart flag.
///
/// `controldata` is the parsed `pg_controldata` output (keys without the
/// `Current ` prefix, see [`crate::postgres::controldata`]).
pub fn effective_configuration(
    server_parameters: &Map,
    is_primary: bool,
    major_version: i64,
    controldata: &std::collections::BTreeMap<String, String>,
) -> (Map, Vec<RaisedParameter>) {
    let mut conf = server_parameters.clone();
    let mut raised = Vec::new();
    if is_primary {
        return (conf, raised);
    }
    for (name, field) in controldata_fields(major_version) {
        let configured = ci_get(&conf, name).and_then(|v| parse_int(v, None));
        let Some(recorded) = controldata.get(field) else {
            continue;
        };
        let recorded = parse_int(&Value::Str(recorded.clone()), None);
        if let (Some(recorded), Some(configured)) = (recorded, configured) {
            if recorded > configured {
                ci_set(&mut conf, name, Value::Int(recorded));
                raised.push(RaisedParameter {
                    name,
                    controldata: recorded,
                    configured,
                });
            }
        }
    }
    (conf, raised)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn section(text: &str) -> Map {
        match yaml::load(text) {
            Ok(Value::Map(m)) => m,
            other => panic!("bad fixture: {other:?}"),
        }
    }

    fn params(pg: &Map, major: i64) -> Map {
        server_parameters(&ServerParamsInput {
            postgresql: pg,
            scope: "demo",
            major_version: major,
            config_dir: "/data",
            sync: None,
        })
        .expect("valid section")
    }

    #[test]
    fn adds_cluster_name_listen_and_port() {
        let pg = section("listen: 0.0.0.0:5433\nparameters: {work_mem: 4MB}\n");
        let p = params(&pg, 150000);
        assert_eq!(p.get("cluster_name"), Some(&Value::Str("demo".into())));
        assert_eq!(
            p.get("listen_addresses"),
            Some(&Value::Str("0.0.0.0".into()))
        );
        assert_eq!(p.get("port"), Some(&Value::Str("5433".into())));
        assert_eq!(p.get("wal_keep_size"), Some(&Value::Str("128MB".into())));
    }

    #[test]
    fn wal_level_and_wal_keep_follow_the_version() {
        let pg = section(
            "listen: h\nparameters: {wal_level: hot_standby, wal_keep_segments: 4, Hba_File: x.conf}\n",
        );
        let p = params(&pg, 150000);
        assert_eq!(p.get("wal_level"), Some(&Value::Str("replica".into())));
        assert_eq!(p.get("wal_keep_size"), Some(&Value::Str("64MB".into())));
        assert!(!ci_contains(&p, "wal_keep_segments"));
        // The joined path takes the spelling Patroni assigns it with.
        assert_eq!(p.get("hba_file"), Some(&Value::Str("/data/x.conf".into())));
        assert!(p.get("Hba_File").is_none());
        assert_eq!(p.get("port"), Some(&Value::Str("5432".into())));

        let pg = section("listen: h\nparameters: {wal_level: replica, wal_keep_size: 1GB}\n");
        let p = params(&pg, 90500);
        assert_eq!(p.get("wal_level"), Some(&Value::Str("hot_standby".into())));
        assert_eq!(p.get("wal_keep_segments"), Some(&Value::Int(64)));
        assert!(!ci_contains(&p, "wal_keep_size"));
        // Python's ints do not overflow: a huge float count still converts.
        let pg = section("listen: h\nparameters: {wal_keep_segments: 1.0e+20}\n");
        assert_eq!(
            params(&pg, 150000).get("wal_keep_size"),
            Some(&Value::Str("1600000000000000000000MB".into()))
        );
        let pg = section("listen: h\nparameters: {wal_keep_size: 1.0e+21}\n");
        assert_eq!(
            params(&pg, 120000).get("wal_keep_segments"),
            Some(&Value::BigInt("62500000000000000000".into()))
        );
        // cluster_name needs 9.5; on 9.4 it is dropped.
        assert!(!ci_contains(&params(&pg, 90400), "cluster_name"));
    }

    #[test]
    fn bad_sections_are_errors_not_panics() {
        let pg = section("parameters: {}\n");
        assert!(server_parameters(&ServerParamsInput {
            postgresql: &pg,
            scope: "s",
            major_version: 150000,
            config_dir: "/d",
            sync: None,
        })
        .is_err());
        let pg = section("listen: 'h:port'\nparameters: {}\n");
        assert!(matches!(
            server_parameters(&ServerParamsInput {
                postgresql: &pg,
                scope: "s",
                major_version: 150000,
                config_dir: "/d",
                sync: None,
            }),
            Err(ParamsError::Invalid { .. })
        ));
    }

    #[test]
    fn synchronous_standby_names_rules() {
        let pg = section("listen: h\nparameters: {synchronous_standby_names: x}\n");
        let run = |sync| {
            server_parameters(&ServerParamsInput {
                postgresql: &pg,
                scope: "s",
                major_version: 150000,
                config_dir: "/d",
                sync: Some(sync),
            })
            .expect("ok")
            .get("synchronous_standby_names")
            .cloned()
        };
        let strict_primary = SyncState {
            strict: true,
            is_primary: true,
            current: None,
        };
        assert_eq!(run(strict_primary), Some(Value::Str("*".into())));
        let replica = SyncState {
            strict: true,
            is_primary: false,
            current: None,
        };
        assert_eq!(run(replica), None);
        let managed = SyncState {
            strict: false,
            is_primary: true,
            current: Some("ANY 1 (a)".into()),
        };
        assert_eq!(run(managed), Some(Value::Str("ANY 1 (a)".into())));
    }

    #[test]
    fn replica_runs_with_controldata_values() {
        let mut sp = Map::new();
        sp.set("max_connections", Value::Str("100".into()));
        sp.set("max_wal_senders", Value::Int(10));
        let mut cd = std::collections::BTreeMap::new();
        cd.insert("max_connections setting".to_owned(), "200".to_owned());
        cd.insert("max_wal_senders setting".to_owned(), "5".to_owned());
        let (conf, raised) = effective_configuration(&sp, false, 150000, &cd);
        assert_eq!(conf.get("max_connections"), Some(&Value::Int(200)));
        assert_eq!(conf.get("max_wal_senders"), Some(&Value::Int(10)));
        assert_eq!(raised.len(), 1);
        assert_eq!(raised[0].configured, 100);
        let (conf, raised) = effective_configuration(&sp, true, 150000, &cd);
        assert_eq!(conf.get("max_connections"), Some(&Value::Str("100".into())));
        assert!(raised.is_empty());
    }

    #[test]
    fn ci_set_takes_the_new_spelling_in_place() {
        let mut m = Map::new();
        m.set("A", Value::Int(1));
        m.set("b", Value::Int(2));
        ci_set(&mut m, "a", Value::Int(3));
        let keys: Vec<_> = m.str_entries().map(|(k, _)| k.to_owned()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m.get("a"), Some(&Value::Int(3)));
    }
}
