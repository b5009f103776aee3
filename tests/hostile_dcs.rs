//! Whatever another member (or an operator with `etcdctl`) leaves in the
//! DCS, reading it must never panic: not the model, not the HA decision,
//! not the synchronous-replication planner, not the REST bodies and health
//! codes built from it. Values are generated from a fixed seed: valid
//! ones, truncated ones, wrong JSON types, huge and negative numbers,
//! non-ASCII text, and a few hand-picked nasties.

use std::sync::Arc;

use patroni::api::bodies::{cluster_body, history_body, status_body};
use patroni::api::health::{health_status, Query as HealthQuery};
use patroni::api::status::NodeStatus;
use patroni::ha::decide::{decide, Facts, HaSettings, LocalPg, Me, Step};
use patroni::ha::race::PeerStatus;
use patroni::ha::sync::{plan_multisync, SyncSettings, SyncTracker, WalSender};
use patroni::model::Cluster;

/// xorshift64*: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const SCALARS: &[&str] = &[
    "null",
    "true",
    "false",
    "0",
    "-1",
    "1",
    "9223372036854775807",
    "-9223372036854775808",
    "18446744073709551616",
    "1e308",
    "-0.5",
    "\"\"",
    "\"n1\"",
    "\"n2,N1, n3\"",
    "\"ünï\\u0000\"",
    "\"2026-11-22T06:00:00+00:00\"",
    "\"not a date\"",
    "[]",
    "{}",
    "[1,\"a\",null]",
];

const KEYS: &[&str] = &[
    "leader",
    "sync_standby",
    "quorum",
    "member",
    "candidate",
    "scheduled_at",
    "optime",
    "slots",
    "retain_slots",
    "conn_url",
    "api_url",
    "state",
    "role",
    "xlog_location",
    "timeline",
    "tags",
    "nofailover",
    "failover_priority",
    "replicatefrom",
    "pause",
    "synchronous_mode",
    "ttl",
    "loop_wait",
    "maximum_lag_on_failover",
    "standby_cluster",
    "postgresql",
    "version",
    "xlog",
    "wal",
    "location",
    "received_location",
    "replayed_location",
    "lsn",
    "dcs_last_seen",
];

fn value(rng: &mut Rng, depth: u32) -> String {
    match rng.next() % 6 {
        0 | 1 if depth < 3 => {
            let n = rng.next() % 5;
            let fields: Vec<String> = (0..n)
                .map(|_| format!("\"{}\":{}", rng.pick(KEYS), value(rng, depth + 1)))
                .collect();
            format!("{{{}}}", fields.join(","))
        }
        2 if depth < 3 => {
            let n = rng.next() % 4;
            let items: Vec<String> = (0..n).map(|_| value(rng, depth + 1)).collect();
            format!("[{}]", items.join(","))
        }
        _ => rng.pick(SCALARS).to_owned(),
    }
}

/// A stored value: usually JSON, sometimes cut short or not JSON at all.
fn stored(rng: &mut Rng) -> String {
    let v = value(rng, 0);
    match rng.next() % 8 {
        0 => v.chars().take(v.chars().count() / 2).collect(),
        1 => "garbage \u{0}\u{7f} ünï".to_owned(),
        2 => String::new(),
        _ => v,
    }
}

fn random_cluster(rng: &mut Rng) -> Cluster {
    let names = [
        "leader",
        "config",
        "failover",
        "sync",
        "history",
        "status",
        "initialize",
        "failsafe",
        "optime/leader",
    ];
    let mut nodes: Vec<(String, String, Option<i64>)> = Vec::new();
    for name in names {
        if rng.next() % 3 != 0 {
            let v = if name == "leader" || name == "initialize" {
                rng.pick(&["n1", "n2", "", "ünï", "7000000000000000001", "{}"])
                    .to_owned()
            } else {
                stored(rng)
            };
            nodes.push((name.to_owned(), v, Some((rng.next() % 100) as i64)));
        }
    }
    for m in ["n1", "n2", "n3", "N1"] {
        if rng.next() % 4 != 0 {
            nodes.push((format!("members/{m}"), stored(rng), Some(1)));
        }
    }
    Cluster::from_nodes(
        nodes
            .iter()
            .map(|(k, v, ver)| (k.as_str(), v.as_str(), *ver)),
    )
}

fn local(rng: &mut Rng) -> LocalPg {
    let primary = rng.next() % 2 == 0;
    LocalPg {
        running: rng.next() % 4 != 0,
        is_primary: primary,
        role: rng
            .pick(&["primary", "replica", "standby_leader", "demoted", ""])
            .to_owned(),
        timeline: Some((rng.next() % 4) as i64),
        wal_position: (rng.next() % 10_000) as i64,
        sysid: Some("7000000000000000001".into()),
        seen_running: true,
        ..LocalPg::default()
    }
}

#[test]
fn hostile_dcs_values_never_panic_anywhere() {
    let mut rng = Rng(0x5EED_CAFE_F00D_0001);
    let mut decided = 0;
    for round in 0..3000 {
        let cluster = random_cluster(&mut rng);
        let me = Me {
            name: rng.pick(&["n1", "n2", "n3"]).to_owned(),
            tags: Default::default(),
        };
        let pg = local(&mut rng);
        let settings = HaSettings {
            paused: rng.next() % 3 == 0,
            synchronous_mode: rng.next() % 2 == 0,
            standby_cluster: rng.next() % 4 == 0,
            bootstrap_configured: true,
            ..HaSettings::default()
        };
        // Peers answer `/patroni` with whatever they like.
        let peers: Vec<PeerStatus> = cluster
            .members
            .iter()
            .map(|m| {
                let body =
                    serde_json::from_str(&stored(&mut rng)).unwrap_or(serde_json::Value::Null);
                PeerStatus::from_api_response(m, &body)
            })
            .collect();
        let facts = Facts {
            lock_refreshed: Some(rng.next() % 2 == 0),
            lock_acquired: Some(rng.next() % 2 == 0),
            peers: Some(peers),
            sync_claimed: Some(true),
            now: Some(chrono::Utc::now()),
            slept: true,
            initialize_won: Some(false),
            initialize_written: Some(true),
            ..Facts::default()
        };
        if let Step::Done(_) = decide(&cluster, &me, &pg, &settings, &facts) {
            decided += 1;
        }

        let senders = [WalSender {
            pid: 1,
            application_name: rng.pick(&["n2", "N2", "x", ""]).to_owned(),
            sync_state: rng.pick(&["sync", "async", "potential", ""]).to_owned(),
            write_lsn: Some(1),
            flush_lsn: None,
            replay_lsn: Some(-5),
        }];
        let mut tracker = SyncTracker::default();
        tracker.note_ssn(
            rng.pick(&["", "*", "n2", "2 (n2,\"n3\")", "ANY 1(", "FIRST"]),
            100,
        );
        let settings = SyncSettings {
            node_count: (rng.next() % 4) as i64 - 1,
            maximum_lag_on_syncnode: (rng.next() % 3) as i64 - 1,
            strict: rng.next() % 2 == 0,
            quorum: rng.next() % 2 == 0,
        };
        let state = tracker.current_state(&cluster, &me.name, &senders, "on", 50, &settings);
        let _ = plan_multisync(&me.name, &cluster.sync, &state, &settings);
        let _ = patroni::ha::quorum::resolve(&patroni::ha::quorum::QuorumInput {
            leader: cluster.sync.leader.clone().unwrap_or_default(),
            quorum: cluster.sync.quorum,
            voters: cluster.sync.members().into_iter().collect(),
            numsync: state.numsync,
            sync: state.sync.clone(),
            numsync_confirmed: state.sync_confirmed.len() as i64,
            active: state.active.clone(),
            sync_wanted: settings.node_count,
            leader_wanted: me.name.clone(),
        });

        let mut status = NodeStatus::new("batman", &me.name);
        status.cluster = Some(Arc::new(cluster));
        status.cluster_valid = round % 5 != 0;
        let _ = cluster_body(&status);
        let _ = history_body(&status);
        let _ = status_body(&status);
        for path in [
            "/primary",
            "/replica?lag=1MB",
            "/sync",
            "/async",
            "/standby-leader",
            "/health",
            "/quorum",
        ] {
            let (p, q) = path.split_once('?').unwrap_or((path, ""));
            let code = health_status(&status, p, &HealthQuery::parse(q));
            assert!(code == 200 || code == 503, "{path}: {code}");
        }
    }
    // The generator must reach real decisions, not only early refusals.
    assert!(decided > 1000, "only {decided} rounds reached a decision");
}
