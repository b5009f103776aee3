use chrono::TimeZone;
use serde_json::json;

use super::*;

fn obj(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 22, 1, 0, 0)
        .single()
        .unwrap_or_default()
}

#[test]
fn json_body_rules() {
    let body = |cl: Option<&'static str>, b: &'static str| Body {
        content_length: cl,
        bytes: b.as_bytes(),
    };
    assert_eq!(read_json(body(None, ""), false), Err(Reply::Error(411)));
    assert_eq!(read_json(body(None, ""), true), Ok(Map::new()));
    assert_eq!(read_json(body(Some("0"), ""), true), Ok(Map::new()));
    assert_eq!(
        read_json(body(Some("0"), ""), false),
        Err(Reply::Error(400))
    );
    assert_eq!(
        read_json(body(Some("2"), "{}"), false),
        Err(Reply::Error(400))
    );
    assert_eq!(read_json(body(Some("2"), "{}"), true), Ok(Map::new()));
    assert_eq!(
        read_json(body(Some("4"), "[1,2"), false),
        Err(Reply::Error(400))
    );
    assert_eq!(
        read_json(body(Some("x"), "{}"), true),
        Err(Reply::Error(400))
    );
    assert_eq!(
        read_json(body(Some("8"), r#"{"a": 1}"#), false),
        Ok(obj(json!({"a": 1})))
    );
}

#[test]
fn schedules() {
    let p = |s: &str| parse_schedule(&json!(s), "switchover", now());
    assert_eq!(
        p("2026-11-22T01:25:05+00:00"),
        Schedule::At("2026-11-22T01:25:05+00:00".into())
    );
    assert_eq!(
        p("2026-11-22 03:25:05.25+02:00"),
        Schedule::At("2026-11-22T03:25:05.250000+02:00".into())
    );
    assert_eq!(
        p("2026-11-22T01:25:05Z"),
        Schedule::At("2026-11-22T01:25:05+00:00".into())
    );
    assert_eq!(
        p("2020-01-01T00:00:00+00:00"),
        Schedule::Invalid(422, "Cannot schedule switchover in the past".into())
    );
    assert_eq!(
        p("2099-01-01T00:00:00"),
        Schedule::Invalid(
            400,
            "Timezone information is mandatory for the scheduled switchover".into()
        )
    );
    assert!(matches!(p("garbage"), Schedule::Invalid(422, m) if m.starts_with("Unable to parse")));
    assert!(matches!(
        parse_schedule(&json!(5), "restart", now()),
        Schedule::Invalid(422, _)
    ));
}

#[test]
fn postgres_versions() {
    assert!(check_postgres_version(&json!("15.2")).is_ok());
    assert!(check_postgres_version(&json!("9.6.1")).is_ok());
    assert_eq!(
        check_postgres_version(&json!("abc")),
        Err("Invalid PostgreSQL version: abc".into())
    );
    assert_eq!(
        check_postgres_version(&json!("9.6")),
        Err("Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: 9.6".into())
    );
}

#[test]
fn patch_and_compare() {
    let mut config =
        obj(json!({"ttl": 30, "postgresql": {"parameters": {"a": 1, "b": 2}}, "pause": true}));
    assert!(!patch_config(&mut config, &obj(json!({"ttl": "30"}))));
    assert!(patch_config(
        &mut config,
        &obj(json!({"pause": null, "postgresql": {"parameters": {"b": null, "c": 3}}, "new": 1}))
    ));
    assert_eq!(
        compact(&Value::Object(config.clone())),
        r#"{"ttl":30,"postgresql":{"parameters":{"a":1,"c":3}},"new":1}"#
    );
    assert!(!patch_config(&mut config, &obj(json!({"missing": null}))));
    assert!(deep_compare(
        &config,
        &obj(json!({"new": "1", "ttl": 30, "postgresql": {"parameters": {"c": 3, "a": 1}}}))
    ));
    assert!(!deep_compare(&config, &obj(json!({"ttl": 30}))));
}
