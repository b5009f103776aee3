//! DCS failsafe mode (`failsafe_mode: true` in the dynamic configuration).
//!
//! Without failsafe mode a primary that cannot reach the DCS stops
//! writing at once: it cannot know whether its leader key still exists.
//! Failsafe mode relaxes that for one situation, an outage of the DCS
//! itself: while the DCS is up, the leader publishes the list of members
//! (name -> REST API address) in the `/failsafe` key; when the DCS becomes
//! unreachable it asks every member on that list, over their REST API
//! (`POST /failsafe`), to accept it as the leader. Only when every one of
//! them accepts does it keep running as primary: then no member can be
//! racing for the key on its own (a member that accepted treats us as
//! leader for `ttl` seconds), so there is no second primary to fear.
//!
//! Everything here is pure: the executor reads the DCS, does the POSTs and
//! reports their outcome in [`Facts::failsafe_accepted`].

use serde_json::{Map, Value};

use super::{done, Action, DemoteMode, Facts, HaSettings, LocalPg, Me, Query, Step};
use crate::model::Cluster;

/// The message of a primary kept running by failsafe mode (Patroni's).
pub const HOLD_MESSAGE: &str =
    "continue to run as a leader because failsafe mode is enabled and all members are accessible";

/// One member the primary must ask before it may keep running.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailsafePeer {
    pub name: String,
    /// The REST API address from `/failsafe`; `None` when the key holds
    /// something other than a string there (such a member cannot be asked,
    /// so it counts as refusing).
    pub api_url: Option<String>,
}

/// The topology the leader publishes in `/failsafe`: every member with an
/// API address, in the snapshot's order, plus this node with `my_api_url`
/// when its member key is missing or has no address (a leader always
/// lists itself, or it could not keep running in failsafe mode later).
pub fn topology(cluster: &Cluster, me: &str, my_api_url: &str) -> Map<String, Value> {
    let mut map = Map::new();
    for m in &cluster.members {
        if let Some(url) = m.api_url().filter(|u| !u.is_empty()) {
            map.insert(m.name.clone(), Value::String(url.to_owned()));
        }
    }
    if !map.contains_key(me) {
        map.insert(me.to_owned(), Value::String(my_api_url.to_owned()));
    }
    map
}

/// After the leader refreshed its key: the `/failsafe` value to write
/// (compact JSON, as Patroni stores it), or `None` when failsafe mode is
/// off or the key as last read already holds the same topology. The key
/// is never deleted: when the mode is switched off it is left as it was,
/// as Patroni leaves it.
pub fn topology_to_write(
    cluster: &Cluster,
    me: &str,
    my_api_url: &str,
    settings: &HaSettings,
) -> Option<String> {
    if !settings.failsafe_mode {
        return None;
    }
    let wanted = topology(cluster, me, my_api_url);
    // Compared as JSON objects: the order of the names does not matter.
    if cluster.failsafe.as_ref() == Some(&wanted) {
        return None;
    }
    Some(crate::model::json::compact(&Value::Object(wanted)))
}

/// The members to ask before keeping the primary role without a DCS, read
/// from the last known `/failsafe` key. `None` when the key is missing or
/// unreadable, or does not name us: then we cannot keep running. An empty
/// list is a one-member cluster, which keeps running without asking.
pub fn members_to_ask(
    failsafe: Option<&Map<String, Value>>,
    me: &str,
) -> Option<Vec<FailsafePeer>> {
    let failsafe = failsafe?;
    if !failsafe.contains_key(me) {
        return None;
    }
    Some(
        failsafe
            .iter()
            .filter(|(name, _)| name.as_str() != me)
            .map(|(name, url)| FailsafePeer {
                name: name.clone(),
                api_url: url.as_str().map(str::to_owned),
            })
            .collect(),
    )
}

/// The leader race: with failsafe mode on and a non-empty `/failsafe`
/// topology that does not name us, we may not take the key. A member
/// unknown to the last leader could have missed what it wrote (a replica
/// restored from a backup, say).
pub fn excluded_from_race(cluster: &Cluster, me: &Me, settings: &HaSettings) -> bool {
    settings.failsafe_mode
        && cluster
            .failsafe
            .as_ref()
            .is_some_and(|f| !f.is_empty() && !f.contains_key(&me.name))
}

/// A running primary that could not read the DCS, with failsafe mode on.
/// `None`: failsafe mode cannot help (off, or we are not in the topology),
/// demote as usual. Otherwise the step: ask the members, or keep running,
/// or demote because someone did not accept.
pub(super) fn primary_without_dcs(
    failsafe: Option<&Map<String, Value>>,
    me: &Me,
    pg: &LocalPg,
    settings: &HaSettings,
    facts: &Facts,
) -> Option<Step> {
    if !settings.failsafe_mode || !pg.running || !pg.is_primary || settings.paused {
        return None;
    }
    let members = members_to_ask(failsafe, &me.name)?;
    let accepted = if members.is_empty() {
        true
    } else {
        match facts.failsafe_accepted {
            None => return Some(Step::Query(Query::PostFailsafe(members))),
            Some(a) => a,
        }
    };
    if accepted {
        Some(done(vec![Action::HoldPrimaryInFailsafe], HOLD_MESSAGE))
    } else {
        None
    }
}

/// The plain outcome for a primary without a DCS: stop writing.
pub(super) fn demote_without_dcs() -> Step {
    Step::Done(super::Decision {
        actions: vec![Action::Demote(DemoteMode::Offline)],
        notes: vec!["demoting self because DCS is not accessible and I was a leader".to_owned()],
        message: "demoted self because DCS is not accessible and I was a leader".to_owned(),
    })
}

#[cfg(test)]
#[path = "failsafe_tests.rs"]
mod tests;
