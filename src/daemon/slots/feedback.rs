//! When a node must run with `hot_standby_feedback = on` (Patroni's
//! `should_enforce_hot_standby_feedback`): a replica holding copies of
//! permanent logical slots needs it, or the primary may remove catalog rows
//! those slots still need; so does every node on the way to such a replica
//! in a cascade, since feedback travels upstream only through it. The
//! setting is written into `postgresql.conf` on top of the configured
//! parameters (on a primary it has no effect).

use serde_json::{Map, Value};

use super::plan::{
    replicatefrom, slot_name_on_primary, wanted_slots, SlotKind, SlotRole, SlotSettings,
};
use crate::model::Cluster;

/// Whether node `me` (with `my_tags`) must have `hot_standby_feedback`
/// forced on. Only with a `/config` in the DCS, outside standby clusters
/// and from PostgreSQL 11 (where replicas can hold logical slots).
pub fn enforce_hot_standby_feedback(
    cluster: &Cluster,
    me: &str,
    my_tags: &Map<String, Value>,
    settings: &SlotSettings,
) -> bool {
    if cluster.config.is_none() || settings.standby_cluster || !settings.can_advance_slots {
        return false;
    }
    let mut seen = Vec::new();
    needs_feedback(cluster, me, my_tags, settings, &mut seen)
}

fn needs_feedback(
    cluster: &Cluster,
    name: &str,
    tags: &Map<String, Value>,
    settings: &SlotSettings,
    seen: &mut Vec<String>,
) -> bool {
    let plan = wanted_slots(cluster, name, tags, SlotRole::Replica, settings);
    if plan
        .slots
        .iter()
        .any(|(_, s)| matches!(s.kind, SlotKind::Logical { .. }))
    {
        return true;
    }
    // A `replicatefrom` loop is not followed twice.
    if !settings.use_slots || seen.iter().any(|s| s == name) {
        return false;
    }
    seen.push(name.to_owned());
    if slot_name_on_primary(cluster, name, tags).is_none() {
        return false;
    }
    let leader = cluster.leader.as_ref().map(|l| l.name.as_str());
    let downstream: Vec<_> = cluster
        .members
        .iter()
        .filter(|m| replicatefrom(m).as_deref() == Some(name) && Some(m.name.as_str()) != leader)
        .collect();
    downstream
        .into_iter()
        .any(|m| needs_feedback(cluster, &m.name, &m.tags(), settings, seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cluster::RawNode;
    use serde_json::json;

    fn cluster(config: Value, members: &[(&str, Value)]) -> Cluster {
        let mut nodes = vec![
            ("config".to_owned(), config.to_string()),
            ("leader".to_owned(), "a".to_owned()),
        ];
        for (name, tags) in members {
            let mut data = json!({"conn_url": format!("postgres://{name}:5432/postgres"),
                "api_url": format!("http://{name}:8008/patroni"), "state": "running", "role": "replica"});
            if tags.as_object().is_some_and(|t| !t.is_empty()) {
                data["tags"] = tags.clone();
            }
            nodes.push((format!("members/{name}"), data.to_string()));
        }
        Cluster::from_raw_nodes(nodes.iter().map(|(k, v)| RawNode {
            key: k,
            value: v,
            version: Some(1),
            session: None,
        }))
    }

    fn enforce(c: &Cluster, me: &str, tags: Value, version: i32) -> bool {
        let settings = SlotSettings::from_cluster(c, version);
        let tags = tags.as_object().cloned().unwrap_or_default();
        enforce_hot_standby_feedback(c, me, &tags, &settings)
    }

    #[test]
    fn logical_slot_copies_need_feedback() {
        let logical = json!({"slots": {"l": {"database": "d", "plugin": "p"}}});
        let c = cluster(logical.clone(), &[("a", json!({})), ("b", json!({}))]);
        assert!(enforce(&c, "b", json!({}), 150000));
        // Before PostgreSQL 11 replicas cannot have them.
        assert!(!enforce(&c, "b", json!({}), 100000));
        // A nofailover replica gets no permanent slots.
        assert!(!enforce(&c, "b", json!({"nofailover": true}), 150000));
        // Only physical slots: nothing to protect.
        let physical = cluster(
            json!({"slots": {"p": null}}),
            &[("a", json!({})), ("b", json!({}))],
        );
        assert!(!enforce(&physical, "b", json!({}), 150000));
        // A standby cluster never forces it.
        let mut standby = logical.clone();
        standby["standby_cluster"] = json!({"host": "remote", "port": 5432});
        let c = cluster(standby, &[("a", json!({})), ("b", json!({}))]);
        assert!(!enforce(&c, "b", json!({}), 150000));
    }

    #[test]
    fn a_cascade_towards_a_logical_copy_needs_it_too() {
        // c (nofailover: no copies of its own) streams from b.
        let config = json!({"slots": {"l": {"database": "d", "plugin": "p"}}});
        let c = cluster(
            config,
            &[
                ("a", json!({})),
                ("b", json!({"nofailover": true})),
                ("c", json!({"replicatefrom": "b"})),
            ],
        );
        assert!(enforce(&c, "b", json!({"nofailover": true}), 150000));
        // Without use_slots the cascade does not count.
        let off = json!({"postgresql": {"use_slots": false}, "slots": {"l": {"database": "d", "plugin": "p"}}});
        let c2 = cluster(
            off,
            &[
                ("a", json!({})),
                ("b", json!({"nofailover": true})),
                ("c", json!({"replicatefrom": "b"})),
            ],
        );
        assert!(!enforce(&c2, "b", json!({"nofailover": true}), 150000));
    }

    #[test]
    fn a_replicatefrom_loop_ends() {
        let c = cluster(
            json!({"slots": {}}),
            &[
                ("a", json!({})),
                ("b", json!({"replicatefrom": "c"})),
                ("c", json!({"replicatefrom": "b"})),
            ],
        );
        assert!(!enforce(&c, "b", json!({"replicatefrom": "c"}), 150000));
    }
}
