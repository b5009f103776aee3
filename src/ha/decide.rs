//! One HA cycle's decision, for a running PostgreSQL.
//!
//! Patroni's cycle interleaves decisions with DCS calls whose results steer
//! the rest (refresh the leader key, then decide; ask the peers, then race;
//! take the key, then promote). Here that is a conversation: [`decide`]
//! looks at the snapshot plus the [`Facts`] gathered so far and returns
//! either the next [`Query`] for the executor to answer (it records the
//! answer in `Facts` and calls again) or the final [`Decision`]: the
//! actions to run in order and the status message Patroni would log. The
//! same inputs always give the same step, so every path is a table row.
//!
//! Covered so far: a running PostgreSQL, not paused, not a standby
//! cluster, no failover key, synchronous mode off, no watchdog and no
//! failsafe. Anything else is [`Step::Unsupported`], which the executor
//! must treat as "do nothing and say so", never as a decision.

use serde_json::{Map, Value};

use super::race::{is_healthiest_node, PeerStatus, RaceInput};
use crate::model::{Cluster, SyncState, Tags};

/// The local PostgreSQL as the executor observed it this cycle.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalPg {
    /// Accepting connections.
    pub running: bool,
    /// Still starting up (not ready for queries yet).
    pub starting: bool,
    /// `pg_is_in_recovery()` is false.
    pub is_primary: bool,
    /// The role Patroni believes it has (`primary`, `promoted`, `replica`).
    pub role: String,
    /// The timeline PostgreSQL runs on (primary) or replays (replica).
    pub timeline: Option<i64>,
    /// Primary: current flush LSN. Replica: max(received, replayed).
    pub wal_position: i64,
    /// The data directory is missing or empty (nothing to start).
    pub data_directory_empty: bool,
    /// `Database system identifier` from pg_controldata, when known.
    pub sysid: Option<String>,
}

/// This node: name and the tags from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Me {
    pub name: String,
    pub tags: Map<String, Value>,
}

/// The dynamic settings the decisions read.
#[derive(Debug, Clone, PartialEq)]
pub struct HaSettings {
    pub maximum_lag_on_failover: i64,
    pub check_timeline: bool,
    pub paused: bool,
    pub standby_cluster: bool,
    pub synchronous_mode: bool,
    pub failsafe_mode: bool,
    pub watchdog_required: bool,
}

impl Default for HaSettings {
    fn default() -> HaSettings {
        HaSettings {
            maximum_lag_on_failover: 1_048_576,
            check_timeline: false,
            paused: false,
            standby_cluster: false,
            synchronous_mode: false,
            failsafe_mode: false,
            watchdog_required: false,
        }
    }
}

/// Answers the executor collected during this cycle.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts {
    /// Result of [`Query::RefreshLock`].
    pub lock_refreshed: Option<bool>,
    /// Result of [`Query::FetchPeerStatuses`].
    pub peers: Option<Vec<PeerStatus>>,
    /// Result of [`Query::AcquireLock`].
    pub lock_acquired: Option<bool>,
    /// Set by the executor after [`Query::ReloadCluster`]: the follow
    /// decided before the reload, to finish against the fresh snapshot.
    pub pending_follow: Option<PendingFollow>,
    /// Result of [`Query::AcquireInitializeKey`].
    pub initialize_won: Option<bool>,
}

/// A `follow()` that needs the cluster re-read first (the leader race was
/// lost, so someone else probably holds the key now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFollow {
    pub demote_reason: String,
    pub follow_reason: String,
}

/// Something the executor must do and report back before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Query {
    /// Refresh our hold on the leader key (and write `/status`).
    RefreshLock,
    /// `GET /patroni` on these members (2 s timeout, no retry).
    FetchPeerStatuses(Vec<String>),
    /// Create the leader key if absent.
    AcquireLock,
    /// Read the cluster again, then call [`decide`] with the new snapshot
    /// and `Facts::pending_follow` set to this value.
    ReloadCluster(PendingFollow),
    /// Create the `initialize` key if absent (the bootstrap race).
    AcquireInitializeKey,
}

/// How to stop being primary.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DemoteMode {
    /// We lost the key: stop at once without releasing anything, then
    /// follow the new leader.
    ImmediateNoLock,
    /// Switchover: fast stop, wait until the replicas received the
    /// shutdown checkpoint, release the key (writing the last LSN to
    /// `/status`), then follow the new leader.
    Graceful,
    /// The daemon shuts down: fast stop, release the key after the
    /// checkpoint reached the replicas, do not start again.
    Offline,
    /// The DCS is unreachable: stop at once, keep nothing, follow nobody.
    Immediate,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Promote the local replica (asynchronously, as Patroni does).
    Promote,
    Demote(DemoteMode),
    /// Make sure PostgreSQL replicates from `member` (None: from nobody,
    /// e.g. `nostream`), changing the recovery configuration if needed.
    Follow {
        member: Option<String>,
    },
    /// We won the `initialize` race: initdb (or the custom bootstrap
    /// method), start, create the users, then publish `initialize` with
    /// the system identifier, take the leader key, write `/config` and
    /// `/history` (Patroni's `bootstrap` + `post_bootstrap`).
    Bootstrap,
    /// The data directory is empty and a cluster exists: copy a replica
    /// from `from` (the leader or a `clonefrom` member) and start it.
    CreateReplica { from: String },
    /// The data directory holds a stopped cluster: start PostgreSQL as a
    /// replica of `member` (`None`: without a primary_conninfo).
    StartAsReplica { member: Option<String> },
    /// Clear the `failover` key (compare-and-set on its version) once the
    /// switchover or failover it asked for is done or impossible.
    ClearFailoverKey,
}

/// What to do this cycle and the line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Query(Query),
    Done(Decision),
    /// A situation this implementation does not decide yet.
    Unsupported(String),
}

fn done(actions: Vec<Action>, message: impl Into<String>) -> Step {
    Step::Done(Decision {
        actions,
        message: message.into(),
    })
}

/// The member to replicate from: none with `nostream`; the `replicatefrom`
/// member when it exists; otherwise the leader.
fn node_to_follow(cluster: &Cluster, me: &Me) -> Option<String> {
    let tags = Tags(&me.tags);
    if tags.nostream() {
        return None;
    }
    let target = match tags.replicatefrom().filter(|r| *r != me.name) {
        Some(r) => cluster.member(r).map(|m| m.name.clone()),
        None => cluster.leader.as_ref().map(|l| l.name.clone()),
    };
    target.filter(|t| !t.is_empty() && *t != me.name)
}

/// Patroni's `follow()` for the cases covered here.
fn follow(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    demote_reason: &str,
    follow_reason: &str,
) -> Step {
    if pg.is_primary {
        return done(
            vec![Action::Demote(DemoteMode::ImmediateNoLock)],
            demote_reason,
        );
    }
    done(
        vec![Action::Follow {
            member: node_to_follow(cluster, me),
        }],
        follow_reason,
    )
}

/// Decide the next step of this cycle.
pub fn decide(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    if settings.paused {
        return Step::Unsupported("pause mode".into());
    }
    if settings.standby_cluster {
        return Step::Unsupported("standby cluster".into());
    }
    if settings.synchronous_mode {
        return Step::Unsupported("synchronous mode".into());
    }
    if settings.failsafe_mode || settings.watchdog_required {
        return Step::Unsupported("failsafe mode or a required watchdog".into());
    }
    if cluster.failover.as_ref().is_some_and(|f| !f.is_empty()) {
        return Step::Unsupported("a pending manual failover or switchover".into());
    }
    if !pg.running {
        return Step::Unsupported("PostgreSQL is not running".into());
    }
    if let Some(p) = &facts.pending_follow {
        return follow(cluster, me, pg, &p.demote_reason, &p.follow_reason);
    }
    match cluster.leader.as_ref().map(|l| l.name.as_str()) {
        Some(leader) if leader == me.name => with_lock(me, pg, facts),
        Some(leader) => {
            let leader = leader.to_owned();
            follow(
                cluster,
                me,
                pg,
                "demoting self because I do not have the lock and I was a leader",
                &format!(
                    "no action. I am ({}), a secondary, and following a leader ({leader})",
                    me.name
                ),
            )
        }
        None => leader_race(cluster, me, pg, settings, facts),
    }
}

/// `process_healthy_cluster` when the key is ours.
fn with_lock(me: &Me, pg: &LocalPg, facts: &Facts) -> Step {
    match facts.lock_refreshed {
        None => Step::Query(Query::RefreshLock),
        Some(true) => {
            if pg.is_primary || matches!(pg.role.as_str(), "primary" | "promoted") {
                done(
                    vec![],
                    format!("no action. I am ({}), the leader with the lock", me.name),
                )
            } else {
                done(
                    vec![Action::Promote],
                    "promoted self to leader because I had the session lock",
                )
            }
        }
        Some(false) if pg.is_primary => done(
            vec![Action::Demote(DemoteMode::ImmediateNoLock)],
            "demoted self because failed to update leader lock in DCS",
        ),
        Some(false) => done(
            vec![],
            "not promoting because failed to update leader lock in DCS",
        ),
    }
}

/// Follow after re-reading the cluster (Patroni's `follow(refresh=True)`).
fn follow_fresh(demote_reason: &str, follow_reason: &str) -> Step {
    Step::Query(Query::ReloadCluster(PendingFollow {
        demote_reason: demote_reason.to_owned(),
        follow_reason: follow_reason.to_owned(),
    }))
}

/// `process_unhealthy_cluster`: no leader key.
fn leader_race(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    let nofailover = Tags(&me.tags).nofailover();
    let healthiest = if pg.starting {
        false
    } else if pg.is_primary {
        // A primary racing for a lost key must not undo a newer promotion.
        pg.timeline.unwrap_or(0) >= cluster.timeline()
    } else if nofailover {
        false
    } else {
        let Some(peers) = &facts.peers else {
            let names = cluster
                .members
                .iter()
                .filter(|m| m.name != me.name && m.api_url().is_some())
                .map(|m| m.name.clone())
                .collect();
            return Step::Query(Query::FetchPeerStatuses(names));
        };
        let empty_sync = SyncState::default();
        is_healthiest_node(&RaceInput {
            my_name: &me.name,
            my_wal_position: pg.wal_position,
            my_timeline: pg.timeline,
            my_failover_priority: Tags(&me.tags).failover_priority(),
            cluster_last_lsn: cluster.status.last_lsn,
            cluster_timeline: cluster.timeline(),
            maximum_lag_on_failover: settings.maximum_lag_on_failover,
            check_replication_lag: true,
            check_timeline: settings.check_timeline,
            standby_cluster: false,
            sync_mode_active: false,
            quorum_commit_active: false,
            sync: &empty_sync,
            former_leader: None,
            peers,
            voters: &[],
        })
        .healthiest
    };
    if !healthiest {
        return if nofailover {
            follow_fresh(
                "demoting self because I am not allowed to become primary",
                "following a different leader because I am not allowed to promote",
            )
        } else {
            follow_fresh(
                "demoting self because i am not the healthiest node",
                "following a different leader because i am not the healthiest node",
            )
        };
    }
    match facts.lock_acquired {
        None => Step::Query(Query::AcquireLock),
        Some(true) if pg.is_primary => done(vec![], "acquired session lock as a leader"),
        Some(true) => done(
            vec![Action::Promote],
            "promoted self to leader by acquiring session lock",
        ),
        Some(false) => follow_fresh(
            "demoted self after trying and failing to obtain lock",
            "following new leader after trying and failing to obtain lock",
        ),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;
