//! Pause mode: one row per branch of the cycle while `pause: true`.
//! Nothing is promoted or demoted on Patroni's own initiative; only an
//! explicit manual failover to a named member moves the leader.

use serde_json::json;

use crate::ha::decide::tests::{cluster, cycle, me, peer, primary_pg, replica_pg, script, Script};
use crate::ha::decide::{Action, DemoteMode, HaSettings, LocalPg, PendingFollow, Query, Step};
use crate::model::{Cluster, Failover};

fn paused() -> HaSettings {
    HaSettings {
        paused: true,
        bootstrap_configured: true,
        ..HaSettings::default()
    }
}

fn with_failover(mut c: Cluster, value: &str) -> Cluster {
    c.failover = Some(Failover::from_node(Some(42), value));
    c
}

fn stopped() -> LocalPg {
    LocalPg {
        sysid: Some("7000000000000000001".into()),
        cluster_state: Some("shut down".into()),
        ..LocalPg::default()
    }
}

fn reload(demote: &str, follow: &str) -> Query {
    Query::ReloadCluster(PendingFollow {
        demote_reason: demote.into(),
        follow_reason: follow.into(),
        notes: vec![],
    })
}

type Row = (
    &'static str,
    Cluster,
    &'static str,
    LocalPg,
    Script,
    Vec<Query>,
    Vec<Action>,
    &'static str,
);

fn rows() -> Vec<Row> {
    let not_healthiest = || {
        reload(
            "demoting self because i am not the healthiest node",
            "following a different leader because i am not the healthiest node",
        )
    };
    let healthy_n2 = || Script {
        peers: vec![peer(
            "n2",
            json!({"role": "replica", "xlog": {"received_location": 5000, "replayed_location": 5000}}),
        )],
        ..script()
    };
    vec![
        (
            "leader with the lock",
            cluster(Some("n1")),
            "n1",
            primary_pg(),
            script(),
            vec![Query::RefreshLock],
            vec![],
            "PAUSE: no action. I am (n1), the leader with the lock",
        ),
        (
            "replica following the leader",
            cluster(Some("n1")),
            "n2",
            replica_pg(5000),
            script(),
            vec![],
            vec![Action::Follow {
                member: Some("n1".into()),
            }],
            "PAUSE: no action. I am (n2), a secondary, and following a leader (n1)",
        ),
        (
            "primary without the lock is not demoted",
            cluster(Some("n2")),
            "n1",
            primary_pg(),
            script(),
            vec![],
            vec![],
            "PAUSE: continue to run as primary without lock",
        ),
        (
            "primary that cannot refresh the lock keeps running",
            cluster(Some("n1")),
            "n1",
            primary_pg(),
            Script {
                refresh: false,
                ..script()
            },
            vec![Query::RefreshLock],
            vec![],
            "PAUSE: continue to run as primary after failing to update leader lock in DCS",
        ),
        (
            "replica holding the lock gives it up",
            cluster(Some("n2")),
            "n2",
            replica_pg(5000),
            script(),
            vec![],
            vec![Action::ReleaseLeaderKey],
            "PAUSE: removed leader lock because postgres is not running as primary",
        ),
        (
            "stopped PostgreSQL is not started",
            cluster(Some("n1")),
            "n2",
            stopped(),
            script(),
            vec![],
            vec![],
            "PAUSE: postgres is not running",
        ),
        (
            "stopped PostgreSQL holding the lock releases it",
            cluster(Some("n1")),
            "n1",
            stopped(),
            script(),
            vec![],
            vec![Action::ReleaseLeaderKey],
            "PAUSE: removed leader lock because postgres is not running",
        ),
        (
            "empty data directory: no bootstrap",
            Cluster::default(),
            "n1",
            LocalPg {
                data_directory_empty: true,
                ..LocalPg::default()
            },
            script(),
            vec![],
            vec![],
            "PAUSE: running with empty data directory",
        ),
        (
            "empty data directory with a leader: no clone",
            cluster(Some("n1")),
            "n4",
            LocalPg {
                data_directory_empty: true,
                ..LocalPg::default()
            },
            script(),
            vec![],
            vec![],
            "PAUSE: running with empty data directory",
        ),
        (
            "sysid mismatch while paused: key released, no exit",
            {
                let mut c = cluster(Some("n1"));
                c.initialize = Some("7999999999999999999".into());
                c
            },
            "n1",
            primary_pg(),
            script(),
            vec![],
            vec![Action::ReleaseLeaderKey],
            "PAUSE: released leader key voluntarily due to the system ID mismatch",
        ),
        (
            "sysid mismatch on a follower while paused: goes on",
            {
                let mut c = cluster(Some("n1"));
                c.initialize = Some("7999999999999999999".into());
                c
            },
            "n2",
            replica_pg(5000),
            script(),
            vec![],
            vec![Action::Follow {
                member: Some("n1".into()),
            }],
            "PAUSE: no action. I am (n2), a secondary, and following a leader (n1)",
        ),
        (
            "no leader: a replica does not race",
            cluster(None),
            "n2",
            replica_pg(5000),
            Script {
                reloaded: cluster(None),
                ..script()
            },
            vec![not_healthiest()],
            vec![],
            "PAUSE: no action. I am (n2)",
        ),
        (
            "no leader: a primary takes its key back",
            cluster(None),
            "n1",
            primary_pg(),
            script(),
            vec![Query::AcquireLock],
            vec![],
            "PAUSE: acquired session lock as a leader",
        ),
        (
            "no leader: a primary of another cluster does not",
            {
                let mut c = cluster(None);
                c.initialize = Some("7999999999999999999".into());
                c
            },
            "n1",
            LocalPg {
                seen_running: true,
                ..primary_pg()
            },
            Script {
                reloaded: cluster(None),
                ..script()
            },
            vec![],
            vec![Action::ReleaseLeaderKey],
            "unused",
        ),
        (
            "manual failover to me: race, keep the key for the promotion",
            with_failover(cluster(None), r#"{"leader":"n1","member":"n2"}"#),
            "n2",
            replica_pg(10),
            script(),
            vec![Query::AcquireLock],
            vec![Action::DropFailoverLeader, Action::Promote],
            "PAUSE: promoted self to leader by acquiring session lock",
        ),
        (
            "manual failover without leader to me: key cleared",
            with_failover(cluster(None), r#"{"member":"n2"}"#),
            "n2",
            replica_pg(10),
            script(),
            vec![Query::AcquireLock],
            vec![Action::ClearFailoverKey, Action::Promote],
            "PAUSE: promoted self to leader by acquiring session lock",
        ),
        (
            "candidate waiting for its promotion",
            with_failover(cluster(Some("n2")), r#"{"member":"n2"}"#),
            "n2",
            replica_pg(10),
            script(),
            vec![],
            vec![],
            "PAUSE: waiting to become primary after promote...",
        ),
        (
            "manual failover to someone else: no race",
            with_failover(cluster(None), r#"{"member":"n3"}"#),
            "n2",
            replica_pg(5000),
            Script {
                reloaded: cluster(Some("n3")),
                ..script()
            },
            vec![not_healthiest()],
            vec![Action::Follow {
                member: Some("n3".into()),
            }],
            "PAUSE: following a different leader because i am not the healthiest node",
        ),
        (
            "candidate vanished: the primary clears the key and retakes the lock",
            with_failover(cluster(None), r#"{"member":"n9"}"#),
            "n1",
            primary_pg(),
            script(),
            vec![Query::AcquireLock],
            vec![Action::ClearFailoverKey],
            "PAUSE: acquired session lock as a leader",
        ),
        (
            "switchover to a named member runs while paused",
            with_failover(cluster(Some("n1")), r#"{"leader":"n1","member":"n2"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![
                Query::RefreshLock,
                Query::FetchPeerStatuses(vec!["n2".into(), "n3".into()]),
            ],
            vec![Action::Demote(DemoteMode::Graceful)],
            "PAUSE: switchover: demoting myself",
        ),
        (
            "switchover to anyone is refused while paused",
            with_failover(cluster(Some("n1")), r#"{"leader":"n1"}"#),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock],
            vec![Action::ClearFailoverKey],
            "PAUSE: no action. I am (n1), the leader with the lock",
        ),
        (
            "a scheduled switchover waits for the pause to end",
            with_failover(
                cluster(Some("n1")),
                r#"{"leader":"n1","member":"n2","scheduled_at":"2026-11-22T06:00:00+00:00"}"#,
            ),
            "n1",
            primary_pg(),
            healthy_n2(),
            vec![Query::RefreshLock],
            vec![],
            "PAUSE: no action. I am (n1), the leader with the lock",
        ),
    ]
}

#[test]
fn paused_table() {
    for (name, c, who, pg, s, asked_expected, actions, message) in rows() {
        let (step, asked) = cycle(&c, &me(who, json!({})), &pg, &paused(), &s);
        if name == "no leader: a primary of another cluster does not" {
            // Mismatched sysid with no key to release: the cycle goes on,
            // the primary does not race and stays up.
            let Step::Done(d) = step else {
                panic!("{name}: {step:?}")
            };
            assert!(!asked.contains(&Query::AcquireLock), "{name}: {asked:?}");
            assert_eq!(d.actions, vec![], "{name}");
            assert_eq!(
                d.message, "PAUSE: continue to run as primary without lock",
                "{name}"
            );
            continue;
        }
        assert_eq!(asked, asked_expected, "{name}: queries");
        match step {
            Step::Done(d) => {
                assert_eq!(d.actions, actions, "{name}: actions");
                assert_eq!(d.message, message, "{name}: message");
            }
            other => panic!("{name}: expected a decision, got {other:?}"),
        }
    }
}

/// Paused, no decision ever demotes or stops PostgreSQL, and promotion
/// happens only for the member a manual failover names.
#[test]
fn paused_never_demotes_and_promotes_only_the_named_candidate() {
    for (name, c, who, pg, s, ..) in rows() {
        let (step, _) = cycle(&c, &me(who, json!({})), &pg, &paused(), &s);
        let Step::Done(d) = step else { continue };
        for a in &d.actions {
            match a {
                Action::Demote(DemoteMode::Graceful) => assert!(
                    c.failover
                        .as_ref()
                        .and_then(|f| f.candidate.as_deref())
                        .is_some_and(|m| m != who),
                    "{name}: graceful demotion without a named candidate"
                ),
                Action::Demote(_) | Action::StopImmediately => panic!("{name}: stopped PostgreSQL"),
                Action::Promote => assert_eq!(
                    c.failover.as_ref().and_then(|f| f.candidate.as_deref()),
                    Some(who),
                    "{name}: promoted without being the candidate"
                ),
                _ => {}
            }
        }
        assert!(d.message.starts_with("PAUSE: "), "{name}: {}", d.message);
    }
}
