//! The log lines a decision carries (`Decision::notes`): the leader race's
//! and the failover checks' reasons, in the order Patroni logs them, and
//! carried across a `ReloadCluster` round to the final decision.

use serde_json::json;

use super::tests::{cycle, decision, me, peer, replica_pg, script, Script};
use super::*;
use crate::model::{Cluster, Failover};

struct Row {
    name: &'static str,
    cluster: Cluster,
    me: Me,
    pg: LocalPg,
    settings: HaSettings,
    script: Script,
    notes: &'static [&'static str],
    message: &'static str,
}

fn replica_body(wal: i64, tags: Value) -> Value {
    json!({
        "role": "replica",
        "xlog": {"received_location": wal, "replayed_location": wal},
        "tags": tags,
        "timeline": 2,
    })
}

fn with_failover(mut c: Cluster, value: &str) -> Cluster {
    c.failover = Some(Failover::from_node(Some(42), value));
    c
}

fn rows() -> Vec<Row> {
    let leaderless = super::tests::cluster(None);
    vec![
        Row {
            name: "a healthy replica loses to a peer further ahead",
            cluster: leaderless.clone(),
            me: me("n2", json!({})),
            pg: replica_pg(5000),
            settings: HaSettings::default(),
            script: Script {
                peers: vec![peer("n1", replica_body(6000, json!({})))],
                reloaded: super::tests::cluster(Some("n1")),
                ..script()
            },
            notes: &["Wal position of n1 is ahead of my wal position"],
            message: "following a different leader because i am not the healthiest node",
        },
        Row {
            name: "lag over maximum_lag_on_failover",
            cluster: leaderless.clone(),
            me: me("n2", json!({})),
            pg: replica_pg(4000),
            settings: HaSettings {
                maximum_lag_on_failover: 100,
                ..HaSettings::default()
            },
            script: Script {
                reloaded: super::tests::cluster(Some("n1")),
                ..script()
            },
            notes: &["My wal position exceeds maximum replication lag"],
            message: "following a different leader because i am not the healthiest node",
        },
        Row {
            name: "a peer at the same position with a higher failover_priority",
            cluster: leaderless.clone(),
            me: me("n2", json!({"failover_priority": 1})),
            pg: replica_pg(5000),
            settings: HaSettings::default(),
            script: Script {
                peers: vec![peer("n1", replica_body(5000, json!({"failover_priority": 5})))],
                reloaded: super::tests::cluster(Some("n1")),
                ..script()
            },
            notes: &[
                "n1 has equally tolerable WAL position and priority 5, while this node has priority 1",
            ],
            message: "following a different leader because i am not the healthiest node",
        },
        Row {
            name: "the old primary still answers as a primary",
            cluster: leaderless.clone(),
            me: me("n2", json!({})),
            pg: replica_pg(5000),
            settings: HaSettings::default(),
            script: Script {
                peers: vec![peer(
                    "n1",
                    json!({"role": "primary", "xlog": {"location": 5000}}),
                )],
                reloaded: super::tests::cluster(Some("n1")),
                ..script()
            },
            notes: &["Primary (n1) is still alive"],
            message: "following a different leader because i am not the healthiest node",
        },
        Row {
            name: "the healthiest replica wins quietly",
            cluster: leaderless.clone(),
            me: me("n2", json!({})),
            pg: replica_pg(5000),
            settings: HaSettings::default(),
            script: Script {
                peers: vec![peer("n1", replica_body(4000, json!({})))],
                ..script()
            },
            notes: &[],
            message: "promoted self to leader by acquiring session lock",
        },
        Row {
            name: "the former leader races when nobody else can, then loses the key",
            cluster: with_failover(leaderless.clone(), r#"{"leader":"n2"}"#),
            me: me("n2", json!({})),
            pg: replica_pg(5000),
            settings: HaSettings::default(),
            script: Script {
                acquire: false,
                reloaded: super::tests::cluster(Some("n1")),
                ..script()
            },
            notes: &["Member n1 is not reachable"],
            message: "following new leader after trying and failing to obtain lock",
        },
        Row {
            name: "manual failover: the named candidate is gone, the race is judged without the lag check",
            cluster: with_failover(leaderless.clone(), r#"{"member":"n9"}"#),
            me: me("n2", json!({})),
            pg: replica_pg(10),
            settings: HaSettings::default(),
            script: Script {
                peers: vec![peer("n1", replica_body(20, json!({})))],
                reloaded: super::tests::cluster(Some("n1")),
                ..script()
            },
            notes: &["Wal position of n1 is ahead of my wal position"],
            message: "following a different leader because i am not the healthiest node",
        },
        Row {
            name: "a primary behind the cluster timeline does not take the key back",
            cluster: leaderless.clone(),
            me: me("n1", json!({})),
            pg: LocalPg {
                timeline: Some(1),
                ..super::tests::primary_pg()
            },
            settings: HaSettings::default(),
            script: Script {
                reloaded: super::tests::cluster(Some("n2")),
                ..script()
            },
            notes: &["My timeline 1 is behind last known cluster timeline 2"],
            message: "demoting self because i am not the healthiest node",
        },
        Row {
            name: "switchover to a candidate that does not answer: the others race",
            cluster: with_failover(leaderless.clone(), r#"{"leader":"n1","member":"n3"}"#),
            me: me("n2", json!({})),
            pg: replica_pg(5000),
            settings: HaSettings::default(),
            script: script(),
            notes: &["switchover: member n3 is not reachable"],
            message: "promoted self to leader by acquiring session lock",
        },
        Row {
            name: "paused primary drops a failover key naming a vanished member",
            cluster: with_failover(leaderless.clone(), r#"{"member":"n9"}"#),
            me: me("n1", json!({})),
            pg: super::tests::primary_pg(),
            settings: HaSettings {
                paused: true,
                ..HaSettings::default()
            },
            script: script(),
            notes: &["manual failover: removing failover key because failover candidate is not running"],
            message: "PAUSE: acquired session lock as a leader",
        },
        Row {
            name: "switchover from the leader with nobody healthy to take over",
            cluster: with_failover(super::tests::cluster(Some("n1")), r#"{"leader":"n1"}"#),
            me: me("n1", json!({})),
            pg: super::tests::primary_pg(),
            settings: HaSettings {
                maximum_lag_on_failover: 100,
                ..HaSettings::default()
            },
            script: Script {
                peers: vec![peer("n2", replica_body(10, json!({})))],
                ..script()
            },
            notes: &["Member n2 exceeds maximum replication lag"],
            message: "no action. I am (n1), the leader with the lock",
        },
        Row {
            name: "switchover from the leader to an unreachable member",
            cluster: with_failover(super::tests::cluster(Some("n1")), r#"{"leader":"n1"}"#),
            me: me("n1", json!({})),
            pg: super::tests::primary_pg(),
            settings: HaSettings::default(),
            script: script(),
            notes: &["Member n2 is not reachable"],
            message: "no action. I am (n1), the leader with the lock",
        },
        Row {
            name: "switchover from the leader to a healthy member",
            cluster: with_failover(super::tests::cluster(Some("n1")), r#"{"leader":"n1"}"#),
            me: me("n1", json!({})),
            pg: super::tests::primary_pg(),
            settings: HaSettings::default(),
            script: Script {
                peers: vec![peer("n2", replica_body(5000, json!({})))],
                ..script()
            },
            notes: &[],
            message: "switchover: demoting myself",
        },
    ]
}

#[test]
fn notes_table() {
    for r in rows() {
        let (step, asked) = cycle(&r.cluster, &r.me, &r.pg, &r.settings, &r.script);
        let d = decision(step);
        assert_eq!(d.message, r.message, "{}: message", r.name);
        assert_eq!(d.notes, r.notes, "{}: notes", r.name);
        // A lost race carries its lines through the reload round.
        for q in &asked {
            if let Query::ReloadCluster(p) = q {
                assert_eq!(p.notes, r.notes, "{}: pending follow", r.name);
            }
        }
    }
}

#[test]
fn notes_from_before_a_reload_come_first() {
    let mut facts = Facts {
        pending_follow: Some(PendingFollow {
            demote_reason: "demoting self because i am not the healthiest node".into(),
            follow_reason: "following a different leader because i am not the healthiest node"
                .into(),
            notes: vec!["Primary (n1) is still alive".into()],
        }),
        ..Facts::default()
    };
    let step = decide(
        &super::tests::cluster(Some("n1")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &facts,
    );
    let d = decision(step);
    assert_eq!(d.notes, ["Primary (n1) is still alive"]);
    assert_eq!(
        d.actions,
        [Action::Follow {
            member: Some("n1".into())
        }]
    );
    // Without a pending follow nothing is invented.
    facts.pending_follow = None;
    let d = decision(decide(
        &super::tests::cluster(Some("n1")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &facts,
    ));
    assert!(d.notes.is_empty());
    // Paused, only the message gets its prefix.
    facts.pending_follow = Some(PendingFollow {
        demote_reason: String::new(),
        follow_reason: "following a different leader because i am not the healthiest node".into(),
        notes: vec!["My wal position exceeds maximum replication lag".into()],
    });
    let d = decision(decide(
        &super::tests::cluster(Some("n1")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings {
            paused: true,
            ..HaSettings::default()
        },
        &facts,
    ));
    assert_eq!(d.notes, ["My wal position exceeds maximum replication lag"]);
    assert_eq!(
        d.message,
        "PAUSE: following a different leader because i am not the healthiest node"
    );
}
