//! The watchdog's say in acting as primary (`enforce_primary_role`).

use serde_json::json;

use super::tests::{cluster, cycle, decision, me, primary_pg, replica_pg, script, Script};
use super::*;

fn not_running(activates: bool) -> Script {
    Script {
        watchdog_running: None,
        watchdog_activates: activates,
        ..script()
    }
}

#[test]
fn a_running_watchdog_is_not_asked_again() {
    let (step, asked) = cycle(
        &cluster(Some("n1")),
        &me("n1", json!({})),
        &primary_pg(),
        &HaSettings::default(),
        &script(),
    );
    assert_eq!(asked, [Query::RefreshLock]);
    assert_eq!(decision(step).actions, []);
}

#[test]
fn the_leader_arms_it_after_refreshing_the_key() {
    let (step, asked) = cycle(
        &cluster(Some("n1")),
        &me("n1", json!({})),
        &primary_pg(),
        &HaSettings::default(),
        &not_running(true),
    );
    assert_eq!(asked, [Query::RefreshLock, Query::ActivateWatchdog]);
    assert_eq!(
        decision(step).message,
        "no action. I am (n1), the leader with the lock"
    );
}

#[test]
fn a_primary_that_cannot_arm_it_demotes() {
    let (step, _) = cycle(
        &cluster(Some("n1")),
        &me("n1", json!({})),
        &primary_pg(),
        &HaSettings::default(),
        &not_running(false),
    );
    let d = decision(step);
    assert_eq!(d.actions, [Action::Demote(DemoteMode::Immediate)]);
    assert_eq!(
        d.message,
        "Demoting self because watchdog could not be activated"
    );
}

#[test]
fn a_replica_holding_the_key_does_not_promote_without_it() {
    let (step, _) = cycle(
        &cluster(Some("n2")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &not_running(false),
    );
    let d = decision(step);
    assert_eq!(d.actions, [Action::ReleaseLeaderKey]);
    assert_eq!(
        d.message,
        "Not promoting self because watchdog could not be activated"
    );
    // Armed, it promotes.
    let (step, asked) = cycle(
        &cluster(Some("n2")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &not_running(true),
    );
    assert!(asked.contains(&Query::ActivateWatchdog));
    assert_eq!(decision(step).actions, [Action::Promote]);
}

#[test]
fn the_race_winner_arms_it_before_promoting() {
    let (step, asked) = cycle(
        &cluster(None),
        &me("n2", json!({})),
        &replica_pg(5000),
        &HaSettings::default(),
        &not_running(false),
    );
    assert_eq!(asked.last(), Some(&Query::ActivateWatchdog));
    let d = decision(step);
    assert_eq!(d.actions, [Action::ReleaseLeaderKey]);
    assert!(!d.actions.contains(&Action::Promote));
}

#[test]
fn in_pause_it_is_left_alone() {
    let settings = HaSettings {
        paused: true,
        ..HaSettings::default()
    };
    let (step, asked) = cycle(
        &cluster(Some("n1")),
        &me("n1", json!({})),
        &primary_pg(),
        &settings,
        &not_running(false),
    );
    assert!(!asked.contains(&Query::ActivateWatchdog));
    assert!(decision(step).actions.is_empty());
}

#[test]
fn a_standby_leader_needs_none() {
    let settings = HaSettings {
        standby_cluster: true,
        ..HaSettings::default()
    };
    let (_, asked) = cycle(
        &cluster(Some("n2")),
        &me("n2", json!({})),
        &replica_pg(5000),
        &settings,
        &not_running(false),
    );
    assert!(!asked.contains(&Query::ActivateWatchdog));
}
