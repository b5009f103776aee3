use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::api::status::{PgQuery, PostgresView};

#[test]
fn lsn_and_time_formats() {
    assert_eq!(format_lsn(67419768), "0/404BE78");
    assert_eq!(format_lsn((5_i64 << 32) + 255), "5/FF");
    assert_eq!(
        isoformat("2026-11-22T01:25:05.000000+00:00"),
        "2026-11-22T01:25:05+00:00"
    );
    assert_eq!(
        isoformat("2026-11-22 01:25:05.5+02:00"),
        "2026-11-22T01:25:05.500000+02:00"
    );
    assert_eq!(isoformat("garbage"), "garbage");
    assert_eq!(
        epoch_seconds(Some("2026-11-22 01:19:23.052006+00:00")),
        "1795310363.052006"
    );
    assert_eq!(
        epoch_seconds(Some("2026-11-22 01:19:23+00:00")),
        "1795310363.0"
    );
    assert_eq!(epoch_seconds(None), "0");
}

#[test]
fn postgres_down_body_shrinks() {
    let mut s = NodeStatus::new("demo", "node2");
    s.postgres = PostgresView {
        state: "stopped".into(),
        role: "replica".into(),
        query: None,
    };
    s.cluster = Some(Arc::new(Cluster::from_nodes([
        ("config", r#"{"pause":true}"#, Some(1)),
        ("leader", "node1", Some(2)),
    ])));
    s.cluster_valid = true;
    s.dcs_last_seen = 17;
    s.effective_tags.insert("a".into(), json!(1));
    s.database_system_identifier = Some("77".into());
    assert_eq!(
        status_body(&s),
        r#"{"state": "stopped", "role": "replica", "pause": true, "dcs_last_seen": 17, "tags": {"a": 1}, "database_system_identifier": "77", "patroni": {"version": "4.1.5", "scope": "demo", "name": "node2"}}"#
    );
    // Running in memory but the query failed: "unknown", and no leader
    // view means cluster_unlocked.
    s.postgres.state = "running".into();
    s.cluster_valid = false;
    let body = status_body(&s);
    assert!(
        body.starts_with(
            r#"{"state": "unknown", "role": "replica", "pause": true, "cluster_unlocked": true,"#
        ),
        "{body}"
    );
    let metrics = metrics_body(&s);
    assert!(metrics.contains("patroni_postgres_state{scope=\"demo\",name=\"node2\"} -1\n"));
    // server_version unknown: the streaming lines are left out.
    assert!(!metrics.contains("patroni_postgres_streaming"));
}

#[test]
fn optional_fields_order() {
    let mut s = NodeStatus::new("demo", "n");
    s.postgres = PostgresView {
        state: "running".into(),
        role: "replica".into(),
        query: Some(PgQuery::default()),
    };
    s.pending_restart_reason.insert(
        "max_connections".into(),
        json!({"old_value": "100", "new_value": "101"}),
    );
    let mut sr = serde_json::Map::new();
    sr.insert("schedule".into(), json!("2026-11-22T01:25:05+00:00"));
    sr.insert("postmaster_start_time".into(), json!("x"));
    sr.insert("role".into(), json!("primary"));
    s.scheduled_restart = Some(sr);
    s.watchdog_failed = true;
    s.logger_queue_size = 5;
    s.logger_records_lost = 2;
    assert_eq!(
        status_body(&s),
        r#"{"state": "running", "role": "replica", "timeline": null, "cluster_unlocked": true, "dcs_last_seen": 0, "pending_restart": true, "pending_restart_reason": {"max_connections": {"old_value": "100", "new_value": "101"}}, "patroni": {"version": "4.1.5", "scope": "demo", "name": "n"}, "scheduled_restart": {"schedule": "2026-11-22T01:25:05+00:00", "role": "primary"}, "watchdog_failed": true, "logger_queue_size": 5, "logger_records_lost": 2}"#
    );
}

/// The expected text was produced by Patroni 4.1.5's `cluster_as_json` on
/// the same keys.
#[test]
fn cluster_members_lags_and_schedule() {
    let c = Cluster::from_nodes([
        (
            "config",
            r#"{"synchronous_mode":true,"pause":true}"#,
            Some(1),
        ),
        ("leader", "a", Some(2)),
        ("status", r#"{"optime":300}"#, Some(3)),
        ("sync", r#"{"leader":"a","sync_standby":"c"}"#, Some(4)),
        (
            "failover",
            r#"{"leader":"a","member":"b","scheduled_at":"2026-11-22T01:25:05.000000+00:00"}"#,
            Some(5),
        ),
        (
            "members/c",
            r#"{"conn_url":"postgres://User@HOST.example:6000/postgres","api_url":"http://h/patroni","state":"running","replication_state":"streaming","xlog_location":400,"replay_lsn":100}"#,
            Some(6),
        ),
        (
            "members/a",
            r#"{"conn_url":"postgres://[::1]/postgres","api_url":"http://h/patroni","state":"running","role":"primary","xlog_location":300}"#,
            Some(7),
        ),
        ("members/b", r#"{"state":null}"#, Some(8)),
    ]);
    let body = spaced(&Value::Object(cluster_object(&c)));
    assert_eq!(
        body,
        r#"{"members": [{"name": "a", "role": "leader", "state": "running", "api_url": "http://h/patroni", "host": "::1", "port": 5432}, {"name": "b", "role": "replica", "state": null, "api_url": null, "receive_lsn": "unknown", "receive_lag": "unknown", "replay_lsn": "unknown", "replay_lag": "unknown", "lsn": "unknown", "lag": "unknown"}, {"name": "c", "role": "sync_standby", "state": "streaming", "api_url": "http://h/patroni", "host": "host.example", "port": 6000, "receive_lsn": "unknown", "receive_lag": "unknown", "replay_lag": 200, "replay_lsn": "0/64", "lag": 0, "lsn": "0/190"}], "pause": true, "scheduled_switchover": {"at": "2026-11-22T01:25:05+00:00", "from": "a", "to": "b"}}"#
    );
}

#[test]
fn config_and_failsafe_need_their_keys() {
    let mut s = NodeStatus::new("demo", "n");
    assert_eq!(config_body(&s), None);
    assert_eq!(failsafe_body(&s), None);
    assert_eq!(history_body(&s), "[]");
    s.cluster = Some(Arc::new(Cluster::from_nodes([
        ("config", "[1]", Some(1)),
        ("failsafe", r#"{"a":"http://x"}"#, Some(2)),
        (
            "history",
            r#"[[1,100,"no recovery target specified","2026-11-22T01:21:26.702833+00:00","node2"]]"#,
            Some(3),
        ),
    ])));
    assert_eq!(config_body(&s), None);
    assert_eq!(failsafe_body(&s).as_deref(), Some(r#"{"a": "http://x"}"#));
    assert_eq!(
        history_body(&s),
        r#"[[1, 100, "no recovery target specified", "2026-11-22T01:21:26.702833+00:00", "node2"]]"#
    );
}

#[test]
fn switch_like_tags_show_only_when_set_as_patroni_filters_them() {
    let tags: Map<String, Value> = serde_json::from_str(
        r#"{"clonefrom": false, "noloadbalance": false, "new_tag": "new_value", "nostream": "false",
            "nosync": 0, "sync_priority": 1, "nofailover": false, "zero": 0}"#,
    )
    .expect("json");
    let shown = filter_tags(&tags);
    assert_eq!(
        Value::Object(shown),
        json!({"new_tag": "new_value", "nostream": "false", "nosync": 0, "sync_priority": 1, "zero": 0})
    );
    // What the acceptance suite compares with == after adding one tag to a
    // config whose other tags are all false.
    let mut s = NodeStatus::new("batman", "postgres-0");
    s.effective_tags = serde_json::from_str(
        r#"{"clonefrom": false, "new_tag": "new_value", "noloadbalance": false}"#,
    )
    .expect("json");
    let body: Value = serde_json::from_str(&status_body(&s)).expect("body");
    assert_eq!(body["tags"], json!({"new_tag": "new_value"}));
    s.effective_tags = serde_json::from_str(r#"{"nofailover": false}"#).expect("json");
    let body: Value = serde_json::from_str(&status_body(&s)).expect("body");
    assert!(body.get("tags").is_none(), "{body}");
}
