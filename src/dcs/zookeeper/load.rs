//! Reading one cluster from ZooKeeper: the children of the cluster znode,
//! then the data and stat of every key Patroni knows, the member znodes
//! under `members/`.
//!
//! Versions come from the znode stat as Patroni takes them: the data
//! `version` for every key (the compare-and-set token), except `history`
//! whose index is its `mzxid`. Ephemeral znodes (members, leader) carry
//! their owning session (`ephemeralOwner`) in decimal.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use zookeeper_client::{Client, Error as ZkError, Stat};

use crate::model::cluster::RawNode;
use crate::model::Cluster;

/// The parts of a znode stat the cluster model uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ZnodeStat {
    pub version: i32,
    pub mzxid: i64,
    /// 0 for a persistent znode.
    pub ephemeral_owner: i64,
}

impl From<&Stat> for ZnodeStat {
    fn from(s: &Stat) -> ZnodeStat {
        ZnodeStat {
            version: s.version,
            mzxid: s.mzxid,
            ephemeral_owner: s.ephemeral_owner,
        }
    }
}

/// One znode read: its key relative to the cluster (`members/node1`), its
/// data and its stat.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Znode {
    pub key: String,
    pub data: Vec<u8>,
    pub stat: ZnodeStat,
}

/// The top-level keys read from the cluster znode, in Patroni's order.
/// `optime` is the parent of the legacy `optime/leader`.
const KEYS: [&str; 9] = [
    "initialize",
    "config",
    "history",
    "sync",
    "leader",
    "status",
    "optime",
    "failover",
    "failsafe",
];

/// Keys whose changes wake the HA loop: Patroni watches these two.
const WATCHED: [&str; 2] = ["config", "leader"];

/// Build the snapshot from what was read. Invalid UTF-8 is read lossily
/// (Patroni would fail the whole read; a readable snapshot is safer).
///
/// `config` carries two versions, as in Patroni: the data `version` for
/// compare-and-set, and its `mzxid` as the modification index that says
/// "the configuration changed" (and must not be 0 for a valid config:
/// PATCH /config refuses to work on a config at index 0).
pub fn cluster_from_znodes(znodes: &[Znode]) -> Cluster {
    let mut cluster = raw_cluster(znodes);
    if let (Some(config), Some(z)) = (
        cluster.config.as_mut(),
        znodes.iter().find(|z| z.key == "config"),
    ) {
        let valid =
            serde_json::from_slice::<serde_json::Value>(&z.data).is_ok_and(|v| v.is_object());
        if valid {
            config.modify_version = Some(z.stat.mzxid);
        }
    }
    cluster
}

fn raw_cluster(znodes: &[Znode]) -> Cluster {
    let values: Vec<(String, Option<String>)> = znodes
        .iter()
        .map(|z| {
            let session = (z.stat.ephemeral_owner != 0).then(|| z.stat.ephemeral_owner.to_string());
            (String::from_utf8_lossy(&z.data).into_owned(), session)
        })
        .collect();
    Cluster::from_raw_nodes(znodes.iter().zip(&values).map(|(z, (value, session))| {
        let version = if z.key == "history" {
            z.stat.mzxid
        } else {
            i64::from(z.stat.version)
        };
        RawNode {
            key: &z.key,
            value,
            version: Some(version),
            session: session.as_deref(),
        }
    }))
}

/// Watches currently armed, by absolute path, and the notifier they ring.
#[derive(Clone, Default)]
pub struct Watches {
    armed: Arc<Mutex<HashSet<String>>>,
    pub wake: Arc<Notify>,
}

impl Watches {
    /// Claim the right to arm a watch on `path`; `false` when one is armed.
    fn claim(&self, path: &str) -> bool {
        self.armed
            .lock()
            .map(|mut a| a.insert(path.to_owned()))
            .unwrap_or(false)
    }

    fn release(&self, path: &str) {
        if let Ok(mut a) = self.armed.lock() {
            a.remove(path);
        }
    }
}

/// Read one znode, arming a one-shot data watch on it when asked and none
/// is armed yet. `Ok(None)` when it does not exist.
async fn read(
    client: &Client,
    path: &str,
    watch: Option<&Watches>,
) -> Result<Option<(Vec<u8>, Stat)>, ZkError> {
    let claimed = watch.filter(|w| w.claim(path));
    let Some(watches) = claimed else {
        return match client.get_data(path).await {
            Ok(r) => Ok(Some(r)),
            Err(ZkError::NoNode) => Ok(None),
            Err(e) => Err(e),
        };
    };
    match client.get_and_watch_data(path).await {
        Ok((data, stat, watcher)) => {
            let (w, p) = (watches.clone(), path.to_owned());
            // One task per armed watch; it ends when the znode changes,
            // vanishes, or the session breaks.
            tokio::spawn(async move {
                let _ = watcher.changed().await;
                w.release(&p);
                w.wake.notify_one();
            });
            Ok(Some((data, stat)))
        }
        Err(e) => {
            watches.release(path);
            match e {
                ZkError::NoNode => Ok(None),
                e => Err(e),
            }
        }
    }
}

/// Read every key of the cluster under `base` (no trailing `/`).
pub async fn load(client: &Client, base: &str, watches: &Watches) -> Result<Vec<Znode>, ZkError> {
    let children: HashSet<String> = match client.list_children(base).await {
        Ok(c) => c.into_iter().collect(),
        Err(ZkError::NoNode) => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for key in KEYS.iter().filter(|k| children.contains(**k)) {
        let (relative, path) = if *key == "optime" {
            ("optime/leader".to_owned(), format!("{base}/optime/leader"))
        } else {
            ((*key).to_owned(), format!("{base}/{key}"))
        };
        let watch = WATCHED.contains(key).then_some(watches);
        if let Some((data, stat)) = read(client, &path, watch).await? {
            out.push(Znode {
                key: relative,
                data,
                stat: ZnodeStat::from(&stat),
            });
        }
    }
    if children.contains("members") {
        let names = match client.list_children(&format!("{base}/members")).await {
            Ok(n) => n,
            Err(ZkError::NoNode) => Vec::new(),
            Err(e) => return Err(e),
        };
        // Requests are sent when created: issue them all, then collect.
        let pending: Vec<_> = names
            .iter()
            .map(|n| client.get_data(&format!("{base}/members/{n}")))
            .collect();
        for (name, reply) in names.iter().zip(pending) {
            match reply.await {
                Ok((data, stat)) => out.push(Znode {
                    key: format!("members/{name}"),
                    data,
                    stat: ZnodeStat::from(&stat),
                }),
                Err(ZkError::NoNode) => {} // expired between list and get
                Err(e) => return Err(e),
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn znode(key: &str, data: &str, version: i32, mzxid: i64, owner: i64) -> Znode {
        Znode {
            key: key.into(),
            data: data.as_bytes().to_vec(),
            stat: ZnodeStat {
                version,
                mzxid,
                ephemeral_owner: owner,
            },
        }
    }

    /// Stats as in the golden ZooKeeper dump of a Python Patroni cluster.
    #[test]
    fn stats_map_to_versions_and_sessions() {
        let owner = 0x0100_0016_3fc1_0001_i64;
        let c = cluster_from_znodes(&[
            znode("config", r#"{"ttl":30}"#, 0, 0xf, 0),
            znode("initialize", "7710804728716608962", 1, 0xd, 0),
            znode("leader", "node1", 0, 0x10, owner),
            znode(
                "members/node1",
                r#"{"conn_url":"postgres://127.0.0.1:15432/postgres","api_url":"http://127.0.0.1:18008/patroni","state":"running","role":"primary","version":"4.1.5"}"#,
                7,
                0x26,
                owner,
            ),
            znode("members/node2", r#"{"role":"replica"}"#, 4, 0x27, owner + 1),
            znode(
                "history",
                "[[1,25165984,\"no recovery target specified\"]]",
                0,
                0x4b,
                0,
            ),
            znode(
                "sync",
                r#"{"leader":"node1","sync_standby":"node2"}"#,
                3,
                0x50,
                0,
            ),
            znode("failover", "{}", 2, 0x51, 0),
            znode("status", r#"{"optime":67108960}"#, 9, 0x52, 0),
        ]);
        assert_eq!(c.initialize.as_deref(), Some("7710804728716608962"));
        assert_eq!(c.config.as_ref().and_then(|c| c.version), Some(0));
        assert_eq!(c.config.as_ref().and_then(|c| c.modify_version), Some(0xf));
        let leader = c.leader.as_ref().expect("leader");
        assert_eq!(leader.name, "node1");
        assert_eq!(leader.version, Some(0));
        assert_eq!(leader.session.as_deref(), Some(owner.to_string().as_str()));
        let m1 = c.member("node1").expect("node1");
        assert_eq!(m1.version, Some(7));
        assert_eq!(m1.session, leader.session);
        assert_eq!(
            c.member("node2").and_then(|m| m.session.clone()),
            Some((owner + 1).to_string())
        );
        assert_eq!(c.history.as_ref().and_then(|h| h.version), Some(0x4b));
        assert_eq!(c.sync.version, Some(3));
        assert_eq!(c.failover.as_ref().and_then(|f| f.version), Some(2));
        assert_eq!(c.status.last_lsn, 67108960);
    }

    #[test]
    fn persistent_keys_have_no_session_and_legacy_optime_is_read() {
        let c = cluster_from_znodes(&[
            znode("leader", "node2", 5, 1, 0),
            znode("optime/leader", "1234", 1, 2, 0),
        ]);
        assert_eq!(c.leader.as_ref().and_then(|l| l.session.clone()), None);
        assert_eq!(c.status.last_lsn, 1234);
        // An invalid config keeps modification index 0, as Patroni reads it.
        let c = cluster_from_znodes(&[znode("config", "[1]", 4, 9, 0)]);
        assert_eq!(c.config.as_ref().and_then(|c| c.modify_version), Some(0));
        let c = cluster_from_znodes(&[znode("members/x", "\u{fffd}not json", 0, 1, 7)]);
        assert_eq!(c.members.len(), 1);
        assert!(cluster_from_znodes(&[]).leader.is_none());
    }
}
