//! The checks before the running-PostgreSQL cycle, in Patroni's
//! `_run_cycle` order: a start that failed, an empty or unreadable data
//! directory (bootstrap a new cluster or copy a replica), the system
//! identifier against the `initialize` key, and a stopped PostgreSQL
//! (Patroni's `recover`).

use super::{
    done, has_lock, node_to_follow, peers_or_query, sysid_valid, with_notes, Action, Facts,
    HaSettings, LocalPg, Me, Query, Step,
};
use crate::ha::decide::failover::failover_possible;
use crate::model::{Cluster, Member, Tags};

/// The decision when one of these checks settles the cycle; `None` to go
/// on with the running cases.
pub(super) fn before_running(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Option<Step> {
    // The leader keeps `initialize` filled: it may have been lost or
    // never written (a cluster adopted while running).
    if has_lock(cluster, me)
        && !sysid_valid(cluster.initialize.as_deref())
        && facts.initialize_written.is_none()
    {
        if let Some(sysid) = pg.sysid.as_deref().filter(|s| sysid_valid(Some(s))) {
            return Some(Step::Query(Query::WriteInitializeKey {
                sysid: sysid.to_owned(),
                create_new: cluster.initialize.is_none(),
            }));
        }
    }
    if has_lock(cluster, me)
        && cluster.config.as_ref().is_none_or(|c| c.data.is_empty())
        && !facts.config_written
    {
        return Some(Step::Query(Query::WriteDynamicConfig));
    }
    if pg.start_failed && !pg.running {
        return Some(post_recover(cluster, me));
    }
    if pg.data_directory_error.is_some() || pg.data_directory_empty {
        return Some(empty_data_directory(cluster, me, pg, settings, facts));
    }
    if let Some(step) = check_system_id(cluster, me, pg, settings, facts) {
        return Some(step);
    }
    if !pg.running {
        if settings.paused {
            // Paused, PostgreSQL is left as the operator left it.
            return Some(if has_lock(cluster, me) {
                done(
                    vec![Action::ReleaseLeaderKey],
                    "removed leader lock because postgres is not running",
                )
            } else {
                done(vec![], "postgres is not running")
            });
        }
        return Some(recover(cluster, me, pg, settings, facts));
    }
    None
}

/// Patroni's `post_recover`: the start we asked for last cycle failed.
fn post_recover(cluster: &Cluster, me: &Me) -> Step {
    if has_lock(cluster, me) {
        done(
            vec![Action::ReleaseLeaderKey],
            "removed leader key after trying and failing to start postgres",
        )
    } else {
        done(vec![], "failed to start postgres")
    }
}

fn empty_data_directory(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    let mut actions = Vec::new();
    if pg.running {
        actions.push(Action::StopImmediately);
    }
    if has_lock(cluster, me) {
        actions.push(Action::ReleaseLeaderKey);
        let what = if pg.data_directory_error.is_some() {
            "not accessible"
        } else {
            "empty"
        };
        return done(
            actions,
            format!("released leader key voluntarily as data dir {what} and currently leader"),
        );
    }
    if let Some(err) = &pg.data_directory_error {
        return done(actions, format!("data directory is not accessible: {err}"));
    }
    if settings.paused {
        return done(actions, "running with empty data directory");
    }
    match bootstrap(cluster, me, settings, facts) {
        Step::Done(mut d) => {
            actions.append(&mut d.actions);
            d.actions = actions;
            Step::Done(d)
        }
        other => other,
    }
}

/// Patroni's `bootstrap()`: a node with nothing in its data directory.
fn bootstrap(cluster: &Cluster, me: &Me, settings: &HaSettings, facts: &Facts) -> Step {
    if cluster.is_unlocked()
        && cluster.initialize.is_none()
        && !Tags(&me.tags).nofailover()
        && settings.bootstrap_configured
    {
        return match facts.initialize_won {
            None => Step::Query(Query::AcquireInitializeKey),
            Some(true) if settings.standby_cluster => done(
                vec![Action::BootstrapStandbyLeader],
                "trying to bootstrap a new standby leader",
            ),
            Some(true) => done(vec![Action::Bootstrap], "trying to bootstrap a new cluster"),
            Some(false) => done(vec![], "failed to acquire initialize lock"),
        };
    }
    if let Some(leader) = &cluster.leader {
        let (from, role) = match clone_member(cluster, &me.name) {
            Some(m) => (m.name.clone(), "replica"),
            None => (leader.name.clone(), "leader"),
        };
        let message = format!("trying to bootstrap from {role} '{from}'");
        return done(vec![Action::CreateReplica { from }], message);
    }
    // `Some("")`: another node won the initialize race and is running
    // initdb; a restored backup would fork from it.
    let concurrent_bootstrap = cluster.initialize.as_deref() == Some("");
    if settings.replica_without_leader && !concurrent_bootstrap {
        return done(
            vec![Action::CreateReplicaWithoutLeader],
            "trying to bootstrap (without leader)",
        );
    }
    let waiting = if settings.standby_cluster {
        "waiting for standby_leader to bootstrap"
    } else {
        "waiting for leader to bootstrap"
    };
    done(vec![], waiting)
}

/// Patroni's `get_clone_member` minus the leader: a running member other
/// than us and the leader, tagged `clonefrom`, with a connection address.
/// Patroni picks one at random; we take the first by name so the choice is
/// reproducible (any of them is a valid source).
fn clone_member<'a>(cluster: &'a Cluster, my_name: &str) -> Option<&'a Member> {
    let leader = cluster.leader.as_ref().map(|l| l.name.as_str());
    cluster.members.iter().find(|m| {
        m.name != my_name
            && Some(m.name.as_str()) != leader
            && Tags(&m.tags()).clonefrom()
            && m.conn_url().is_some()
            && m.state() == Some("running")
    })
}

/// The data directory holds a cluster: is it ours?
fn check_system_id(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Option<Step> {
    let Some(sysid) = pg.sysid.as_deref().filter(|s| sysid_valid(Some(s))) else {
        return Some(done(
            vec![],
            "data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize",
        ));
    };
    if sysid_valid(cluster.initialize.as_deref()) {
        let init = cluster.initialize.as_deref().unwrap_or_default();
        if init != sysid && settings.paused {
            // Patroni warns and exits only once the pause ends; the key
            // goes now, a leader of another cluster must not keep it.
            return has_lock(cluster, me).then(|| {
                done(
                    vec![Action::ReleaseLeaderKey],
                    "released leader key voluntarily due to the system ID mismatch",
                )
            });
        }
        if init != sysid {
            let reason = format!(
                "system ID mismatch, node {} belongs to a different cluster: {init} != {sysid}",
                me.name
            );
            return Some(done(
                vec![Action::Exit {
                    reason: reason.clone(),
                }],
                reason,
            ));
        }
        return None;
    }
    if !cluster.is_unlocked() || settings.paused || pg.seen_running {
        return None;
    }
    // Unlocked and no valid `initialize`: an existing cluster joining (or
    // a primary whose key vanished) publishes its identifier, unless it is
    // a running replica, which would make its copy the cluster's origin.
    if pg.running && !pg.is_primary {
        return Some(done(
            vec![Action::Exit {
                reason: "No initialize key in DCS and PostgreSQL is running as replica, \
                         aborting start. Please first start Patroni on the node running as primary"
                    .into(),
            }],
            "No initialize key in DCS and PostgreSQL is running as replica, aborting start",
        ));
    }
    if facts.initialize_written.is_none() {
        return Some(Step::Query(Query::WriteInitializeKey {
            sysid: sysid.to_owned(),
            create_new: cluster.initialize.is_none(),
        }));
    }
    None
}

/// `pg_controldata` states meaning PostgreSQL did not stop cleanly.
fn unclean(state: Option<&str>) -> bool {
    matches!(
        state,
        Some("in production" | "shutting down" | "in crash recovery")
    )
}

/// Patroni's `recover()`: the data directory is fine, PostgreSQL is not
/// running. Start it in the role the leader key allows. The lines of a
/// failover check that found nobody come before whatever start follows.
fn recover(cluster: &Cluster, me: &Me, pg: &LocalPg, settings: &HaSettings, facts: &Facts) -> Step {
    let mut notes = Vec::new();
    let step = recover_noting(cluster, me, pg, settings, facts, &mut notes);
    with_notes(step, notes)
}

fn recover_noting(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
    notes: &mut Vec<String>,
) -> Step {
    let mut lock_held_and_fresh = false;
    if has_lock(cluster, me) {
        match facts.lock_refreshed {
            None => return Step::Query(Query::RefreshLock),
            Some(true) => lock_held_and_fresh = true,
            Some(false) => {}
        }
    }
    if lock_held_and_fresh && settings.primary_start_timeout == 0 {
        let peers = match peers_or_query(cluster, me, facts) {
            Ok(p) => p,
            Err(q) => return q,
        };
        if failover_possible(cluster, me, settings, peers, 0, false, notes) {
            // Patroni's demote('immediate') on an already stopped server
            // comes down to giving the key away; the next cycle starts us
            // as a replica of whoever takes it.
            return done(
                vec![Action::ReleaseLeaderKey],
                "stopped PostgreSQL to fail over after a crash",
            );
        }
    }
    let state = pg.cluster_state.as_deref();
    if lock_held_and_fresh
        && settings.primary_start_timeout != 0
        && (unclean(state) || state == Some("shut down"))
        && pg.crashed
        && pg.role == "primary"
        && !pg.recovery_conf
    {
        return done(
            vec![Action::StartAsPrimary],
            "starting primary after failure",
        );
    }
    if unclean(state)
        && !pg.backup_label
        && !pg.crash_recovery_started
        && (cluster.is_unlocked() || settings.can_rewind)
    {
        return done(
            vec![Action::CrashRecovery],
            "doing crash recovery in a single user mode",
        );
    }
    if settings.standby_cluster && has_lock(cluster, me) {
        return done(
            vec![Action::FollowRemote {
                standby_leader: true,
            }],
            "starting as a standby leader because i had the session lock",
        );
    }
    if has_lock(cluster, me) {
        return done(
            vec![Action::StartAsReplica { member: None }],
            "starting as readonly because i had the session lock",
        );
    }
    if settings.standby_cluster && cluster.is_unlocked() {
        return done(
            vec![Action::FollowRemote {
                standby_leader: false,
            }],
            "trying to follow a remote member because standby cluster is unhealthy",
        );
    }
    done(
        vec![Action::StartAsReplica {
            member: node_to_follow(cluster, me),
        }],
        "starting as a secondary",
    )
}

#[cfg(test)]
#[path = "offline_tests.rs"]
mod tests;
