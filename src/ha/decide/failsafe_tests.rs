use serde_json::{json, Map, Value};

use super::*;
use crate::ha::decide::tests::{cluster, me, primary_pg, replica_pg};
use crate::ha::decide::{decide, decide_dcs_error, Decision};

fn on() -> HaSettings {
    HaSettings {
        failsafe_mode: true,
        ..HaSettings::default()
    }
}

fn map(v: Value) -> Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

const N1: &str = "http://h1:8008/patroni";
const N2: &str = "http://h2:8008/patroni";
const N3: &str = "http://h3:8008/patroni";

#[test]
fn topology_lists_members_with_an_api_url_and_us() {
    let c = cluster(Some("n1"));
    let t = topology(&c, "n1", "http://ignored/patroni");
    assert_eq!(t, map(json!({"n1": N1, "n2": N2, "n3": N3})));
    // Not (yet) a member: our own address is added.
    let t = topology(&c, "n9", "http://h9:8008/patroni");
    assert_eq!(t.get("n9"), Some(&json!("http://h9:8008/patroni")));
    assert_eq!(t.len(), 4);
}

#[test]
fn topology_is_written_only_when_on_and_changed() {
    let mut c = cluster(Some("n1"));
    assert_eq!(
        topology_to_write(&c, "n1", N1, &HaSettings::default()),
        None,
        "off: nothing written (and nothing deleted)"
    );
    assert_eq!(
        topology_to_write(&c, "n1", N1, &on()).as_deref(),
        Some(
            r#"{"n1":"http://h1:8008/patroni","n2":"http://h2:8008/patroni","n3":"http://h3:8008/patroni"}"#
        )
    );
    // The same names in another order are the same topology.
    c.failsafe = Some(map(json!({"n3": N3, "n1": N1, "n2": N2})));
    assert_eq!(topology_to_write(&c, "n1", N1, &on()), None);
    // A member left: rewritten.
    c.members.retain(|m| m.name != "n3");
    assert_eq!(
        topology_to_write(&c, "n1", N1, &on()).as_deref(),
        Some(r#"{"n1":"http://h1:8008/patroni","n2":"http://h2:8008/patroni"}"#)
    );
}

#[test]
fn members_to_ask_needs_us_in_the_topology() {
    assert_eq!(members_to_ask(None, "n1"), None);
    let t = map(json!({"n1": N1, "n2": N2, "n3": 5}));
    assert_eq!(members_to_ask(Some(&t), "n9"), None);
    assert_eq!(
        members_to_ask(Some(&t), "n1"),
        Some(vec![
            FailsafePeer {
                name: "n2".into(),
                api_url: Some(N2.into())
            },
            FailsafePeer {
                name: "n3".into(),
                api_url: None
            },
        ])
    );
    let alone = map(json!({"n1": N1}));
    assert_eq!(members_to_ask(Some(&alone), "n1"), Some(vec![]));
}

fn hold() -> Step {
    Step::Done(Decision {
        actions: vec![Action::HoldPrimaryInFailsafe],
        notes: vec![],
        message: HOLD_MESSAGE.into(),
    })
}

fn demoted() -> Step {
    demote_without_dcs()
}

#[test]
fn primary_without_dcs_asks_then_holds_or_demotes() {
    let n1 = me("n1", json!({}));
    let t = map(json!({"n1": N1, "n2": N2}));
    let asked = decide_dcs_error(Some(&t), &n1, &primary_pg(), &on(), &Facts::default());
    assert_eq!(
        asked,
        Step::Query(Query::PostFailsafe(vec![FailsafePeer {
            name: "n2".into(),
            api_url: Some(N2.into())
        }]))
    );
    let answered = |accepted: bool| Facts {
        failsafe_accepted: Some(accepted),
        ..Facts::default()
    };
    assert_eq!(
        decide_dcs_error(Some(&t), &n1, &primary_pg(), &on(), &answered(true)),
        hold()
    );
    assert_eq!(
        decide_dcs_error(Some(&t), &n1, &primary_pg(), &on(), &answered(false)),
        demoted()
    );
    // Failsafe mode off: the answers are irrelevant.
    assert_eq!(
        decide_dcs_error(
            Some(&t),
            &n1,
            &primary_pg(),
            &HaSettings::default(),
            &answered(true)
        ),
        demoted()
    );
    // Alone in the topology: nobody to ask, keep running.
    let alone = map(json!({"n1": N1}));
    assert_eq!(
        decide_dcs_error(Some(&alone), &n1, &primary_pg(), &on(), &Facts::default()),
        hold()
    );
    // Not in the topology (or none known): demote.
    let others = map(json!({"n2": N2}));
    assert_eq!(
        decide_dcs_error(Some(&others), &n1, &primary_pg(), &on(), &Facts::default()),
        demoted()
    );
    assert_eq!(
        decide_dcs_error(None, &n1, &primary_pg(), &on(), &Facts::default()),
        demoted()
    );
    // A replica never asks anyone.
    assert_eq!(
        decide_dcs_error(
            Some(&t),
            &me("n2", json!({})),
            &replica_pg(5000),
            &on(),
            &Facts::default()
        ),
        Step::Done(Decision {
            actions: vec![],
            notes: vec![],
            message: "DCS is not accessible".into(),
        })
    );
}

#[test]
fn members_missing_from_the_topology_do_not_race() {
    let mut c = cluster(None);
    c.failsafe = Some(map(json!({"n1": N1, "n3": N3})));
    let n2 = me("n2", json!({}));
    let settings = on();
    assert!(excluded_from_race(&c, &n2, &settings));
    assert!(!excluded_from_race(&c, &n2, &HaSettings::default()));
    assert!(!excluded_from_race(&c, &me("n1", json!({})), &settings));
    // An empty topology excludes nobody.
    c.failsafe = Some(Map::new());
    assert!(!excluded_from_race(&c, &n2, &settings));

    // The whole decision: n2 does not race, it follows after a reload.
    c.failsafe = Some(map(json!({"n1": N1, "n3": N3})));
    match decide(&c, &n2, &replica_pg(5000), &settings, &Facts::default()) {
        Step::Query(Query::ReloadCluster(p)) => assert_eq!(
            p.follow_reason,
            "following a different leader because i am not the healthiest node"
        ),
        other => panic!("unexpected {other:?}"),
    }
    // Listed, it asks its peers as usual.
    c.failsafe = Some(map(json!({"n1": N1, "n2": N2})));
    assert!(matches!(
        decide(&c, &n2, &replica_pg(5000), &settings, &Facts::default()),
        Step::Query(Query::FetchPeerStatuses(_))
    ));
}

#[test]
fn failsafe_mode_no_longer_refuses_a_normal_cycle() {
    let c = cluster(Some(r#"n1"#));
    let step = decide(
        &c,
        &me("n2", json!({})),
        &replica_pg(5000),
        &on(),
        &Facts::default(),
    );
    assert!(
        matches!(step, Step::Done(ref d) if d.actions == vec![Action::Follow { member: Some("n1".into()) }]),
        "{step:?}"
    );
}
