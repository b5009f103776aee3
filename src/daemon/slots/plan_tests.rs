//! Table tests for the slot rules. Each expectation was checked against
//! Python Patroni 4.1.5's `Cluster.get_replication_slots` on the same input
//! (the differential test `pytests/test_slots_diff.py` does the same with
//! generated inputs).

use super::*;
use crate::model::cluster::RawNode;
use serde_json::json;

fn member(name: &str, tags: Value, lsn: Option<i64>) -> (String, String) {
    let mut data = json!({
        "conn_url": format!("postgres://{name}:5432/postgres"),
        "api_url": format!("http://{name}:8008/patroni"),
        "state": "running", "role": "replica", "version": "4.1.5",
    });
    if tags.as_object().is_some_and(|t| !t.is_empty()) {
        data["tags"] = tags;
    }
    if let Some(lsn) = lsn {
        data["xlog_location"] = lsn.into();
    }
    (format!("members/{name}"), data.to_string())
}

fn cluster(nodes: &[(String, String)]) -> Cluster {
    Cluster::from_raw_nodes(nodes.iter().map(|(k, v)| RawNode {
        key: k,
        value: v,
        version: Some(1),
        session: None,
    }))
}

fn node(key: &str, value: Value) -> (String, String) {
    let text = match value {
        Value::String(s) => s,
        other => other.to_string(),
    };
    (key.to_owned(), text)
}

fn physical(lsn: Option<i64>, active: Option<bool>) -> WantedSlot {
    WantedSlot {
        kind: SlotKind::Physical,
        lsn,
        expected_active: active,
    }
}

fn plan_for(nodes: &[(String, String)], me: &str, tags: Value, role: SlotRole) -> SlotPlan {
    plan_for_version(nodes, me, tags, role, 150000)
}

fn plan_for_version(
    nodes: &[(String, String)],
    me: &str,
    tags: Value,
    role: SlotRole,
    version: i32,
) -> SlotPlan {
    let c = cluster(nodes);
    let settings = SlotSettings::from_cluster(&c, version);
    let tags = tags.as_object().cloned().unwrap_or_default();
    wanted_slots(&c, me, &tags, role, &settings)
}

fn names(plan: &SlotPlan) -> Vec<&str> {
    plan.slots.iter().map(|(n, _)| n.as_str()).collect()
}

/// The `nostream_node` acceptance feature's cluster.
fn nostream_cluster() -> Vec<(String, String)> {
    vec![
        node(
            "config",
            json!({"slots": {"test_logical": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}}),
        ),
        node("leader", json!("postgres-0")),
        member("postgres-0", json!({}), Some(100)),
        member("postgres-1", json!({"nostream": true}), Some(90)),
        member(
            "postgres-2",
            json!({"replicatefrom": "postgres-1"}),
            Some(80),
        ),
        node(
            "status",
            json!({"optime": 100, "slots": {"postgres_0": 100, "postgres_2": 70, "test_logical": 60}}),
        ),
    ]
}

#[test]
fn nostream_feature_per_node() {
    let nodes = nostream_cluster();
    // Leader: the cascading member's slot (inactive here, at the member's
    // own position) and the logical permanent slot; nothing for nostream.
    let leader = plan_for(&nodes, "postgres-0", json!({}), SlotRole::Primary);
    assert_eq!(names(&leader), ["postgres_2", "test_logical"]);
    assert_eq!(
        leader.get("postgres_2"),
        Some(&physical(Some(80), Some(false)))
    );
    assert_eq!(
        leader.get("test_logical").map(|s| (&s.kind, s.lsn)),
        Some((
            &SlotKind::Logical {
                database: "postgres".into(),
                plugin: "test_decoding".into()
            },
            Some(60)
        ))
    );
    // The nostream replica: the slot its cascade streams from (active),
    // the leader's slot for after a failover, no logical slot.
    let nostream = plan_for(
        &nodes,
        "postgres-1",
        json!({"nostream": true}),
        SlotRole::Replica,
    );
    assert_eq!(names(&nostream), ["postgres_0", "postgres_2"]);
    assert_eq!(
        nostream.get("postgres_0"),
        Some(&physical(Some(100), Some(false)))
    );
    assert_eq!(
        nostream.get("postgres_2"),
        Some(&physical(Some(80), Some(true)))
    );
    // Behind a nostream node: no logical slot either.
    let cascaded = plan_for(
        &nodes,
        "postgres-2",
        json!({"replicatefrom": "postgres-1"}),
        SlotRole::Replica,
    );
    assert_eq!(names(&cascaded), ["postgres_0"]);
    assert!(cascaded.errors.is_empty());
}

#[test]
fn streaming_replica_gets_logical_copies_and_physical_permanent_slots() {
    let nodes = vec![
        node(
            "config",
            json!({"slots": {"l": {"database": "d", "plugin": "p"}, "p": null}}),
        ),
        node("leader", json!("a")),
        member("a", json!({}), None),
        member("b", json!({}), None),
        node("status", json!({"optime": 5, "slots": {"l": 44, "p": 33}})),
    ];
    let b = plan_for(&nodes, "b", json!({}), SlotRole::Replica);
    assert_eq!(names(&b), ["a", "l", "p"]);
    assert_eq!(b.get("p"), Some(&physical(Some(33), Some(false))));
    assert_eq!(b.get("l").and_then(|s| s.lsn), Some(44));
    // A nofailover node has no permanent slots at all.
    let nf = plan_for(&nodes, "b", json!({"nofailover": true}), SlotRole::Replica);
    assert!(names(&nf).is_empty());
    // Before PostgreSQL 11 a replica keeps only logical permanent slots
    // (which it cannot have: they are reported as disabled).
    let old = plan_for_version(&nodes, "b", json!({}), SlotRole::Replica, 100000);
    assert!(!old.contains("p"));
    assert!(old
        .errors
        .iter()
        .any(|e| e.ends_with("Following slots will not be created: ['l'].")));
}

#[test]
fn ttl_zero_keeps_only_members_expected_to_stream_from_us() {
    let nodes = vec![
        node("config", json!({"member_slots_ttl": "0s"})),
        node("leader", json!("a")),
        member("a", json!({}), None),
        member("b", json!({}), None),
        member("c", json!({"replicatefrom": "b"}), Some(9)),
        member("d", json!({"replicatefrom": "gone"}), None),
    ];
    let a = plan_for(&nodes, "a", json!({}), SlotRole::Primary);
    assert_eq!(names(&a), ["b", "d"]);
    let b = plan_for(&nodes, "b", json!({}), SlotRole::Replica);
    assert_eq!(names(&b), ["c"]);
    assert_eq!(b.get("c"), Some(&physical(Some(9), Some(true))));
}

#[test]
fn retained_and_colliding_slots() {
    let nodes = vec![
        node("config", json!({})),
        node("leader", json!("a")),
        member("a", json!({}), None),
        member("node-1", json!({}), None),
        member("node_1", json!({}), None),
        node(
            "status",
            json!({"optime": 5, "retain_slots": ["a", "gone"]}),
        ),
    ];
    let a = plan_for(&nodes, "a", json!({}), SlotRole::Primary);
    assert_eq!(names(&a), ["node_1", "gone"]);
    assert_eq!(a.get("gone"), Some(&physical(None, None)));
    // Retained names fill the count, so Patroni sees no collision here.
    assert!(a.errors.is_empty());
    let without_retain = &nodes[..5];
    let a = plan_for(without_retain, "a", json!({}), SlotRole::Primary);
    assert_eq!(
        a.errors,
        ["Following cluster members share a replication slot name: node-1, node_1 map to node_1"]
    );
}

#[test]
fn permanent_slot_shapes() {
    let nodes = vec![
        node(
            "config",
            json!({"slots": {
                "bad1": {"type": "logical"}, "bad2": "text", "Bad-Name": {},
                "a": {}, "b": {"database": "d", "plugin": "p"},
                "st": {"cluster_type": "standby"}, "pr": {"cluster_type": "primary"},
                "c": {}
            }}),
        ),
        node("leader", json!("a")),
        member("a", json!({}), None),
        member("b", json!({}), None),
        member("c", json!({"replicatefrom": "b"}), Some(70)),
        node("status", json!({"optime": 5, "slots": {"c": 50}})),
    ];
    let a = plan_for(&nodes, "a", json!({}), SlotRole::Primary);
    // No permanent slot of our own name; the logical one named like a
    // member is refused. `cluster_type` only filters where only physical
    // slots are kept (standby clusters, nodes behind a nostream one).
    assert_eq!(names(&a), ["b", "c", "st", "pr"]);
    assert_eq!(a.get("c"), Some(&physical(Some(70), Some(false))));
    assert_eq!(a.get("pr"), Some(&physical(None, Some(true))));
    assert_eq!(a.errors.len(), 5, "{:?}", a.errors);
    let standby = {
        let mut n = nodes.clone();
        n[0] = node(
            "config",
            json!({"standby_cluster": {"host": "x"}, "slots": {"st": {"cluster_type": "standby"}, "pr": {"cluster_type": "primary"}}}),
        );
        plan_for(&n, "a", json!({}), SlotRole::StandbyLeader)
    };
    assert_eq!(names(&standby), ["b", "c", "st"]);
}

#[test]
fn slot_name_on_primary_follows_the_chain() {
    let nodes = vec![
        member("a", json!({}), None),
        member("b", json!({"replicatefrom": "a"}), None),
        member("c", json!({"replicatefrom": "b"}), None),
        member("n", json!({"nostream": "on"}), None),
        member("x", json!({"replicatefrom": "y"}), None),
        member("y", json!({"replicatefrom": "x"}), None),
    ];
    let c = cluster(&nodes);
    let tags = |v: Value| v.as_object().cloned().unwrap_or_default();
    assert_eq!(
        slot_name_on_primary(&c, "c", &tags(json!({"replicatefrom": "b"}))),
        Some("a".to_owned())
    );
    assert_eq!(
        slot_name_on_primary(&c, "m", &tags(json!({"replicatefrom": "n"}))),
        None
    );
    assert_eq!(
        slot_name_on_primary(&c, "x", &tags(json!({"replicatefrom": "y"}))),
        None
    );
    assert_eq!(
        slot_name_on_primary(&c, "Z-1", &tags(json!({"replicatefrom": "gone"}))),
        Some("z_1".to_owned())
    );
}

#[test]
fn publishable_keeps_all_with_retention_else_only_permanent() {
    let nodes = vec![
        node(
            "config",
            json!({"slots": {"p": {}, "b": {"database": "d", "plugin": "p"}}}),
        ),
        member("a", json!({}), None),
        member("b", json!({}), None),
    ];
    let c = cluster(&nodes);
    let found = vec![
        ("b".to_owned(), 1),
        ("p".to_owned(), 2),
        ("a".to_owned(), 3),
    ];
    let mut settings = SlotSettings::from_cluster(&c, 150000);
    assert_eq!(publishable(&c, "a", &settings, found.clone()), found);
    settings.member_slots_ttl = 0;
    assert_eq!(
        publishable(&c, "a", &settings, found),
        [("p".to_owned(), 2)]
    );
}
