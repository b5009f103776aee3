//! `synchronous_standby_names` parsing and rendering (expectations taken
//! from Python Patroni 4.1.5 run on the same strings), standby selection
//! and the order of `/sync` and setting updates.

use super::*;
use crate::model::Cluster;

fn names(list: &[&str]) -> NameSet {
    list.iter().copied().collect()
}

#[test]
fn parses_like_patroni() {
    // (value, kind, has_star, num, members)
    let rows: [(&str, SsnKind, bool, i64, &[&str]); 8] = [
        ("", SsnKind::Off, false, 0, &[]),
        ("FiRsT", SsnKind::Priority, false, 1, &["FiRsT"]),
        ("\"1\"", SsnKind::Priority, false, 1, &["1"]),
        (" a , b ", SsnKind::Priority, false, 1, &["a", "b"]),
        (
            "ANY 4(\"a\",*,b)",
            SsnKind::Quorum,
            true,
            4,
            &["a", "*", "b"],
        ),
        (
            "2 (\"postgres-1\",\"postgres-2\")",
            SsnKind::Priority,
            false,
            2,
            &["postgres-1", "postgres-2"],
        ),
        ("*", SsnKind::Priority, true, 1, &["*"]),
        ("\"a\"\"b\"", SsnKind::Priority, false, 1, &["a\"b"]),
    ];
    for (value, kind, has_star, num, members) in rows {
        let ssn = parse_ssn(value).unwrap_or_else(|e| panic!("{value}: {e}"));
        assert_eq!(
            (ssn.kind, ssn.has_star, ssn.num, &ssn.members),
            (kind, has_star, num, &names(members)),
            "{value}"
        );
    }
}

#[test]
fn refuses_what_patroni_refuses_with_its_words() {
    let rows = [
        (
            "firstnode",
            "Unparsable synchronous_standby_names value 'firstnode': Unexpected token ident 'node' at 5",
        ),
        (
            "a,",
            "Unparsable synchronous_standby_names value 'a,': Unexpected token comma ',' at 1",
        ),
        (
            "1",
            "Unparsable synchronous_standby_names value '1': Unexpected token num '1' at 0",
        ),
        (
            "FIRST 4(\"a\",)",
            "Unparsable synchronous_standby_names value 'FIRST 4(\"a\",)': Unexpected token comma ',' at 11",
        ),
        (
            "ANY 4(\"a\" b,\"c c\")",
            "Unparsable synchronous_standby_names value 'ANY 4(\"a\" b,\"c c\")': Got token ident 'b' while expecting comma at 10",
        ),
    ];
    for (value, error) in rows {
        assert_eq!(parse_ssn(value), Err(error.to_owned()), "{value}");
    }
}

#[test]
fn quotes_and_renders_the_setting() {
    for (name, quoted) in [
        ("postgres-1", "\"postgres-1\""),
        ("node1", "node1"),
        ("First", "\"First\""),
        ("any", "\"any\""),
        ("_x$1", "_x$1"),
        ("a\"b", "\"a\"\"b\""),
        ("1abc", "\"1abc\""),
    ] {
        assert_eq!(quote_standby_name(name), quoted);
    }
    assert_eq!(ssn_value(&names(&[])), None);
    assert_eq!(ssn_value(&names(&["*"])), Some("*".into()));
    assert_eq!(ssn_value(&names(&["n2"])), Some("n2".into()));
    assert_eq!(
        ssn_value(&names(&["postgres-2", "postgres-1"])),
        Some("2 (\"postgres-1\",\"postgres-2\")".into())
    );
    // What we write, we read back as the same standbys.
    let picked = names(&["b-1", "a", "first"]);
    let back = parse_ssn(&ssn_value(&picked).unwrap()).unwrap();
    assert_eq!((back.num, back.members), (3, picked));
}

#[test]
fn name_sets_ignore_case_and_order() {
    assert_eq!(names(&["A", "b"]), names(&["B", "a"]));
    assert_ne!(names(&["a"]), names(&["a", "b"]));
    assert_eq!(names(&["a", "A"]).len(), 1);
    assert_eq!(
        names(&["a", "b", "c"]).intersection(&names(&["C", "a"])),
        names(&["a", "c"])
    );
    assert_eq!(names(&["x", "it's"]).py_list(), "['x', \"it's\"]");
}

const RUNNING: &str = r#"{"conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni","state":"running","role":"replica"}"#;

fn member(tags: &str) -> String {
    format!(
        r#"{{"conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni","state":"running","role":"replica","tags":{tags}}}"#
    )
}

fn cluster_with(extra: &[(&str, &str)], sync: Option<&str>) -> Cluster {
    let mut nodes: Vec<(String, String, Option<i64>)> = vec![
        ("members/n1".into(), RUNNING.into(), Some(1)),
        ("members/n2".into(), RUNNING.into(), Some(2)),
        ("members/n3".into(), RUNNING.into(), Some(3)),
        ("leader".into(), "n1".into(), Some(4)),
    ];
    for (k, v) in extra {
        nodes.push(((*k).into(), (*v).into(), Some(5)));
    }
    if let Some(s) = sync {
        nodes.push(("sync".into(), s.into(), Some(9)));
    }
    Cluster::from_nodes(
        nodes
            .iter()
            .map(|(k, v, ver)| (k.as_str(), v.as_str(), *ver)),
    )
}

fn sender(name: &str, state: &str, lsn: i64) -> WalSender {
    WalSender {
        pid: 100,
        application_name: name.into(),
        sync_state: state.into(),
        write_lsn: Some(lsn),
        flush_lsn: Some(lsn),
        replay_lsn: Some(lsn - 10),
    }
}

const ONE: SyncSettings = SyncSettings {
    node_count: 1,
    maximum_lag_on_syncnode: -1,
    strict: false,
    quorum: false,
};

#[test]
fn picks_the_best_standby_and_confirms_only_caught_up_sync_ones() {
    let cluster = cluster_with(&[], None);
    let mut t = SyncTracker::default();
    assert!(t.note_ssn("", 1000).changed);
    let senders = [sender("n2", "async", 900), sender("n3", "async", 950)];
    let s = t.current_state(&cluster, "n1", &senders, "on", 1000, &ONE);
    // Nothing in the setting yet: the most advanced standby is picked,
    // nobody is confirmed.
    assert_eq!(s.active, names(&["n3"]));
    assert!(s.sync_confirmed.is_empty() && s.sync.is_empty());
    assert_eq!(s.numsync, 0);

    // The setting now names n3; the mark is the position of that moment.
    assert!(t.note_ssn("n3", 1200).changed);
    assert!(!t.note_ssn("n3", 1300).changed, "same text: no new mark");
    let behind = [sender("n2", "async", 900), sender("n3", "sync", 1100)];
    let s = t.current_state(&cluster, "n1", &behind, "on", 1200, &ONE);
    assert_eq!(
        (s.active.clone(), s.sync.clone(), s.numsync),
        (names(&["n3"]), names(&["n3"]), 1)
    );
    assert!(s.sync_confirmed.is_empty(), "n3 has not reached the mark");
    let caught_up = [sender("n2", "async", 900), sender("n3", "sync", 1200)];
    let s = t.current_state(&cluster, "n1", &caught_up, "on", 1200, &ONE);
    assert_eq!(s.sync_confirmed, names(&["n3"]));
    // Once ready, a later lag does not unconfirm it.
    let s = t.current_state(&cluster, "n1", &behind, "on", 1300, &ONE);
    assert_eq!(s.sync_confirmed, names(&["n3"]));
}

#[test]
fn a_standby_listed_in_the_key_is_ready_at_once() {
    let cluster = cluster_with(
        &[],
        Some(r#"{"leader":"n1","quorum":0,"sync_standby":"n2"}"#),
    );
    let mut t = SyncTracker::default();
    t.note_ssn("n2", 5000);
    let s = t.current_state(
        &cluster,
        "n1",
        &[sender("n2", "sync", 10)],
        "on",
        5000,
        &ONE,
    );
    assert_eq!(s.sync_confirmed, names(&["n2"]));
}

#[test]
fn selection_honours_tags_priority_lag_and_commit_level() {
    let nosync = member(r#"{"nosync":true}"#);
    let nofailover = member(r#"{"nofailover":true}"#);
    let prio = member(r#"{"sync_priority":5}"#);
    let mut t = SyncTracker::default();
    t.note_ssn("", 0);
    let two = SyncSettings {
        node_count: 2,
        ..ONE
    };
    // nosync members never count; nofailover ones come last.
    let c = cluster_with(
        &[("members/n4", &nosync), ("members/n5", &nofailover)],
        None,
    );
    let senders = [
        sender("n4", "async", 990),
        sender("n5", "async", 999),
        sender("n2", "async", 500),
    ];
    let s = t.current_state(&c, "n1", &senders, "on", 1000, &two);
    assert_eq!(s.active.iter().collect::<Vec<_>>(), ["n2", "n5"]);
    // A higher sync_priority wins over position.
    let c = cluster_with(&[("members/n4", &prio)], None);
    let senders = [sender("n2", "async", 999), sender("n4", "async", 10)];
    let s = t.current_state(&c, "n1", &senders, "on", 1000, &ONE);
    assert_eq!(s.active, names(&["n4"]));
    // maximum_lag_on_syncnode drops a standby too far behind the best one.
    let lag = SyncSettings {
        node_count: 2,
        maximum_lag_on_syncnode: 100,
        strict: false,
        quorum: false,
    };
    let c = cluster_with(&[], None);
    let senders = [sender("n2", "sync", 500), sender("n3", "async", 1000)];
    let s = t.current_state(&c, "n1", &senders, "on", 1000, &lag);
    assert_eq!(s.active, names(&["n3"]));
    // remote_apply looks at the replay position (n2: 990, n3: 985).
    let senders = [sender("n2", "async", 1000), sender("n3", "async", 995)];
    let s = t.current_state(&c, "n1", &senders, "remote_apply", 1000, &lag);
    assert_eq!(s.active, names(&["n2", "n3"]));
    let s = t.current_state(
        &c,
        "n1",
        &[sender("n2", "async", 850)],
        "remote_apply",
        1000,
        &lag,
    );
    assert!(
        s.active.is_empty(),
        "one standby is compared with our own position"
    );
}

#[test]
fn cascading_and_stopped_members_are_not_candidates() {
    let cascading = member(r#"{"replicatefrom":"n2"}"#);
    let stopped = r#"{"conn_url":"postgres://h:5432/postgres","state":"stopped","role":"replica"}"#;
    let c = cluster_with(&[("members/n4", &cascading), ("members/n5", stopped)], None);
    let mut t = SyncTracker::default();
    t.note_ssn("", 0);
    let three = SyncSettings {
        node_count: 3,
        ..ONE
    };
    let senders = [
        sender("n4", "async", 1000),
        sender("n5", "async", 1000),
        sender("n2", "async", 10),
    ];
    let s = t.current_state(&c, "n1", &senders, "on", 1000, &three);
    assert_eq!(
        s.active,
        names(&["n2"]),
        "n4 streams through n2, n5 is not running"
    );
    // If n2 does not stream from us, n4 may be synchronous after all.
    let s = t.current_state(&c, "n1", &senders[..2], "on", 1000, &three);
    assert_eq!(s.active, names(&["n4"]));
    // A replicatefrom loop ends instead of spinning.
    let a = member(r#"{"replicatefrom":"n7"}"#);
    let b = member(r#"{"replicatefrom":"n6"}"#);
    let c = cluster_with(&[("members/n6", &a), ("members/n7", &b)], None);
    let s = t.current_state(&c, "n1", &[sender("n6", "async", 5)], "on", 1000, &three);
    assert_eq!(s.active, names(&["n6"]));
}

fn key(sync: &str) -> SyncState {
    SyncState::from_node(Some(3), sync)
}

fn state(numsync: i64, sync: &[&str], confirmed: &[&str], active: &[&str]) -> CurrentSync {
    CurrentSync {
        numsync,
        sync: names(sync),
        sync_confirmed: names(confirmed),
        active: names(active),
    }
}

fn writes(ops: &[SyncOp]) -> Vec<Vec<String>> {
    ops.iter()
        .filter_map(|op| match op {
            SyncOp::WriteSync { members, .. } => Some(members.sorted()),
            _ => None,
        })
        .collect()
}

fn ssn_set(ops: &[SyncOp]) -> Option<Option<String>> {
    ops.iter().find_map(|op| match op {
        SyncOp::SetSsn(p) => Some(ssn_value(p)),
        _ => None,
    })
}

#[test]
fn first_cycle_enables_then_names_the_standby_before_publishing_it() {
    let ops = plan_multisync(
        "n1",
        &SyncState::default(),
        &state(0, &[], &[], &["n2"]),
        &ONE,
    );
    assert_eq!(
        writes(&ops),
        [Vec::<String>::new()],
        "enable with no standbys first"
    );
    assert_eq!(ssn_set(&ops), Some(Some("n2".into())));
    assert_eq!(
        ops.last(),
        Some(&SyncOp::Confirm {
            wait: true,
            sync_common: names(&[])
        })
    );
    // After the wait n2 is confirmed: publish it.
    let op = assign_confirmed(&names(&["n2"]), &names(&[]));
    assert!(matches!(op, Some(SyncOp::WriteSync { members, .. }) if members == names(&["n2"])));
    assert_eq!(assign_confirmed(&names(&[]), &names(&[])), None);
    assert_eq!(assign_confirmed(&names(&["n2"]), &names(&["n2"])), None);
}

#[test]
fn steady_state_does_nothing() {
    let k = key(r#"{"leader":"n1","quorum":0,"sync_standby":"n2"}"#);
    assert!(plan_multisync("n1", &k, &state(1, &["n2"], &["n2"], &["n2"]), &ONE).is_empty());
    let k = key(r#"{"leader":"n1","quorum":0,"sync_standby":"n2,n3"}"#);
    let s = state(2, &["n2", "n3"], &["n2", "n3"], &["n3", "n2"]);
    assert!(plan_multisync("n1", &k, &s, &ONE).is_empty());
}

#[test]
fn a_gone_standby_leaves_the_key_before_the_setting() {
    // n2 stopped: n3 is the best candidate now.
    let k = key(r#"{"leader":"n1","quorum":0,"sync_standby":"n2"}"#);
    let ops = plan_multisync("n1", &k, &state(1, &["n2"], &[], &["n3"]), &ONE);
    assert_eq!(writes(&ops), [Vec::<String>::new()]);
    let write_at = ops
        .iter()
        .position(|o| matches!(o, SyncOp::WriteSync { .. }));
    let ssn_at = ops.iter().position(|o| matches!(o, SyncOp::SetSsn(_)));
    assert!(write_at < ssn_at, "key first, setting second: {ops:?}");
    assert_eq!(ssn_set(&ops), Some(Some("n3".into())));
    assert!(ops.contains(&SyncOp::Log(Log::Info(
        "Updating synchronous privilege temporarily from ['n2'] to []".into()
    ))));
}

#[test]
fn key_of_another_leader_or_inconsistent_key_is_rewritten() {
    let k = key(r#"{"leader":"n9","quorum":0,"sync_standby":"n2"}"#);
    let ops = plan_multisync("n1", &k, &state(1, &["n2"], &["n2"], &["n2"]), &ONE);
    assert!(
        matches!(&ops[0], SyncOp::Log(Log::Warning(w)) if w.contains("leader = n9 doesn't match n1"))
    );
    // Reset to no standbys, then (picked n2 != voters []) set and confirm.
    assert_eq!(writes(&ops), [Vec::<String>::new()]);
    assert_eq!(ssn_set(&ops), Some(Some("n2".into())));
    // The key names n2 and n2 is picked, but PostgreSQL does not confirm
    // it: the key drops it at once.
    let k = key(r#"{"leader":"n1","quorum":0,"sync_standby":"n2"}"#);
    let ops = plan_multisync("n1", &k, &state(1, &["n2"], &[], &["n2"]), &ONE);
    assert_eq!(writes(&ops), [Vec::<String>::new()]);
    assert!(
        matches!(&ops[0], SyncOp::Log(Log::Warning(w)) if w.starts_with("Inconsistent state between"))
    );
}

#[test]
fn strict_mode_waits_for_any_standby_when_none_is_there() {
    let strict = SyncSettings {
        strict: true,
        ..ONE
    };
    let k = key(r#"{"leader":"n1","quorum":0,"sync_standby":null}"#);
    // The setting holds `*` (one standby, any): it is asserted again.
    let ops = plan_multisync("n1", &k, &state(1, &[], &[], &[]), &strict);
    assert_eq!(ssn_set(&ops), Some(Some("*".into())));
    assert!(ops.contains(&SyncOp::Log(Log::Warning("No standbys available!".into()))));
    assert_eq!(
        ops.last(),
        Some(&SyncOp::Confirm {
            wait: false,
            sync_common: names(&[])
        })
    );
    // An empty setting with nobody to pick is left alone, as Patroni does.
    assert!(plan_multisync("n1", &k, &state(0, &[], &[], &[]), &strict).is_empty());
    // Not strict: no standby means no setting at all.
    let ops = plan_multisync("n1", &k, &state(1, &["n2"], &[], &[]), &ONE);
    assert_eq!(ssn_set(&ops), Some(None));
}

#[test]
fn quorum_commit_takes_every_promotable_standby_and_confirms_quorum_ones() {
    let nofailover = member(r#"{"nofailover":true}"#);
    let c = cluster_with(
        &[("members/n4", &nofailover)],
        Some(r#"{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}"#),
    );
    let quorum = SyncSettings {
        quorum: true,
        ..ONE
    };
    let mut t = SyncTracker::default();
    t.note_ssn("ANY 1 (n2,n3)", 1000);
    let senders = [
        sender("n2", "quorum", 1000),
        sender("n3", "quorum", 900),
        sender("n4", "async", 1000),
    ];
    let s = t.current_state(&c, "n1", &senders, "on", 1000, &quorum);
    // All promotable standbys, beyond node_count; the nofailover one only
    // to fill the count, which is reached already.
    assert_eq!(s.active, names(&["n2", "n3"]));
    assert_eq!((s.numsync, s.sync.clone()), (1, names(&["n2", "n3"])));
    // Listed in /sync is not enough: n3 has not reached the mark.
    assert_eq!(s.sync_confirmed, names(&["n2"]));
    // A lone nofailover standby fills the count.
    let s = t.current_state(&c, "n1", &senders[2..], "on", 1000, &quorum);
    assert_eq!(s.active, names(&["n4"]));
}

#[test]
fn quorum_runs_at_once_then_waits_a_loop() {
    let mut t = SyncTracker::default();
    let start = std::time::Instant::now();
    let wait = std::time::Duration::from_secs(10);
    assert!(t.quorum_due(start, wait));
    assert!(!t.quorum_due(start + std::time::Duration::from_secs(5), wait));
    assert!(t.quorum_due(start + std::time::Duration::from_secs(11), wait));
    t.reset();
    assert!(t.quorum_due(start + std::time::Duration::from_secs(12), wait));
}
