//! Manual failover and switchover (the `failover` key), and the check
//! both it and crash handling use: is there anyone to hand over to?

use chrono::{DateTime, Utc};

use super::{
    done, peers_or_query, quorum_active, quorum_voting_set, sync_mode_active, with_notes, Action,
    DemoteMode, Facts, HaSettings, LocalPg, Me, Query, Step,
};
use crate::ha::race::{is_healthiest_node, PeerStatus, RaceInput};
use crate::model::{Cluster, Failover, Tags};

/// The leader race's input for this node against `peers` (already
/// narrowed to the members that may race). In synchronous mode the
/// former leader named by `/sync` keeps its priority edge.
pub(super) fn race_input<'a>(
    cluster: &'a Cluster,
    me: &'a Me,
    pg: &LocalPg,
    settings: &HaSettings,
    check_replication_lag: bool,
    peers: &'a [PeerStatus],
) -> RaceInput<'a> {
    let active = sync_mode_active(cluster, settings);
    RaceInput {
        my_name: &me.name,
        my_wal_position: pg.wal_position,
        my_timeline: pg.timeline,
        my_failover_priority: Tags(&me.tags).failover_priority(),
        cluster_last_lsn: cluster.status.last_lsn,
        cluster_timeline: cluster.timeline(),
        maximum_lag_on_failover: settings.maximum_lag_on_failover,
        check_replication_lag,
        check_timeline: settings.check_timeline,
        standby_cluster: settings.standby_cluster,
        watchdog_unusable: settings.watchdog_unusable,
        sync_mode_active: active,
        quorum_commit_active: quorum_active(cluster, settings),
        sync: &cluster.sync,
        former_leader: if active {
            cluster.sync.leader.as_deref()
        } else {
            None
        },
        peers,
        voters: if quorum_active(cluster, settings) {
            quorum_voting_set(cluster)
        } else {
            Vec::new()
        },
    }
}

/// Patroni's `is_failover_possible`:
/// does some other member that may be promoted answer its `/patroni`, not
/// lagging (behind `cluster_lsn` when given, else past
/// `maximum_lag_on_failover` from `/status`), and not behind the cluster
/// timeline when `check_timeline` is on?
///
/// With a failover key naming a candidate, only that candidate counts,
/// unless `exclude_failover_candidate`, in which case everyone else does.
/// In synchronous mode only the standbys `/sync` lists count, except for a
/// manual failover (no leader named). Members missing from `peers` count
/// as unreachable. With quorum commit active, at least `quorum` members
/// must qualify (votes), unless the key names a candidate that counts.
pub fn is_failover_possible(
    cluster: &Cluster,
    me: &Me,
    settings: &HaSettings,
    peers: &[PeerStatus],
    cluster_lsn: i64,
    exclude_failover_candidate: bool,
) -> bool {
    let mut notes = Vec::new();
    failover_possible(
        cluster,
        me,
        settings,
        peers,
        cluster_lsn,
        exclude_failover_candidate,
        &mut notes,
    )
}

/// [`is_failover_possible`], appending to `notes` the line Patroni logs
/// for each member it rules out (every candidate is judged, so the log
/// names them all) and for an empty candidate list.
pub(super) fn failover_possible(
    cluster: &Cluster,
    me: &Me,
    settings: &HaSettings,
    peers: &[PeerStatus],
    cluster_lsn: i64,
    exclude_failover_candidate: bool,
    notes: &mut Vec<String>,
) -> bool {
    let failover = requested(cluster);
    let candidate = failover.and_then(|f| f.candidate.as_deref());
    let cluster_timeline = cluster.timeline();
    let sync_only =
        sync_mode_active(cluster, settings) && failover.is_none_or(|f| f.leader.is_some());
    let candidates: Vec<_> = cluster
        .members
        .iter()
        .filter(|m| !sync_only || cluster.sync.matches(&m.name, false))
        .filter(|m| m.name != me.name && m.api_url().is_some())
        .filter(|m| !Tags(&m.tags()).nofailover())
        .filter(|m| match candidate {
            Some(c) if exclude_failover_candidate => m.name != c,
            Some(c) => m.name == c,
            None => true,
        })
        .collect();
    if candidates.is_empty() {
        let action = failover.map_or("failover", |f| action_names(f).0);
        match candidate {
            Some(c) if settings.synchronous_mode => {
                let mut title = action.to_owned();
                title[..1].make_ascii_uppercase();
                notes.push(format!(
                    "{title} candidate={c} does not match with sync_standbys={}",
                    cluster.sync.sync_standby.as_deref().unwrap_or("None")
                ));
            }
            _ => notes.push(format!("{action}: candidates list is empty")),
        }
    }
    let mut votes: i64 = -1;
    for m in candidates {
        let unknown = PeerStatus::unknown(m);
        let st = peers.iter().find(|p| p.name == m.name).unwrap_or(&unknown);
        let lagging = if cluster_lsn != 0 {
            st.wal_position < cluster_lsn
        } else {
            cluster.status.last_lsn.saturating_sub(st.wal_position)
                > settings.maximum_lag_on_failover
        };
        if let Some(reason) = st.failover_limitation() {
            notes.push(format!("Member {} is {reason}", m.name));
        } else if lagging {
            notes.push(format!("Member {} exceeds maximum replication lag", m.name));
        } else if settings.check_timeline && (st.timeline == 0 || st.timeline < cluster_timeline) {
            notes.push(format!(
                "Timeline {} of member {} is behind the cluster timeline {cluster_timeline}",
                st.timeline, m.name
            ));
        } else {
            votes += 1;
        }
    }
    // Quorum commit: enough healthy voters must be left to elect a new
    // leader, unless the key names the one to promote.
    let check_quorum =
        quorum_active(cluster, settings) && (candidate.is_none() || exclude_failover_candidate);
    if check_quorum && votes < cluster.sync.quorum {
        notes.push(format!(
            "Quorum requirement {} can not be reached",
            cluster.sync.quorum
        ));
        return false;
    }
    votes >= 0
}

/// The failover key when it asks for something (`{}` asks nothing).
pub(super) fn requested(cluster: &Cluster) -> Option<&Failover> {
    cluster.failover.as_ref().filter(|f| !f.is_empty())
}

/// `switchover` names the leader to step down; without one it is a
/// `manual failover`. The second value is the bare verb for messages.
fn action_names(f: &Failover) -> (&'static str, &'static str) {
    if f.leader.is_some() {
        ("switchover", "switchover")
    } else {
        ("manual failover", "failover")
    }
}

/// `scheduled_at` as Patroni reads it: ISO 8601 with a time zone (`T` or
/// a space between date and time, `Z` for UTC). Without a zone Patroni
/// cannot compare it with the clock and treats it as invalid, as here.
pub(super) fn parse_scheduled_at(text: &str) -> Option<DateTime<Utc>> {
    let text = text.trim().replacen(' ', "T", 1);
    let text = match text.strip_suffix('Z').or_else(|| text.strip_suffix('z')) {
        Some(t) => format!("{t}+00:00"),
        None => text,
    };
    [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ]
    .iter()
    .find_map(|fmt| DateTime::parse_from_str(&text, fmt).ok())
    .map(|dt| dt.with_timezone(&Utc))
}

/// Where a scheduled action stands against the clock (Patroni's
/// `should_run_scheduled_action`).
enum Schedule {
    /// More than `loop_wait` away: nothing yet.
    Later,
    /// Unreadable, or more than 1.5 `loop_wait` past: drop the key.
    Discard,
    /// Within `loop_wait`: run at that instant.
    Due(DateTime<Utc>),
}

fn schedule(at: &str, now: DateTime<Utc>, loop_wait: i64) -> Schedule {
    let Some(at) = parse_scheduled_at(at) else {
        return Schedule::Discard;
    };
    let delta_ms = (at - now).num_milliseconds();
    if delta_ms > loop_wait.saturating_mul(1000) {
        Schedule::Later
    } else if delta_ms < -(loop_wait.saturating_mul(3) / 2).saturating_mul(1000) {
        Schedule::Discard
    } else {
        Schedule::Due(at)
    }
}

/// The leader's side of a failover key (Patroni's
/// `process_manual_failover_from_leader`).
pub(super) enum FromLeader {
    /// The executor must answer this first.
    Ask(Step),
    /// Step down for the requested switchover or failover.
    Demote(Step),
    /// Go on as the leader; clear the key first when `clear`. `notes`
    /// says why no member could take over, when that was checked.
    Stay { clear: bool, notes: Vec<String> },
}

impl FromLeader {
    /// Stay without having checked anyone's health.
    fn stay(clear: bool) -> FromLeader {
        FromLeader::Stay {
            clear,
            notes: Vec::new(),
        }
    }
}

pub(super) fn from_leader(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> FromLeader {
    let Some(f) = requested(cluster) else {
        return FromLeader::stay(false);
    };
    if settings.paused && !pg.is_primary {
        return FromLeader::stay(false);
    }
    let (action, _) = action_names(f);
    if let Some(at) = &f.scheduled_at {
        if settings.paused {
            // Schedules wait for the pause to end; the key stays.
            return FromLeader::stay(false);
        }
        let Some(now) = facts.now else {
            return FromLeader::Ask(Step::Query(Query::CurrentTime));
        };
        match schedule(at, now, settings.loop_wait) {
            Schedule::Later => return FromLeader::stay(false),
            Schedule::Discard => return FromLeader::stay(true),
            Schedule::Due(at) if at > now && !facts.slept => {
                return FromLeader::Ask(Step::Query(Query::SleepUntil(at)));
            }
            Schedule::Due(_) => {}
        }
    }
    let leader_matches = f.leader.as_deref().is_none_or(|l| l == me.name);
    let to_someone_else = f.candidate.as_deref() != Some(me.name.as_str());
    // Paused, only a named candidate may be promoted: nobody else would
    // race for the key.
    let allowed = !settings.paused || f.candidate.is_some();
    let mut notes = Vec::new();
    if leader_matches && to_someone_else && allowed {
        let peers = match peers_or_query(cluster, me, facts) {
            Ok(p) => p,
            Err(q) => return FromLeader::Ask(q),
        };
        if failover_possible(cluster, me, settings, peers, 0, false, &mut notes) {
            return FromLeader::Demote(with_notes(
                done(
                    vec![Action::Demote(DemoteMode::Graceful)],
                    format!("{action}: demoting myself"),
                ),
                notes,
            ));
        }
    }
    // Not for us, already done, or nobody healthy to hand over to.
    FromLeader::Stay { clear: true, notes }
}

/// Paused, with no leader key and a failover key without a schedule:
/// the part of Patroni's `manual_failover_process_no_leader` that runs
/// before the other health checks.
pub(super) enum PausedRace {
    /// Settled: race (true) or not.
    Decided(bool),
    /// The named candidate is no member any more and we run as primary:
    /// clear the key (saying so with this line), then judge as without
    /// one.
    ClearAndContinue(String),
    /// Nothing settled here.
    Continue,
}

pub(super) fn paused_without_leader(cluster: &Cluster, me: &Me, pg: &LocalPg) -> PausedRace {
    let Some(f) = requested(cluster).filter(|f| f.scheduled_at.is_none()) else {
        return PausedRace::Continue;
    };
    if Tags(&me.tags).nofailover() {
        return PausedRace::Continue;
    }
    match f.candidate.as_deref() {
        Some(c) if c == me.name => PausedRace::Decided(true),
        Some(c) if cluster.member(c).is_none() && pg.is_primary => {
            PausedRace::ClearAndContinue(format!(
                "{}: removing failover key because failover candidate is not running",
                action_names(f).0
            ))
        }
        _ => PausedRace::Decided(false),
    }
}

/// A replica's side when nobody holds the leader key and a failover key
/// exists (Patroni's `manual_failover_process_no_leader`, not paused):
/// may this node race? `Err` carries the query to answer first. The
/// checks' log lines are appended to `notes`.
pub(super) fn may_race_without_leader(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
    f: &Failover,
    notes: &mut Vec<String>,
) -> Result<bool, Step> {
    let (action, _) = action_names(f);
    if let Some(candidate) = f.candidate.as_deref() {
        if candidate == me.name {
            return Ok(true);
        }
        // Synchronous mode (not quorum commit): a standby not in `/sync`
        // takes no part, even when the named candidate is unhealthy.
        if settings.synchronous_mode
            && !settings.quorum_commit
            && !cluster.sync.matches(&me.name, true)
        {
            return Ok(false);
        }
        if let Some(member) = cluster.member(candidate) {
            let peers = peers_or_query(cluster, me, facts)?;
            let unknown = PeerStatus::unknown(member);
            let st = peers
                .iter()
                .find(|p| p.name == candidate)
                .unwrap_or(&unknown);
            match st.failover_limitation() {
                None => {
                    // The named candidate is healthy: leave the race to it.
                    notes.push(format!("{action}: to {candidate}, i am {}", me.name));
                    return Ok(false);
                }
                Some(reason) => {
                    notes.push(format!("{action}: member {candidate} is {reason}"));
                }
            }
        }
        // Candidate gone or unhealthy: any member may take over.
    }
    let peers = peers_or_query(cluster, me, facts)?;
    if let Some(former) = f.leader.as_deref() {
        if former == me.name {
            // The old leader runs again only when nobody else can.
            return Ok(!failover_possible(
                cluster,
                me,
                settings,
                peers,
                0,
                f.candidate.is_some(),
                notes,
            ));
        }
    }
    let sync_only = sync_mode_active(cluster, settings);
    let others: Vec<PeerStatus> = peers
        .iter()
        .filter(|p| Some(p.name.as_str()) != f.leader.as_deref())
        .filter(|p| !sync_only || cluster.sync.matches(&p.name, false))
        .cloned()
        .collect();
    let verdict = is_healthiest_node(&race_input(cluster, me, pg, settings, false, &others));
    notes.extend(verdict.log);
    Ok(verdict.healthiest)
}

#[cfg(test)]
#[path = "failover_tests.rs"]
mod tests;
