//! Merging configuration trees: Patroni's `patch_config`, `deep_compare`
//! and the construction of the effective configuration from the dynamic
//! and local ones.
//!
//! Patroni manipulates plain Python dictionaries here, and a few of its
//! checks (`'authentication' in config['restapi']`) behave differently when
//! a section holds a string or a list instead of a mapping. We reproduce
//! the outcome: where Python would crash with a `TypeError` or an
//! `AttributeError` we return [`ConfigError::Invalid`] naming the section.

use crate::config::env::AUTH_ALLOWED_PARAMETERS;
use crate::config::{Map, Value};

use super::defaults::{process_postgresql_parameters, safe_copy_dynamic_configuration, sub_items};
use super::pyfmt::py_str;
use super::{ConfigError, ConfigEvent};
use crate::config::case_insensitive::ci_update;

/// Patroni's `patch_config`: overlay `data` onto `config`. A null value
/// deletes the key, mappings merge recursively, and a scalar replaces the
/// old one only when their `str()` differ (so a file's `port: 5432` stays
/// an integer when the environment says `"5432"`). Returns whether
/// anything changed.
pub(crate) fn patch_config(config: &mut Map, data: &Map) -> bool {
    let mut changed = false;
    for (name, value) in data.iter() {
        if value.is_null() {
            if config.remove_value(name).is_some_and(|old| !old.is_null()) {
                changed = true;
            }
            continue;
        }
        match config.get_value_mut(name) {
            Some(current) => {
                if let (Value::Map(new), Value::Map(old)) = (value, &mut *current) {
                    if patch_config(old, new) {
                        changed = true;
                    }
                } else if matches!(value, Value::Map(_)) || py_str(current) != py_str(value) {
                    *current = value.clone();
                    changed = true;
                }
            }
            None => {
                config.insert(name.clone(), value.clone());
                changed = true;
            }
        }
    }
    changed
}

/// Patroni's `deep_compare`: same key sets at every level and equal
/// `str()` for every non-mapping value.
pub(crate) fn deep_compare(a: &Map, b: &Map) -> bool {
    if a.len() != b.len() || a.keys().any(|k| b.get_value(k).is_none()) {
        return false;
    }
    a.iter().all(|(k, va)| {
        let Some(vb) = b.get_value(k) else {
            return false;
        };
        match (va, vb) {
            (Value::Map(ma), Value::Map(mb)) => deep_compare(ma, mb),
            (Value::Map(_), _) => false,
            _ => py_str(va) == py_str(vb),
        }
    })
}

/// Python's `needle in container` for a string needle: key membership for
/// mappings, substring for strings, element equality for lists, and a
/// `TypeError` for anything else.
pub(crate) fn py_contains(
    container: &Value,
    needle: &str,
    what: &str,
) -> Result<bool, ConfigError> {
    match container {
        Value::Map(m) => Ok(m.contains_key(needle)),
        Value::Str(s) => Ok(s.contains(needle)),
        Value::Seq(items) => Ok(items.iter().any(|i| i.as_str() == Some(needle))),
        other => Err(ConfigError::Invalid(format!(
            "{what} must be a mapping, not {}",
            other.type_name()
        ))),
    }
}

fn not_a_mapping(what: &str, v: &Value) -> ConfigError {
    ConfigError::Invalid(format!("{what} must be a mapping, not {}", v.type_name()))
}

/// Build the effective configuration: defaults, overlaid with what the
/// dynamic configuration may set, overlaid with the local configuration,
/// plus Patroni's compatibility fix-ups (`restapi.auth`, `exhibitor` inside
/// `zookeeper`, `postgresql.authentication` from old-style keys, Citus
/// synchronous mode) and copies of `name`/`scope`/`retry_timeout`/`citus`
/// into `postgresql`.
pub(crate) fn build_effective_configuration(
    dynamic: &Map,
    local: &Map,
    events: &mut Vec<ConfigEvent>,
) -> Result<Map, ConfigError> {
    let mut config = safe_copy_dynamic_configuration(dynamic, events)?;
    for (key, value) in local.iter() {
        match key.as_str() {
            Some("citus") => {
                // Only a complete Citus section is honoured.
                if let Value::Map(m) = value {
                    let group_ok = matches!(
                        m.get("group"),
                        Some(Value::Int(_) | Value::BigInt(_) | Value::Bool(_))
                    );
                    if group_ok && matches!(m.get("database"), Some(Value::Str(_))) {
                        config.insert(key.clone(), value.clone());
                    }
                }
            }
            Some("postgresql") => {
                for (sub, v) in sub_items(value, "postgresql")? {
                    match sub.as_str() {
                        Some("parameters") => {
                            let params = process_postgresql_parameters(v, true, events)?;
                            ci_update(
                                config.entry_map("postgresql").entry_map("parameters"),
                                params,
                            );
                        }
                        // Replication slots are switched on or off cluster-wide only.
                        Some("use_slots") => {}
                        _ => config
                            .entry_map("postgresql")
                            .insert(sub.clone(), v.clone()),
                    }
                }
            }
            name => {
                let in_defaults = config.get_value(key).is_some();
                if !in_defaults || name == Some("watchdog") {
                    let v = if value.truthy() {
                        value.clone()
                    } else {
                        Value::Map(Map::new())
                    };
                    config.insert(key.clone(), v);
                }
            }
        }
    }

    // The REST API and patronictl want `auth: "user:password"`.
    for section in ["ctl", "restapi"] {
        let Some(sec) = config.get(section) else {
            continue;
        };
        if !py_contains(sec, "authentication", section)? {
            continue;
        }
        let Value::Map(sec) = sec else {
            return Err(not_a_mapping(section, sec));
        };
        let auth = sec.get("authentication").unwrap_or(&Value::Null);
        let what = format!("{section}.authentication");
        let Value::Map(auth) = auth else {
            return Err(not_a_mapping(&what, auth));
        };
        if auth.keys().any(|k| k.as_str().is_none()) {
            return Err(ConfigError::Invalid(format!("{what} keys must be strings")));
        }
        let field = |name: &str| {
            auth.get(name)
                .map(py_str)
                .ok_or_else(|| ConfigError::Invalid(format!("{what} has no '{name}'")))
        };
        let joined = format!("{}:{}", field("username")?, field("password")?);
        config.entry_map(section).set("auth", Value::Str(joined));
    }

    // Old layout: `exhibitor` nested inside `zookeeper`.
    if let Some(zk) = config.get("zookeeper") {
        if py_contains(zk, "exhibitor", "zookeeper")? {
            let Value::Map(zk) = zk else {
                return Err(not_a_mapping("zookeeper", zk));
            };
            let exhibitor = zk.get("exhibitor").cloned().unwrap_or(Value::Null);
            config.set("exhibitor", exhibitor);
            config.remove("zookeeper");
        }
    }

    fix_postgresql_authentication(config.entry_map("postgresql"))?;

    if !config.contains_key("name") {
        if let Some(name) = config
            .get("postgresql")
            .and_then(Value::as_map)
            .and_then(|pg| pg.get("name"))
            .cloned()
        {
            config.set("name", name);
        }
    }

    // A new Citus cluster bootstraps with quorum synchronous replication.
    if config.contains_key("citus") {
        let bootstrap = match config.get("bootstrap") {
            None => {
                config.set("bootstrap", Value::Map(Map::new()));
                config.entry_map("bootstrap")
            }
            Some(Value::Map(_)) => config.entry_map("bootstrap"),
            Some(other) => return Err(not_a_mapping("bootstrap", other)),
        };
        let dcs = match bootstrap.get("dcs") {
            None => {
                bootstrap.set("dcs", Value::Map(Map::new()));
                bootstrap.entry_map("dcs")
            }
            Some(Value::Map(_)) => bootstrap.entry_map("dcs"),
            Some(other) => return Err(not_a_mapping("bootstrap.dcs", other)),
        };
        if !dcs.contains_key("synchronous_mode") {
            dcs.set("synchronous_mode", Value::Str("quorum".into()));
        }
    }

    let copied: Vec<(&str, Value)> = ["name", "scope", "retry_timeout", "citus"]
        .into_iter()
        .filter_map(|k| config.get(k).map(|v| (k, v.clone())))
        .collect();
    let pg = config.entry_map("postgresql");
    for (k, v) in copied {
        pg.set(k, v);
    }
    Ok(config)
}

/// `postgresql.authentication` from the pre-1.0 layout (`replication`,
/// `superuser` and `pg_rewind` directly under `postgresql`), then every
/// user's entry reduced to the connection parameters Patroni knows.
fn fix_postgresql_authentication(pg: &mut Map) -> Result<(), ConfigError> {
    if !pg.contains_key("authentication") {
        let use_pg_rewind = pg.contains_key("pg_rewind");
        pg.set("use_pg_rewind", Value::Bool(use_pg_rewind));
        let mut auth = Map::new();
        for user in ["replication", "superuser"] {
            if let Some(v) = pg.get(user) {
                auth.set(user, v.clone());
            }
        }
        pg.set("authentication", Value::Map(auth));
    }
    let what = "postgresql.authentication";
    let auth = pg.get("authentication").cloned().unwrap_or(Value::Null);
    let has_superuser = py_contains(&auth, "superuser", what)?;
    let Value::Map(mut auth) = auth else {
        return Err(not_a_mapping(what, &auth));
    };
    if !has_superuser {
        if let Some(rewind) = pg.get("pg_rewind") {
            auth.set("superuser", rewind.clone());
        }
    }
    let mut filtered = Map::new();
    for (user, entry) in auth.iter() {
        let Value::Map(entry) = entry else {
            return Err(not_a_mapping(&format!("{what}.{}", py_str(user)), entry));
        };
        let kept: Map = entry
            .iter()
            .filter(|(k, _)| {
                k.as_str()
                    .is_some_and(|k| AUTH_ALLOWED_PARAMETERS.contains(&k))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        filtered.insert(user.clone(), Value::Map(kept));
    }
    pg.set("authentication", Value::Map(filtered));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, Value)]) -> Map {
        let mut m = Map::new();
        for (k, v) in pairs {
            m.set(k, v.clone());
        }
        m
    }

    fn s(x: &str) -> Value {
        Value::Str(x.into())
    }

    #[test]
    fn patch_keeps_types_when_strings_match_and_deletes_on_null() {
        let mut config = map(&[
            ("port", Value::Int(5432)),
            ("gone", s("x")),
            ("sub", Value::Map(map(&[("a", Value::Int(1))]))),
        ]);
        let data = map(&[
            ("port", s("5432")),
            ("gone", Value::Null),
            ("sub", Value::Map(map(&[("b", Value::Bool(true))]))),
        ]);
        assert!(patch_config(&mut config, &data));
        assert_eq!(config.get("port"), Some(&Value::Int(5432)));
        assert!(config.get("gone").is_none());
        assert_eq!(
            config.get("sub").and_then(Value::as_map).map(Map::len),
            Some(2)
        );
        assert!(!patch_config(&mut config, &map(&[("port", s("5432"))])));
    }

    #[test]
    fn deep_compare_uses_string_forms() {
        let a = map(&[("x", Value::Int(2)), ("l", Value::Seq(vec![Value::Int(1)]))]);
        let b = map(&[("x", s("2")), ("l", Value::Seq(vec![Value::Int(1)]))]);
        assert!(deep_compare(&a, &b));
        let c = map(&[("x", Value::Int(2)), ("l", Value::Seq(vec![s("1")]))]);
        assert!(!deep_compare(&a, &c));
        assert!(!deep_compare(&a, &map(&[("x", Value::Int(2))])));
    }

    #[test]
    fn effective_merges_local_over_defaults() {
        let local = map(&[
            ("name", s("n1")),
            ("ttl", Value::Int(5)),
            ("tags", Value::Null),
            (
                "restapi",
                Value::Map(map(&[(
                    "authentication",
                    Value::Map(map(&[("username", s("u")), ("password", Value::Int(1))])),
                )])),
            ),
            (
                "postgresql",
                Value::Map(map(&[
                    ("use_slots", Value::Bool(false)),
                    (
                        "pg_rewind",
                        Value::Map(map(&[("username", s("r")), ("x", s("y"))])),
                    ),
                    (
                        "parameters",
                        Value::Map(map(&[("Max_Connections", Value::Int(5)), ("a", s("b"))])),
                    ),
                ])),
            ),
        ]);
        let mut ev = Vec::new();
        let eff = build_effective_configuration(&Map::new(), &local, &mut ev).unwrap();
        assert_eq!(eff.get("ttl"), Some(&Value::Int(30)));
        assert_eq!(eff.get("tags"), Some(&Value::Map(Map::new())));
        let rest = eff.get("restapi").and_then(Value::as_map).unwrap();
        assert_eq!(rest.get("auth"), Some(&s("u:1")));
        let pg = eff.get("postgresql").and_then(Value::as_map).unwrap();
        assert_eq!(pg.get("use_slots"), Some(&Value::Bool(true)));
        assert_eq!(pg.get("use_pg_rewind"), Some(&Value::Bool(true)));
        assert_eq!(pg.get("name"), Some(&s("n1")));
        assert_eq!(pg.get("retry_timeout"), Some(&Value::Int(10)));
        let auth = pg.get("authentication").and_then(Value::as_map).unwrap();
        assert_eq!(
            auth.get("superuser"),
            Some(&Value::Map(map(&[("username", s("r"))])))
        );
        let params = pg.get("parameters").and_then(Value::as_map).unwrap();
        assert_eq!(params.get("max_connections"), Some(&Value::Int(100)));
        assert_eq!(params.get("a"), Some(&s("b")));
    }

    #[test]
    fn broken_sections_are_errors_not_panics() {
        let mut ev = Vec::new();
        let bad_auth = map(&[(
            "postgresql",
            Value::Map(map(&[("authentication", Value::Null)])),
        )]);
        assert!(build_effective_configuration(&Map::new(), &bad_auth, &mut ev).is_err());
        let bad_pg = map(&[("postgresql", s("x"))]);
        assert!(build_effective_configuration(&Map::new(), &bad_pg, &mut ev).is_err());
        let rest_str = map(&[("restapi", s("no auth here"))]);
        assert!(build_effective_configuration(&Map::new(), &rest_str, &mut ev).is_ok());
        let rest_auth_str = map(&[("restapi", s("authentication"))]);
        assert!(build_effective_configuration(&Map::new(), &rest_auth_str, &mut ev).is_err());
    }

    #[test]
    fn citus_requires_group_and_database_and_sets_quorum() {
        let citus = Value::Map(map(&[("group", Value::Int(0)), ("database", s("c"))]));
        let mut ev = Vec::new();
        let eff =
            build_effective_configuration(&Map::new(), &map(&[("citus", citus.clone())]), &mut ev)
                .unwrap();
        let dcs = eff
            .get("bootstrap")
            .and_then(Value::as_map)
            .and_then(|b| b.get("dcs"))
            .and_then(Value::as_map)
            .unwrap();
        assert_eq!(dcs.get("synchronous_mode"), Some(&s("quorum")));
        let half = Value::Map(map(&[("group", s("0")), ("database", s("c"))]));
        let eff =
            build_effective_configuration(&Map::new(), &map(&[("citus", half)]), &mut ev).unwrap();
        assert!(eff.get("citus").is_none());
    }
}
