//! Differential test: the `/cluster` body against Patroni's own
//! `cluster_as_json` on generated member keys.

use super::*;
use crate::diff_health::Lcg;

const PY_CLUSTER_HARNESS: &str = r#"
import json, sys
from patroni.dcs import Cluster, ClusterConfig, Failover, Leader, Member, Status, SyncState
from patroni.utils import cluster_as_json
from patroni import global_config

for line in sys.stdin:
    sc = json.loads(line)
    members = [Member.from_node(1, name, None, value) for name, value in sc['members']]
    leader = None
    if sc['leader']:
        m = next((m for m in members if m.name == sc['leader']), None) or Member(0, sc['leader'], None, {})
        leader = Leader(1, None, m)
    cluster = Cluster(None, ClusterConfig.from_node(1, sc['config']), leader, Status.from_node(sc['status']),
                      members, Failover.from_node(1, sc['failover']), SyncState.from_node(1, sc['sync']), None, None)
    global_config.update(None, {'ttl': 30})
    global_config.update(cluster)
    print(json.dumps(cluster_as_json(cluster)))
"#;

fn member_value(rng: &mut Lcg) -> String {
    let mut m = Map::new();
    let conn = rng
        .pick(&[
            Some("postgres://127.0.0.1:5432/postgres"),
            Some("postgres://user:pw@Host.Example/db"),
            Some("postgres://[fe80::1]:6000/postgres"),
            None,
        ])
        .to_owned();
    if let Some(c) = conn {
        m.insert("conn_url".into(), Value::from(c));
    }
    if rng.next(5) == 0 {
        m.insert(
            "conn_kwargs".into(),
            serde_json::json!({"host": "10.0.0.9", "port": 5433, "dbname": "postgres"}),
        );
    }
    if rng.next(4) != 0 {
        m.insert(
            "api_url".into(),
            Value::from("http://127.0.0.1:8008/patroni"),
        );
    }
    m.insert(
        "state".into(),
        rng.pick(&[Value::from("running"), Value::from("stopped"), Value::Null])
            .clone(),
    );
    if rng.next(2) == 0 {
        m.insert("replication_state".into(), Value::from("streaming"));
    }
    for key in ["xlog_location", "receive_lsn", "replay_lsn"] {
        let v = rng
            .pick(&[
                None,
                Some(Value::from(0)),
                Some(Value::from(500)),
                Some(Value::from(5_000_000_000_i64)),
                Some(Value::from("700")),
            ])
            .clone();
        if let Some(v) = v {
            m.insert(key.into(), v);
        }
    }
    for (key, value) in [
        ("timeline", Value::from(3)),
        ("pending_restart", Value::from(true)),
        ("tags", serde_json::json!({"nofailover": true, "dc": "x"})),
        (
            "scheduled_restart",
            serde_json::json!({"schedule": "2026-11-22T01:25:05+00:00"}),
        ),
    ] {
        if rng.next(3) == 0 {
            m.insert(key.into(), value);
        }
    }
    patroni::model::json::compact(&Value::Object(m))
}

/// `GET /cluster` bodies against `cluster_as_json`: roles (leader,
/// standby_leader, sync/quorum standby), state fallbacks, host/port from
/// `conn_url` or `conn_kwargs`, lag/LSN fields, pause and scheduled
/// switchovers.
#[test]
fn cluster_bodies_match_patroni_on_generated_keys() {
    let python = &super::venv_python();
    if !super::python_available(python) {
        return;
    }
    let mut rng = Lcg(0xc105);
    let mut scenarios = Vec::new();
    for _ in 0..200 {
        let names = ["a", "b", "c"];
        let members: Vec<(String, String)> = names
            .iter()
            .map(|n| ((*n).to_owned(), member_value(&mut rng)))
            .collect();
        let config = *rng.pick(&[
            "{}",
            r#"{"pause":true}"#,
            r#"{"synchronous_mode":true}"#,
            r#"{"synchronous_mode":"quorum"}"#,
            r#"{"standby_cluster":{"host":"h"},"synchronous_mode":true}"#,
        ]);
        let sync = *rng.pick(&["{}", r#"{"leader":"a","sync_standby":"B,c"}"#]);
        let status = *rng.pick(&[
            r#"{"optime":0}"#,
            r#"{"optime":600}"#,
            r#"{"optime":6000000000}"#,
        ]);
        let failover = *rng.pick(&[
            "{}",
            r#"{"leader":"a","member":"b","scheduled_at":"2026-11-22T01:25:05.000000+00:00"}"#,
            r#"{"member":"c","scheduled_at":"2026-11-22T01:25:05.123000+02:00"}"#,
            r#"{"leader":"a","member":"b"}"#,
        ]);
        let leader = rng
            .pick(&[None, Some("a"), Some("b"), Some("zz")])
            .to_owned();
        scenarios.push(serde_json::json!({
            "members": members, "config": config, "sync": sync, "status": status,
            "failover": failover, "leader": leader,
        }));
    }
    let input: String = scenarios.iter().map(|j| format!("{j}\n")).collect();
    let answers = super::python_lines(python, PY_CLUSTER_HARNESS, input);
    let lines: Vec<&str> = answers.iter().map(String::as_str).collect();
    assert_eq!(lines.len(), scenarios.len());
    let mut failures = Vec::new();
    for (sc, want) in scenarios.iter().zip(lines) {
        let mut nodes: Vec<(String, String)> = vec![
            ("config".into(), sc["config"].as_str().unwrap_or("").into()),
            ("sync".into(), sc["sync"].as_str().unwrap_or("").into()),
            ("status".into(), sc["status"].as_str().unwrap_or("").into()),
            (
                "failover".into(),
                sc["failover"].as_str().unwrap_or("").into(),
            ),
        ];
        if let Some(l) = sc["leader"].as_str() {
            nodes.push(("leader".into(), l.into()));
        }
        for m in sc["members"].as_array().cloned().unwrap_or_default() {
            nodes.push((
                format!("members/{}", m[0].as_str().unwrap_or("")),
                m[1].as_str().unwrap_or("").to_owned(),
            ));
        }
        let cluster =
            Cluster::from_nodes(nodes.iter().map(|(k, v)| (k.as_str(), v.as_str(), Some(1))));
        let ours = patroni::model::json::spaced(&Value::Object(
            patroni::api::bodies::cluster_object(&cluster),
        ));
        if ours != want {
            failures.push(format!("{sc}\n  python {want}\n  ours   {ours}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} mismatches, first ones:\n{}",
        failures.len(),
        failures
            .iter()
            .take(4)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}
