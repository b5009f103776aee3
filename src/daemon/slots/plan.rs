//! Which replication slots a node should have: a pure function of the
//! cluster view, this node's name and tags, its role and the global
//! settings. The daemon compares the answer with `pg_replication_slots`
//! (see the parent module); keeping the rules here, free of IO, lets the
//! table tests and the differential test against Python Patroni
//! (`pytests/test_slots_diff.py`) check them row by row.
//!
//! The rules, as Patroni 4 applies them (PostgreSQL 11+ can advance slots):
//!
//! - **Member slots.** Every member except this node and `nostream`
//!   members gets a physical slot named after it, on the primary *and* on
//!   replicas, as long as `member_slots_ttl` > 0: a replica keeps the slots
//!   so that members can follow it at once should it be promoted, and
//!   advances the ones nobody streams from to the leader's positions in
//!   `/status`. A `nofailover` node only keeps the slots of members that
//!   `replicatefrom` it. With `member_slots_ttl` = 0 (or PostgreSQL < 11)
//!   a node keeps only the slots of the members expected to stream from it.
//! - **Expected activity.** On a primary (or standby leader) a member slot is
//!   expected to be active when the member has no `replicatefrom`, names us,
//!   or names a member that does not exist; on a replica when the member
//!   names us (and is not the leader). Inactive ones are advanced, and
//!   dropped when they hold an `xmin`.
//! - **Positions.** A slot's target position is the one the leader
//!   published in `/status`; for a cascading member (one with
//!   `replicatefrom`) the member's own `xlog_location` if that is further.
//! - **Retained slots.** Names in `/status` `retain_slots` (members that
//!   went away recently) are kept too, except by a `nofailover` node.
//! - **Permanent slots** (`/config` `permanent_replication_slots`, else
//!   `permanent_slots`, else `slots`): none on a `nofailover` node. A node
//!   that does not stream from the primary (itself or an upstream in its
//!   `replicatefrom` chain is `nostream`), and any node of a standby
//!   cluster, keeps only the physical ones; others keep physical and
//!   logical ones. Physical ones with `cluster_type` `standby` exist only
//!   in a standby cluster, `primary` only outside one. A node never gets a
//!   permanent physical slot of its own name, and a logical one whose name
//!   is a member's slot is refused.

use serde_json::{Map, Value};

use crate::api::status::GlobalView;
use crate::config::units::{parse_bool, parse_int};
use crate::config::Value as CfgValue;
use crate::model::{Cluster, Member, Tags};
use crate::postgres::slot_name_from_member_name;

/// The role the slots are computed for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SlotRole {
    Primary,
    StandbyLeader,
    Replica,
}

impl SlotRole {
    /// From the role string the daemon keeps (`primary`, `standby_leader`,
    /// `replica`, `demoted`, ...): anything else is a replica, as in
    /// Patroni, which checks for exactly `primary` and `standby_leader`.
    pub fn from_role(role: &str) -> SlotRole {
        match role {
            "primary" => SlotRole::Primary,
            "standby_leader" => SlotRole::StandbyLeader,
            _ => SlotRole::Replica,
        }
    }

    fn leads(self) -> bool {
        matches!(self, SlotRole::Primary | SlotRole::StandbyLeader)
    }
}

/// The global settings the slot rules read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotSettings {
    /// `postgresql.use_slots` of the dynamic configuration (default on).
    pub use_slots: bool,
    /// `member_slots_ttl` in seconds (default 1800).
    pub member_slots_ttl: i64,
    /// The cluster is a standby cluster.
    pub standby_cluster: bool,
    /// PostgreSQL 11+ (`pg_replication_slot_advance` exists).
    pub can_advance_slots: bool,
    /// The cluster is paused: nothing is dropped.
    pub paused: bool,
}

impl SlotSettings {
    /// The settings from the cluster's dynamic configuration for a
    /// PostgreSQL of `server_version` (e.g. 150004).
    pub fn from_cluster(cluster: &Cluster, server_version: i32) -> SlotSettings {
        let global = GlobalView::from_cluster(cluster);
        let data = config_data(cluster);
        let use_slots = data
            .and_then(|d| d.get("postgresql"))
            .and_then(Value::as_object)
            .and_then(|pg| pg.get("use_slots"))
            .is_none_or(|v| parse_bool(&CfgValue::from_json(v)).unwrap_or(false));
        let member_slots_ttl = data
            .and_then(|d| d.get("member_slots_ttl"))
            .and_then(|v| parse_int(&CfgValue::from_json(v), Some("s")))
            .unwrap_or(1800);
        SlotSettings {
            use_slots,
            member_slots_ttl,
            standby_cluster: global.is_standby_cluster(),
            can_advance_slots: server_version >= 110000,
            paused: global.is_paused(),
        }
    }
}

fn config_data(cluster: &Cluster) -> Option<&Map<String, Value>> {
    cluster.config.as_ref().map(|c| &c.data)
}

/// What kind of slot, with what a logical slot is bound to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotKind {
    Physical,
    Logical { database: String, plugin: String },
}

/// One slot the node should have.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedSlot {
    pub kind: SlotKind,
    /// Where the slot should be advanced to, when known.
    pub lsn: Option<i64>,
    /// Whether a walsender should be using it; `None` for retained member
    /// slots and logical slots (Patroni gives them no such flag).
    pub expected_active: Option<bool>,
}

/// The answer: slots by name in Patroni's order, plus the configuration
/// problems to log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SlotPlan {
    pub slots: Vec<(String, WantedSlot)>,
    pub errors: Vec<String>,
}

impl SlotPlan {
    pub fn get(&self, name: &str) -> Option<&WantedSlot> {
        self.slots.iter().find(|(n, _)| n == name).map(|(_, s)| s)
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Insert or replace in place (a dict assignment).
    fn put(&mut self, name: String, slot: WantedSlot) {
        match self.slots.iter_mut().find(|(n, _)| *n == name) {
            Some((_, s)) => *s = slot,
            None => self.slots.push((name, slot)),
        }
    }
}

/// A member's `replicatefrom` tag (a string; anything else is ignored).
pub(super) fn replicatefrom(m: &Member) -> Option<String> {
    let tags = m.tags();
    Tags(&tags).replicatefrom().map(str::to_owned)
}

fn nostream(m: &Member) -> bool {
    let tags = m.tags();
    Tags(&tags).nostream()
}

/// Python's `parse_int(v) or 0` on a JSON value.
fn lsn_of(v: Option<&Value>) -> i64 {
    v.and_then(|v| parse_int(&CfgValue::from_json(v), None))
        .unwrap_or(0)
}

fn member_lsn(m: &Member) -> i64 {
    lsn_of(m.data.get("xlog_location"))
}

/// The slot positions the leader published (`/status` `slots`).
fn status_lsn(cluster: &Cluster, name: &str) -> i64 {
    lsn_of(cluster.status.slots.as_ref().and_then(|s| s.get(name)))
}

/// The name of the slot this node's WAL comes through on the primary:
/// following the `replicatefrom` chain up to a member that streams from the
/// primary. `None` when a node on the way is `nostream` or the chain loops.
pub fn slot_name_on_primary(
    cluster: &Cluster,
    name: &str,
    tags: &Map<String, Value>,
) -> Option<String> {
    let mut seen: Vec<String> = Vec::new();
    let mut name = name.to_owned();
    let mut tags = tags.clone();
    loop {
        seen.push(name.clone());
        let view = Tags(&tags);
        if view.nostream() {
            return None;
        }
        let upstream = view
            .replicatefrom()
            .filter(|r| !r.is_empty() && *r != name)
            .and_then(|r| cluster.member(r));
        let Some(upstream) = upstream else {
            return Some(slot_name_from_member_name(&name));
        };
        if seen.contains(&upstream.name) {
            return None;
        }
        name = upstream.name.clone();
        tags = upstream.tags();
    }
}

/// The physical slots for members (Patroni's `_get_members_slots`).
fn member_slots(
    cluster: &Cluster,
    me: &str,
    role: SlotRole,
    nofailover: bool,
    settings: &SlotSettings,
    plan: &mut SlotPlan,
) {
    if !settings.use_slots {
        return;
    }
    let leader_name = cluster.leader.as_ref().map(|l| l.name.as_str());
    let expected_active = |m: &Member| -> bool {
        let from = replicatefrom(m);
        if role.leads() {
            match from.as_deref() {
                None => true,
                Some(r) => r == me || cluster.member(r).is_none(),
            }
        } else {
            from.as_deref() == Some(me) && Some(m.name.as_str()) != leader_name
        }
    };
    let retention = settings.can_advance_slots && settings.member_slots_ttl > 0;
    let members: Vec<&Member> = cluster
        .members
        .iter()
        .filter(|m| m.name != me && !nostream(m))
        .filter(|m| {
            if retention {
                !nofailover || replicatefrom(m).as_deref() == Some(me)
            } else {
                expected_active(m)
            }
        })
        .collect();
    let old_leader = cluster
        .leader_member()
        .and_then(Member::patroni_version)
        .is_some_and(|v| v < vec![4, 0, 0]);
    for m in &members {
        let name = slot_name_from_member_name(&m.name);
        let mut lsn = status_lsn(cluster, &name);
        if replicatefrom(m).is_some_and(|r| !r.is_empty()) || old_leader {
            // The leader only sees its own copy of a cascading member's
            // slot, which nobody uses; the member's own position is newer.
            lsn = lsn.max(member_lsn(m));
        }
        plan.put(
            name,
            WantedSlot {
                kind: SlotKind::Physical,
                lsn: Some(lsn),
                expected_active: Some(expected_active(m)),
            },
        );
    }
    if !nofailover {
        let own = slot_name_from_member_name(me);
        for name in &cluster.status.retain_slots {
            if *name != own && !plan.contains(name) {
                plan.put(
                    name.clone(),
                    WantedSlot {
                        kind: SlotKind::Physical,
                        lsn: None,
                        expected_active: None,
                    },
                );
            }
        }
    }
    if plan.slots.len() < members.len() {
        let mut shared: Vec<(String, Vec<&str>)> = Vec::new();
        for m in &members {
            let slot = slot_name_from_member_name(&m.name);
            match shared.iter_mut().find(|(s, _)| *s == slot) {
                Some((_, names)) => names.push(&m.name),
                None => shared.push((slot, vec![&m.name])),
            }
        }
        let text: Vec<String> = shared
            .iter()
            .filter(|(_, names)| names.len() > 1)
            .map(|(slot, names)| format!("{} map to {slot}", names.join(", ")))
            .collect();
        plan.errors.push(format!(
            "Following cluster members share a replication slot name: {}",
            text.join("; ")
        ));
    }
}

/// Python truthiness of a JSON value.
fn truthy(v: &Value) -> bool {
    crate::api::status::json_truthy(v)
}

fn is_logical(v: &Value) -> bool {
    match v.as_object() {
        Some(o) => {
            o.get("type").is_none_or(|t| t == "logical")
                && o.get("database").is_some_and(truthy)
                && o.get("plugin").is_some_and(truthy)
        }
        None => false,
    }
}

fn is_physical(v: &Value) -> bool {
    !truthy(v)
        || v.as_object()
            .is_some_and(|o| !is_logical(v) && o.get("type").is_none_or(|t| t == "physical"))
}

/// The configured permanent slots with the positions known for them
/// (Patroni's `Cluster.__permanent_slots`): falsy values become `{}`; a
/// dict gets `lsn` from `/status`, or for a physical slot named after a
/// cascading member from that member, when either is known.
fn permanent_with_lsn(cluster: &Cluster) -> Vec<(String, Value)> {
    let Some(data) = config_data(cluster) else {
        return Vec::new();
    };
    let configured = ["permanent_replication_slots", "permanent_slots", "slots"]
        .iter()
        .find_map(|k| data.get(*k).filter(|v| truthy(v)));
    let Some(Value::Object(configured)) = configured else {
        return Vec::new();
    };
    let cascading: Vec<(String, i64)> = cluster
        .members
        .iter()
        .filter(|m| replicatefrom(m).is_some_and(|r| !r.is_empty()))
        .map(|m| (slot_name_from_member_name(&m.name), member_lsn(m)))
        .collect();
    configured
        .iter()
        .map(|(name, value)| {
            let mut value = if truthy(value) {
                value.clone()
            } else {
                Value::Object(Map::new())
            };
            let physical = is_physical(&value);
            if let Value::Object(o) = &mut value {
                let from_member = if physical {
                    // The last member of that slot name wins, as in a dict.
                    cascading
                        .iter()
                        .rev()
                        .find(|(s, _)| s == name)
                        .map_or(0, |(_, l)| *l)
                } else {
                    0
                };
                let lsn = from_member.max(status_lsn(cluster, name));
                if lsn != 0 {
                    o.insert("lsn".into(), lsn.into());
                } else {
                    o.remove("lsn");
                }
            }
            (name.clone(), value)
        })
        .collect()
}

/// The permanent slots this node should have (Patroni's
/// `_get_permanent_slots`).
fn permanent_slots_for(
    cluster: &Cluster,
    me: &str,
    my_tags: &Map<String, Value>,
    role: SlotRole,
    settings: &SlotSettings,
) -> Vec<(String, Value)> {
    if !settings.use_slots || Tags(my_tags).nofailover() {
        return Vec::new();
    }
    let all = permanent_with_lsn(cluster);
    if settings.standby_cluster || slot_name_on_primary(cluster, me, my_tags).is_none() {
        if !(settings.can_advance_slots || role == SlotRole::StandbyLeader) {
            return Vec::new();
        }
        return all
            .into_iter()
            .filter(|(_, v)| physical_for_this_cluster(v, settings))
            .collect();
    }
    if settings.can_advance_slots || role == SlotRole::Primary {
        all
    } else {
        all.into_iter().filter(|(_, v)| is_logical(v)).collect()
    }
}

/// A permanent physical slot that belongs in this kind of cluster:
/// `cluster_type: standby` ones only in a standby cluster, `primary` ones
/// only outside one.
fn physical_for_this_cluster(v: &Value, settings: &SlotSettings) -> bool {
    let cluster_type = v.get("cluster_type").and_then(Value::as_str);
    is_physical(v)
        && if settings.standby_cluster {
            cluster_type != Some("primary")
        } else {
            cluster_type != Some("standby")
        }
}

/// The names of the permanent physical slots of this cluster (Patroni's
/// `Cluster.permanent_physical_slots`).
pub fn permanent_physical_names(cluster: &Cluster, settings: &SlotSettings) -> Vec<String> {
    permanent_with_lsn(cluster)
        .into_iter()
        .filter(|(_, v)| physical_for_this_cluster(v, settings))
        .map(|(n, _)| n)
        .collect()
}

fn valid_slot_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A JSON value as Python's `str()` would show a string (other types in
/// their JSON form; they only matter in error messages and comparisons).
fn text(v: Option<&Value>) -> String {
    match v {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

/// Add the permanent slots to the member slots (Patroni's
/// `_merge_permanent_slots`).
fn merge_permanent(
    cluster: &Cluster,
    me: &str,
    role: SlotRole,
    settings: &SlotSettings,
    permanent: Vec<(String, Value)>,
    plan: &mut SlotPlan,
) {
    let own = slot_name_from_member_name(me);
    // slot name -> whether that member cascades (has `replicatefrom`).
    let cascades = |slot: &str| {
        cluster
            .members
            .iter()
            .rev()
            .find(|m| slot_name_from_member_name(&m.name) == slot)
            .and_then(replicatefrom)
            .is_some_and(|r| !slot_name_from_member_name(&r).is_empty())
    };
    let mut disabled = Vec::new();
    for (name, original) in permanent {
        if !valid_slot_name(&name) {
            plan.errors
                .push(format!("Invalid permanent replication slot name '{name}'"));
            plan.errors.push(
                "Slot name may only contain lower case letters, numbers, and the underscore chars"
                    .to_owned(),
            );
            continue;
        }
        let value = if truthy(&original) {
            original.clone()
        } else {
            serde_json::json!({"type": "physical"})
        };
        if let Value::Object(mut o) = value {
            if !o.contains_key("type") {
                let logical =
                    o.get("database").is_some_and(truthy) && o.get("plugin").is_some_and(truthy);
                o.insert(
                    "type".into(),
                    if logical { "logical" } else { "physical" }.into(),
                );
            }
            let lsn = o.get("lsn").map(|v| lsn_of(Some(v)));
            if o.get("type").is_some_and(|t| t == "physical") {
                if !plan.contains(&name) && name != own {
                    // A permanent slot named after a cascading member is
                    // used on that member's upstream, not here.
                    let expected_active = !cascades(&name) && role.leads();
                    plan.put(
                        name,
                        WantedSlot {
                            kind: SlotKind::Physical,
                            lsn,
                            expected_active: Some(expected_active),
                        },
                    );
                }
                continue;
            }
            let value = Value::Object(o);
            if is_logical(&value) {
                if !settings.can_advance_slots {
                    disabled.push(name);
                } else if plan.contains(&name) {
                    plan.errors.push(format!(
                        "Permanent logical replication slot {{'{name}': {value}}} is conflicting with \
                         physical replication slot for cluster member"
                    ));
                } else {
                    plan.put(
                        name,
                        WantedSlot {
                            kind: SlotKind::Logical {
                                database: text(value.get("database")),
                                plugin: text(value.get("plugin")),
                            },
                            lsn,
                            expected_active: None,
                        },
                    );
                }
                continue;
            }
        }
        plan.errors.push(format!(
            "Bad value for slot '{name}' in permanent_slots: {original}"
        ));
    }
    if !disabled.is_empty() {
        let disabled: Vec<String> = disabled.iter().map(|n| format!("'{n}'")).collect();
        let disabled = format!("[{}]", disabled.join(", "));
        plan.errors.push(format!(
            "Permanent logical replication slots supported by Patroni only starting from \
             PostgreSQL 11. Following slots will not be created: {disabled}."
        ));
    }
}

/// The slots node `me` (with `my_tags`) should have in `role`: Patroni's
/// `Cluster.get_replication_slots`.
pub fn wanted_slots(
    cluster: &Cluster,
    me: &str,
    my_tags: &Map<String, Value>,
    role: SlotRole,
    settings: &SlotSettings,
) -> SlotPlan {
    let mut plan = SlotPlan::default();
    let nofailover = Tags(my_tags).nofailover();
    member_slots(cluster, me, role, nofailover, settings, &mut plan);
    let permanent = permanent_slots_for(cluster, me, my_tags, role, settings);
    merge_permanent(cluster, me, role, settings, permanent, &mut plan);
    plan
}

/// The slots the leader publishes in `/status` (Patroni's
/// `maybe_filter_permanent_slots`): all of them while member slots are
/// retained (`member_slots_ttl` > 0, so that replicas can advance their
/// copies), else only permanent ones.
pub fn publishable(
    cluster: &Cluster,
    me: &str,
    settings: &SlotSettings,
    slots: Vec<(String, i64)>,
) -> Vec<(String, i64)> {
    if settings.member_slots_ttl > 0 {
        return slots;
    }
    // Patroni asks for this node's name with no tags, as a replica.
    let permanent = permanent_slots_for(cluster, me, &Map::new(), SlotRole::Replica, settings);
    let members: Vec<String> = cluster
        .members
        .iter()
        .map(|m| slot_name_from_member_name(&m.name))
        .collect();
    slots
        .into_iter()
        .filter(|(name, _)| {
            permanent.iter().any(|(p, v)| {
                p == name && (is_physical(v) || (is_logical(v) && !members.contains(name)))
            })
        })
        .collect()
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
