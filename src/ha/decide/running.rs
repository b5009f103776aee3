//! The cycle for a running PostgreSQL: keep or take the leader key, or
//! follow whoever holds it (Patroni's `process_healthy_cluster` and
//! `process_unhealthy_cluster`), with the failover key's part from
//! [`super::failover`].

use super::failover::{self, FromLeader, PausedRace};
use super::standby;
use super::watchdog;
use super::{
    before_promote, done, follow_fresh, peers_or_query, sync_duty, sync_mode_active, with_notes,
    Action, DemoteMode, Facts, HaSettings, LocalPg, Me, Query, Step,
};
use crate::ha::race::is_healthiest_node;
use crate::model::{Cluster, Tags};

/// `process_healthy_cluster` when the key is ours.
pub(super) fn with_lock(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    if settings.paused && !pg.is_primary && !settings.standby_cluster {
        // Paused, the key follows PostgreSQL's role, except while the
        // candidate of a manual failover waits for its promotion (or in a
        // standby cluster, whose leader is never a primary).
        let candidate = failover::requested(cluster).and_then(|f| f.candidate.as_deref());
        return if candidate == Some(me.name.as_str()) {
            done(vec![], "waiting to become primary after promote...")
        } else {
            done(
                vec![Action::ReleaseLeaderKey],
                "removed leader lock because postgres is not running as primary",
            )
        };
    }
    match facts.lock_refreshed {
        None => Step::Query(Query::RefreshLock),
        Some(true) => {
            let (mut actions, notes) = match failover::from_leader(cluster, me, pg, settings, facts)
            {
                FromLeader::Ask(step) | FromLeader::Demote(step) => return step,
                FromLeader::Stay { clear: true, notes } => (vec![Action::ClearFailoverKey], notes),
                FromLeader::Stay {
                    clear: false,
                    notes,
                } => (vec![], notes),
            };
            if settings.standby_cluster {
                let message = standby::holder_message(me, pg);
                return with_notes(
                    standby::as_standby_leader(pg, settings, actions, &message),
                    notes,
                );
            }
            if let Some(step) = watchdog::refuses(pg, settings, facts, &actions) {
                return with_notes(step, notes);
            }
            let step = if pg.is_primary || matches!(pg.role.as_str(), "primary" | "promoted") {
                actions.extend(sync_duty(cluster, settings));
                done(
                    actions,
                    format!("no action. I am ({}), the leader with the lock", me.name),
                )
            } else {
                match before_promote(cluster, settings, facts) {
                    Ok(sync) => actions.extend(sync),
                    Err(step) => return with_notes(step, notes),
                }
                actions.push(Action::Promote);
                done(
                    actions,
                    "promoted self to leader because I had the session lock",
                )
            };
            with_notes(step, notes)
        }
        Some(false) if pg.is_primary && settings.paused => done(
            vec![],
            "continue to run as primary after failing to update leader lock in DCS",
        ),
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

/// `process_unhealthy_cluster`: no leader key.
pub(super) fn leader_race(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    let nofailover = Tags(&me.tags).nofailover();
    let mut actions = Vec::new();
    // The checks' log lines, handed to whatever this race ends with.
    let mut notes = Vec::new();
    let paused_verdict = if settings.paused {
        match failover::paused_without_leader(cluster, me, pg) {
            PausedRace::Decided(v) => Some(v),
            PausedRace::ClearAndContinue(note) => {
                notes.push(note);
                actions.push(Action::ClearFailoverKey);
                None
            }
            PausedRace::Continue => None,
        }
    } else {
        None
    };
    let healthiest = if let Some(v) = paused_verdict {
        v
    } else if pg.starting {
        false
    } else if pg.is_primary && settings.paused {
        // Paused, a primary takes the key back only for its own cluster.
        let init = cluster.initialize.as_deref().unwrap_or_default();
        init.is_empty() || pg.sysid.as_deref() == Some(init)
    } else if pg.is_primary {
        // A primary racing for a lost key must not undo a newer promotion.
        let mine = pg.timeline.unwrap_or(0);
        if mine < cluster.timeline() {
            notes.push(format!(
                "My timeline {mine} is behind last known cluster timeline {}",
                cluster.timeline()
            ));
        }
        mine >= cluster.timeline()
    } else if settings.paused || nofailover {
        false
    } else if failover::requested(cluster).is_some_and(|f| f.leader.is_some())
        && sync_mode_active(cluster, settings)
        && !cluster.sync.matches(&me.name, true)
    {
        // A switchover in synchronous mode: only the listed standbys (and
        // the former leader) may race.
        false
    } else if let Some(f) = failover::requested(cluster) {
        match failover::may_race_without_leader(cluster, me, pg, settings, facts, f, &mut notes) {
            Ok(verdict) => verdict,
            Err(query) => return query,
        }
    } else if sync_mode_active(cluster, settings)
        && !settings.quorum_commit
        && !cluster.sync.matches(&me.name, true)
    {
        // Synchronous mode: a standby not listed in `/sync` may miss
        // acknowledged commits, so it never races. With quorum commit it
        // may: it needs `quorum` votes from the voters instead.
        false
    } else if super::failsafe::excluded_from_race(cluster, me, settings) {
        // Failsafe mode: a member the last leader did not know may not lead.
        false
    } else {
        let peers = match peers_or_query(cluster, me, facts) {
            Ok(p) => p,
            Err(q) => return q,
        };
        let active = sync_mode_active(cluster, settings);
        // Synchronous mode: race among the listed standbys only.
        let racing: Vec<_> = peers
            .iter()
            .filter(|p| !active || cluster.sync.matches(&p.name, true))
            .cloned()
            .collect();
        let verdict = is_healthiest_node(&failover::race_input(
            cluster, me, pg, settings, true, &racing,
        ));
        notes.extend(verdict.log);
        verdict.healthiest
    };
    if !healthiest {
        return if nofailover {
            follow_fresh(
                "demoting self because I am not allowed to become primary",
                "following a different leader because I am not allowed to promote",
                notes,
            )
        } else {
            follow_fresh(
                "demoting self because i am not the healthiest node",
                "following a different leader because i am not the healthiest node",
                notes,
            )
        };
    }
    // The new leader clears a failover key: whatever it asked is done.
    // Paused, a switchover's candidate keeps the key (without the old
    // leader) until its promotion shows.
    match failover::requested(cluster) {
        Some(f) if settings.paused && f.leader.is_some() && f.candidate.is_some() => {
            actions.push(Action::DropFailoverLeader);
        }
        Some(_) if !actions.contains(&Action::ClearFailoverKey) => {
            actions.push(Action::ClearFailoverKey);
        }
        _ => {}
    }
    let step = match facts.lock_acquired {
        None => return Step::Query(Query::AcquireLock),
        Some(true) if settings.standby_cluster => standby::as_standby_leader(
            pg,
            settings,
            actions,
            "promoted self to a standby leader by acquiring session lock",
        ),
        Some(true) => match watchdog::refuses(pg, settings, facts, &actions) {
            Some(step) => step,
            None if pg.is_primary => {
                actions.extend(sync_duty(cluster, settings));
                done(actions, "acquired session lock as a leader")
            }
            None => acquired_and_promote(cluster, settings, facts, actions),
        },
        Some(false) => follow_fresh(
            "demoted self after trying and failing to obtain lock",
            "following new leader after trying and failing to obtain lock",
            Vec::new(),
        ),
    };
    with_notes(step, notes)
}

/// The lock was just taken by a replica: promote, after the synchronous
/// mode's claim on `/sync`.
fn acquired_and_promote(
    cluster: &Cluster,
    settings: &HaSettings,
    facts: &Facts,
    mut actions: Vec<Action>,
) -> Step {
    match before_promote(cluster, settings, facts) {
        Ok(sync) => actions.extend(sync),
        Err(step) => return step,
    }
    actions.push(Action::Promote);
    done(actions, "promoted self to leader by acquiring session lock")
}

#[cfg(test)]
#[path = "paused_tests.rs"]
mod paused_tests;
