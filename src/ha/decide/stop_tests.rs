use serde_json::json;

use super::{decide_dcs_error, decide_shutdown};
use crate::ha::decide::tests::{cluster, me, primary_pg, replica_pg};
use crate::ha::decide::{Action, Decision, DemoteMode, Facts, HaSettings, LocalPg, Step};

fn paused() -> HaSettings {
    HaSettings {
        paused: true,
        ..HaSettings::default()
    }
}

fn stopped() -> LocalPg {
    LocalPg::default()
}

/// name, leader key holder, this node, PostgreSQL, settings, actions, message.
type ShutdownRow = (
    &'static str,
    Option<&'static str>,
    &'static str,
    LocalPg,
    HaSettings,
    Vec<Action>,
    &'static str,
);

#[test]
fn shutdown_table() {
    let running = HaSettings::default();
    let rows: Vec<ShutdownRow> = vec![
        (
            "leader hands over",
            Some("n1"),
            "n1",
            primary_pg(),
            running.clone(),
            vec![
                Action::Demote(DemoteMode::Offline),
                Action::ReleaseLeaderKey,
            ],
            "",
        ),
        (
            "replica stops",
            Some("n1"),
            "n2",
            replica_pg(5000),
            running.clone(),
            vec![Action::StopFast],
            "",
        ),
        (
            "replica stops without a leader",
            None,
            "n2",
            replica_pg(5000),
            running.clone(),
            vec![Action::StopFast],
            "",
        ),
        (
            "primary without the key only stops",
            None,
            "n1",
            primary_pg(),
            running.clone(),
            vec![Action::StopFast],
            "",
        ),
        (
            "leader with PostgreSQL down releases the key",
            Some("n1"),
            "n1",
            stopped(),
            running.clone(),
            vec![Action::ReleaseLeaderKey],
            "",
        ),
        (
            "nothing to do",
            Some("n1"),
            "n2",
            stopped(),
            running.clone(),
            vec![],
            "",
        ),
        (
            "paused leader leaves everything",
            Some("n1"),
            "n1",
            primary_pg(),
            paused(),
            vec![],
            "Leader key is not deleted and Postgresql is not stopped due paused state",
        ),
        (
            "paused replica leaves everything",
            Some("n1"),
            "n2",
            replica_pg(5000),
            paused(),
            vec![],
            "Leader key is not deleted and Postgresql is not stopped due paused state",
        ),
    ];
    for (name, leader, who, pg, settings, actions, message) in rows {
        assert_eq!(
            decide_shutdown(&cluster(leader), &me(who, json!({})), &pg, &settings),
            Decision {
                actions,
                notes: vec![],
                message: message.into()
            },
            "{name}"
        );
    }
}

#[test]
fn dcs_error_table() {
    let done = |actions: Vec<Action>, notes: Vec<&str>, message: &str| {
        Step::Done(Decision {
            actions,
            notes: notes.into_iter().map(str::to_owned).collect(),
            message: message.into(),
        })
    };
    let demoted = "demoted self because DCS is not accessible and I was a leader";
    let demoting = "demoting self because DCS is not accessible and I was a leader";
    let n1 = me("n1", json!({}));
    let facts = Facts::default();
    let error =
        |pg: &LocalPg, settings: &HaSettings| decide_dcs_error(None, &n1, pg, settings, &facts);
    assert_eq!(
        error(&primary_pg(), &HaSettings::default()),
        done(
            vec![Action::Demote(DemoteMode::Offline)],
            vec![demoting],
            demoted
        )
    );
    assert_eq!(
        error(&replica_pg(5000), &HaSettings::default()),
        done(vec![], vec![], "DCS is not accessible")
    );
    assert_eq!(
        error(&stopped(), &HaSettings::default()),
        done(vec![], vec![], "DCS is not accessible")
    );
    assert_eq!(
        error(&primary_pg(), &paused()),
        done(vec![], vec![], "PAUSE: DCS is not accessible")
    );
    // Failsafe mode without a known topology cannot keep the primary.
    let failsafe = HaSettings {
        failsafe_mode: true,
        ..HaSettings::default()
    };
    assert_eq!(
        error(&primary_pg(), &failsafe),
        done(
            vec![Action::Demote(DemoteMode::Offline)],
            vec![demoting],
            demoted
        )
    );
    // A replica in failsafe mode carries on as without it.
    assert_eq!(
        error(&replica_pg(5000), &failsafe),
        done(vec![], vec![], "DCS is not accessible")
    );
}
