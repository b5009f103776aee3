//! One row per path of a manual failover or switchover: the leader's
//! side, the candidate's, the other members', with and without a
//! schedule.

use serde_json::json;

use super::parse_scheduled_at;
use crate::ha::decide::tests::{cluster, cycle, me, peer, primary_pg, replica_pg, script, Script};
use crate::ha::decide::{Action, DemoteMode, HaSettings, LocalPg, Query, Step};
use crate::ha::race::PeerStatus;
use crate::model::{Cluster, Failover};

fn with_failover(mut c: Cluster, value: &str) -> Cluster {
    c.failover = Some(Failover::from_node(Some(42), value));
    c
}

/// `/status` far ahead of what the replicas report.
fn lagging(mut c: Cluster) -> Cluster {
    c.status.last_lsn = 100_000_000;
    c
}

fn replica_status(name: &str, wal: i64) -> PeerStatus {
    peer(
        name,
        json!({"role": "replica", "timeline": 2, "xlog": {"received_location": wal, "replayed_location": wal}}),
    )
}

fn peers(list: Vec<PeerStatus>) -> Script {
    Script {
        peers: list,
        ..script()
    }
}

const ALL_PEERS_FROM_N1: &[&str] = &["n2", "n3"];
const ALL_PEERS_FROM_N2: &[&str] = &["n1", "n3"];

fn fetch(names: &[&str]) -> Query {
    Query::FetchPeerStatuses(names.iter().map(|n| (*n).to_owned()).collect())
}

struct Row {
    name: &'static str,
    cluster: Cluster,
    me: &'static str,
    pg: LocalPg,
    settings: HaSettings,
    script: Script,
    asked: Vec<Query>,
    actions: Vec<Action>,
    message: &'static str,
}

#[allow(clippy::too_many_arguments)]
fn row(
    name: &'static str,
    cluster: Cluster,
    me: &'static str,
    pg: LocalPg,
    script: Script,
    asked: Vec<Query>,
    actions: Vec<Action>,
    message: &'static str,
) -> Row {
    Row {
        name,
        cluster,
        me,
        pg,
        settings: HaSettings::default(),
        script,
        asked,
        actions,
        message,
    }
}

fn at(text: &str) -> chrono::DateTime<chrono::Utc> {
    parse_scheduled_at(text).expect("a valid time")
}

fn rows() -> Vec<Row> {
    let switchover = |v: &str| with_failover(cluster(Some("n1")), v);
    let healthy_n2 = || peers(vec![replica_status("n2", 5000)]);
    let leader_refresh_and_fetch = || vec![Query::RefreshLock, fetch(ALL_PEERS_FROM_N1)];
    let no_action_leader = "no action. I am (n1), the leader with the lock";
    vec![
        // --- the leader's side ---
        row(
            "switchover to a healthy candidate",
            switchover(r#"{"leader":"n1","member":"n2"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            leader_refresh_and_fetch(),
            vec![Action::Demote(DemoteMode::Graceful)],
            "switchover: demoting myself",
        ),
        row(
            "switchover to anyone healthy",
            switchover(r#"{"leader":"n1"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            leader_refresh_and_fetch(),
            vec![Action::Demote(DemoteMode::Graceful)],
            "switchover: demoting myself",
        ),
        row(
            "manual failover with a running leader",
            switchover(r#"{"member":"n2"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            leader_refresh_and_fetch(),
            vec![Action::Demote(DemoteMode::Graceful)],
            "manual failover: demoting myself",
        ),
        row(
            "legacy leader:member text",
            switchover("n1:n2"),
            "n1",
            primary_pg(),
            healthy_n2(),
            leader_refresh_and_fetch(),
            vec![Action::Demote(DemoteMode::Graceful)],
            "switchover: demoting myself",
        ),
        row(
            "candidate unreachable: key cleared, stay",
            switchover(r#"{"leader":"n1","member":"n2"}"#),
            "n1",
            primary_pg(),
            peers(vec![]),
            leader_refresh_and_fetch(),
            vec![Action::ClearFailoverKey],
            no_action_leader,
        ),
        row(
            "candidate lagging: key cleared, stay",
            lagging(switchover(r#"{"leader":"n1","member":"n2"}"#)),
            "n1",
            primary_pg(),
            peers(vec![replica_status("n2", 10)]),
            leader_refresh_and_fetch(),
            vec![Action::ClearFailoverKey],
            no_action_leader,
        ),
        row(
            "candidate is nofailover: key cleared",
            switchover(r#"{"leader":"n1","member":"n3"}"#),
            "n1",
            primary_pg(),
            peers(vec![replica_status("n3", 5000)]),
            leader_refresh_and_fetch(),
            vec![Action::ClearFailoverKey],
            no_action_leader,
        ),
        row(
            "switchover from another leader name",
            switchover(r#"{"leader":"n9","member":"n2"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock],
            vec![Action::ClearFailoverKey],
            no_action_leader,
        ),
        row(
            "failover to the leader itself",
            switchover(r#"{"member":"n1"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock],
            vec![Action::ClearFailoverKey],
            no_action_leader,
        ),
        row(
            "scheduled far ahead: wait",
            switchover(
                r#"{"leader":"n1","member":"n2","scheduled_at":"2026-11-22T07:00:00+00:00"}"#,
            ),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock, Query::CurrentTime],
            vec![],
            no_action_leader,
        ),
        row(
            "scheduled within loop_wait: sleep, then demote",
            switchover(
                r#"{"leader":"n1","member":"n2","scheduled_at":"2026-11-22T06:00:05+00:00"}"#,
            ),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![
                Query::RefreshLock,
                Query::CurrentTime,
                Query::SleepUntil(at("2026-11-22T06:00:05Z")),
                fetch(ALL_PEERS_FROM_N1),
            ],
            vec![Action::Demote(DemoteMode::Graceful)],
            "switchover: demoting myself",
        ),
        row(
            "scheduled a moment ago: run now",
            switchover(r#"{"leader":"n1","member":"n2","scheduled_at":"2026-11-22T05:59:50Z"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![
                Query::RefreshLock,
                Query::CurrentTime,
                fetch(ALL_PEERS_FROM_N1),
            ],
            vec![Action::Demote(DemoteMode::Graceful)],
            "switchover: demoting myself",
        ),
        row(
            "scheduled long ago: stale, cleared",
            switchover(
                r#"{"leader":"n1","member":"n2","scheduled_at":"2026-11-22T05:59:40+00:00"}"#,
            ),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock, Query::CurrentTime],
            vec![Action::ClearFailoverKey],
            no_action_leader,
        ),
        row(
            "schedule without a time zone: cleared",
            switchover(r#"{"leader":"n1","member":"n2","scheduled_at":"2026-11-22T06:00:00"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock, Query::CurrentTime],
            vec![Action::ClearFailoverKey],
            no_action_leader,
        ),
        row(
            "an empty key asks nothing",
            switchover("{}"),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock],
            vec![],
            no_action_leader,
        ),
        // --- members while the leader still holds the key ---
        row(
            "a replica keeps following during a switchover",
            switchover(r#"{"leader":"n1","member":"n2"}"#),
            "n2",
            replica_pg(5000),
            healthy_n2(),
            vec![],
            vec![Action::Follow {
                member: Some("n1".into()),
            }],
            "no action. I am (n2), a secondary, and following a leader (n1)",
        ),
        // --- nobody holds the key ---
        row(
            "the candidate takes the key and clears the request",
            with_failover(cluster(None), r#"{"leader":"n1","member":"n2"}"#),
            "n2",
            replica_pg(10),
            script(),
            vec![Query::AcquireLock],
            vec![Action::ClearFailoverKey, Action::Promote],
            "promoted self to leader by acquiring session lock",
        ),
        row(
            "another member leaves the race to a healthy candidate",
            with_failover(cluster(None), r#"{"leader":"n1","member":"n3"}"#),
            "n2",
            replica_pg(5000),
            Script {
                peers: vec![peer(
                    "n3",
                    json!({"role": "replica", "xlog": {"received_location": 1, "replayed_location": 1}}),
                )],
                reloaded: cluster(Some("n3")),
                ..script()
            },
            vec![
                fetch(ALL_PEERS_FROM_N2),
                Query::ReloadCluster(crate::ha::decide::PendingFollow {
                    demote_reason: "demoting self because i am not the healthiest node".into(),
                    follow_reason:
                        "following a different leader because i am not the healthiest node".into(),
                    notes: vec!["switchover: to n3, i am n2".into()],
                }),
            ],
            vec![Action::Follow {
                member: Some("n3".into()),
            }],
            "following a different leader because i am not the healthiest node",
        ),
        row(
            "candidate unreachable: the healthiest other member races",
            with_failover(cluster(None), r#"{"leader":"n1","member":"n3"}"#),
            "n2",
            replica_pg(5000),
            peers(vec![]),
            vec![fetch(ALL_PEERS_FROM_N2), Query::AcquireLock],
            vec![Action::ClearFailoverKey, Action::Promote],
            "promoted self to leader by acquiring session lock",
        ),
        row(
            "manual failover without a candidate skips the lag check",
            with_failover(cluster(None), r#"{"leader":"n1"}"#),
            "n2",
            replica_pg(10),
            peers(vec![]),
            vec![fetch(ALL_PEERS_FROM_N2), Query::AcquireLock],
            vec![Action::ClearFailoverKey, Action::Promote],
            "promoted self to leader by acquiring session lock",
        ),
        row(
            "the former leader, demoted, lets a healthy member race",
            with_failover(cluster(None), r#"{"leader":"n1","member":"n2"}"#),
            "n1",
            replica_pg(5000),
            Script {
                peers: vec![replica_status("n2", 5000)],
                reloaded: cluster(Some("n2")),
                ..script()
            },
            vec![
                fetch(ALL_PEERS_FROM_N1),
                Query::ReloadCluster(crate::ha::decide::PendingFollow {
                    demote_reason: "demoting self because i am not the healthiest node".into(),
                    follow_reason:
                        "following a different leader because i am not the healthiest node".into(),
                    notes: vec!["switchover: to n2, i am n1".into()],
                }),
            ],
            vec![Action::Follow {
                member: Some("n2".into()),
            }],
            "following a different leader because i am not the healthiest node",
        ),
        row(
            "the former leader takes the key back when nobody else can",
            with_failover(cluster(None), r#"{"leader":"n1","member":"n2"}"#),
            "n1",
            replica_pg(5000),
            peers(vec![]),
            vec![fetch(ALL_PEERS_FROM_N1), Query::AcquireLock],
            vec![Action::ClearFailoverKey, Action::Promote],
            "promoted self to leader by acquiring session lock",
        ),
    ]
}

#[test]
fn failover_table() {
    for r in rows() {
        let (step, asked) = cycle(
            &r.cluster,
            &me(r.me, json!({})),
            &r.pg,
            &r.settings,
            &r.script,
        );
        assert_eq!(asked, r.asked, "{}: queries", r.name);
        match step {
            Step::Done(d) => {
                assert_eq!(d.actions, r.actions, "{}: actions", r.name);
                assert_eq!(d.message, r.message, "{}: message", r.name);
            }
            other => panic!("{}: expected a decision, got {other:?}", r.name),
        }
    }
}

#[test]
fn scheduled_at_formats() {
    assert_eq!(at("2026-11-22T06:00:00Z"), at("2026-11-22 07:00:00+01:00"));
    assert_eq!(
        at("2026-11-22T06:00:00.5+00:00").timestamp_subsec_millis(),
        500
    );
    assert!(parse_scheduled_at("2026-11-22T06:00:00").is_none());
    assert!(parse_scheduled_at("tomorrow").is_none());
}
