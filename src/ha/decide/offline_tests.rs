//! One row per path through the checks before the running cycle: empty
//! data directory, system identifier, stopped PostgreSQL.

use serde_json::json;

use crate::ha::decide::tests::{cluster, cycle, me, peer, primary_pg, replica_pg, script, Script};
use crate::ha::decide::{Action, HaSettings, LocalPg, Query, Step};
use crate::model::{Cluster, Member};

const SYSID: &str = "7000000000000000001";

/// A node with an empty data directory and PostgreSQL not running.
fn empty_pg() -> LocalPg {
    LocalPg {
        data_directory_empty: true,
        ..LocalPg::default()
    }
}

/// PostgreSQL stopped over a valid data directory of this cluster.
fn stopped_pg(role: &str, state: &str) -> LocalPg {
    LocalPg {
        role: role.into(),
        sysid: Some(SYSID.into()),
        cluster_state: Some(state.into()),
        ..LocalPg::default()
    }
}

/// A brand-new cluster: no keys at all but our own member.
fn fresh() -> Cluster {
    Cluster::default()
}

fn no_initialize(mut c: Cluster) -> Cluster {
    c.initialize = None;
    c
}

fn with_initialize(mut c: Cluster, value: &str) -> Cluster {
    c.initialize = Some(value.into());
    c
}

fn with_member(mut c: Cluster, name: &str, data: &str) -> Cluster {
    c.members.push(Member::from_node(name, Some(99), data));
    c.members.sort_by(|a, b| a.name.cmp(&b.name));
    c
}

fn bootstrap_settings() -> HaSettings {
    HaSettings {
        bootstrap_configured: true,
        ..HaSettings::default()
    }
}

struct Row {
    name: &'static str,
    cluster: Cluster,
    me: &'static str,
    tags: serde_json::Value,
    pg: LocalPg,
    settings: HaSettings,
    script: Script,
    /// The queries asked, in order.
    asked: Vec<Query>,
    actions: Vec<Action>,
    message: String,
}

fn row(name: &'static str, cluster: Cluster, me: &'static str, pg: LocalPg) -> Row {
    Row {
        name,
        cluster,
        me,
        tags: json!({}),
        pg,
        settings: bootstrap_settings(),
        script: script(),
        asked: vec![],
        actions: vec![],
        message: String::new(),
    }
}

impl Row {
    fn tags(mut self, tags: serde_json::Value) -> Row {
        self.tags = tags;
        self
    }
    fn settings(mut self, settings: HaSettings) -> Row {
        self.settings = settings;
        self
    }
    fn script(mut self, script: Script) -> Row {
        self.script = script;
        self
    }
    fn asks(mut self, asked: Vec<Query>) -> Row {
        self.asked = asked;
        self
    }
    fn gives(mut self, actions: Vec<Action>, message: &str) -> Row {
        self.actions = actions;
        self.message = message.into();
        self
    }
}

fn lost() -> Script {
    Script {
        acquire: false,
        refresh: false,
        ..script()
    }
}

fn rows() -> Vec<Row> {
    let peer_ok = |wal: i64| {
        vec![peer(
            "n2",
            json!({"role": "replica", "xlog": {"received_location": wal, "replayed_location": wal}}),
        )]
    };
    let clonefrom = r#"{"conn_url":"postgres://h4:5432/postgres","api_url":"http://h4:8008/patroni","state":"running","role":"replica","tags":{"clonefrom":true}}"#;
    let clonefrom_stopped = r#"{"conn_url":"postgres://h4:5432/postgres","state":"stopped","role":"replica","tags":{"clonefrom":true}}"#;
    vec![
        // --- empty data directory ---
        row("first node bootstraps", fresh(), "n1", empty_pg())
            .asks(vec![Query::AcquireInitializeKey])
            .gives(vec![Action::Bootstrap], "trying to bootstrap a new cluster"),
        row("initialize race lost", fresh(), "n1", empty_pg())
            .script(lost())
            .asks(vec![Query::AcquireInitializeKey])
            .gives(vec![], "failed to acquire initialize lock"),
        row("no bootstrap section: waits", fresh(), "n1", empty_pg())
            .settings(HaSettings::default())
            .gives(vec![], "waiting for leader to bootstrap"),
        row("nofailover never bootstraps", fresh(), "n1", empty_pg())
            .tags(json!({"nofailover": true}))
            .gives(vec![], "waiting for leader to bootstrap"),
        row("someone else is bootstrapping", with_initialize(fresh(), ""), "n1", empty_pg())
            .gives(vec![], "waiting for leader to bootstrap"),
        row("bootstrapping elsewhere, backup restore possible", with_initialize(fresh(), ""), "n1", empty_pg())
            .settings(HaSettings { replica_without_leader: true, ..bootstrap_settings() })
            .gives(vec![], "waiting for leader to bootstrap"),
        row("initialized, no leader, restore from backup", cluster(None), "n4", empty_pg())
            .settings(HaSettings { replica_without_leader: true, ..bootstrap_settings() })
            .gives(vec![Action::CreateReplicaWithoutLeader], "trying to bootstrap (without leader)"),
        row("initialized, no leader", cluster(None), "n4", empty_pg())
            .gives(vec![], "waiting for leader to bootstrap"),
        row("clone from the leader", cluster(Some("n1")), "n4", empty_pg())
            .gives(vec![Action::CreateReplica { from: "n1".into() }], "trying to bootstrap from leader 'n1'"),
        row("clone from a clonefrom replica", with_member(cluster(Some("n1")), "n5", clonefrom), "n4", empty_pg())
            .gives(vec![Action::CreateReplica { from: "n5".into() }], "trying to bootstrap from replica 'n5'"),
        row("a stopped clonefrom member is no source", with_member(cluster(Some("n1")), "n5", clonefrom_stopped), "n4", empty_pg())
            .gives(vec![Action::CreateReplica { from: "n1".into() }], "trying to bootstrap from leader 'n1'"),
        row("clonefrom on myself does not count", with_member(cluster(Some("n1")), "n4", clonefrom), "n4", empty_pg())
            .gives(vec![Action::CreateReplica { from: "n1".into() }], "trying to bootstrap from leader 'n1'"),
        row("leader key but empty data dir", cluster(Some("n1")), "n1", empty_pg())
            .gives(vec![Action::ReleaseLeaderKey], "released leader key voluntarily as data dir empty and currently leader"),
        row("data dir wiped under a running primary", cluster(Some("n1")), "n1", LocalPg { data_directory_empty: true, ..primary_pg() })
            .gives(vec![Action::StopImmediately, Action::ReleaseLeaderKey], "released leader key voluntarily as data dir empty and currently leader"),
        row("unreadable data dir, leader", cluster(Some("n1")), "n1", LocalPg { data_directory_error: Some("[Errno 13] Permission denied: '/data'".into()), ..LocalPg::default() })
            .gives(vec![Action::ReleaseLeaderKey], "released leader key voluntarily as data dir not accessible and currently leader"),
        row("unreadable data dir", cluster(Some("n1")), "n2", LocalPg { data_directory_error: Some("[Errno 13] Permission denied: '/data'".into()), ..LocalPg::default() })
            .gives(vec![], "data directory is not accessible: [Errno 13] Permission denied: '/data'"),
        // --- system identifier ---
        row("invalid sysid", cluster(Some("n1")), "n2", LocalPg { sysid: Some("garbage".into()), ..stopped_pg("replica", "shut down in recovery") })
            .gives(vec![], "data dir for the cluster is not empty, but system ID is invalid; consider doing reinitialize"),
        row("sysid of another cluster", with_initialize(cluster(Some("n1")), "7999999999999999999"), "n2", replica_pg(5000))
            .gives(
                vec![Action::Exit { reason: "system ID mismatch, node n2 belongs to a different cluster: 7999999999999999999 != 7000000000000000001".into() }],
                "system ID mismatch, node n2 belongs to a different cluster: 7999999999999999999 != 7000000000000000001",
            ),
        row("running replica, no initialize key, first cycle", no_initialize(cluster(None)), "n2", LocalPg { seen_running: false, ..replica_pg(5000) })
            .gives(
                vec![Action::Exit { reason: "No initialize key in DCS and PostgreSQL is running as replica, aborting start. Please first start Patroni on the node running as primary".into() }],
                "No initialize key in DCS and PostgreSQL is running as replica, aborting start",
            ),
        row("stopped former primary publishes its sysid", no_initialize(cluster(None)), "n1", stopped_pg("primary", "shut down"))
            .asks(vec![
                Query::WriteInitializeKey { sysid: SYSID.into(), create_new: true },
            ])
            .gives(vec![Action::StartAsReplica { member: None }], "starting as a secondary"),
        row("the leader restores a lost initialize key", no_initialize(cluster(Some("n1"))), "n1", primary_pg())
            .asks(vec![
                Query::WriteInitializeKey { sysid: SYSID.into(), create_new: true },
                Query::RefreshLock,
            ])
            .gives(vec![], "no action. I am (n1), the leader with the lock"),
        row("the leader overwrites an empty initialize key", with_initialize(cluster(Some("n1")), ""), "n1", primary_pg())
            .asks(vec![
                Query::WriteInitializeKey { sysid: SYSID.into(), create_new: false },
                Query::RefreshLock,
            ])
            .gives(vec![], "no action. I am (n1), the leader with the lock"),
        // --- stopped PostgreSQL: recover ---
        row("stopped replica starts following the leader", cluster(Some("n1")), "n2", stopped_pg("replica", "shut down in recovery"))
            .gives(vec![Action::StartAsReplica { member: Some("n1".into()) }], "starting as a secondary"),
        row("stopped replica with replicatefrom", cluster(Some("n1")), "n3", stopped_pg("replica", "shut down in recovery"))
            .tags(json!({"replicatefrom": "n2"}))
            .gives(vec![Action::StartAsReplica { member: Some("n2".into()) }], "starting as a secondary"),
        row("stopped node holding the lock starts read-only", cluster(Some("n1")), "n1", stopped_pg("primary", "shut down"))
            .asks(vec![Query::RefreshLock])
            .gives(vec![Action::StartAsReplica { member: None }], "starting as readonly because i had the session lock"),
        row("crashed primary with a fresh lock restarts as primary", cluster(Some("n1")), "n1", LocalPg { crashed: true, ..stopped_pg("primary", "in production") })
            .asks(vec![Query::RefreshLock])
            .gives(vec![Action::StartAsPrimary], "starting primary after failure"),
        row("crashed primary that could not refresh the lock", cluster(Some("n1")), "n1", LocalPg { crashed: true, ..stopped_pg("primary", "shut down") })
            .script(lost())
            .asks(vec![Query::RefreshLock])
            .gives(vec![Action::StartAsReplica { member: None }], "starting as readonly because i had the session lock"),
        row("crashed primary with recovery signal is no primary", cluster(Some("n1")), "n1", LocalPg { crashed: true, recovery_conf: true, ..stopped_pg("primary", "shut down") })
            .asks(vec![Query::RefreshLock])
            .gives(vec![Action::StartAsReplica { member: None }], "starting as readonly because i had the session lock"),
        row("primary_start_timeout 0 fails over to a healthy replica", cluster(Some("n1")), "n1", LocalPg { crashed: true, ..stopped_pg("primary", "in production") })
            .settings(HaSettings { primary_start_timeout: 0, ..bootstrap_settings() })
            .script(Script { peers: peer_ok(5000), ..script() })
            .asks(vec![Query::RefreshLock, Query::FetchPeerStatuses(vec!["n2".into(), "n3".into()])])
            .gives(vec![Action::ReleaseLeaderKey], "stopped PostgreSQL to fail over after a crash"),
        row("primary_start_timeout 0, only lagging replicas", cluster(Some("n1")), "n1", LocalPg { crashed: true, ..stopped_pg("primary", "shut down") })
            .settings(HaSettings { primary_start_timeout: 0, maximum_lag_on_failover: 1000, ..bootstrap_settings() })
            .script(Script { peers: peer_ok(10), ..script() })
            .asks(vec![Query::RefreshLock, Query::FetchPeerStatuses(vec!["n2".into(), "n3".into()])])
            .gives(vec![Action::StartAsReplica { member: None }], "starting as readonly because i had the session lock"),
        row("unclean shutdown, no leader: crash recovery", cluster(None), "n1", stopped_pg("primary", "in production"))
            .gives(vec![Action::CrashRecovery], "doing crash recovery in a single user mode"),
        row("crash recovery only once", cluster(None), "n1", LocalPg { crash_recovery_started: true, ..stopped_pg("primary", "in production") })
            .gives(vec![Action::StartAsReplica { member: None }], "starting as a secondary"),
        row("backup_label: no single-user recovery", cluster(None), "n1", LocalPg { backup_label: true, ..stopped_pg("primary", "in production") })
            .gives(vec![Action::StartAsReplica { member: None }], "starting as a secondary"),
        row("unclean former primary with a leader and no rewind", cluster(Some("n2")), "n1", stopped_pg("primary", "in production"))
            .gives(vec![Action::StartAsReplica { member: Some("n2".into()) }], "starting as a secondary"),
        row("unclean former primary with a leader, rewind possible", cluster(Some("n2")), "n1", stopped_pg("primary", "in production"))
            .settings(HaSettings { can_rewind: true, ..bootstrap_settings() })
            .gives(vec![Action::CrashRecovery], "doing crash recovery in a single user mode"),
        // --- post_recover ---
        row("start failed while holding the lock", cluster(Some("n1")), "n1", LocalPg { start_failed: true, ..stopped_pg("primary", "shut down") })
            .gives(vec![Action::ReleaseLeaderKey], "removed leader key after trying and failing to start postgres"),
        row("start failed", cluster(Some("n1")), "n2", LocalPg { start_failed: true, ..stopped_pg("replica", "shut down in recovery") })
            .gives(vec![], "failed to start postgres"),
    ]
}

#[test]
fn offline_table() {
    for r in rows() {
        let (step, asked) = cycle(
            &r.cluster,
            &me(r.me, r.tags.clone()),
            &r.pg,
            &r.settings,
            &r.script,
        );
        assert_eq!(asked, r.asked, "{}: queries", r.name);
        match step {
            Step::Done(d) => {
                assert_eq!(d.actions, r.actions, "{}: actions", r.name);
                assert_eq!(d.message, r.message, "{}: message", r.name);
            }
            other => panic!("{}: expected a decision, got {other:?}", r.name),
        }
    }
}

/// Invariants over every combination of offline inputs: bootstrap only
/// after winning the initialize key; a replica is copied only into an
/// empty, readable data directory; nothing starts or recovers over an
/// empty one; a nofailover node never races for either key; a primary
/// starts only under a lock the DCS just confirmed.
#[test]
fn offline_invariants_over_the_input_grid() {
    let clusters = [
        fresh(),
        with_initialize(fresh(), ""),
        cluster(None),
        no_initialize(cluster(None)),
        cluster(Some("n1")),
        cluster(Some("n2")),
        with_initialize(cluster(Some("n1")), "7999999999999999999"),
    ];
    let pgs = [
        empty_pg(),
        LocalPg {
            data_directory_error: Some("denied".into()),
            ..LocalPg::default()
        },
        stopped_pg("replica", "shut down in recovery"),
        stopped_pg("primary", "in production"),
        LocalPg {
            crashed: true,
            ..stopped_pg("primary", "in production")
        },
        LocalPg {
            start_failed: true,
            ..stopped_pg("primary", "shut down")
        },
        LocalPg {
            seen_running: false,
            ..replica_pg(5000)
        },
        LocalPg {
            seen_running: false,
            ..primary_pg()
        },
    ];
    let mut checked = 0;
    for c in &clusters {
        for pg in &pgs {
            for nofailover in [false, true] {
                for won in [false, true] {
                    for (bootstrap_configured, primary_start_timeout) in
                        [(false, 300), (true, 300), (true, 0)]
                    {
                        let settings = HaSettings {
                            bootstrap_configured,
                            primary_start_timeout,
                            replica_without_leader: won,
                            ..HaSettings::default()
                        };
                        let s = Script {
                            acquire: won,
                            refresh: won,
                            peers: vec![peer(
                                "n2",
                                json!({"role": "replica", "xlog": {"received_location": 5000, "replayed_location": 5000}}),
                            )],
                            reloaded: c.clone(),
                            ..script()
                        };
                        let me1 = me("n1", json!({"nofailover": nofailover}));
                        let (step, asked) = cycle(c, &me1, pg, &settings, &s);
                        let ctx =
                            format!("{c:?} {pg:?} nofailover={nofailover} won={won} {asked:?}");
                        let actions = match &step {
                            Step::Done(d) => d.actions.clone(),
                            _ => vec![],
                        };
                        let empty = pg.data_directory_empty || pg.data_directory_error.is_some();
                        for a in &actions {
                            match a {
                                Action::Bootstrap => assert!(
                                    won && asked.contains(&Query::AcquireInitializeKey),
                                    "bootstrap without the initialize key: {ctx}"
                                ),
                                Action::CreateReplica { .. }
                                | Action::CreateReplicaWithoutLeader => {
                                    assert!(
                                        pg.data_directory_empty
                                            && pg.data_directory_error.is_none(),
                                        "replica over existing data: {ctx}"
                                    )
                                }
                                Action::StartAsReplica { .. } | Action::CrashRecovery => {
                                    assert!(!empty && !pg.running, "start over nothing: {ctx}")
                                }
                                Action::StartAsPrimary | Action::Promote => assert!(
                                    won && (asked.contains(&Query::AcquireLock)
                                        || (asked.contains(&Query::RefreshLock)
                                            && c.leader.as_ref().is_some_and(|l| l.name == "n1"))),
                                    "primary without a confirmed lock: {ctx}"
                                ),
                                _ => {}
                            }
                        }
                        // As in Patroni, a running primary whose key lapsed may
                        // take it back even with nofailover.
                        if nofailover {
                            assert!(
                                !asked.contains(&Query::AcquireInitializeKey)
                                    && (pg.is_primary || !asked.contains(&Query::AcquireLock)),
                                "nofailover raced: {ctx}"
                            );
                        }
                        checked += 1;
                    }
                }
            }
        }
    }
    assert_eq!(checked, 7 * 8 * 2 * 2 * 3);
}
