//! Synchronous mode in the decision: who may race, what the primary does
//! each cycle, and the claim on `/sync` before a promotion.

use serde_json::json;

use super::tests::{cluster, cycle, decision, me, peer, primary_pg, replica_pg, script, Script};
use super::*;
use crate::model::{Cluster, SyncState};

fn sync_on() -> HaSettings {
    HaSettings {
        synchronous_mode: true,
        ..HaSettings::default()
    }
}

fn with_sync(mut c: Cluster, value: &str) -> Cluster {
    c.sync = SyncState::from_node(Some(9), value);
    c
}

fn streaming(name: &str, wal: i64) -> PeerStatus {
    peer(
        name,
        json!({"role": "replica", "state": "running",
               "xlog": {"received_location": wal, "replayed_location": wal}}),
    )
}

/// The shared fixture with n3 as a plain replica (no `nofailover`), so
/// that only the synchronous rules decide.
fn plain_n3(mut c: Cluster) -> Cluster {
    c.members.retain(|m| m.name != "n3");
    c.members.push(crate::model::Member::from_node(
        "n3",
        Some(3),
        r#"{"conn_url":"postgres://h3:5432/postgres","api_url":"http://h3:8008/patroni","state":"running","role":"replica"}"#,
    ));
    c
}

fn streaming_in(c: &Cluster, name: &str, wal: i64) -> PeerStatus {
    let m = c.member(name).expect("member");
    PeerStatus::from_api_response(
        m,
        &json!({"role": "replica", "state": "running",
                "xlog": {"received_location": wal, "replayed_location": wal}}),
    )
}

#[test]
fn the_primary_keeps_sync_replication_in_line_each_cycle() {
    let c = with_sync(
        cluster(Some("n1")),
        r#"{"leader":"n1","sync_standby":"n2"}"#,
    );
    let (step, asked) = cycle(
        &c,
        &me("n1", json!({})),
        &primary_pg(),
        &sync_on(),
        &script(),
    );
    assert_eq!(asked, vec![Query::RefreshLock]);
    let d = decision(step);
    assert_eq!(d.actions, vec![Action::ProcessSyncReplication]);
    assert_eq!(d.message, "no action. I am (n1), the leader with the lock");
    // Synchronous mode off with a leftover `/sync`: drop it.
    let d = decision(
        cycle(
            &c,
            &me("n1", json!({})),
            &primary_pg(),
            &HaSettings::default(),
            &script(),
        )
        .0,
    );
    assert_eq!(d.actions, vec![Action::DisableSyncReplication]);
    // Off and nothing left over: nothing to do.
    let d = decision(
        cycle(
            &cluster(Some("n1")),
            &me("n1", json!({})),
            &primary_pg(),
            &HaSettings::default(),
            &script(),
        )
        .0,
    );
    assert!(d.actions.is_empty());
}

#[test]
fn a_listed_standby_claims_sync_before_promoting() {
    let c = with_sync(cluster(None), r#"{"leader":"n1","sync_standby":"n2"}"#);
    let n2 = me("n2", json!({}));
    let run = |claim: bool| {
        cycle(
            &c,
            &n2,
            &replica_pg(5000),
            &sync_on(),
            &Script {
                peers: vec![streaming("n1", 4000)],
                sync_claim: claim,
                ..script()
            },
        )
    };
    let (step, asked) = run(true);
    assert_eq!(
        asked,
        vec![
            Query::FetchPeerStatuses(vec!["n1".into(), "n3".into()]),
            Query::AcquireLock,
            Query::ClaimSyncForPromote
        ]
    );
    let d = decision(step);
    assert_eq!(d.actions, vec![Action::Promote]);
    assert_eq!(
        d.message,
        "promoted self to leader by acquiring session lock"
    );
    let d = decision(run(false).0);
    assert!(d.actions.is_empty());
    assert_eq!(
        d.message,
        "Postponing promotion because synchronous replication state was updated by somebody else"
    );
}

#[test]
fn an_unlisted_standby_never_races_and_asks_nobody() {
    let c = with_sync(cluster(None), r#"{"leader":"n1","sync_standby":"n3"}"#);
    let (step, asked) = cycle(
        &c,
        &me("n2", json!({})),
        &replica_pg(9000),
        &sync_on(),
        &script(),
    );
    assert_eq!(
        asked.first(),
        Some(&Query::ReloadCluster(PendingFollow {
            demote_reason: "demoting self because i am not the healthiest node".into(),
            follow_reason: "following a different leader because i am not the healthiest node"
                .into(),
            notes: vec![],
        }))
    );
    assert!(!decision(step).actions.contains(&Action::Promote));
    // Before the leader claimed `/sync` (empty key), anyone may race.
    let (step, _) = cycle(
        &cluster(None),
        &me("n2", json!({})),
        &replica_pg(9000),
        &sync_on(),
        &Script {
            peers: vec![streaming("n1", 4000)],
            ..script()
        },
    );
    assert!(decision(step).actions.contains(&Action::Promote));
}

#[test]
fn an_async_standby_ahead_does_not_stop_the_sync_one() {
    // n3 (async) is further ahead than n2, but only /sync members race.
    let c = plain_n3(with_sync(
        cluster(None),
        r#"{"leader":"n1","sync_standby":"n2"}"#,
    ));
    let run = |settings: HaSettings| {
        let peers = vec![streaming_in(&c, "n1", 4000), streaming_in(&c, "n3", 9000)];
        let (step, _) = cycle(
            &c,
            &me("n2", json!({})),
            &replica_pg(5000),
            &settings,
            &Script { peers, ..script() },
        );
        decision(step)
    };
    assert!(run(sync_on()).actions.contains(&Action::Promote));
    // Without synchronous mode the same peer wins the race.
    let d = run(HaSettings::default());
    assert!(!d.actions.contains(&Action::Promote));
    assert!(d
        .notes
        .contains(&"Wal position of n3 is ahead of my wal position".to_owned()));
}

#[test]
fn switchover_in_sync_mode_hands_over_only_to_a_sync_standby() {
    let mut c = plain_n3(with_sync(
        cluster(Some("n1")),
        r#"{"leader":"n1","sync_standby":"n3"}"#,
    ));
    c.failover = Some(crate::model::Failover::from_node(
        Some(8),
        r#"{"leader":"n1"}"#,
    ));
    let peers = vec![streaming("n2", 5000)];
    let mut notes = Vec::new();
    let f = super::failover::failover_possible(
        &c,
        &me("n1", json!({})),
        &sync_on(),
        &peers,
        0,
        false,
        &mut notes,
    );
    assert!(!f, "n2 is healthy but not synchronous; n3 did not answer");
    assert_eq!(notes, vec!["Member n3 is not reachable".to_owned()]);
    // A named candidate outside /sync: nobody to hand over to, said so.
    c.failover = Some(crate::model::Failover::from_node(
        Some(8),
        r#"{"leader":"n1","member":"n2"}"#,
    ));
    let mut notes = Vec::new();
    assert!(!super::failover::failover_possible(
        &c,
        &me("n1", json!({})),
        &sync_on(),
        &peers,
        0,
        false,
        &mut notes
    ));
    assert_eq!(
        notes,
        vec!["Switchover candidate=n2 does not match with sync_standbys=n3".to_owned()]
    );
    // A manual failover (no leader named) may go to an async standby.
    c.failover = Some(crate::model::Failover::from_node(
        Some(8),
        r#"{"member":"n2"}"#,
    ));
    let mut notes = Vec::new();
    assert!(super::failover::failover_possible(
        &c,
        &me("n1", json!({})),
        &sync_on(),
        &peers,
        0,
        false,
        &mut notes
    ));
}

/// Over a grid of leaders, failover keys, `/sync` keys, claims and peers:
/// - a standby that `/sync` does not list never races its way to a
///   promotion while the key is active, unless a manual failover (no
///   leader named) names it, which Patroni allows on purpose (a standby
///   that already holds the leader key won its race earlier);
/// - every promotion in synchronous mode follows a successful claim of
///   `/sync`, and a refused claim never promotes;
/// - a primary holding the key always keeps `/sync` in line.
#[test]
fn sync_invariants_over_the_input_grid() {
    let failovers = [
        None,
        Some(r#"{"leader":"n1","member":"n2"}"#),
        Some(r#"{"member":"n2"}"#),
        Some(r#"{"leader":"n1","member":"n3"}"#),
    ];
    let keys = [
        None,
        Some(r#"{"leader":"n1","sync_standby":"n3"}"#),
        Some(r#"{"leader":"n1","sync_standby":"n2"}"#),
        Some(r#"{"leader":"n2","sync_standby":"n1"}"#),
    ];
    let mut checked = 0;
    for leader in [None, Some("n1"), Some("n2")] {
        for failover in failovers {
            for key in keys {
                for (is_primary, claim) in [(false, true), (false, false), (true, true)] {
                    for peers_behind in [false, true] {
                        let mut c = plain_n3(cluster(leader));
                        if let Some(k) = key {
                            c = with_sync(c, k);
                        }
                        c.failover =
                            failover.map(|f| crate::model::Failover::from_node(Some(8), f));
                        let peers = if peers_behind {
                            vec![streaming_in(&c, "n1", 10), streaming_in(&c, "n3", 10)]
                        } else {
                            vec![streaming_in(&c, "n3", 9000)]
                        };
                        let pg = if is_primary {
                            primary_pg()
                        } else {
                            replica_pg(5000)
                        };
                        let (step, asked) = cycle(
                            &c,
                            &me("n2", json!({})),
                            &pg,
                            &sync_on(),
                            &Script {
                                peers,
                                sync_claim: claim,
                                reloaded: c.clone(),
                                ..script()
                            },
                        );
                        let d = decision(step);
                        let ctx = format!(
                            "{leader:?} {failover:?} {key:?} claim={claim} {asked:?} {d:?}"
                        );
                        let listed = key.is_none() || c.sync.matches("n2", true);
                        let manual_to_me = failover == Some(r#"{"member":"n2"}"#);
                        if d.actions.contains(&Action::Promote) {
                            assert!(
                                listed || manual_to_me || leader == Some("n2"),
                                "an unlisted standby promoted: {ctx}"
                            );
                            assert!(
                                asked.contains(&Query::ClaimSyncForPromote) && claim,
                                "promoted without claiming /sync: {ctx}"
                            );
                        }
                        if is_primary && leader == Some("n2") {
                            assert!(d.actions.contains(&Action::ProcessSyncReplication), "{ctx}");
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 3 * 4 * 4 * 3 * 2);
}

fn quorum_on() -> HaSettings {
    HaSettings {
        synchronous_mode: true,
        quorum_commit: true,
        ..HaSettings::default()
    }
}

#[test]
fn quorum_commit_lets_an_unlisted_standby_race_with_enough_votes() {
    // Voters n1 (the old leader) and n3, quorum 1: n2 is not listed, so
    // it must collect quorum + 1 = 2 votes.
    let c = plain_n3(with_sync(
        cluster(None),
        r#"{"leader":"n1","quorum":1,"sync_standby":"n3"}"#,
    ));
    let run = |settings: HaSettings, peers: Vec<PeerStatus>| {
        let (step, _) = cycle(
            &c,
            &me("n2", json!({})),
            &replica_pg(5000),
            &settings,
            &Script {
                peers,
                reloaded: c.clone(),
                ..script()
            },
        );
        decision(step)
    };
    let both = vec![streaming_in(&c, "n1", 5000), streaming_in(&c, "n3", 4000)];
    let d = run(quorum_on(), both.clone());
    assert!(d.actions.contains(&Action::Promote), "{d:?}");
    assert!(d.notes.contains(&"Got quorum vote from n1".to_owned()));
    assert!(d.notes.contains(&"Got quorum vote from n3".to_owned()));
    // One vote is not enough.
    let d = run(quorum_on(), vec![streaming_in(&c, "n3", 4000)]);
    assert!(!d.actions.contains(&Action::Promote), "{d:?}");
    // Plain synchronous mode never lets it race.
    let d = run(sync_on(), both);
    assert!(!d.actions.contains(&Action::Promote), "{d:?}");
}

#[test]
fn quorum_commit_switchover_needs_quorum_healthy_voters() {
    let mut c = plain_n3(with_sync(
        cluster(Some("n1")),
        r#"{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}"#,
    ));
    c.failover = Some(crate::model::Failover::from_node(
        Some(8),
        r#"{"leader":"n1"}"#,
    ));
    let check = |c: &Cluster, peers: &[PeerStatus]| {
        let mut notes = Vec::new();
        let ok = super::failover::failover_possible(
            c,
            &me("n1", json!({})),
            &quorum_on(),
            peers,
            0,
            false,
            &mut notes,
        );
        (ok, notes)
    };
    let n2 = streaming_in(&c, "n2", 5000);
    let n3 = streaming_in(&c, "n3", 5000);
    let (ok, notes) = check(&c, std::slice::from_ref(&n2));
    assert!(!ok);
    assert_eq!(
        notes,
        vec![
            "Member n3 is not reachable".to_owned(),
            "Quorum requirement 1 can not be reached".to_owned()
        ]
    );
    assert!(check(&c, &[n2.clone(), n3]).0);
    // A named candidate skips the quorum requirement.
    c.failover = Some(crate::model::Failover::from_node(
        Some(8),
        r#"{"leader":"n1","member":"n2"}"#,
    ));
    assert!(check(&c, &[n2]).0);
}

#[test]
fn quorum_commit_manual_failover_lets_an_unlisted_standby_look_further() {
    // Manual failover to n3, which does not answer; n2 is not in /sync.
    let mut c = plain_n3(with_sync(
        cluster(None),
        r#"{"leader":"n1","quorum":0,"sync_standby":"n3"}"#,
    ));
    c.failover = Some(crate::model::Failover::from_node(
        Some(8),
        r#"{"member":"n3"}"#,
    ));
    let run = |settings: HaSettings| {
        let (step, _) = cycle(
            &c,
            &me("n2", json!({})),
            &replica_pg(5000),
            &settings,
            &Script {
                peers: vec![streaming_in(&c, "n1", 4000)],
                reloaded: c.clone(),
                ..script()
            },
        );
        decision(step)
    };
    let unhealthy = "manual failover: member n3 is not reachable".to_owned();
    // Plain synchronous mode: an unlisted standby stops before looking.
    assert!(!run(sync_on()).notes.contains(&unhealthy));
    // Quorum commit: it judges the candidate, then races (and, with no
    // vote from the voters, loses).
    let d = run(quorum_on());
    assert!(d.notes.contains(&unhealthy), "{d:?}");
    assert!(!d.actions.contains(&Action::Promote), "{d:?}");
}
