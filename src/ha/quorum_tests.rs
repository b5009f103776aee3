use super::*;

fn set(names: &[&str]) -> NameSet {
    names.iter().copied().collect()
}

#[allow(clippy::too_many_arguments)]
fn input(
    leader: &str,
    quorum: i64,
    voters: &[&str],
    numsync: i64,
    sync: &[&str],
    confirmed: i64,
    active: &[&str],
    wanted: i64,
) -> QuorumInput {
    QuorumInput {
        leader: leader.into(),
        quorum,
        voters: set(voters),
        numsync,
        sync: set(sync),
        numsync_confirmed: confirmed,
        active: set(active),
        sync_wanted: wanted,
        leader_wanted: "a".into(),
    }
}

fn t(kind: TransitionKind, leader: &str, num: i64, names: &[&str]) -> Transition {
    Transition {
        kind,
        leader: leader.into(),
        num,
        names: set(names),
    }
}

use TransitionKind::{Quorum as Q, Restart as R, Sync as S};

fn plan(i: &QuorumInput) -> Vec<Transition> {
    resolve(i).expect("a plan").transitions
}

#[test]
fn steady_state_needs_nothing() {
    let i = input("a", 1, &["b", "c"], 1, &["b", "c"], 1, &["b", "c"], 1);
    assert_eq!(plan(&i), vec![]);
}

#[test]
fn first_standbys_go_to_the_setting_then_restart() {
    // Nothing listed: fill the setting with all of them at once, then
    // ask for a fresh read before publishing any voter.
    let i = input("a", 0, &[], 0, &[], 0, &["b", "c"], 1);
    assert_eq!(plan(&i), vec![t(S, "a", 1, &["b", "c"]), t(R, "a", 0, &[])]);
    // Once one of them is confirmed the key follows.
    let i = input("a", 0, &[], 1, &["b", "c"], 1, &["b", "c"], 1);
    assert_eq!(plan(&i), vec![t(Q, "a", 1, &["b", "c"])]);
}

#[test]
fn a_new_standby_joins_the_key_before_the_setting() {
    let i = input("a", 1, &["b", "c"], 1, &["b", "c"], 1, &["b", "c", "d"], 1);
    assert_eq!(
        plan(&i),
        vec![
            t(Q, "a", 2, &["b", "c", "d"]),
            t(S, "a", 1, &["b", "c", "d"])
        ]
    );
}

#[test]
fn a_gone_standby_leaves_the_setting_first() {
    let i = input("a", 1, &["b", "c"], 1, &["b", "c"], 1, &["b"], 1);
    assert_eq!(plan(&i), vec![t(S, "a", 1, &["b"]), t(Q, "a", 0, &["b"])]);
}

#[test]
fn raising_the_factor_raises_numsync_first() {
    // The quorum stays until the second standby is confirmed...
    let i = input("a", 1, &["b", "c"], 1, &["b", "c"], 1, &["b", "c"], 2);
    assert_eq!(plan(&i), vec![t(S, "a", 2, &["b", "c"])]);
    // ...then it drops.
    let i = input("a", 1, &["b", "c"], 2, &["b", "c"], 2, &["b", "c"], 2);
    assert_eq!(plan(&i), vec![t(Q, "a", 0, &["b", "c"])]);
    // Lowering it raises the quorum first.
    let i = input("a", 0, &["b", "c"], 2, &["b", "c"], 2, &["b", "c"], 1);
    assert_eq!(
        plan(&i),
        vec![t(Q, "a", 1, &["b", "c"]), t(S, "a", 1, &["b", "c"])]
    );
}

#[test]
fn a_new_leader_takes_the_old_ones_place_among_the_voters() {
    // b was leader with voters a, c; a got promoted.
    let mut i = input("b", 1, &["a", "c"], 1, &["b", "c"], 0, &["b", "c"], 1);
    i.leader_wanted = "a".into();
    assert_eq!(plan(&i), vec![t(Q, "a", 1, &["b", "c"])]);
    // No standby streams yet: wait a cycle.
    i.active = NameSet::default();
    assert_eq!(plan(&i), vec![t(Q, "a", 1, &["b", "c"])]);
}

#[test]
fn a_broken_state_is_logged_and_repaired() {
    // The key says quorum 0 of b, c while the setting waits for 1 of them.
    let i = input("a", 0, &["b", "c"], 1, &["b", "c"], 1, &["b", "c"], 1);
    let p = resolve(&i).expect("a plan");
    assert_eq!(p.warnings.len(), 1, "{:?}", p.warnings);
    assert!(p.warnings[0].starts_with("Quorum and sync not guaranteed to overlap"));
    assert_eq!(p.transitions, vec![t(Q, "a", 1, &["b", "c"])]);
}

#[test]
fn an_impossible_quorum_is_an_error() {
    // Voters disjoint from the setting and nothing streams: the repair
    // itself needs a quorum as large as the voters.
    let i = input("a", 2, &["x", "y"], 0, &["b"], 0, &[], 1);
    assert!(resolve(&i).is_err());
}

#[test]
fn absurd_counts_do_not_overflow() {
    let mut i = input(
        "a",
        i64::MAX,
        &["b"],
        i64::MAX,
        &["b"],
        i64::MIN,
        &["b"],
        i64::MAX,
    );
    let _ = resolve(&i);
    i.quorum = i64::MIN;
    i.sync_wanted = i64::MIN;
    let _ = resolve(&i);
}

#[test]
fn ssn_text() {
    assert_eq!(quorum_ssn_value(&set(&[]), 0), None);
    assert_eq!(quorum_ssn_value(&set(&[]), 1).as_deref(), Some("ANY 1 (*)"));
    assert_eq!(
        quorum_ssn_value(&set(&["c", "b"]), 1).as_deref(),
        Some("ANY 1 (b,c)")
    );
    assert_eq!(
        quorum_ssn_value(&set(&["any", "b-2"]), 2).as_deref(),
        Some("ANY 2 (\"any\",\"b-2\")")
    );
}

#[test]
fn before_promoting_the_old_quorum_stays_in_force() {
    let key = SyncState::from_node(
        Some(1),
        r#"{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}"#,
    );
    // A voter: the others (old leader included), 3 - 1 - 1 = 1 of them.
    assert_eq!(prepromote_ssn(&key, "n2", false), (set(&["n1", "n3"]), 1));
    // Not a voter: all of them, one more.
    assert_eq!(
        prepromote_ssn(&key, "n4", false),
        (set(&["n1", "n2", "n3"]), 2)
    );
    // Nothing claimed yet.
    let empty = SyncState::from_node(Some(1), "");
    assert_eq!(prepromote_ssn(&empty, "n2", false), (set(&[]), 0));
    assert_eq!(prepromote_ssn(&empty, "n2", true), (set(&[]), 1));
}
