//! One row per health rule; each row states the node and the expected code.

use std::sync::Arc;

use serde_json::{json, Map, Value};

use super::*;
use crate::api::status::{PgQuery, PostgresView, Xlog};
use crate::model::Cluster;

/// A three-node cluster with node1 as leader; `config` is the dynamic
/// configuration and `sync` the `/sync` key.
fn cluster(config: &str, sync: &str, optime: i64) -> Arc<Cluster> {
    let status = format!(r#"{{"optime":{optime}}}"#);
    Arc::new(Cluster::from_nodes([
        ("config", config, Some(1)),
        ("leader", "node1", Some(2)),
        ("sync", sync, Some(3)),
        ("status", status.as_str(), Some(4)),
        ("members/node1", "{}", Some(5)),
        ("members/node2", "{}", Some(6)),
    ]))
}

fn tags(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn leader() -> NodeStatus {
    let mut s = NodeStatus::new("demo", "node1");
    s.is_leader = true;
    s.cluster = Some(cluster("{}", "{}", 1000));
    s.cluster_valid = true;
    s.tags = tags(json!({"clonefrom": true}));
    s.postgres = PostgresView {
        state: "running".into(),
        role: "primary".into(),
        query: Some(PgQuery {
            xlog: Some(Xlog::Primary { location: 1000 }),
            timeline: Some(1),
            ..PgQuery::default()
        }),
    };
    s
}

fn replica(replayed: i64) -> NodeStatus {
    let mut s = NodeStatus::new("demo", "node2");
    s.cluster = Some(cluster("{}", "{}", 1000));
    s.cluster_valid = true;
    s.tags = tags(json!({"clonefrom": true, "datacenter": "dc2", "weight": 5}));
    s.postgres = PostgresView {
        state: "running".into(),
        role: "replica".into(),
        query: Some(PgQuery {
            xlog: Some(Xlog::Replica {
                received_location: replayed,
                replayed_location: replayed,
                replayed_timestamp: None,
                paused: false,
            }),
            timeline: Some(1),
            replication_state: Some("streaming".into()),
            ..PgQuery::default()
        }),
    };
    s
}

fn code(s: &NodeStatus, url: &str) -> u16 {
    let (path, query) = url.split_once('?').unwrap_or((url, ""));
    health_status(s, path, &Query::parse(query))
}

#[test]
fn path_rules_on_leader_and_replica() {
    let l = leader();
    let r = replica(1000);
    let rows: &[(&str, u16, u16)] = &[
        // path, leader, replica
        ("/", 200, 503),
        ("/primary", 200, 503),
        ("/master", 200, 503),
        ("/read-write", 200, 503),
        ("/leader", 200, 503),
        ("/standby-leader", 503, 503),
        ("/standby_leader", 503, 503),
        ("/replica", 503, 200),
        ("/read-only", 200, 200),
        ("/health", 200, 200),
        ("/async", 503, 200),
        ("/asynchronous", 503, 200),
        ("/sync", 503, 503),
        ("/synchronous", 503, 503),
        ("/quorum", 503, 503),
        ("/read-only-sync", 200, 503),
        ("/read-only-synchronous", 200, 503),
        ("/read-only-quorum", 200, 503),
        ("/nonexistent", 503, 503),
        // Substring matching: anything containing "replica" is /replica.
        ("/replicaXYZ", 503, 200),
        ("/x/primary/y", 200, 503),
    ];
    for (path, on_leader, on_replica) in rows {
        assert_eq!(code(&l, path), *on_leader, "leader {path}");
        assert_eq!(code(&r, path), *on_replica, "replica {path}");
    }
}

#[test]
fn lag_parameter() {
    // The leader's optime is 1000; this replica replayed 1000 - 2048.
    let behind = replica(-1048);
    let rows: &[(&str, u16)] = &[
        ("/replica", 200),
        ("/replica?lag=2048", 200),
        ("/replica?lag=2047", 503),
        ("/replica?lag=1kB", 503),
        ("/replica?lag=2kB", 200),
        ("/replica?lag=1MB", 200),
        ("/replica?lag=abc", 200),
        ("/replica?lag=", 200),
        ("/read-only?lag=1", 503),
        ("/async?lag=1", 503),
        ("/health?lag=1", 200),
    ];
    for (url, expected) in rows {
        assert_eq!(code(&behind, url), *expected, "{url}");
    }
    // No known leader position: never lagging.
    let mut unknown = replica(5);
    unknown.cluster = Some(cluster("{}", "{}", 0));
    assert_eq!(code(&unknown, "/replica?lag=0"), 200);
}

#[test]
fn tag_filters() {
    let r = replica(1000);
    let l = leader();
    let rows: &[(&NodeStatus, &str, u16)] = &[
        (&r, "/replica?tag_datacenter=dc2", 200),
        (&r, "/replica?tag_datacenter=dc3", 503),
        (&r, "/replica?tag_clonefrom=true", 200),
        (&r, "/replica?tag_clonefrom=True", 503),
        (&r, "/replica?tag_weight=5", 200),
        (&r, "/replica?tag_nosuch=x", 503),
        (&r, "/replica?lag=10MB&tag_datacenter=dc2", 200),
        (&r, "/health?tag_x=nomatch", 503),
        (&r, "/async?tag_datacenter=dc3", 503),
        // Ignored on leader paths.
        (&l, "/primary?tag_datacenter=nomatch", 200),
        (&l, "/leader?tag_datacenter=nomatch", 200),
        // Applied to read-only even on the leader.
        (&l, "/read-only?tag_datacenter=nomatch", 503),
        // A 503 stays 503.
        (&r, "/primary?tag_datacenter=dc2", 503),
    ];
    for (s, url, expected) in rows {
        assert_eq!(code(s, url), *expected, "{url}");
    }
}

#[test]
fn noloadbalance_and_state() {
    let mut r = replica(1000);
    r.tags.insert("noloadbalance".into(), json!(true));
    assert_eq!(code(&r, "/replica"), 503);
    assert_eq!(code(&r, "/read-only"), 503);
    assert_eq!(code(&r, "/async"), 503);
    assert_eq!(code(&r, "/health"), 200);

    let mut starting = replica(1000);
    starting.postgres.state = "starting".into();
    assert_eq!(code(&starting, "/replica"), 503);
    assert_eq!(code(&starting, "/health"), 503);

    // PostgreSQL unreachable while Patroni thinks it runs: "unknown".
    let mut unreachable = replica(1000);
    unreachable.postgres.query = None;
    assert_eq!(code(&unreachable, "/health"), 503);
    assert_eq!(code(&unreachable, "/replica"), 503);
}

#[test]
fn sync_and_quorum_membership() {
    let sync = r#"{"leader":"node1","sync_standby":"node2"}"#;
    let mut s = replica(1000);
    s.cluster = Some(cluster(r#"{"synchronous_mode":true}"#, sync, 1000));
    assert_eq!(code(&s, "/sync"), 200);
    assert_eq!(code(&s, "/synchronous"), 200);
    assert_eq!(code(&s, "/read-only-sync"), 200);
    assert_eq!(code(&s, "/quorum"), 503);
    assert_eq!(code(&s, "/read-only-quorum"), 503);
    assert_eq!(code(&s, "/async"), 503);

    s.cluster = Some(cluster(r#"{"synchronous_mode":"quorum"}"#, sync, 1000));
    assert_eq!(code(&s, "/quorum"), 200);
    assert_eq!(code(&s, "/read-only-quorum"), 200);
    assert_eq!(code(&s, "/sync"), 503);
    assert_eq!(code(&s, "/async"), 503);

    // Listed in /sync but synchronous_mode is off: an async replica.
    s.cluster = Some(cluster("{}", sync, 1000));
    assert_eq!(code(&s, "/sync"), 503);
    assert_eq!(code(&s, "/async"), 200);

    // No valid DCS view: DCS-dependent paths are 503.
    s.cluster = Some(cluster(r#"{"synchronous_mode":true}"#, sync, 1000));
    s.cluster_valid = false;
    assert_eq!(code(&s, "/sync"), 503);
    assert_eq!(code(&s, "/async"), 503);
    assert_eq!(code(&s, "/replica"), 200);
}

#[test]
fn standby_cluster_rules() {
    let standby = r#"{"standby_cluster":{"host":"10.0.0.1","port":5432}}"#;
    let mut l = replica(1000);
    l.is_leader = true;
    l.postgres.role = "standby_leader".into();
    l.cluster = Some(cluster(standby, "{}", 1000));
    assert_eq!(code(&l, "/standby-leader"), 200);
    assert_eq!(code(&l, "/standby_leader"), 200);
    assert_eq!(code(&l, "/leader"), 200);
    assert_eq!(code(&l, "/primary"), 503);
    assert_eq!(code(&l, "/replica"), 503);
    assert_eq!(code(&l, "/read-only"), 200);

    // A standby_cluster without host/port/restore_command is not one.
    let mut p = leader();
    p.cluster = Some(cluster(r#"{"standby_cluster":{"host":""}}"#, "{}", 1000));
    assert_eq!(code(&p, "/primary"), 200);
}

#[test]
fn paused_without_dcs_uses_postgres_role() {
    let mut l = leader();
    l.cluster = Some(cluster(r#"{"pause":true}"#, "{}", 1000));
    l.cluster_valid = false;
    l.is_leader = false;
    assert_eq!(code(&l, "/primary"), 200);
    assert_eq!(code(&l, "/leader"), 200);
    // Not paused: lock ownership decides, and the lock is not held.
    l.cluster = Some(cluster("{}", "{}", 1000));
    assert_eq!(code(&l, "/primary"), 503);
}

#[test]
fn liveness() {
    let mut l = leader();
    l.ttl = 30;
    l.next_run = 1000.0;
    assert_eq!(liveness_status(&l, 1029.0), 200);
    assert_eq!(liveness_status(&l, 1030.0), 503);
    let mut r = replica(1000);
    r.ttl = 30;
    r.next_run = 1000.0;
    assert_eq!(liveness_status(&r, 1059.0), 200);
    assert_eq!(liveness_status(&r, 1060.0), 503);
    r.cluster = Some(cluster(r#"{"pause":true}"#, "{}", 1000));
    assert_eq!(liveness_status(&r, 99999.0), 200);
}

#[test]
fn readiness() {
    let q = |s: &str| Query::parse(s);
    assert_eq!(readiness_failure(&leader(), &q("")), None);
    let mut stopped = replica(1000);
    stopped.postgres.state = "stopped".into();
    assert_eq!(
        readiness_failure(&stopped, &q("")).as_deref(),
        Some("PostgreSQL is not running")
    );
    let mut archive = replica(1000);
    if let Some(query) = archive.postgres.query.as_mut() {
        query.replication_state = Some("in archive recovery".into());
    }
    assert_eq!(readiness_status(&archive, &q("")), 503);

    let mut no_dcs = replica(1000);
    no_dcs.cluster_valid = false;
    assert_eq!(
        readiness_failure(&no_dcs, &q("")).as_deref(),
        Some("DCS is not accessible")
    );
    no_dcs.failsafe_active = true;
    assert_eq!(readiness_failure(&no_dcs, &q("")), None);

    // 2 MiB behind with the default 1 MiB limit.
    let behind = replica(1000 - 2 * 1_048_576);
    assert_eq!(
        readiness_failure(&behind, &q("")).as_deref(),
        Some("Replication apply lag 2097152 exceeds maximum allowable 1048576")
    );
    assert_eq!(readiness_status(&behind, &q("lag=3MB")), 200);
    assert_eq!(readiness_status(&behind, &q("lag=junk")), 503);
    assert_eq!(readiness_status(&behind, &q("lag=0&mode=write")), 503);
    let mut received = behind.clone();
    if let Some(PgQuery {
        xlog: Some(Xlog::Replica {
            received_location, ..
        }),
        ..
    }) = received.postgres.query.as_mut()
    {
        *received_location = 1000;
    }
    assert_eq!(readiness_status(&received, &q("lag=0&mode=write")), 200);
    assert_eq!(readiness_status(&received, &q("lag=0")), 503);
}

#[test]
fn query_parsing() {
    let q = Query::parse("a=1&a=2&b=&c&tag_x=%41b+c&d=%zz");
    assert_eq!(q.get("a"), Some("1"));
    assert_eq!(q.get("b"), None);
    assert_eq!(q.get("c"), None);
    assert_eq!(q.get("tag_x"), Some("Ab c"));
    assert_eq!(q.get("d"), Some("%zz"));
    assert_eq!(
        q.iter().map(|(k, _)| k).collect::<Vec<_>>(),
        ["a", "tag_x", "d"]
    );
}

#[test]
fn a_leader_hold_past_its_ttl_is_not_a_leader() {
    use std::time::{Duration, Instant};
    let mut l = leader();
    l.leader_expiry = Some(Instant::now() + Duration::from_secs(30));
    assert_eq!(code(&l, "/primary"), 200);
    assert_eq!(readiness_failure(&l, &Query::parse("")), None);
    // The HA loop stopped refreshing: once the key would have expired the
    // node no longer claims it, whatever the snapshot last said.
    let now = Instant::now();
    l.leader_expiry = now.checked_sub(Duration::from_millis(1));
    assert!(!l.holds_leader());
    assert!(l.holds_leader_at(now - Duration::from_secs(5)));
    assert_eq!(code(&l, "/primary"), 503);
    assert_eq!(code(&l, "/leader"), 503);
    assert_eq!(code(&l, "/read-only"), 503);
    assert!(readiness_failure(&l, &Query::parse("")).is_some());
}
