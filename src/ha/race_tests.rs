//! One row per rule of the leader race.

use serde_json::{json, Value};

use super::*;
use crate::model::Member;

fn member(name: &str, tags: Value) -> Member {
    let data = json!({"api_url": format!("http://{name}:8008/patroni"), "tags": tags});
    Member::from_node(name, None, &data.to_string())
}

fn replica(name: &str, wal: i64) -> PeerStatus {
    let body = json!({"state": "running", "role": "replica",
                      "xlog": {"received_location": wal, "replayed_location": wal - 10}});
    PeerStatus::from_api_response(&member(name, json!({})), &body)
}

fn with_api_tags(mut p: PeerStatus, tags: Value) -> PeerStatus {
    p.tags = tags.as_object().cloned().unwrap_or_default();
    p
}

struct Case {
    name: &'static str,
    setup: fn(&mut Scenario),
    healthiest: bool,
    /// A line the verdict must log, if any.
    logs: Option<&'static str>,
}

struct Scenario {
    my_wal: i64,
    my_timeline: Option<i64>,
    my_priority: i64,
    cluster_lsn: i64,
    cluster_timeline: i64,
    check_lag: bool,
    check_timeline: bool,
    standby: bool,
    sync_active: bool,
    watchdog_unusable: bool,
    quorum_active: bool,
    sync: SyncState,
    former_leader: Option<&'static str>,
    peers: Vec<PeerStatus>,
    voters: Vec<String>,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            my_wal: 1000,
            my_timeline: Some(2),
            my_priority: 1,
            cluster_lsn: 1000,
            cluster_timeline: 2,
            check_lag: true,
            check_timeline: false,
            standby: false,
            sync_active: false,
            watchdog_unusable: false,
            quorum_active: false,
            sync: SyncState::default(),
            former_leader: Some("n0"),
            peers: Vec::new(),
            voters: Vec::new(),
        }
    }
}

fn run(s: &Scenario) -> Verdict {
    is_healthiest_node(&RaceInput {
        my_name: "n1",
        my_wal_position: s.my_wal,
        my_timeline: s.my_timeline,
        my_failover_priority: s.my_priority,
        cluster_last_lsn: s.cluster_lsn,
        cluster_timeline: s.cluster_timeline,
        maximum_lag_on_failover: 1_048_576,
        check_replication_lag: s.check_lag,
        check_timeline: s.check_timeline,
        standby_cluster: s.standby,
        watchdog_unusable: s.watchdog_unusable,
        sync_mode_active: s.sync_active,
        quorum_commit_active: s.quorum_active,
        sync: &s.sync,
        former_leader: s.former_leader,
        peers: &s.peers,
        voters: s.voters.clone(),
    })
}

const CASES: &[Case] = &[
    Case {
        name: "alone and current",
        setup: |_| {},
        healthiest: true,
        logs: None,
    },
    Case {
        name: "a required watchdog that cannot be used",
        setup: |s| s.watchdog_unusable = true,
        healthiest: false,
        logs: Some("Watchdog device is not usable"),
    },
    Case {
        name: "lagging past maximum_lag_on_failover",
        setup: |s| s.cluster_lsn = 1000 + 1_048_577,
        healthiest: false,
        logs: Some("My wal position exceeds maximum replication lag"),
    },
    Case {
        name: "exactly at maximum_lag_on_failover",
        setup: |s| s.cluster_lsn = 1000 + 1_048_576,
        healthiest: true,
        logs: None,
    },
    Case {
        name: "lag ignored when not checked",
        setup: |s| {
            s.cluster_lsn = 10_000_000;
            s.check_lag = false;
        },
        healthiest: true,
        logs: None,
    },
    Case {
        name: "check_timeline without a timeline",
        setup: |s| {
            s.check_timeline = true;
            s.my_timeline = None;
        },
        healthiest: false,
        logs: Some("Can not figure out my timeline"),
    },
    Case {
        name: "check_timeline behind the cluster",
        setup: |s| {
            s.check_timeline = true;
            s.cluster_timeline = 3;
        },
        healthiest: false,
        logs: Some("My timeline 2 is behind last known cluster timeline 3"),
    },
    Case {
        name: "timeline not checked in a standby cluster",
        setup: |s| {
            s.check_timeline = true;
            s.cluster_timeline = 3;
            s.standby = true;
        },
        healthiest: true,
        logs: None,
    },
    Case {
        name: "the primary is still alive",
        setup: |s| {
            let body = json!({"role": "primary", "xlog": {"location": 5000}});
            s.peers = vec![PeerStatus::from_api_response(
                &member("n2", json!({})),
                &body,
            )];
        },
        healthiest: false,
        logs: Some("Primary (n2) is still alive"),
    },
    Case {
        name: "a replica is ahead",
        setup: |s| s.peers = vec![replica("n2", 2000)],
        healthiest: false,
        logs: Some("Wal position of n2 is ahead of my wal position"),
    },
    Case {
        name: "a nofailover member (DCS tags) ahead is not asked",
        setup: |s| {
            s.peers = vec![PeerStatus {
                member_tags: json!({"nofailover": true})
                    .as_object()
                    .cloned()
                    .unwrap_or_default(),
                ..replica("n2", 2000)
            }]
        },
        healthiest: true,
        logs: None,
    },
    Case {
        name: "an unreachable member does not count",
        setup: |s| s.peers = vec![PeerStatus::unknown(&member("n2", json!({})))],
        healthiest: true,
        logs: None,
    },
    Case {
        name: "a member whose body lacks xlog is unreachable",
        setup: |s| {
            s.peers = vec![PeerStatus::from_api_response(
                &member("n2", json!({})),
                &json!({"state": "running"}),
            )]
        },
        healthiest: true,
        logs: None,
    },
    Case {
        name: "a watchdog-failed member ahead does not count",
        setup: |s| {
            s.peers = vec![PeerStatus {
                watchdog_failed: true,
                ..replica("n2", 2000)
            }]
        },
        healthiest: true,
        logs: None,
    },
    Case {
        name: "a member reporting nofailover in its API tags does not count",
        setup: |s| {
            s.peers = vec![with_api_tags(
                replica("n2", 2000),
                json!({"failover_priority": 0}),
            )]
        },
        healthiest: true,
        logs: None,
    },
    Case {
        name: "same position, higher priority elsewhere",
        setup: |s| {
            s.peers = vec![with_api_tags(
                replica("n2", 1000),
                json!({"failover_priority": 2}),
            )]
        },
        healthiest: false,
        logs: Some(
            "n2 has equally tolerable WAL position and priority 2, while this node has priority 1",
        ),
    },
    Case {
        name: "same position, higher priority on the former leader is ignored",
        setup: |s| {
            s.former_leader = Some("n2");
            s.peers = vec![with_api_tags(
                replica("n2", 1000),
                json!({"failover_priority": 2}),
            )];
        },
        healthiest: true,
        logs: Some("Ignoring former leader n2 having priority 2 higher than this nodes 1 priority"),
    },
    Case {
        name: "same position, same priority: both stand",
        setup: |s| s.peers = vec![replica("n2", 1000)],
        healthiest: true,
        logs: None,
    },
    Case {
        name: "behind a peer that is behind me: fine",
        setup: |s| s.peers = vec![replica("n2", 500)],
        healthiest: true,
        logs: None,
    },
    Case {
        name: "synchronous mode: the former sync leader ahead is ignored",
        setup: |s| {
            s.sync_active = true;
            s.sync = SyncState::new("n2", &["n1".into()], 0);
            s.peers = vec![replica("n2", 2000)];
        },
        healthiest: true,
        logs: Some("Ignoring the former leader being ahead of us"),
    },
    Case {
        name: "quorum: one vote meets quorum 1",
        setup: |s| {
            s.sync_active = true;
            s.quorum_active = true;
            s.sync = SyncState::new("n0", &["n1".into(), "n2".into()], 1);
            s.voters = vec!["n1".into(), "n2".into()];
            s.peers = vec![replica("n2", 1000)];
        },
        healthiest: true,
        logs: Some("Got quorum vote from n2"),
    },
    Case {
        name: "quorum: one vote misses quorum 2",
        setup: |s| {
            s.sync_active = true;
            s.quorum_active = true;
            s.sync = SyncState::new("n0", &["n1".into(), "n2".into(), "n3".into()], 2);
            s.voters = vec!["n1".into(), "n2".into(), "n3".into()];
            s.peers = vec![
                replica("n2", 1000),
                PeerStatus::unknown(&member("n3", json!({}))),
            ];
        },
        healthiest: false,
        logs: Some("Got quorum vote from n2"),
    },
    Case {
        name: "quorum: a nofailover voter still votes",
        setup: |s| {
            s.sync_active = true;
            s.quorum_active = true;
            s.sync = SyncState::new("n0", &["n1".into(), "n3".into()], 1);
            s.voters = vec!["n1".into(), "n3".into()];
            let mut p = with_api_tags(replica("n3", 1000), json!({"nofailover": true}));
            p.member_tags = p.tags.clone();
            s.peers = vec![p];
        },
        // n3 cannot be promoted, so its limitation skips it: no vote.
        healthiest: false,
        logs: None,
    },
    Case {
        name: "quorum: the former leader with nobody ahead stands without votes",
        setup: |s| {
            s.sync_active = true;
            s.quorum_active = true;
            s.sync = SyncState::new("n1", &["n2".into()], 1);
            s.voters = vec!["n1".into(), "n2".into()];
        },
        healthiest: true,
        logs: None,
    },
];

#[test]
fn leader_race_table() {
    for case in CASES {
        let mut s = Scenario::default();
        (case.setup)(&mut s);
        let verdict = run(&s);
        assert_eq!(
            verdict.healthiest, case.healthiest,
            "{}: {:?}",
            case.name, verdict.log
        );
        if let Some(line) = case.logs {
            assert!(
                verdict.log.iter().any(|l| l == line),
                "{}: expected {line:?} in {:?}",
                case.name,
                verdict.log
            );
        }
    }
}

#[test]
fn api_response_reading() {
    let m = member("n2", json!({"nofailover": true}));
    let primary =
        PeerStatus::from_api_response(&m, &json!({"role": "primary", "xlog": {"location": 0}}));
    assert_eq!(primary.in_recovery, Some(false));
    assert_eq!(primary.wal_position, 0);
    let master =
        PeerStatus::from_api_response(&m, &json!({"role": "replica", "xlog": {"location": 7}}));
    assert_eq!(master.in_recovery, Some(false));
    let r = PeerStatus::from_api_response(
        &m,
        &json!({"role": "replica", "wal": {"received_location": 5, "replayed_location": 9}, "tags": {"a": 1}, "timeline": 3}),
    );
    assert_eq!(
        (r.in_recovery, r.wal_position, r.timeline),
        (Some(true), 9, 3)
    );
    assert_eq!(
        r.tags,
        json!({"a": 1}).as_object().cloned().unwrap_or_default()
    );
    assert_eq!(
        Value::Object(r.member_tags.clone()),
        json!({"nofailover": true})
    );
    assert!(!PeerStatus::from_api_response(&m, &json!([])).reachable);
    assert_eq!(
        PeerStatus::unknown(&m).failover_limitation(),
        Some("not reachable")
    );
}
