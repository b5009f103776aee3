//! One HA cycle's decision.
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
//! The checks run in the order of Patroni's `_run_cycle`: a failed start
//! from the previous cycle, an empty or unreadable data directory
//! ([`offline`]), the system identifier against the `initialize` key, a
//! stopped PostgreSQL ([`offline`]'s `recover`), then the running cases
//! ([`running`]).
//!
//! Synchronous mode (`synchronous_mode: on`) restricts who may race and
//! asks the executor to keep `/sync` and `synchronous_standby_names` in
//! line ([`Action::ProcessSyncReplication`], see [`crate::ha::sync`]).
//!
//! A standby cluster ([`standby`]) has a standby leader that streams from
//! a remote primary instead of a primary.
//!
//! The watchdog's part ([`watchdog`]) is asked of the executor before a
//! node acts as primary.
//!
//! DCS failsafe mode ([`failsafe`]) keeps a primary running through a DCS
//! outage when every member accepts it ([`decide_dcs_error`]).

mod failover;
pub mod failsafe;
mod offline;
mod running;
mod standby;
mod stop;
mod watchdog;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::race::PeerStatus;
use crate::model::{Cluster, Tags};

pub use failover::is_failover_possible;
pub use stop::{decide_dcs_error, decide_shutdown};

/// The local PostgreSQL as the executor observed it this cycle.
///
/// `Default` is a stopped instance with nothing known, for building test
/// rows and for the executor to fill in field by field.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct LocalPg {
    /// Accepting connections.
    pub running: bool,
    /// Still starting up (not ready for queries yet).
    pub starting: bool,
    /// `pg_is_in_recovery()` is false.
    pub is_primary: bool,
    /// The role Patroni believes it has (`primary`, `promoted`, `replica`).
    /// Kept across a crash: a primary that died is still `primary` here.
    pub role: String,
    /// The timeline PostgreSQL runs on (primary) or replays (replica).
    pub timeline: Option<i64>,
    /// Primary: current flush LSN. Replica: max(received, replayed).
    pub wal_position: i64,
    /// The data directory is missing or empty (nothing to start).
    pub data_directory_empty: bool,
    /// `Some(error)` when the data directory could not be inspected (for
    /// example permission denied); `data_directory_empty` is then ignored.
    pub data_directory_error: Option<String>,
    /// `Database system identifier` (pg_controldata, or the running
    /// server). Must be filled whenever the data directory is not empty:
    /// a missing or malformed one stops the cycle, as in Patroni.
    pub sysid: Option<String>,
    /// `Database cluster state` from pg_controldata (`in production`,
    /// `shut down`, `in archive recovery`, ...), read when not running.
    pub cluster_state: Option<String>,
    /// PostgreSQL was running (or starting) under this daemon and is gone
    /// without having been stopped by it: Patroni's `crashed` state.
    pub crashed: bool,
    /// A `standby.signal`/`recovery.signal` (or `recovery.conf`) exists.
    pub recovery_conf: bool,
    /// A `backup_label` exists: PostgreSQL recovers it on a normal start,
    /// single-user crash recovery must not run.
    pub backup_label: bool,
    /// Single-user crash recovery already ran since PostgreSQL stopped
    /// (Patroni tries it once; the executor resets this after a start).
    pub crash_recovery_started: bool,
    /// The start the executor ran for the previous decision
    /// ([`Action::StartAsReplica`] or [`Action::StartAsPrimary`]) finished
    /// and PostgreSQL is not running (Patroni's `post_recover`). Reset
    /// after this cycle.
    pub start_failed: bool,
    /// This daemon already finished a cycle with this PostgreSQL running
    /// (Patroni's `cb_called`: set once `on_start` ran, cleared when
    /// PostgreSQL stops). Before that, a missing `initialize` key is
    /// filled from our data directory, or the start aborted for a replica.
    pub seen_running: bool,
}

/// This node: name and the tags from its configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Me {
    pub name: String,
    pub tags: Map<String, Value>,
}

/// The settings the decisions read.
#[derive(Debug, Clone, PartialEq)]
pub struct HaSettings {
    pub maximum_lag_on_failover: i64,
    pub check_timeline: bool,
    pub paused: bool,
    pub standby_cluster: bool,
    /// `synchronous_mode` is on (or `quorum`) and this is no standby
    /// cluster.
    pub synchronous_mode: bool,
    /// `synchronous_mode: quorum`.
    pub quorum_commit: bool,
    pub failsafe_mode: bool,
    /// `watchdog.mode: required` and the device cannot be used (the
    /// daemon refreshes it every cycle): this node does not race.
    pub watchdog_unusable: bool,
    /// The local configuration has a `bootstrap` section: without one a
    /// node never races to initialize a new cluster.
    pub bootstrap_configured: bool,
    /// `primary_start_timeout` (seconds); 0 prefers failing over to
    /// restarting a crashed primary.
    pub primary_start_timeout: i64,
    /// `loop_wait` (seconds): a scheduled switchover runs when it is less
    /// than this far away.
    pub loop_wait: i64,
    /// One of `create_replica_methods` works without a running primary
    /// (`no_leader` set, e.g. a restore from backup).
    pub replica_without_leader: bool,
    /// pg_rewind is usable (`use_pg_rewind` and its preconditions): a
    /// stopped primary may then run crash recovery even with a leader.
    pub can_rewind: bool,
}

impl Default for HaSettings {
    fn default() -> HaSettings {
        HaSettings {
            maximum_lag_on_failover: 1_048_576,
            check_timeline: false,
            paused: false,
            standby_cluster: false,
            synchronous_mode: false,
            quorum_commit: false,
            failsafe_mode: false,
            watchdog_unusable: false,
            bootstrap_configured: false,
            primary_start_timeout: 300,
            loop_wait: 10,
            replica_without_leader: false,
            can_rewind: false,
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
    /// Result of [`Query::WriteInitializeKey`] (true when written).
    pub initialize_written: Option<bool>,
    /// Result of [`Query::CurrentTime`].
    pub now: Option<DateTime<Utc>>,
    /// Set once [`Query::SleepUntil`] returned.
    pub slept: bool,
    /// Result of [`Query::ClaimSyncForPromote`].
    pub sync_claimed: Option<bool>,
    /// Set once [`Query::WriteDynamicConfig`] was answered.
    pub config_written: bool,
    /// Result of [`Query::PostFailsafe`]: every member accepted.
    pub failsafe_accepted: Option<bool>,
    /// Result of [`Query::ActivateWatchdog`], or `Some(true)` filled in
    /// by the executor when the watchdog already runs.
    pub watchdog_armed: Option<bool>,
}

/// A `follow()` that needs the cluster re-read first (the leader race was
/// lost, so someone else probably holds the key now).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingFollow {
    pub demote_reason: String,
    pub follow_reason: String,
    /// The leader race's log lines from before the reload, handed on to
    /// the decision that finishes the follow ([`Decision::notes`]).
    pub notes: Vec<String>,
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
    /// Publish our existing data directory's system identifier as the
    /// `initialize` key: create it when `create_new` (no key at all),
    /// otherwise overwrite the empty or malformed value. Answer in
    /// `Facts::initialize_written`; the cycle goes on either way.
    WriteInitializeKey { sysid: String, create_new: bool },
    /// The wall clock, to compare with a scheduled switchover's
    /// `scheduled_at`. Answer in `Facts::now`.
    CurrentTime,
    /// A scheduled switchover is due within `loop_wait`: sleep until this
    /// instant (at once if it passed), set `Facts::slept`, ask again.
    SleepUntil(DateTime<Utc>),
    /// Synchronous mode, about to promote: write `/sync` naming us as
    /// leader with no standbys (compare-and-set on the version read) and
    /// set `synchronous_standby_names` to nobody (`*` when strict).
    /// Answer in `Facts::sync_claimed`; a failed write means someone else
    /// changed the key (maybe the lock is lost), so the promotion waits.
    ClaimSyncForPromote,
    /// We hold the leader key and `/config` is missing or empty: write
    /// our dynamic configuration there, read the cluster again, set
    /// `Facts::config_written` and ask again (Patroni does this for a
    /// cluster adopted from an existing data directory).
    WriteDynamicConfig,
    /// The DCS is unreachable and we run as primary in failsafe mode:
    /// `POST /failsafe` to each of these members at once (2 s timeout,
    /// one retry). Answer in `Facts::failsafe_accepted`: true only when
    /// every one answered 200 `Accepted`.
    PostFailsafe(Vec<failsafe::FailsafePeer>),
    /// About to act as primary: arm the watchdog (see
    /// [`watchdog`]); answer in `Facts::watchdog_armed`.
    ActivateWatchdog,
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
    /// Patroni's `offline`, for a DCS that cannot be reached (and, with
    /// [`Action::ReleaseLeaderKey`] after it, for the daemon stopping):
    /// fast stop, no checkpoint, nothing released (the DCS is not there
    /// to take it).
    Offline,
    /// Patroni's `immediate`: stop at once, release the key, then follow
    /// whoever leads next.
    Immediate,
    /// Patroni's `demote-cluster`: the cluster became a standby cluster.
    /// Fast stop, keep the key, start again as the standby leader
    /// streaming from the remote primary.
    Cluster,
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
    /// Standby cluster: make PostgreSQL stream from the remote primary of
    /// `standby_cluster` (starting it if it is stopped), as the standby
    /// leader when we hold the key, else as a replica.
    FollowRemote {
        standby_leader: bool,
    },
    /// Standby cluster, we won the `initialize` race: copy the remote
    /// primary, start as its standby, then publish `initialize`, take the
    /// leader key and write `/config`.
    BootstrapStandbyLeader,
    /// We won the `initialize` race: initdb (or the custom bootstrap
    /// method), start, create the users, then publish `initialize` with
    /// the system identifier, take the leader key, write `/config` and
    /// `/history` (Patroni's `bootstrap` + `post_bootstrap`).
    Bootstrap,
    /// The data directory is empty and a cluster exists: copy a replica
    /// from `from` (the leader or a `clonefrom` member) and start it.
    CreateReplica {
        from: String,
    },
    /// The data directory is empty, nobody holds the leader key, and a
    /// `create_replica_methods` entry works without a primary: run those
    /// methods (with no source member) and start as a replica.
    CreateReplicaWithoutLeader,
    /// The data directory holds a stopped cluster: start PostgreSQL as a
    /// replica of `member` (`None`: without a primary_conninfo).
    StartAsReplica {
        member: Option<String>,
    },
    /// We hold the (just refreshed) leader key and PostgreSQL, a primary a
    /// moment ago, died: start it again as a primary, waiting up to
    /// `primary_start_timeout`.
    StartAsPrimary,
    /// PostgreSQL was not shut down cleanly: run single-user crash
    /// recovery (`postgres --single` with the `checkpoint` trick) so that
    /// a later start or pg_rewind sees a clean state.
    CrashRecovery,
    /// Stop PostgreSQL with `immediate` mode and do not start it (its data
    /// directory vanished under it).
    StopImmediately,
    /// The daemon stops and this node is not the leader: stop PostgreSQL
    /// in `fast` mode, no checkpoint first, do not start it again.
    StopFast,
    /// Delete the leader key if it is still ours (compare on our session
    /// or value), then refresh our member key.
    ReleaseLeaderKey,
    /// Clear the `failover` key (compare-and-set on its version) once the
    /// switchover or failover it asked for is done or impossible.
    ClearFailoverKey,
    /// Paused: we took the leader key for a switchover's candidate (us).
    /// Rewrite the `failover` key without its `leader`, keeping `member`
    /// and `scheduled_at` (compare-and-set on its version), so the next
    /// cycles know the promotion they wait for was asked.
    DropFailoverLeader,
    /// Synchronous mode on a running primary holding the key: bring the
    /// `/sync` key and `synchronous_standby_names` in line with the
    /// standbys that stream now ([`crate::ha::sync::plan_multisync`]).
    ProcessSyncReplication,
    /// Synchronous mode is off but `/sync` still names a leader: delete
    /// the key (compare-and-set) and give `synchronous_standby_names` back
    /// to the configuration.
    DisableSyncReplication,
    /// Fatal: log `reason` at FATAL/ERROR and exit the daemon with status
    /// 1, leaving PostgreSQL as it is (Patroni's `sys.exit(1)`).
    Exit {
        reason: String,
    },
    /// Failsafe mode, DCS unreachable, every member accepted us: stay
    /// primary (we count as leader, the failsafe state is active, the
    /// lease fence moves on as after a refresh that started when the
    /// POSTs did).
    HoldPrimaryInFailsafe,
}

/// What to do this cycle and the line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    pub actions: Vec<Action>,
    /// Lines to log at INFO, in order, before `message`: why the leader
    /// race or a failover check came out as it did ("Primary (x) is still
    /// alive", "Member x exceeds maximum replication lag", ...), as
    /// Patroni logs them on the way to its decision. Operators and tests
    /// grep for them.
    pub notes: Vec<String>,
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
        notes: Vec::new(),
        message: message.into(),
    })
}

/// `step` with `notes` logged before anything it already carries: a
/// decision gets them in front of its own notes, a pending follow carries
/// them across the reload. Other steps (a query asked before the race
/// ran) have nothing to carry yet.
fn with_notes(step: Step, mut notes: Vec<String>) -> Step {
    if notes.is_empty() {
        return step;
    }
    match step {
        Step::Done(mut d) => {
            notes.append(&mut d.notes);
            d.notes = notes;
            Step::Done(d)
        }
        Step::Query(Query::ReloadCluster(mut p)) => {
            notes.append(&mut p.notes);
            p.notes = notes;
            Step::Query(Query::ReloadCluster(p))
        }
        other => other,
    }
}

/// The statuses of every other member with an API address, or the query
/// that fetches them. Every path asks for this same list, so one answer
/// serves whichever subset a check needs.
fn peers_or_query<'a>(
    cluster: &Cluster,
    me: &Me,
    facts: &'a Facts,
) -> Result<&'a [PeerStatus], Step> {
    match &facts.peers {
        Some(p) => Ok(p),
        None => Err(Step::Query(Query::FetchPeerStatuses(
            cluster
                .members
                .iter()
                .filter(|m| m.name != me.name && m.api_url().is_some())
                .map(|m| m.name.clone())
                .collect(),
        ))),
    }
}

/// Synchronous mode is on and the leader has claimed `/sync` (Patroni's
/// `sync_mode_is_active`): only the standbys listed there may race.
fn sync_mode_active(cluster: &Cluster, settings: &HaSettings) -> bool {
    settings.synchronous_mode && !cluster.sync.is_empty()
}

/// Quorum commit is on and the leader has claimed `/sync` (Patroni's
/// `quorum_commit_mode_is_active`): the key's `quorum` and voters rule
/// the leader race and failover checks.
fn quorum_active(cluster: &Cluster, settings: &HaSettings) -> bool {
    settings.quorum_commit && !cluster.sync.is_empty()
}

/// The voting set of quorum commit: the leader `/sync` names, then its
/// voters (Patroni's `SyncState.members`); empty when `/sync` is.
fn quorum_voting_set(cluster: &Cluster) -> Vec<String> {
    match &cluster.sync.leader {
        Some(leader) => std::iter::once(leader.clone())
            .chain(cluster.sync.members())
            .collect(),
        None => Vec::new(),
    }
}

/// What a running primary with the key does about synchronous
/// replication each cycle (the sync part of Patroni's
/// `enforce_primary_role`).
fn sync_duty(cluster: &Cluster, settings: &HaSettings) -> Option<Action> {
    if settings.synchronous_mode {
        Some(Action::ProcessSyncReplication)
    } else if !cluster.sync.is_empty() {
        Some(Action::DisableSyncReplication)
    } else {
        None
    }
}

/// Before a promotion (Patroni's `process_sync_replication_prepromote`):
/// in synchronous mode, `/sync` must name us first. `Ok` carries what to
/// run before [`Action::Promote`]; `Err` the step to return instead.
fn before_promote(
    cluster: &Cluster,
    settings: &HaSettings,
    facts: &Facts,
) -> Result<Vec<Action>, Step> {
    if !settings.synchronous_mode {
        return Ok(sync_duty(cluster, settings).into_iter().collect());
    }
    match facts.sync_claimed {
        None => Err(Step::Query(Query::ClaimSyncForPromote)),
        Some(true) => Ok(Vec::new()),
        Some(false) => Err(done(
            vec![],
            "Postponing promotion because synchronous replication state was updated by somebody else",
        )),
    }
}

/// Patroni's `sysid_valid`: at least ten digits and nothing else (a
/// system identifier starts with the initdb time shifted left 32 bits).
fn sysid_valid(sysid: Option<&str>) -> bool {
    sysid.is_some_and(|s| s.len() >= 10 && s.bytes().all(|b| b.is_ascii_digit()))
}

/// The leader key names this node.
fn has_lock(cluster: &Cluster, me: &Me) -> bool {
    cluster.leader.as_ref().is_some_and(|l| l.name == me.name)
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

/// Patroni's `follow()` for the cases covered here. Paused, nothing is
/// demoted: a primary without the key keeps running, and a replica only
/// has its upstream kept up to date.
fn follow(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    demote_reason: &str,
    follow_reason: &str,
) -> Step {
    if settings.standby_cluster {
        return standby::follow(cluster, me, pg, settings, demote_reason, follow_reason);
    }
    let target = node_to_follow(cluster, me);
    if settings.paused {
        if pg.is_primary {
            return done(vec![], "continue to run as primary without lock");
        }
        if target.is_none() {
            return done(vec![], format!("no action. I am ({})", me.name));
        }
    } else if pg.is_primary {
        return done(
            vec![Action::Demote(DemoteMode::ImmediateNoLock)],
            demote_reason,
        );
    }
    done(vec![Action::Follow { member: target }], follow_reason)
}

/// Follow after re-reading the cluster (Patroni's `follow(refresh=True)`).
/// `notes` (the race's log lines) come back in the final decision.
fn follow_fresh(demote_reason: &str, follow_reason: &str, notes: Vec<String>) -> Step {
    Step::Query(Query::ReloadCluster(PendingFollow {
        demote_reason: demote_reason.to_owned(),
        follow_reason: follow_reason.to_owned(),
        notes,
    }))
}

/// Decide the next step of this cycle.
///
/// Paused (`pause: true` in the dynamic configuration), every message
/// starts with `PAUSE: `, as Patroni's log lines do.
pub fn decide(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    let mut step = decide_cycle(cluster, me, pg, settings, facts);
    if let Some(p) = &facts.pending_follow {
        // The race ran before the reload; its lines belong to whatever
        // this cycle ends with.
        step = with_notes(step, p.notes.clone());
    }
    match step {
        Step::Done(mut d) if settings.paused => {
            d.message.insert_str(0, "PAUSE: ");
            Step::Done(d)
        }
        other => other,
    }
}

fn decide_cycle(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    if let Some(step) = offline::before_running(cluster, me, pg, settings, facts) {
        return step;
    }
    if let Some(p) = &facts.pending_follow {
        return follow(
            cluster,
            me,
            pg,
            settings,
            &p.demote_reason,
            &p.follow_reason,
        );
    }
    match cluster.leader.as_ref().map(|l| l.name.as_str()) {
        Some(leader) if leader == me.name => running::with_lock(cluster, me, pg, settings, facts),
        Some(leader) if settings.standby_cluster => follow(
            cluster,
            me,
            pg,
            settings,
            "cannot be a real primary in a standby cluster",
            &format!(
                "no action. I am ({}), a secondary, and following a standby leader ({leader})",
                me.name
            ),
        ),
        Some(leader) => {
            let leader = leader.to_owned();
            follow(
                cluster,
                me,
                pg,
                settings,
                "demoting self because I do not have the lock and I was a leader",
                &format!(
                    "no action. I am ({}), a secondary, and following a leader ({leader})",
                    me.name
                ),
            )
        }
        None => running::leader_race(cluster, me, pg, settings, facts),
    }
}

#[cfg(test)]
#[path = "decide_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "decide/notes_tests.rs"]
mod notes_tests;

#[cfg(test)]
#[path = "decide/sync_tests.rs"]
mod sync_tests;

#[cfg(test)]
#[path = "decide/watchdog_tests.rs"]
mod watchdog_tests;
