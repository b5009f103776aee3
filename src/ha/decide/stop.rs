//! Two decisions outside the regular cycle: the daemon stopping (Patroni's
//! `shutdown`) and a cycle whose cluster read failed (Patroni's
//! `_handle_dcs_error`). Both use the last snapshot the daemon had.

use serde_json::{Map, Value};

use super::{
    done, failsafe, has_lock, Action, Decision, DemoteMode, Facts, HaSettings, LocalPg, Me, Step,
};
use crate::model::Cluster;

/// What to do when the daemon is asked to stop.
///
/// Paused, PostgreSQL keeps running and the leader key stays (the
/// operator paused to manage PostgreSQL by hand). Otherwise PostgreSQL
/// stops: the leader with [`DemoteMode::Offline`] (fast stop, not started
/// again) followed by [`Action::ReleaseLeaderKey`], so a replica takes
/// over at once instead of after the key's TTL; any other node with
/// [`Action::StopFast`]. A leader whose PostgreSQL already stopped just
/// releases the key. (Patroni may release the key a little earlier,
/// while the postmaster still archives, once a replica has the shutdown
/// checkpoint; the outcome is the same.)
///
/// The message is what Patroni logs at INFO, empty when it logs nothing.
/// After an [`Action::Exit`] for a replica started without an
/// `initialize` key, Patroni leaves PostgreSQL alone: the executor must
/// not call this then.
pub fn decide_shutdown(
    cluster: &Cluster,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
) -> Decision {
    let decision = |actions: Vec<Action>, message: &str| Decision {
        actions,
        notes: Vec::new(),
        message: message.to_owned(),
    };
    if settings.paused {
        return decision(
            vec![],
            "Leader key is not deleted and Postgresql is not stopped due paused state",
        );
    }
    let leader = has_lock(cluster, me);
    match (pg.running, leader) {
        (true, true) => decision(
            vec![
                Action::Demote(DemoteMode::Offline),
                Action::ReleaseLeaderKey,
            ],
            "",
        ),
        (true, false) => decision(vec![Action::StopFast], ""),
        (false, true) => decision(vec![Action::ReleaseLeaderKey], ""),
        (false, false) => decision(vec![], ""),
    }
}

/// The cycle could not read the cluster from the DCS.
///
/// A running primary cannot know whether it still holds the key, so it
/// stops writing: [`DemoteMode::Offline`], Patroni's mode for this (fast
/// stop, nothing released). Replicas and paused nodes carry on.
///
/// With failsafe mode on, the primary first asks the members listed in
/// the last known `/failsafe` topology (`failsafe`, from the last cluster
/// read) to accept it ([`Query::PostFailsafe`](super::Query::PostFailsafe),
/// answered in [`Facts::failsafe_accepted`]); if all of them do, it keeps
/// running ([`Action::HoldPrimaryInFailsafe`]). See [`super::failsafe`].
pub fn decide_dcs_error(
    failsafe: Option<&Map<String, Value>>,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Step {
    let step = if settings.paused || !pg.running || !pg.is_primary {
        done(vec![], "DCS is not accessible")
    } else if let Some(step) = failsafe::primary_without_dcs(failsafe, me, pg, settings, facts) {
        step
    } else {
        failsafe::demote_without_dcs()
    };
    match step {
        Step::Done(mut d) if settings.paused => {
            d.message.insert_str(0, "PAUSE: ");
            Step::Done(d)
        }
        other => other,
    }
}

#[cfg(test)]
#[path = "stop_tests.rs"]
mod tests;
