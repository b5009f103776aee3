//! Our ZooKeeper backend must leave the same znodes as Python Patroni 4.1.5:
//! we replay the writes behind a golden dump
//! (`../shared/compat/golden/zookeeper/dcs/*/index.json`) through our
//! backend on a real ZooKeeper, then read the tree back with a raw client
//! and compare paths, data bytes and which znodes are ephemeral.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use patroni::dcs::zookeeper::{ZkConnection, ZooKeeper};
use patroni::dcs::{Dcs, KeyPaths, Timing};
use serde_json::Value;

#[path = "support/zookeeper.rs"]
mod zookeeper_server;
use zookeeper_server::ZooKeeperServer;

fn golden_root() -> PathBuf {
    let shared = std::env::var_os("PATRONI_RS_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    let root = shared.join("compat/golden/zookeeper/dcs");
    assert!(
        root.is_dir(),
        "golden captures not found at {} (set PATRONI_RS_SHARED)",
        root.display()
    );
    root
}

/// One znode: data and whether it is ephemeral.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Znode {
    value: String,
    ephemeral: bool,
}

/// `relative key -> znode` from a golden `index.json`.
fn golden_dump(dir: &Path) -> BTreeMap<String, Znode> {
    let text = std::fs::read_to_string(dir.join("index.json")).expect("index.json");
    let index: Value = serde_json::from_str(&text).expect("index.json is JSON");
    let keys = index["keys"].as_array().expect("keys");
    keys.iter()
        .map(|k| {
            let key = k["key"].as_str().expect("key");
            let relative = key
                .strip_prefix("/service/demo/")
                .unwrap_or_else(|| panic!("{key} outside the cluster"));
            (
                relative.to_owned(),
                Znode {
                    value: k["value"].as_str().expect("value").to_owned(),
                    ephemeral: k["ephemeral"].as_bool().expect("ephemeral"),
                },
            )
        })
        .collect()
}

/// Every znode under `/service/demo`, read with a raw client.
async fn dump(endpoint: &str) -> BTreeMap<String, (Znode, i32)> {
    let client = zookeeper_client::Client::connect(endpoint)
        .await
        .expect("raw client");
    let mut out = BTreeMap::new();
    let mut todo = vec![String::new()];
    while let Some(rel) = todo.pop() {
        let path = if rel.is_empty() {
            "/service/demo".to_owned()
        } else {
            format!("/service/demo/{rel}")
        };
        for child in client.list_children(&path).await.expect("children") {
            let child_rel = if rel.is_empty() {
                child
            } else {
                format!("{rel}/{child}")
            };
            let (data, stat) = client
                .get_data(&format!("/service/demo/{child_rel}"))
                .await
                .expect("data");
            let znode = Znode {
                value: String::from_utf8(data).expect("UTF-8"),
                ephemeral: stat.ephemeral_owner != 0,
            };
            out.insert(child_rel.clone(), (znode, stat.version));
            todo.push(child_rel);
        }
    }
    out
}

fn backend(endpoint: &str, name: &str) -> ZooKeeper {
    ZooKeeper::new(
        KeyPaths::new("/service/", "demo", name),
        ZkConnection {
            hosts: vec![endpoint.to_owned()],
            ..Default::default()
        },
        Timing {
            ttl: Duration::from_secs(30),
            retry_timeout: Duration::from_secs(5),
            loop_wait: Duration::from_secs(10),
        },
    )
    .expect("settings")
}

/// Replay the writes Patroni makes to reach `golden`, one backend per
/// member (each member owns its ephemeral znodes through its session).
async fn replay(endpoint: &str, golden: &BTreeMap<String, Znode>) -> Vec<ZooKeeper> {
    let mut members = Vec::new();
    for (key, z) in golden {
        if let Some(name) = key.strip_prefix("members/") {
            let m = backend(endpoint, name);
            m.touch_member(None, &z.value).await.expect("touch_member");
            members.push((name.to_owned(), m));
        }
    }
    let leader = &golden["leader"].value;
    let (_, primary) = members
        .iter()
        .find(|(n, _)| n == leader)
        .expect("the leader is a member");
    assert!(primary.attempt_to_acquire_leader().await.expect("leader"));
    // Bootstrap: the race creates `initialize` empty, then the winner
    // writes the system identifier (so the golden version is 1).
    primary.initialize(true, "").await.expect("initialize race");
    primary
        .initialize(false, &golden["initialize"].value)
        .await
        .expect("initialize sysid");
    for (key, z) in golden {
        let v = &z.value;
        match key.as_str() {
            "config" => primary.set_config_value(v, None).await.expect("config"),
            "failover" => primary.set_failover_value(v, None).await.expect("failover"),
            "sync" => primary
                .set_sync_state_value(v, None)
                .await
                .map(|_| ())
                .expect("sync"),
            "history" => primary.set_history_value(v).await.expect("history"),
            "status" => primary.write_status(v).await.expect("status"),
            "failsafe" => primary.write_failsafe(v).await.expect("failsafe"),
            _ => {}
        }
    }
    members.into_iter().map(|(_, m)| m).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_znodes_match_python_patronis() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(golden_root())
        .expect("golden dcs dumps")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join("index.json").is_file())
        .collect();
    dirs.sort();
    assert!(dirs.len() >= 2, "expected the golden ZooKeeper dumps");
    for dir in dirs {
        let server = ZooKeeperServer::start();
        let golden = golden_dump(&dir);
        let _sessions = replay(&server.endpoint(), &golden).await;
        let ours = dump(&server.endpoint()).await;
        let ours_nodes: BTreeMap<String, Znode> = ours
            .iter()
            .map(|(k, (z, _))| (k.clone(), z.clone()))
            .collect();
        assert_eq!(
            ours_nodes.keys().collect::<Vec<_>>(),
            golden.keys().collect::<Vec<_>>(),
            "{}: znode paths",
            dir.display()
        );
        for (key, want) in &golden {
            assert_eq!(&ours_nodes[key], want, "{}: {key}", dir.display());
        }
        assert_eq!(ours["initialize"].1, 1, "initialize: created, then set");
        assert_eq!(ours["members"].0.value, "", "members is a plain parent");

        // A fresh reader sees the cluster Patroni would see.
        let reader = backend(&server.endpoint(), "reader");
        let c = reader.get_cluster().await.expect("cluster");
        let leader = c.leader.as_ref().expect("leader");
        assert_eq!(leader.name, golden["leader"].value);
        let m = c.member(&leader.name).expect("leader member");
        assert!(leader.session.is_some() && leader.session == m.session);
        assert_eq!(
            c.initialize.as_deref(),
            Some(golden["initialize"].value.as_str())
        );
    }
}

/// Python Patroni's own ZooKeeper class (via kazoo) reads what we wrote:
/// leader, members and their sessions, config and status.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_patroni_reads_our_cluster() {
    let python = "/opt/patroni-rs/venv/bin/python";
    if !Path::new(python).exists() {
        eprintln!("skipped: {python} not installed");
        return;
    }
    let server = ZooKeeperServer::start();
    let dir = golden_root().join("01-baseline-sync-off");
    let golden = golden_dump(&dir);
    let _sessions = replay(&server.endpoint(), &golden).await;
    let script = r#"
import json, sys
from patroni.dcs.zookeeper import ZooKeeper
from patroni.postgresql.mpp import get_mpp
cfg = {'hosts': [sys.argv[1]], 'scope': 'demo', 'namespace': '/service/', 'name': 'py',
       'ttl': 30, 'loop_wait': 10, 'retry_timeout': 10}
zk = ZooKeeper(cfg, get_mpp({}))
c = zk.get_cluster()
print(json.dumps({
    'leader': c.leader.name,
    'leader_is_member_session': c.leader.session == [m for m in c.members if m.name == c.leader.name][0].session,
    'members': sorted(m.name for m in c.members),
    'roles': {m.name: m.data.get('role') for m in c.members},
    'initialize': c.initialize,
    'ttl': c.config.data.get('ttl'),
    'optime': c.status.last_lsn,
}))
zk._client.stop()
"#;
    let out = std::process::Command::new(python)
        .arg("-c")
        .arg(script)
        .arg(server.endpoint())
        .output()
        .expect("python runs");
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: Value = serde_json::from_slice(
        out.stdout
            .split(|b| *b == b'\n')
            .rfind(|l| l.starts_with(b"{"))
            .expect("a JSON line"),
    )
    .expect("JSON");
    assert_eq!(seen["leader"], golden["leader"].value.as_str());
    assert_eq!(seen["leader_is_member_session"], true);
    assert_eq!(
        seen["members"],
        serde_json::json!(["node1", "node2", "node3"])
    );
    assert_eq!(seen["roles"]["node1"], "primary");
    assert_eq!(seen["initialize"], golden["initialize"].value.as_str());
    assert_eq!(seen["ttl"], 30);
    assert!(seen["optime"].as_i64().is_some_and(|o| o > 0));
}
