//! ZooKeeper, with the same znodes and data as Patroni's `zookeeper`
//! backend, so that Python and Rust members can share one cluster.
//!
//! Every key is a znode under `/<namespace>/<scope>/`; parents are created
//! on demand as persistent znodes with empty data (so `members` exists as a
//! plain directory). `leader` and `members/<name>` are ephemeral znodes
//! owned by our session, whose timeout is `ttl`: they vanish when the
//! process dies or stops pinging. Other keys are persistent. Writes follow
//! Patroni: `initialize` is a create (create-if-absent), `config`,
//! `failover` and `sync` compare-and-set on the znode `version`, `status`,
//! `history` and `failsafe` overwrite, and clearing `sync` writes `{}`.
//!
//! Where we differ on purpose: releasing the leader key deletes it with a
//! version check instead of closing the whole session (Patroni's way, which
//! also drops the member key for a moment), and a version of `0` is a real
//! compare-and-set (Patroni treats `0` as "unconditional").
//!
//! The HA loop is woken when `leader` or `config` changes: one-shot data
//! watches armed while reading the cluster, as Patroni arms them.

pub mod config;
mod load;
mod session;

use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use zookeeper_client::{Acl, Client, CreateMode, Error as ZkError};

pub use self::config::{zookeeper_connection, ZkConnection};
pub use self::load::{cluster_from_znodes, Znode, ZnodeStat};
use self::load::{load, Watches};
use self::session::{acls_from, create_with_parents, session_string, Session};
use super::{Dcs, DcsError, DcsResult, KeyPaths, Timing};
use crate::model::Cluster;

#[derive(Debug)]
struct State {
    timing: Timing,
    /// `ttl` changed: the next call opens a session with the new timeout,
    /// and `watch` returns at once until it has.
    ttl_changed: bool,
}

pub struct ZooKeeper {
    paths: KeyPaths,
    session: Session,
    acls: Vec<Acl>,
    state: Mutex<State>,
    watches: Watches,
}

impl ZooKeeper {
    /// A backend for `paths` on the ensemble `conn`. No connection is made
    /// until the first call.
    pub fn new(paths: KeyPaths, conn: ZkConnection, timing: Timing) -> DcsResult<ZooKeeper> {
        if conn.use_ssl {
            return Err(DcsError::Other(
                "zookeeper: use_ssl is not supported by patroni-rs yet".into(),
            ));
        }
        if conn.hosts.is_empty() {
            return Err(DcsError::Other("zookeeper: no hosts configured".into()));
        }
        Ok(ZooKeeper {
            paths,
            acls: acls_from(&conn),
            session: Session::new(conn),
            state: Mutex::new(State {
                timing,
                ttl_changed: false,
            }),
            watches: Watches::default(),
        })
    }

    fn timing(&self) -> Timing {
        self.state.lock().map(|s| s.timing).unwrap_or_default()
    }

    /// Consume a pending `ttl` change: the caller opens a new session.
    fn take_ttl_change(&self) -> bool {
        self.state
            .lock()
            .map(|mut s| std::mem::take(&mut s.ttl_changed))
            .unwrap_or(false)
    }

    /// The cluster znode, without a trailing `/`.
    fn base(&self) -> String {
        self.paths.prefix().trim_end_matches('/').to_owned()
    }

    async fn run<T, F, Fut>(&self, what: &str, op: F) -> DcsResult<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = Result<T, ZkError>>,
    {
        let renew = || self.take_ttl_change();
        self.session.run(self.timing(), &renew, what, op).await
    }

    /// Set `relative` to `value`, with a version check when `version` is
    /// given; create it (persistent) when absent and no version was given.
    /// Returns the new znode version.
    async fn set_or_create(
        &self,
        relative: &str,
        value: &str,
        version: Option<i64>,
    ) -> DcsResult<i64> {
        let expected = match version.map(i32::try_from) {
            None => None,
            Some(Ok(v)) => Some(v),
            // No znode can have this version.
            Some(Err(_)) => return Err(DcsError::CasFailed),
        };
        let path = self.paths.key(relative);
        let acls = &self.acls;
        self.run(relative, |c| {
            let path = path.clone();
            async move {
                loop {
                    match c.set_data(&path, value.as_bytes(), expected).await {
                        Ok(stat) => return Ok(i64::from(stat.version)),
                        Err(ZkError::NoNode) if expected.is_some() => {
                            return Err(ZkError::BadVersion)
                        }
                        Err(ZkError::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                    match create_with_parents(
                        &c,
                        &path,
                        value.as_bytes(),
                        CreateMode::Persistent,
                        acls,
                    )
                    .await
                    {
                        Ok(stat) => return Ok(i64::from(stat.version)),
                        // Created by someone else meanwhile: overwrite it.
                        Err(ZkError::NodeExists) => continue,
                        Err(e) => return Err(e),
                    }
                }
            }
        })
        .await
    }

    /// Create our ephemeral leader znode. `Ok(false)` when it exists and is
    /// not ours (a create retried after a lost reply may find our own).
    async fn create_leader(&self) -> DcsResult<bool> {
        let path = self.paths.leader();
        let name = self.paths.name().to_owned();
        let acls = &self.acls;
        self.run("leader", |c| {
            let (path, name) = (path.clone(), name.clone());
            async move {
                match create_with_parents(&c, &path, name.as_bytes(), CreateMode::Ephemeral, acls)
                    .await
                {
                    Ok(_) => Ok(true),
                    Err(ZkError::NodeExists) => match c.get_data(&path).await {
                        Ok((data, stat)) => {
                            Ok(data == name.as_bytes() && stat.ephemeral_owner == c.session_id().0)
                        }
                        Err(ZkError::NoNode) => Ok(false),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }
}

/// What `update_leader` found on the leader znode.
enum LeaderCheck {
    Ours,
    /// Holds our name but belongs to another (older) session.
    OursOtherSession(i32),
    Missing,
    Theirs,
}

#[async_trait]
impl Dcs for ZooKeeper {
    fn set_timing(&self, timing: Timing) {
        if let Ok(mut s) = self.state.lock() {
            if s.timing.ttl != timing.ttl {
                s.ttl_changed = true;
            }
            s.timing = timing;
        }
    }

    async fn get_cluster(&self) -> DcsResult<Cluster> {
        let base = self.base();
        let watches = &self.watches;
        let znodes = self
            .run("get_cluster", |c| {
                let base = base.clone();
                async move { load(&c, &base, watches).await }
            })
            .await?;
        Ok(cluster_from_znodes(&znodes))
    }

    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        if !create_new {
            return self
                .set_or_create("initialize", sysid, None)
                .await
                .map(|_| ());
        }
        let path = self.paths.key("initialize");
        let acls = &self.acls;
        self.run("initialize", |c| {
            let path = path.clone();
            async move {
                create_with_parents(&c, &path, sysid.as_bytes(), CreateMode::Persistent, acls)
                    .await
                    .map(|_| ())
            }
        })
        .await
    }

    async fn cancel_initialization(&self) -> DcsResult<()> {
        let path = self.paths.key("initialize");
        self.run("initialize", |c| {
            let path = path.clone();
            async move {
                match c.get_data(&path).await {
                    Ok((_, stat)) => match c.delete(&path, Some(stat.version)).await {
                        Ok(()) | Err(ZkError::NoNode) => Ok(()),
                        Err(e) => Err(e),
                    },
                    Err(ZkError::NoNode) => Ok(()),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    async fn attempt_to_acquire_leader(&self) -> DcsResult<bool> {
        let took = self.create_leader().await?;
        if !took {
            log::info!(target: "patroni.dcs.zookeeper", "Could not take out TTL lock");
        }
        Ok(took)
    }

    /// The session keeps the ephemeral key alive; here we check (one read,
    /// so an unreachable ensemble is reported) that the key is still ours
    /// and owned by our current session. A key left by an older session of
    /// ours is deleted (version-checked) and created again, as Patroni
    /// recreates it on an ownership mismatch.
    async fn update_leader(&self, _cluster: &Cluster) -> DcsResult<bool> {
        let path = self.paths.leader();
        let name = self.paths.name().to_owned();
        let check = self
            .run("update_leader", |c| {
                let (path, name) = (path.clone(), name.clone());
                async move {
                    match c.get_data(&path).await {
                        Ok((data, _)) if data != name.as_bytes() => Ok(LeaderCheck::Theirs),
                        Ok((_, stat)) if stat.ephemeral_owner == c.session_id().0 => {
                            Ok(LeaderCheck::Ours)
                        }
                        Ok((_, stat)) => Ok(LeaderCheck::OursOtherSession(stat.version)),
                        Err(ZkError::NoNode) => Ok(LeaderCheck::Missing),
                        Err(e) => Err(e),
                    }
                }
            })
            .await?;
        match check {
            LeaderCheck::Ours => Ok(true),
            LeaderCheck::Theirs => Ok(false),
            LeaderCheck::Missing => self.create_leader().await,
            LeaderCheck::OursOtherSession(version) => {
                log::warn!(target: "patroni.dcs.zookeeper",
                    "Recreating the leader ZNode due to ownership mismatch");
                let deleted = self
                    .run("update_leader", |c| {
                        let path = path.clone();
                        async move {
                            match c.delete(&path, Some(version)).await {
                                Ok(()) | Err(ZkError::NoNode) => Ok(true),
                                Err(ZkError::BadVersion) => Ok(false),
                                Err(e) => Err(e),
                            }
                        }
                    })
                    .await?;
                if deleted {
                    self.create_leader().await
                } else {
                    Ok(false)
                }
            }
        }
    }

    async fn delete_leader(&self) -> DcsResult<bool> {
        let path = self.paths.leader();
        let name = self.paths.name().to_owned();
        self.run("delete_leader", |c| {
            let (path, name) = (path.clone(), name.clone());
            async move {
                match c.get_data(&path).await {
                    Ok((data, stat)) if data == name.as_bytes() => {
                        match c.delete(&path, Some(stat.version)).await {
                            Ok(()) => Ok(true),
                            Err(ZkError::NoNode | ZkError::BadVersion) => Ok(false),
                            Err(e) => Err(e),
                        }
                    }
                    Ok(_) | Err(ZkError::NoNode) => Ok(false),
                    Err(e) => Err(e),
                }
            }
        })
        .await
    }

    /// Skip the write when our member znode already holds the same JSON and
    /// belongs to our session; a znode left by another session of ours is
    /// deleted and created again so that it expires with this session.
    async fn touch_member(&self, cluster: Option<&Cluster>, value: &str) -> DcsResult<()> {
        let path = self.paths.member();
        let acls = &self.acls;
        let member = cluster.and_then(|c| c.member(self.paths.name()));
        let stored_session = member.and_then(|m| m.session.clone());
        let same_data = member.is_some_and(|m| {
            serde_json::from_str::<serde_json::Value>(value).ok()
                == Some(serde_json::Value::Object(m.data.clone()))
        });
        let known = member.is_some();
        self.run("touch_member", |c| {
            let path = path.clone();
            let stored_session = stored_session.clone();
            async move {
                let ours = stored_session.as_deref() == Some(session_string(&c).as_str());
                if known && ours && same_data {
                    return Ok(());
                }
                if known && !ours {
                    log::warn!(target: "patroni.dcs.zookeeper",
                        "Recreating the member ZNode due to ownership mismatch");
                    match c.delete(&path, None).await {
                        Ok(()) | Err(ZkError::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                }
                if !known || !ours {
                    match create_with_parents(
                        &c,
                        &path,
                        value.as_bytes(),
                        CreateMode::Ephemeral,
                        acls,
                    )
                    .await
                    {
                        Ok(_) => return Ok(()),
                        Err(ZkError::NodeExists) => {}
                        Err(e) => return Err(e),
                    }
                }
                c.set_data(&path, value.as_bytes(), None).await.map(|_| ())
            }
        })
        .await
    }

    async fn set_config_value(&self, value: &str, version: Option<i64>) -> DcsResult<()> {
        self.set_or_create("config", value, version)
            .await
            .map(|_| ())
    }

    async fn set_failover_value(&self, value: &str, version: Option<i64>) -> DcsResult<()> {
        self.set_or_create("failover", value, version)
            .await
            .map(|_| ())
    }

    async fn set_sync_state_value(&self, value: &str, version: Option<i64>) -> DcsResult<i64> {
        self.set_or_create("sync", value, version).await
    }

    /// Patroni clears `sync` by writing `{}` into it (version-checked when
    /// a version is given) rather than deleting the znode.
    async fn delete_sync_state(&self, version: Option<i64>) -> DcsResult<()> {
        self.set_or_create("sync", "{}", version).await.map(|_| ())
    }

    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.set_or_create("history", value, None).await.map(|_| ())
    }

    async fn write_status(&self, value: &str) -> DcsResult<()> {
        self.set_or_create("status", value, None).await.map(|_| ())
    }

    async fn write_failsafe(&self, value: &str) -> DcsResult<()> {
        self.set_or_create("failsafe", value, None)
            .await
            .map(|_| ())
    }

    /// Delete the cluster znode and everything under it, deepest first.
    async fn delete_cluster(&self) -> DcsResult<()> {
        let base = self.base();
        self.run("delete_cluster", |c| {
            let base = base.clone();
            async move {
                let mut all = vec![base];
                let mut i = 0;
                while i < all.len() {
                    match c.list_children(&all[i]).await {
                        Ok(children) => {
                            let parent = all[i].clone();
                            all.extend(children.into_iter().map(|n| format!("{parent}/{n}")));
                        }
                        Err(ZkError::NoNode) => {}
                        Err(e) => return Err(e),
                    }
                    i += 1;
                }
                for path in all.iter().rev() {
                    match c.delete(path, None).await {
                        // NotEmpty: a child appeared meanwhile; the retry
                        // loop starts over.
                        Ok(()) | Err(ZkError::NoNode) => {}
                        Err(ZkError::NotEmpty) => return Err(ZkError::ConnectionLoss),
                        Err(e) => return Err(e),
                    }
                }
                Ok(())
            }
        })
        .await
    }

    async fn watch(&self, leader_version: Option<i64>, timeout: Duration) -> bool {
        if self.state.lock().is_ok_and(|s| s.ttl_changed) {
            return true;
        }
        // Replicas wait a little longer so that they run after the leader.
        let timeout = if leader_version.is_some() {
            timeout + Duration::from_millis(500)
        } else {
            timeout
        };
        tokio::time::timeout(timeout, self.watches.wake.notified())
            .await
            .is_ok()
    }
}
