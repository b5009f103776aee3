//! Standby clusters: one row per path, and the rule that nobody in a
//! standby cluster is ever promoted to primary.

use serde_json::json;

use super::super::tests::{cluster, cycle, decision, me, primary_pg, replica_pg, script, Script};
use super::super::*;

fn standby() -> HaSettings {
    HaSettings {
        standby_cluster: true,
        bootstrap_configured: true,
        ..HaSettings::default()
    }
}

fn as_role(role: &str) -> LocalPg {
    LocalPg {
        role: role.into(),
        ..replica_pg(5000)
    }
}

fn run(c: &Cluster, name: &str, pg: &LocalPg, s: &Script) -> (Decision, Vec<Query>) {
    let (step, asked) = cycle(c, &me(name, json!({})), pg, &standby(), s);
    (decision(step), asked)
}

#[test]
fn the_key_holder_streams_from_the_remote_primary() {
    let c = cluster(Some("n2"));
    let (d, asked) = run(&c, "n2", &as_role("standby_leader"), &script());
    assert_eq!(asked, [Query::RefreshLock]);
    assert_eq!(
        d.actions,
        [Action::FollowRemote {
            standby_leader: true
        }]
    );
    assert_eq!(
        d.message,
        "no action. I am (n2), the standby leader with the lock"
    );
    let (d, _) = run(&c, "n2", &as_role("replica"), &script());
    assert_eq!(
        d.message,
        "promoted self to a standby leader because i had the session lock"
    );
    // A primary holding the key of a standby cluster is demoted into it.
    let (d, _) = run(&c, "n2", &primary_pg(), &script());
    assert_eq!(d.actions, [Action::Demote(DemoteMode::Cluster)]);
    assert_eq!(d.message, "cannot be a real primary in standby cluster");
}

#[test]
fn the_race_winner_becomes_standby_leader_without_promoting() {
    let (d, asked) = run(&cluster(None), "n2", &replica_pg(5000), &script());
    assert_eq!(asked.last(), Some(&Query::AcquireLock));
    assert_eq!(
        d.actions,
        [Action::FollowRemote {
            standby_leader: true
        }]
    );
    assert_eq!(
        d.message,
        "promoted self to a standby leader by acquiring session lock"
    );
    // Losing the race: after the reload, follow the new standby leader.
    let lost = Script {
        acquire: false,
        reloaded: cluster(Some("n1")),
        ..script()
    };
    let (d, _) = run(&cluster(None), "n2", &replica_pg(5000), &lost);
    assert_eq!(
        d.actions,
        [Action::Follow {
            member: Some("n1".into())
        }]
    );
}

#[test]
fn members_follow_the_standby_leader() {
    let (d, asked) = run(&cluster(Some("n1")), "n2", &replica_pg(5000), &script());
    assert!(asked.is_empty(), "{asked:?}");
    assert_eq!(
        d.actions,
        [Action::Follow {
            member: Some("n1".into())
        }]
    );
    assert_eq!(
        d.message,
        "no action. I am (n2), a secondary, and following a standby leader (n1)"
    );
    // A primary that is not the key holder is demoted into the cluster.
    let (d, _) = run(&cluster(Some("n1")), "n2", &primary_pg(), &script());
    assert_eq!(d.actions, [Action::Demote(DemoteMode::Cluster)]);
    assert_eq!(d.message, "cannot be a real primary in a standby cluster");
    // A leader key naming nobody we know: stay as we are.
    let (d, _) = run(&cluster(Some("n9")), "n2", &replica_pg(5000), &script());
    assert!(d.actions.is_empty());
    assert_eq!(d.message, "continue following the old known standby leader");
}

#[test]
fn a_stopped_member_starts_towards_the_right_upstream() {
    let stopped = LocalPg {
        running: false,
        cluster_state: Some("shut down in recovery".into()),
        ..as_role("standby_leader")
    };
    let (d, _) = run(&cluster(Some("n2")), "n2", &stopped, &script());
    assert_eq!(
        d.actions,
        [Action::FollowRemote {
            standby_leader: true
        }]
    );
    assert_eq!(
        d.message,
        "starting as a standby leader because i had the session lock"
    );
    let (d, _) = run(&cluster(None), "n2", &stopped, &script());
    assert_eq!(
        d.actions,
        [Action::FollowRemote {
            standby_leader: false
        }]
    );
    assert_eq!(
        d.message,
        "trying to follow a remote member because standby cluster is unhealthy"
    );
    let (d, _) = run(&cluster(Some("n1")), "n2", &stopped, &script());
    assert_eq!(
        d.actions,
        [Action::StartAsReplica {
            member: Some("n1".into())
        }]
    );
}

#[test]
fn bootstrap_copies_the_remote_primary() {
    let mut c = cluster(None);
    c.initialize = None;
    let empty = LocalPg {
        running: false,
        data_directory_empty: true,
        sysid: None,
        ..LocalPg::default()
    };
    let (d, asked) = run(&c, "n2", &empty, &script());
    assert_eq!(asked, [Query::AcquireInitializeKey]);
    assert_eq!(d.actions, [Action::BootstrapStandbyLeader]);
    assert_eq!(d.message, "trying to bootstrap a new standby leader");
    let lost = Script {
        acquire: false,
        ..script()
    };
    let (d, _) = run(&c, "n2", &empty, &lost);
    assert_eq!(d.message, "failed to acquire initialize lock");
    c.initialize = Some(String::new());
    let (d, _) = run(&c, "n2", &empty, &script());
    assert_eq!(d.message, "waiting for standby_leader to bootstrap");
}

/// Whatever the leader key, failover key, role and peers, nobody in a
/// standby cluster is promoted.
#[test]
fn nobody_is_ever_promoted_in_a_standby_cluster() {
    let failovers = [
        None,
        Some(r#"{"leader":"n1","member":"n2"}"#),
        Some(r#"{"member":"n2"}"#),
    ];
    let mut checked = 0;
    for leader in [None, Some("n1"), Some("n2")] {
        for failover in failovers {
            for pg in [replica_pg(5000), as_role("standby_leader"), primary_pg()] {
                for (refresh, acquire) in [(true, true), (false, false), (true, false)] {
                    let mut c = cluster(leader);
                    c.failover = failover.map(|f| crate::model::Failover::from_node(Some(8), f));
                    let s = Script {
                        refresh,
                        acquire,
                        ..script()
                    };
                    let (d, asked) = run(&c, "n2", &pg, &s);
                    assert!(
                        !d.actions.contains(&Action::Promote),
                        "{leader:?} {failover:?} {asked:?} {d:?}"
                    );
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, 3 * 3 * 3 * 3);
}

#[test]
fn a_key_holder_without_config_publishes_its_own_first() {
    // Adopted from an existing data directory: nobody wrote `/config`.
    let mut c = cluster(Some("n2"));
    c.config = None;
    let (_, asked) = run(&c, "n2", &as_role("standby_leader"), &script());
    assert_eq!(asked, [Query::WriteDynamicConfig, Query::RefreshLock]);
    // Not the key holder: not ours to write.
    let (_, asked) = run(&c, "n1", &replica_pg(5000), &script());
    assert!(!asked.contains(&Query::WriteDynamicConfig), "{asked:?}");
}
