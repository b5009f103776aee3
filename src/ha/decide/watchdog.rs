//! The watchdog's part of acting as primary (the first step of Patroni's
//! `enforce_primary_role`): a node about to run, or keep running, the
//! primary must have its watchdog armed first. The daemon answers
//! [`Query::ActivateWatchdog`] (and fills [`Facts::watchdog_armed`] in
//! advance when the device already runs); with `watchdog.mode: off` or no
//! device in `automatic` mode the answer is always yes, so only a
//! `required` watchdog that cannot be armed says no.

use super::{done, Action, DemoteMode, Facts, HaSettings, LocalPg, Query, Step};

/// `None` when the watchdog allows acting as primary; otherwise the step
/// to take instead (`actions` are the ones decided before, kept).
pub(super) fn refuses(
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
    actions: &[Action],
) -> Option<Step> {
    if settings.paused {
        // In maintenance mode the watchdog is off altogether.
        return None;
    }
    let (action, message) = match facts.watchdog_armed {
        Some(true) => return None,
        None => return Some(Step::Query(Query::ActivateWatchdog)),
        Some(false) if pg.is_primary => (
            Action::Demote(DemoteMode::Immediate),
            "Demoting self because watchdog could not be activated",
        ),
        Some(false) => (
            Action::ReleaseLeaderKey,
            "Not promoting self because watchdog could not be activated",
        ),
    };
    let mut actions = actions.to_vec();
    actions.push(action);
    Some(done(actions, message))
}
