//! A standby cluster (`standby_cluster` in the dynamic configuration with
//! a `host`, `port` or `restore_command`): the member holding the leader
//! key is a *standby leader* that streams (or restores) from the remote
//! primary; the other members follow it. No member ever runs as a primary:
//! one that does is demoted into the standby cluster (Patroni's
//! `demote-cluster`).

use super::{done, has_lock, node_to_follow, Action, DemoteMode, HaSettings, LocalPg, Me, Step};
use crate::model::{Cluster, Tags};

/// Patroni's `follow()` in a standby cluster. The key holder, or anyone
/// while nobody holds it (unless paused), follows the remote primary; the
/// others follow the standby leader.
pub(super) fn follow(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    demote_reason: &str,
    follow_reason: &str,
) -> Step {
    let holds = has_lock(cluster, me);
    let remote =
        !Tags(&me.tags).nostream() && (holds || (cluster.is_unlocked() && !settings.paused));
    let target = if remote {
        None
    } else {
        node_to_follow(cluster, me)
    };
    if settings.paused {
        if pg.is_primary {
            return done(vec![], "continue to run as primary without lock");
        }
        if !remote && target.is_none() {
            return done(vec![], format!("no action. I am ({})", me.name));
        }
    } else if pg.is_primary {
        return done(vec![Action::Demote(DemoteMode::Cluster)], demote_reason);
    }
    if remote {
        return done(
            vec![Action::FollowRemote {
                standby_leader: holds,
            }],
            follow_reason,
        );
    }
    // A leader key naming a member we cannot reach (no such member, or no
    // address): keep streaming from wherever we do now.
    let reachable = target
        .as_deref()
        .and_then(|t| cluster.member(t))
        .is_some_and(|m| m.conn_url().is_some());
    if !reachable {
        return done(vec![], "continue following the old known standby leader");
    }
    done(vec![Action::Follow { member: target }], follow_reason)
}

/// We hold (or just took) the leader key of a standby cluster: run as the
/// standby leader (Patroni's `enforce_follow_remote_member`). `actions`
/// are the ones decided before (clearing a failover key).
pub(super) fn as_standby_leader(
    pg: &LocalPg,
    settings: &HaSettings,
    mut actions: Vec<Action>,
    message: &str,
) -> Step {
    if pg.is_primary {
        if settings.paused {
            return done(actions, "continue to run as primary without lock");
        }
        actions.push(Action::Demote(DemoteMode::Cluster));
        return done(actions, "cannot be a real primary in standby cluster");
    }
    actions.push(Action::FollowRemote {
        standby_leader: true,
    });
    done(actions, message)
}

/// The message of a standby cluster's key holder: whether it already runs
/// as the standby leader.
pub(super) fn holder_message(me: &Me, pg: &LocalPg) -> String {
    if pg.role == "standby_leader" {
        format!(
            "no action. I am ({}), the standby leader with the lock",
            me.name
        )
    } else {
        "promoted self to a standby leader because i had the session lock".to_owned()
    }
}

#[cfg(test)]
#[path = "standby_tests.rs"]
mod tests;
