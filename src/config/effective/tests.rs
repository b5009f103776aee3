//! Tests of [`Config`] as a whole: sources, precedence, cache, timeouts.

use super::*;
use std::os::unix::fs::PermissionsExt;

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn s(x: &str) -> Value {
    Value::Str(x.into())
}

fn section<'a>(m: &'a Map, name: &str) -> &'a Map {
    m.get(name).and_then(Value::as_map).expect("section")
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write test file");
    p
}

#[test]
fn environment_only_configuration() {
    let c = Config::load(
        None,
        &env(&[("PATRONI_NAME", "n1"), ("PATRONI_SCOPE", "demo")]),
        Some(&default_validator),
    )
    .unwrap();
    assert_eq!(c.source(), &ConfigSource::Environment);
    assert_eq!(c.get("name"), Some(&s("n1")));
    let pg = section(&c.effective, "postgresql");
    assert_eq!(pg.get("scope"), Some(&s("demo")));
    assert_eq!(c.consumed_env(), ["PATRONI_NAME", "PATRONI_SCOPE"]);
}

#[test]
fn empty_environment_is_rejected_by_default_validator() {
    let err = Config::load(None, &[], Some(&default_validator)).unwrap_err();
    assert_eq!(err.to_string(), "Config is empty.");
    // patronictl mode accepts it.
    assert!(Config::load(None, &[], None).is_ok());
}

#[test]
fn validator_errors_are_joined_with_newlines() {
    let v = |_: &Value| vec!["a is wrong".to_owned(), "b is wrong".to_owned()];
    let err = Config::load(None, &env(&[("PATRONI_NAME", "n")]), Some(&v)).unwrap_err();
    assert_eq!(err.to_string(), "a is wrong\nb is wrong");
}

#[test]
fn missing_file_falls_back_to_configuration_variable() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yml");
    let c = Config::load(
        Some(&missing),
        &env(&[
            ("PATRONI_CONFIGURATION", "name: from-doc\nscope: s\n"),
            ("PATRONI_NAME", "from-env"),
        ]),
        Some(&default_validator),
    )
    .unwrap();
    assert_eq!(c.source(), &ConfigSource::EnvironmentDocument);
    assert_eq!(c.config_file(), None);
    assert_eq!(c.get("name"), Some(&s("from-doc")));
    assert!(c
        .consumed_env()
        .contains(&"PATRONI_CONFIGURATION".to_owned()));
    assert!(c.consumed_env().contains(&"PATRONI_NAME".to_owned()));
}

#[test]
fn file_is_overlaid_by_environment() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "p.yml",
        "name: file\nrestapi:\n  listen: ':8008'\n  connect_address: x\npostgresql:\n  port: 5432\n",
    );
    let c = Config::load(
        Some(&f),
        &env(&[
            ("PATRONI_RESTAPI_LISTEN", ":9009"),
            ("PATRONI_POSTGRESQL_PORT", "5432"),
            ("PATRONI_CONFIGURATION", "name: ignored"),
        ]),
        Some(&default_validator),
    )
    .unwrap();
    assert_eq!(c.get("name"), Some(&s("file")));
    assert_eq!(
        section(&c.effective, "restapi").get("listen"),
        Some(&s(":9009"))
    );
    // Same string form: the file's integer is kept.
    assert_eq!(
        section(&c.effective, "postgresql").get("port"),
        Some(&Value::Int(5432))
    );
    assert!(!c
        .consumed_env()
        .contains(&"PATRONI_CONFIGURATION".to_owned()));
}

#[test]
fn directory_files_merge_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "b.yaml", "name: b\ntags: {x: 2}\n");
    write(
        dir.path(),
        "a.yml",
        "name: a\nscope: s\ntags: {x: 1, y: 1}\n",
    );
    write(dir.path(), "c.txt", "name: c\n");
    let c = Config::load(Some(dir.path()), &[], Some(&default_validator)).unwrap();
    assert_eq!(c.get("name"), Some(&s("b")));
    let tags = section(&c.effective, "tags");
    assert_eq!(tags.get("x"), Some(&Value::Int(2)));
    assert_eq!(tags.get("y"), Some(&Value::Int(1)));
}

#[test]
fn non_mapping_file_is_a_parse_error() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "list.yml", "- a\n- b\n");
    let err = Config::load(Some(&f), &[], Some(&default_validator)).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("invalid config file {}", f.display())
    );
    let empty = write(dir.path(), "empty.yml", "");
    assert!(matches!(
        Config::load(Some(&empty), &[], None),
        Err(ConfigError::Parse(_))
    ));
}

#[test]
fn dynamic_timeouts_are_adjusted_with_warnings() {
    let mut c = Config::load(
        None,
        &env(&[("PATRONI_NAME", "n")]),
        Some(&default_validator),
    )
    .unwrap();
    c.take_events();
    let mut dynamic = Map::new();
    dynamic.set("ttl", Value::Int(10));
    dynamic.set("loop_wait", Value::Int(0));
    dynamic.set("retry_timeout", Value::Int(9));
    dynamic.set("maximum_lag_on_failover", Value::Int(1));
    assert!(c.set_dynamic_configuration(&dynamic));
    assert_eq!(c.get("ttl"), Some(&Value::Int(20)));
    assert_eq!(c.get("loop_wait"), Some(&Value::Int(1)));
    assert_eq!(c.get("retry_timeout"), Some(&Value::Int(9)));
    assert_eq!(c.dynamic_configuration().get("ttl"), Some(&Value::Int(20)));
    let messages: Vec<_> = c.take_events().into_iter().map(|e| e.message).collect();
    assert_eq!(
        messages,
        [
            "loop_wait=0 can't be smaller than 1, adjusting...",
            "ttl=10 can't be smaller than 20, adjusting...",
        ]
    );
    // Same content (by string form) again: no change.
    assert!(!c.set_dynamic_configuration(&c.dynamic_configuration().clone()));
    // ttl 20 with the defaults needs loop_wait and retry_timeout lowered.
    let mut short = Map::new();
    short.set("ttl", Value::Int(20));
    short.set("retry_timeout", Value::Int(10));
    assert!(c.set_dynamic_configuration(&short));
    assert_eq!(c.get("retry_timeout"), Some(&Value::Int(9)));
    assert_eq!(
        c.dynamic_configuration().get("loop_wait"),
        Some(&Value::Int(1))
    );
}

#[test]
fn unusable_dynamic_configuration_is_ignored() {
    let mut c = Config::load(None, &env(&[("PATRONI_NAME", "n")]), None).unwrap();
    let mut dynamic = Map::new();
    dynamic.set("ttl", s("thirty"));
    assert!(!c.set_dynamic_configuration(&dynamic));
    assert_eq!(c.get("ttl"), Some(&Value::Int(30)));
    assert!(c.dynamic_configuration().is_empty());
    let events = c.take_events();
    assert_eq!(events.last().map(|e| e.level), Some(EventLevel::Error));
}

#[test]
fn cache_round_trip_in_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o750)).unwrap();
    let data_dir = dir.path().to_str().unwrap().to_owned();
    let vars = env(&[
        ("PATRONI_NAME", "n"),
        ("PATRONI_POSTGRESQL_DATA_DIR", &data_dir),
    ]);
    let mut c = Config::load(None, &vars, Some(&default_validator)).unwrap();
    let mut dynamic = Map::new();
    dynamic.set("ttl", Value::Int(40));
    let mut params = Map::new();
    params.set("max_connections", s("150"));
    let mut pg = Map::new();
    pg.set("parameters", Value::Map(params));
    dynamic.set("postgresql", Value::Map(pg));
    assert!(c.set_dynamic_configuration(&dynamic));
    c.save_cache().unwrap();
    let written = fs::read_to_string(dir.path().join(CACHE_FILENAME)).unwrap();
    assert_eq!(
        written,
        r#"{"ttl": 40, "postgresql": {"parameters": {"max_connections": "150"}}}"#
    );
    let mode = fs::metadata(dir.path().join(CACHE_FILENAME))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);
    let leftovers = fs::read_dir(dir.path()).unwrap().count();
    assert_eq!(leftovers, 1);

    let reloaded = Config::load(None, &vars, Some(&default_validator)).unwrap();
    assert_eq!(reloaded.get("ttl"), Some(&Value::Int(40)));
    let params = section(section(&reloaded.effective, "postgresql"), "parameters");
    assert_eq!(params.get("max_connections"), Some(&Value::Int(150)));
}

#[test]
fn golden_dynamic_cache_is_reproduced_byte_for_byte() {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared/compat/golden/datadir_files/etcd3-node2-primary/patroni.dynamic.json");
    let Ok(text) = fs::read_to_string(&golden) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "golden file missing: {}",
            golden.display()
        );
        eprintln!("golden file not available: {}", golden.display());
        return;
    };
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json_dumps(&Value::from_json(&json)).unwrap(), text);
}

#[test]
fn contradictory_tags_warn() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(
        dir.path(),
        "t.yml",
        "name: n\ntags:\n  nofailover: true\n  failover_priority: 1\n  nosync: false\n  sync_priority: '0'\n",
    );
    let mut c = Config::load(Some(&f), &[], Some(&default_validator)).unwrap();
    let messages: Vec<_> = c.take_events().into_iter().map(|e| e.message).collect();
    assert_eq!(
        messages,
        [
            "Conflicting configuration between nofailover: True and failover_priority: 1. \
             Defaulting to nofailover: True",
            "Conflicting configuration between nosync: False and sync_priority: 0. \
             Defaulting to nosync: False",
        ]
    );
    let bad = write(dir.path(), "bad.yml", "name: n\ntags: 5\n");
    assert!(matches!(
        Config::load(Some(&bad), &[], Some(&default_validator)),
        Err(ConfigError::Invalid(_))
    ));
}

#[test]
fn reload_detects_changes() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "r.yml", "name: n\nscope: s\n");
    let mut c = Config::load(
        Some(&f),
        &env(&[("PATRONI_SCOPE", "env")]),
        Some(&default_validator),
    )
    .unwrap();
    assert_eq!(c.reload_local_configuration().unwrap(), None);
    write(dir.path(), "r.yml", "name: m\nscope: s\n");
    assert_eq!(c.reload_local_configuration().unwrap(), Some(true));
    assert_eq!(c.get("name"), Some(&s("m")));
    // The environment captured at start-up still wins.
    assert_eq!(c.get("scope"), Some(&s("env")));
    fs::remove_file(&f).unwrap();
    assert!(c.reload_local_configuration().is_err());
    assert_eq!(c.get("name"), Some(&s("m")));
}

#[test]
fn data_dir_must_be_a_string() {
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "d.yml", "name: n\npostgresql:\n  data_dir: 5\n");
    assert!(matches!(
        Config::load(Some(&f), &[], None),
        Err(ConfigError::Invalid(_))
    ));
}

#[test]
fn versioned_dynamic_configuration_skips_seen_versions() {
    let mut c = Config::load(None, &env(&[("PATRONI_NAME", "n")]), None).unwrap();
    let mut dynamic = Map::new();
    dynamic.set("ttl", Value::Int(40));
    assert!(c.set_dynamic_configuration_versioned(&dynamic, 7));
    dynamic.set("ttl", Value::Int(50));
    // Same modification version: the content is not even looked at.
    assert!(!c.set_dynamic_configuration_versioned(&dynamic, 7));
    assert_eq!(c.get("ttl"), Some(&Value::Int(40)));
    assert!(c.set_dynamic_configuration_versioned(&dynamic, 8));
    assert_eq!(c.get("ttl"), Some(&Value::Int(50)));
}

#[test]
fn configuration_variable_must_be_a_mapping() {
    let err = Config::load(
        None,
        &env(&[("PATRONI_CONFIGURATION", "- a\n- b\n")]),
        Some(&default_validator),
    )
    .unwrap_err();
    assert!(matches!(err, ConfigError::Invalid(_)), "{err}");
    let yaml_err = Config::load(None, &env(&[("PATRONI_CONFIGURATION", "{")]), None).unwrap_err();
    assert!(
        yaml_err.to_string().starts_with("PATRONI_CONFIGURATION: "),
        "{yaml_err}"
    );
    // An empty or null document falls back to the individual variables.
    let c = Config::load(
        None,
        &env(&[("PATRONI_CONFIGURATION", "~"), ("PATRONI_NAME", "n")]),
        Some(&default_validator),
    )
    .unwrap();
    assert_eq!(c.source(), &ConfigSource::Environment);
    assert_eq!(c.get("name"), Some(&s("n")));
}
