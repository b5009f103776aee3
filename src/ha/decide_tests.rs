//! One row per path of the decision, and whole cycles driven by a tiny
//! executor that answers queries from a script.

use serde_json::json;

use super::*;
use crate::model::Cluster;

pub(crate) const PRIMARY: &str = r#"{"conn_url":"postgres://h1:5432/postgres","api_url":"http://h1:8008/patroni","state":"running","role":"primary","version":"4.1.5","xlog_location":5000,"timeline":2}"#;
pub(crate) const REPLICA2: &str = r#"{"conn_url":"postgres://h2:5432/postgres","api_url":"http://h2:8008/patroni","state":"running","role":"replica","version":"4.1.5"}"#;
pub(crate) const REPLICA3: &str = r#"{"conn_url":"postgres://h3:5432/postgres","api_url":"http://h3:8008/patroni","state":"running","role":"replica","version":"4.1.5","tags":{"nofailover":true}}"#;

pub(crate) fn cluster(leader: Option<&str>) -> Cluster {
    let mut nodes = vec![
        ("members/n1", PRIMARY, Some(1)),
        ("members/n2", REPLICA2, Some(2)),
        ("members/n3", REPLICA3, Some(3)),
        ("status", r#"{"optime":5000}"#, Some(4)),
        ("initialize", "7000000000000000001", Some(7)),
        ("config", r#"{"ttl":30,"loop_wait":10}"#, Some(8)),
        (
            "history",
            r#"[[1,100,"no recovery target specified","2026-11-22T01:21:26+00:00","n1"]]"#,
            Some(5),
        ),
    ];
    if let Some(l) = leader {
        nodes.push(("leader", l, Some(6)));
    }
    Cluster::from_nodes(nodes)
}

pub(crate) fn me(name: &str, tags: Value) -> Me {
    Me {
        name: name.into(),
        tags: tags.as_object().cloned().unwrap_or_default(),
    }
}

pub(crate) fn primary_pg() -> LocalPg {
    LocalPg {
        running: true,
        starting: false,
        is_primary: true,
        role: "primary".into(),
        timeline: Some(2),
        wal_position: 5000,
        sysid: Some("7000000000000000001".into()),
        seen_running: true,
        ..LocalPg::default()
    }
}

pub(crate) fn replica_pg(wal: i64) -> LocalPg {
    LocalPg {
        is_primary: false,
        role: "replica".into(),
        wal_position: wal,
        ..primary_pg()
    }
}

pub(crate) fn peer(name: &str, body: Value) -> PeerStatus {
    let c = cluster(None);
    let m = c.member(name).expect("member").clone();
    PeerStatus::from_api_response(&m, &body)
}

/// Answers the executor would give, scripted.
pub(crate) struct Script {
    pub(crate) refresh: bool,
    pub(crate) acquire: bool,
    pub(crate) peers: Vec<PeerStatus>,
    /// The cluster a reload returns.
    pub(crate) reloaded: Cluster,
    /// The clock's answer.
    pub(crate) now: chrono::DateTime<chrono::Utc>,
    /// The answer to [`Query::ClaimSyncForPromote`].
    pub(crate) sync_claim: bool,
    /// `Some(true)`: the watchdog already runs (nothing is asked);
    /// `None`: [`Query::ActivateWatchdog`] is asked and answered with
    /// `watchdog_activates`.
    pub(crate) watchdog_running: Option<bool>,
    pub(crate) watchdog_activates: bool,
}

/// Run one cycle to its decision, recording the queries asked.
pub(crate) fn cycle(
    c: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    script: &Script,
) -> (Step, Vec<Query>) {
    let mut facts = Facts {
        watchdog_armed: script.watchdog_running,
        ..Facts::default()
    };
    let mut asked = Vec::new();
    let mut current = c.clone();
    for _ in 0..10 {
        match decide(&current, me, pg, settings, &facts) {
            Step::Query(q) => {
                asked.push(q.clone());
                match q {
                    Query::RefreshLock => facts.lock_refreshed = Some(script.refresh),
                    Query::FetchPeerStatuses(_) => facts.peers = Some(script.peers.clone()),
                    Query::AcquireLock => facts.lock_acquired = Some(script.acquire),
                    Query::ReloadCluster(p) => {
                        current = script.reloaded.clone();
                        facts.pending_follow = Some(p);
                    }
                    Query::AcquireInitializeKey => facts.initialize_won = Some(script.acquire),
                    Query::WriteInitializeKey { .. } => facts.initialize_written = Some(true),
                    Query::CurrentTime => facts.now = Some(script.now),
                    Query::SleepUntil(_) => facts.slept = true,
                    Query::ClaimSyncForPromote => facts.sync_claimed = Some(script.sync_claim),
                    Query::WriteDynamicConfig => facts.config_written = true,
                    // Only asked without a DCS (`decide_dcs_error`).
                    Query::PostFailsafe(_) => facts.failsafe_accepted = Some(false),
                    Query::ActivateWatchdog => {
                        facts.watchdog_armed = Some(script.watchdog_activates)
                    }
                }
            }
            other => return (other, asked),
        }
    }
    panic!("decide did not converge: {asked:?}");
}

pub(crate) fn decision(step: Step) -> Decision {
    match step {
        Step::Done(d) => d,
        other => panic!("expected a decision, got {other:?}"),
    }
}

pub(crate) fn script() -> Script {
    Script {
        refresh: true,
        acquire: true,
        peers: vec![],
        reloaded: cluster(Some("n2")),
        now: NOW.parse().expect("a valid time"),
        sync_claim: true,
        watchdog_running: Some(true),
        watchdog_activates: true,
    }
}

/// The scripted clock.
pub(crate) const NOW: &str = "2026-11-22T06:00:00Z";

#[test]
fn primary_with_the_lock_refreshes_it_and_does_nothing() {
    let (step, asked) = cycle(
        &cluster(Some("n1")),
        &me("n1", json!({})),
        &primary_pg(),
        &HaSettings::default(),
        &script(),
    );
    assert_eq!(asked, [Query::RefreshLock]);
    let d = decision(step);
    assert_eq!(d.actions, []);
    assert_eq!(d.message, "no action. I am (n1), the leader with the lock");
}

#[test]
fn primary_that_cannot_refresh_the_lock_demotes_at_once() {
    let s = Script {
        refresh: false,
        ..script()
    };
    let (step, _) = cycle(
        &cluster(Some("n1")),
        &me("n1", json!({})),
        &primary_pg(),
        &HaSettings::default(),
        &s,
    );
    let d = decision(step);
    assert_eq!(d.actions, [Action::Demote(DemoteMode::ImmediateNoLock)]);
    assert_eq!(
        d.message,
        "demoted self because failed to update leader lock in DCS"
    );
}

#[test]
fn replica_holding_the_lock_promotes() {
    let (step, _) = cycle(
        &cluster(Some("n2")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &script(),
    );
    let d = decision(step);
    assert_eq!(d.actions, [Action::Promote]);
    assert_eq!(
        d.message,
        "promoted self to leader because I had the session lock"
    );
    let s = Script {
        refresh: false,
        ..script()
    };
    let (step, _) = cycle(
        &cluster(Some("n2")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &s,
    );
    assert_eq!(
        decision(step),
        Decision {
            actions: vec![],
            notes: vec![],
            message: "not promoting because failed to update leader lock in DCS".into()
        }
    );
}

#[test]
fn replica_follows_the_leader_or_its_replicatefrom() {
    let (step, asked) = cycle(
        &cluster(Some("n1")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &script(),
    );
    assert!(asked.is_empty(), "a follower asks nothing: {asked:?}");
    let d = decision(step);
    assert_eq!(
        d.actions,
        [Action::Follow {
            member: Some("n1".into())
        }]
    );
    assert_eq!(
        d.message,
        "no action. I am (n2), a secondary, and following a leader (n1)"
    );
    let cascade = me("n3", json!({"replicatefrom": "n2"}));
    let d = decision(
        cycle(
            &cluster(Some("n1")),
            &cascade,
            &replica_pg(5000),
            &HaSettings::default(),
            &script(),
        )
        .0,
    );
    assert_eq!(
        d.actions,
        [Action::Follow {
            member: Some("n2".into())
        }]
    );
    let nostream = me("n3", json!({"nostream": true}));
    let d = decision(
        cycle(
            &cluster(Some("n1")),
            &nostream,
            &replica_pg(5000),
            &HaSettings::default(),
            &script(),
        )
        .0,
    );
    assert_eq!(d.actions, [Action::Follow { member: None }]);
}

#[test]
fn a_primary_without_the_lock_demotes() {
    let d = decision(
        cycle(
            &cluster(Some("n2")),
            &me("n1", json!({})),
            &primary_pg(),
            &HaSettings::default(),
            &script(),
        )
        .0,
    );
    assert_eq!(d.actions, [Action::Demote(DemoteMode::ImmediateNoLock)]);
    assert_eq!(
        d.message,
        "demoting self because I do not have the lock and I was a leader"
    );
}

#[test]
fn healthiest_replica_wins_the_race_and_promotes() {
    let s = Script {
        peers: vec![peer(
            "n3",
            json!({"role": "replica", "xlog": {"received_location": 4000, "replayed_location": 4000}}),
        )],
        ..script()
    };
    let (step, asked) = cycle(
        &cluster(None),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &s,
    );
    assert_eq!(
        asked,
        [
            Query::FetchPeerStatuses(vec!["n1".into(), "n3".into()]),
            Query::AcquireLock
        ]
    );
    let d = decision(step);
    assert_eq!(d.actions, [Action::Promote]);
    assert_eq!(
        d.message,
        "promoted self to leader by acquiring session lock"
    );
}

#[test]
fn losing_the_lock_race_follows_the_new_leader_after_a_reload() {
    let s = Script {
        acquire: false,
        reloaded: cluster(Some("n1")),
        ..script()
    };
    let (step, asked) = cycle(
        &cluster(None),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &s,
    );
    assert!(
        matches!(asked.last(), Some(Query::ReloadCluster(_))),
        "{asked:?}"
    );
    let d = decision(step);
    assert_eq!(
        d.actions,
        [Action::Follow {
            member: Some("n1".into())
        }]
    );
    assert_eq!(
        d.message,
        "following new leader after trying and failing to obtain lock"
    );
}

#[test]
fn a_replica_behind_a_peer_does_not_race() {
    let s = Script {
        peers: vec![peer(
            "n1",
            json!({"role": "replica", "xlog": {"received_location": 6000, "replayed_location": 6000}}),
        )],
        reloaded: cluster(Some("n1")),
        ..script()
    };
    let (step, asked) = cycle(
        &cluster(None),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &s,
    );
    assert!(
        !asked.contains(&Query::AcquireLock),
        "never takes the lock: {asked:?}"
    );
    let d = decision(step);
    assert_eq!(
        d.actions,
        [Action::Follow {
            member: Some("n1".into())
        }]
    );
    assert_eq!(
        d.message,
        "following a different leader because i am not the healthiest node"
    );
}

#[test]
fn nofailover_never_takes_the_lock() {
    let (step, asked) = cycle(
        &cluster(None),
        &me("n3", json!({"nofailover": true})),
        &replica_pg(9999),
        &HaSettings::default(),
        &script(),
    );
    assert!(!asked.contains(&Query::AcquireLock), "{asked:?}");
    assert_eq!(
        decision(step).message,
        "following a different leader because I am not allowed to promote"
    );
}

#[test]
fn a_primary_behind_the_cluster_timeline_does_not_retake_the_lock() {
    let mut pg = primary_pg();
    pg.timeline = Some(1); // the history says the cluster moved to timeline 2
    let (step, asked) = cycle(
        &cluster(None),
        &me("n1", json!({})),
        &pg,
        &HaSettings::default(),
        &script(),
    );
    assert!(!asked.contains(&Query::AcquireLock));
    assert_eq!(
        decision(step).actions,
        [Action::Demote(DemoteMode::ImmediateNoLock)]
    );
    let (step, _) = cycle(
        &cluster(None),
        &me("n1", json!({})),
        &primary_pg(),
        &HaSettings::default(),
        &script(),
    );
    assert_eq!(
        decision(step),
        Decision {
            actions: vec![],
            notes: vec![],
            message: "acquired session lock as a leader".into()
        }
    );
}

/// Invariants over every combination of the covered inputs, with and
/// without a failover key and with a tight lag limit:
/// - a node promotes only after the DCS confirmed the lock is its own
///   (acquired, or refreshed while it was the holder);
/// - without a failover key, no replica takes the lock or promotes past
///   `maximum_lag_on_failover` (a manual failover skips that check, as
///   in Patroni, where the leader vetted the candidate's lag);
/// - a nofailover replica never asks for the lock;
/// - a primary that ends a cycle without the lock demotes at once,
///   unless it steps down gracefully for a switchover it still led.
#[test]
fn invariants_over_the_input_grid() {
    let peers_ahead = vec![peer(
        "n1",
        json!({"role": "replica", "xlog": {"received_location": 9000, "replayed_location": 9000}}),
    )];
    let failovers = [
        None,
        Some(r#"{"leader":"n1","member":"n2"}"#),
        Some(r#"{"member":"n3"}"#),
        Some(r#"{"leader":"n2"}"#),
    ];
    let mut checked = 0;
    for leader in [None, Some("n2"), Some("n1")] {
        for failover in failovers {
            for max_lag in [1_048_576, 1000] {
                for bits in 0..8u8 {
                    let (is_primary, nofailover, refresh) =
                        (bits & 1 != 0, bits & 2 != 0, bits & 4 != 0);
                    for acquire in [false, true] {
                        for (wal, peers) in
                            [(5000, vec![]), (100, vec![]), (5000, peers_ahead.clone())]
                        {
                            let mut c = cluster(leader);
                            c.failover =
                                failover.map(|f| crate::model::Failover::from_node(Some(9), f));
                            let me2 = me("n2", json!({"nofailover": nofailover}));
                            let pg = if is_primary {
                                LocalPg {
                                    wal_position: wal,
                                    ..primary_pg()
                                }
                            } else {
                                replica_pg(wal)
                            };
                            let s = Script {
                                refresh,
                                acquire,
                                peers,
                                reloaded: cluster(Some("n1")),
                                ..script()
                            };
                            let settings = HaSettings {
                                maximum_lag_on_failover: max_lag,
                                ..HaSettings::default()
                            };
                            let (step, asked) = cycle(&c, &me2, &pg, &settings, &s);
                            let d = decision(step);
                            let ctx =
                                format!("{leader:?} {failover:?} lag={max_lag} {asked:?} {d:?}");
                            let lock_confirmed = (asked.contains(&Query::AcquireLock) && acquire)
                                || (asked.contains(&Query::RefreshLock)
                                    && refresh
                                    && leader == Some("n2"));
                            if d.actions.contains(&Action::Promote) {
                                assert!(lock_confirmed, "promoted without the lock: {ctx}");
                            }
                            let lagging = c.status.last_lsn - wal > max_lag;
                            if failover.is_none() && !is_primary && lagging {
                                assert!(
                                    !asked.contains(&Query::AcquireLock),
                                    "a lagging replica raced: {ctx}"
                                );
                            }
                            // As in Patroni, a running primary whose key lapsed may take
                            // it back even with nofailover; a nofailover replica never races.
                            if nofailover && leader.is_none() && !is_primary {
                                assert!(
                                    !asked.contains(&Query::AcquireLock),
                                    "nofailover raced: {ctx}"
                                );
                            }
                            if is_primary && !lock_confirmed {
                                assert_eq!(
                                    d.actions,
                                    [Action::Demote(DemoteMode::ImmediateNoLock)],
                                    "{ctx}"
                                );
                            }
                            if d.actions.contains(&Action::Demote(DemoteMode::Graceful)) {
                                assert!(
                                    lock_confirmed && failover.is_some(),
                                    "graceful demotion without a request: {ctx}"
                                );
                            }
                            checked += 1;
                        }
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 2 * 8 * 2 * 3);
}
