//! etcd with the v3 API, over native gRPC.
//!
//! Same keys and values as Patroni's `etcd3` backend (which uses the JSON
//! gateway): one lease per node with TTL = `ttl`, shared by the leader key
//! (while held) and the member key, refreshed by keepalive once per loop.
//! Leader acquire is a transaction on `create_revision == 0`; release and
//! re-binding compare the value with our name; CAS on other keys compares
//! `mod_revision`.
//!
//! A background task watches the cluster prefix and keeps a cache of every
//! key, so a loop's [`Dcs::get_cluster`] costs no round trip while the watch
//! is healthy (as in Patroni), and the HA loop is woken when the leader key
//! changes, or the status/config changes. When the watch is broken, reads
//! go straight to etcd.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions, Identity,
    PutOptions, TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use tokio::sync::Notify;

use super::settings::EtcdConnection;
mod watch;

use self::watch::{snapshot, watch_loop, Cache, CachedKv};
use super::{Dcs, DcsError, DcsResult, KeyPaths, Timing};
use crate::model::Cluster;

#[derive(Debug)]
struct LeaseState {
    id: Option<i64>,
    last_refresh: Option<Instant>,
    timing: Timing,
    /// Set when `ttl` changed: the next refresh grants a new lease and the
    /// next `watch` returns at once (Patroni does the same).
    ttl_changed: bool,
}

pub struct Etcd3 {
    paths: KeyPaths,
    settings: EtcdConnection,
    client: tokio::sync::Mutex<Option<Client>>,
    lease: Mutex<LeaseState>,
    cache: Arc<Mutex<Cache>>,
    wake: Arc<Notify>,
    watcher: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Drop for Etcd3 {
    fn drop(&mut self) {
        if let Ok(mut w) = self.watcher.lock() {
            if let Some(handle) = w.take() {
                handle.abort();
            }
        }
    }
}

fn classify(e: etcd_client::Error) -> DcsError {
    use etcd_client::Error as E;
    match e {
        E::GRpcStatus(status) => {
            let msg = status.message().to_owned();
            if msg.contains("lease not found") {
                DcsError::NotFound("lease".into())
            } else {
                match status.code() {
                    tonic_code::Unavailable
                    | tonic_code::DeadlineExceeded
                    | tonic_code::Cancelled
                    | tonic_code::Unknown
                    | tonic_code::Aborted
                    | tonic_code::ResourceExhausted => DcsError::Unreachable(msg),
                    _ => DcsError::Other(msg),
                }
            }
        }
        E::TransportError(t) => DcsError::Unreachable(t.to_string()),
        E::IoError(io) => DcsError::Unreachable(io.to_string()),
        E::LeaseKeepAliveError(m) => DcsError::NotFound(format!("lease: {m}")),
        other => DcsError::Other(other.to_string()),
    }
}

mod tonic_code {
    pub use tonic::Code::*;
}

fn retryable(e: &DcsError) -> bool {
    matches!(e, DcsError::Unreachable(_))
}

impl Etcd3 {
    /// A backend for member `paths.name()`. Connects lazily: nothing here
    /// touches the network.
    pub fn new(paths: KeyPaths, settings: EtcdConnection, timing: Timing) -> Etcd3 {
        Etcd3 {
            paths,
            settings,
            client: tokio::sync::Mutex::new(None),
            lease: Mutex::new(LeaseState {
                id: None,
                last_refresh: None,
                timing,
                ttl_changed: false,
            }),
            cache: Arc::new(Mutex::new(Cache::default())),
            wake: Arc::new(Notify::new()),
            watcher: Mutex::new(None),
        }
    }

    fn timing(&self) -> Timing {
        self.lease.lock().map(|l| l.timing).unwrap_or_default()
    }

    fn endpoints(&self) -> Vec<String> {
        let scheme = if self.settings.protocol == "https" || self.settings.cacert.is_some() {
            "https"
        } else {
            "http"
        };
        self.settings
            .hosts
            .iter()
            .map(|h| {
                if h.contains("://") {
                    h.clone()
                } else {
                    format!("{scheme}://{h}")
                }
            })
            .collect()
    }

    fn connect_options(&self) -> DcsResult<ConnectOptions> {
        let t = self.timing();
        let mut opts = ConnectOptions::new()
            .with_connect_timeout(t.retry_timeout.min(Duration::from_secs(5)))
            .with_timeout(t.retry_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5));
        if let (Some(u), Some(p)) = (&self.settings.username, &self.settings.password) {
            opts = opts
                .with_user(u.clone(), p.clone())
                .with_auto_token_refresh(true);
        }
        let https = self.endpoints().iter().any(|e| e.starts_with("https://"));
        if https {
            let mut tls = TlsOptions::new();
            if let Some(ca) = &self.settings.cacert {
                let pem = std::fs::read(ca)
                    .map_err(|e| DcsError::Other(format!("cannot read etcd3 cacert {ca}: {e}")))?;
                tls = tls.ca_certificate(Certificate::from_pem(pem));
            }
            if let (Some(cert), Some(key)) = (&self.settings.cert, &self.settings.key) {
                let c = std::fs::read(cert)
                    .map_err(|e| DcsError::Other(format!("cannot read etcd3 cert {cert}: {e}")))?;
                let k = std::fs::read(key)
                    .map_err(|e| DcsError::Other(format!("cannot read etcd3 key {key}: {e}")))?;
                tls = tls.identity(Identity::from_pem(c, k));
            }
            opts = opts.with_tls(tls);
        }
        Ok(opts)
    }

    /// The connected client, connecting on first use.
    async fn client(&self) -> DcsResult<Client> {
        let mut guard = self.client.lock().await;
        if let Some(c) = guard.as_ref() {
            return Ok(c.clone());
        }
        let endpoints = self.endpoints();
        if endpoints.is_empty() {
            return Err(DcsError::Other("etcd3: no hosts configured".into()));
        }
        let opts = self.connect_options()?;
        let client = Client::connect(endpoints, Some(opts))
            .await
            .map_err(classify)?;
        *guard = Some(client.clone());
        drop(guard);
        self.start_watcher(client.clone());
        Ok(client)
    }

    /// Run `op` until it succeeds, fails for a non-transient reason, or the
    /// retry deadline passes.
    async fn retry<T, F, Fut>(&self, what: &str, mut op: F) -> DcsResult<T>
    where
        F: FnMut(Client) -> Fut,
        Fut: std::future::Future<Output = DcsResult<T>>,
    {
        let deadline = Instant::now() + self.timing().retry_timeout;
        let mut delay = Duration::from_millis(50);
        loop {
            let attempt = async {
                let client = self.client().await?;
                op(client).await
            };
            let remaining = deadline.saturating_duration_since(Instant::now());
            let result = match tokio::time::timeout(remaining, attempt).await {
                Ok(r) => r,
                Err(_) => Err(DcsError::Unreachable(format!("{what}: timed out"))),
            };
            match result {
                Err(e) if retryable(&e) && Instant::now() + delay < deadline => {
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(1));
                }
                Err(DcsError::Unreachable(m)) => {
                    return Err(DcsError::Unreachable(format!("{what}: {m}")))
                }
                other => return other,
            }
        }
    }

    fn set_lease(&self, id: Option<i64>) {
        if let Ok(mut l) = self.lease.lock() {
            l.id = id;
            l.last_refresh = id.map(|_| Instant::now());
        }
    }

    /// Keep our lease alive, granting a new one when it is missing or the
    /// TTL changed. Unless `force`, does nothing when refreshed less than a
    /// loop ago. Returns the lease id.
    async fn refresh_lease(&self, force: bool) -> DcsResult<i64> {
        let (id, fresh, ttl) = {
            let mut l = self
                .lease
                .lock()
                .map_err(|_| DcsError::Other("lease state poisoned".into()))?;
            if l.ttl_changed {
                l.id = None;
                l.ttl_changed = false;
            }
            let fresh = l
                .last_refresh
                .is_some_and(|t| t.elapsed() < l.timing.loop_wait);
            (l.id, fresh, l.timing.ttl.as_secs() as i64)
        };
        if let Some(id) = id {
            if fresh && !force {
                return Ok(id);
            }
            let alive = self
                .retry("lease keepalive", |mut c| async move {
                    let (mut keeper, mut stream) =
                        c.lease_keep_alive(id).await.map_err(classify)?;
                    keeper.keep_alive().await.map_err(classify)?;
                    match stream.message().await.map_err(classify)? {
                        Some(resp) => Ok(resp.ttl() > 0),
                        None => Err(DcsError::Unreachable("keepalive stream closed".into())),
                    }
                })
                .await;
            let alive = match alive {
                Ok(alive) => alive,
                Err(e @ DcsError::NotFound(_)) => {
                    // The lease expired (an outage longer than ttl): forget
                    // it, so that the next call grants a new one instead of
                    // failing on the dead id forever.
                    self.set_lease(None);
                    return Err(e);
                }
                Err(e) => return Err(e),
            };
            if alive {
                self.set_lease(Some(id));
                return Ok(id);
            }
        }
        let granted = self
            .retry("lease grant", |mut c| async move {
                c.lease_grant(ttl, None)
                    .await
                    .map_err(classify)
                    .map(|r| r.id())
            })
            .await?;
        self.set_lease(Some(granted));
        Ok(granted)
    }

    /// Record our own successful write in the cache (see [`Cache::put`]).
    fn cache_put(&self, key: &str, value: &str, revision: i64, lease: i64) {
        if let (Some(rel), Ok(mut c)) = (self.paths.relative(key), self.cache.lock()) {
            c.put(rel, value, revision, lease);
        }
    }

    /// Record our own successful delete at `revision` (see
    /// [`Cache::delete`]).
    fn cache_delete(&self, key: &str, revision: i64) {
        if let (Some(rel), Ok(mut c)) = (self.paths.relative(key), self.cache.lock()) {
            c.delete(rel, revision);
        }
    }

    /// Put `value` at `key`, optionally only if `mod_revision == version`
    /// (0 means "absent") and bound to `lease`. Returns the new revision, or
    /// `CasFailed`.
    async fn put(
        &self,
        key: String,
        value: String,
        version: Option<i64>,
        lease: Option<i64>,
    ) -> DcsResult<i64> {
        let (k, v) = (key.clone(), value.clone());
        let revision = self
            .retry("put", move |mut c| {
                let (k, v) = (k.clone(), v.clone());
                async move {
                    let opts = lease.map(|l| PutOptions::new().with_lease(l));
                    match version {
                        None => {
                            let resp = c.put(k, v, opts).await.map_err(classify)?;
                            Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
                        }
                        Some(ver) => {
                            let compare = if ver == 0 {
                                Compare::create_revision(k.clone(), CompareOp::Equal, 0)
                            } else {
                                Compare::mod_revision(k.clone(), CompareOp::Equal, ver)
                            };
                            let txn = Txn::new()
                                .when([compare])
                                .and_then([TxnOp::put(k, v, opts)]);
                            let resp = c.txn(txn).await.map_err(classify)?;
                            if !resp.succeeded() {
                                return Err(DcsError::CasFailed);
                            }
                            Ok(resp.header().map(|h| h.revision()).unwrap_or(0))
                        }
                    }
                }
            })
            .await?;
        self.cache_put(&key, &value, revision, lease.unwrap_or(0));
        Ok(revision)
    }

    async fn delete(&self, key: String, version: Option<i64>, prefix: bool) -> DcsResult<()> {
        let k = key.clone();
        let revision = self
            .retry("delete", move |mut c| {
                let k = k.clone();
                async move {
                    let opts = prefix.then(|| DeleteOptions::new().with_prefix());
                    match version {
                        None => c
                            .delete(k, opts)
                            .await
                            .map(|r| r.header().map_or(0, |h| h.revision()))
                            .map_err(classify),
                        Some(ver) => {
                            let txn = Txn::new()
                                .when([Compare::mod_revision(k.clone(), CompareOp::Equal, ver)])
                                .and_then([TxnOp::delete(k, opts)]);
                            let resp = c.txn(txn).await.map_err(classify)?;
                            if resp.succeeded() {
                                Ok(resp.header().map_or(0, |h| h.revision()))
                            } else {
                                Err(DcsError::CasFailed)
                            }
                        }
                    }
                }
            })
            .await?;
        if prefix {
            if let Ok(mut c) = self.cache.lock() {
                c.kvs.clear();
            }
        } else {
            self.cache_delete(&key, revision);
        }
        Ok(())
    }

    /// Read the whole prefix straight from etcd.
    async fn read_prefix(&self) -> DcsResult<(i64, Vec<(String, CachedKv)>)> {
        let prefix = self.paths.prefix();
        let paths = self.paths.clone();
        self.retry("get_cluster", move |mut c| {
            let prefix = prefix.clone();
            let paths = paths.clone();
            async move {
                let resp = c
                    .get(prefix, Some(GetOptions::new().with_prefix()))
                    .await
                    .map_err(classify)?;
                let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                let kvs = resp
                    .kvs()
                    .iter()
                    .filter_map(|kv| CachedKv::from_kv(kv, &paths))
                    .collect();
                Ok((revision, kvs))
            }
        })
        .await
    }

    fn start_watcher(&self, client: Client) {
        let Ok(mut slot) = self.watcher.lock() else {
            return;
        };
        if slot.as_ref().is_some_and(|h| !h.is_finished()) {
            return;
        }
        let cache = Arc::clone(&self.cache);
        let wake = Arc::clone(&self.wake);
        let paths = self.paths.clone();
        *slot = Some(tokio::spawn(watch_loop(client, paths, cache, wake)));
    }
}

#[async_trait]
impl Dcs for Etcd3 {
    fn set_timing(&self, timing: Timing) {
        if let Ok(mut l) = self.lease.lock() {
            if l.timing.ttl != timing.ttl {
                l.ttl_changed = true;
            }
            l.timing = timing;
        }
    }

    async fn get_cluster(&self) -> DcsResult<Cluster> {
        // Make sure we are connected (which starts the watcher).
        self.client().await?;
        if let Ok(c) = self.cache.lock() {
            if c.ready {
                return Ok(snapshot(&c.kvs));
            }
        }
        let (_, kvs) = self.read_prefix().await?;
        let map: BTreeMap<String, CachedKv> = kvs.into_iter().collect();
        Ok(snapshot(&map))
    }

    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        let version = create_new.then_some(0);
        self.put(
            self.paths.key("initialize"),
            sysid.to_owned(),
            version,
            None,
        )
        .await
        .map(|_| ())
    }

    async fn cancel_initialization(&self) -> DcsResult<()> {
        self.delete(self.paths.key("initialize"), None, false).await
    }

    async fn attempt_to_acquire_leader(&self) -> DcsResult<bool> {
        let mut lease = self.refresh_lease(false).await?;
        for attempt in 0..2 {
            match self
                .put(
                    self.paths.leader(),
                    self.paths.name().to_owned(),
                    Some(0),
                    Some(lease),
                )
                .await
            {
                Ok(_) => return Ok(true),
                Err(DcsError::CasFailed) => return Ok(false),
                Err(DcsError::NotFound(_)) if attempt == 0 => {
                    // Our lease vanished (etcd restarted, or it expired):
                    // take a new one and try once more.
                    self.set_lease(None);
                    lease = self.refresh_lease(true).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(false)
    }

    async fn update_leader(&self, cluster: &Cluster) -> DcsResult<bool> {
        let lease = match self.refresh_lease(true).await {
            Ok(l) => l,
            Err(DcsError::NotFound(_)) => {
                self.set_lease(None);
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        let bound = cluster.leader.as_ref().is_some_and(|l| {
            l.name == self.paths.name() && l.session.as_deref() == Some(&lease.to_string())
        });
        if bound {
            return Ok(true);
        }
        // Re-bind the key to our current lease if it still holds our name,
        // or create it if it vanished.
        let key = self.paths.leader();
        let name = self.paths.name().to_owned();
        let (k, n) = (key.clone(), name.clone());
        let (ok, revision) = self
            .retry("update_leader", move |mut c| {
                let (k, n) = (k.clone(), n.clone());
                async move {
                    let put = TxnOp::put(
                        k.clone(),
                        n.clone(),
                        Some(PutOptions::new().with_lease(lease)),
                    );
                    let create = Txn::new()
                        .when([Compare::create_revision(k.clone(), CompareOp::Equal, 0)])
                        .and_then([put.clone()]);
                    let txn = Txn::new()
                        .when([Compare::value(k.clone(), CompareOp::Equal, n)])
                        .and_then([put])
                        .or_else([TxnOp::txn(create)]);
                    let resp = c.txn(txn).await.map_err(classify)?;
                    let revision = resp.header().map(|h| h.revision()).unwrap_or(0);
                    if resp.succeeded() {
                        return Ok((true, revision));
                    }
                    let nested = resp.op_responses().into_iter().any(|r| match r {
                        TxnOpResponse::Txn(t) => t.succeeded(),
                        _ => false,
                    });
                    Ok((nested, revision))
                }
            })
            .await?;
        if ok {
            self.cache_put(&key, &name, revision, lease);
        }
        Ok(ok)
    }

    async fn delete_leader(&self) -> DcsResult<bool> {
        let key = self.paths.leader();
        let name = self.paths.name().to_owned();
        let (k, n) = (key.clone(), name);
        let deleted_at = self
            .retry("delete_leader", move |mut c| {
                let (k, n) = (k.clone(), n.clone());
                async move {
                    let txn = Txn::new()
                        .when([Compare::value(k.clone(), CompareOp::Equal, n)])
                        .and_then([TxnOp::delete(k, None)]);
                    c.txn(txn)
                        .await
                        .map(|r| {
                            r.succeeded()
                                .then(|| r.header().map_or(0, |h| h.revision()))
                        })
                        .map_err(classify)
                }
            })
            .await?;
        if let Some(revision) = deleted_at {
            self.cache_delete(&key, revision);
        }
        Ok(deleted_at.is_some())
    }

    async fn touch_member(&self, cluster: Option<&Cluster>, value: &str) -> DcsResult<()> {
        let lease = self.refresh_lease(false).await?;
        let unchanged = cluster
            .and_then(|c| c.member(self.paths.name()))
            .is_some_and(|m| {
                m.session.as_deref() == Some(&lease.to_string())
                    && serde_json::from_str::<serde_json::Value>(value).ok()
                        == Some(serde_json::Value::Object(m.data.clone()))
            });
        if unchanged {
            return Ok(());
        }
        match self
            .put(self.paths.member(), value.to_owned(), None, Some(lease))
            .await
        {
            Err(DcsError::NotFound(m)) => {
                self.set_lease(None);
                Err(DcsError::NotFound(m))
            }
            other => other.map(|_| ()),
        }
    }

    async fn set_config_value(&self, value: &str, version: Option<i64>) -> DcsResult<()> {
        self.put(
            self.paths.key("config"),
            value.to_owned(),
            version.filter(|v| *v != 0),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn set_failover_value(&self, value: &str, version: Option<i64>) -> DcsResult<()> {
        self.put(
            self.paths.key("failover"),
            value.to_owned(),
            version.filter(|v| *v != 0),
            None,
        )
        .await
        .map(|_| ())
    }

    async fn set_sync_state_value(&self, value: &str, version: Option<i64>) -> DcsResult<i64> {
        self.put(
            self.paths.key("sync"),
            value.to_owned(),
            version.filter(|v| *v != 0),
            None,
        )
        .await
    }

    async fn delete_sync_state(&self, version: Option<i64>) -> DcsResult<()> {
        self.delete(self.paths.key("sync"), version.filter(|v| *v != 0), false)
            .await
    }

    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.put(self.paths.key("history"), value.to_owned(), None, None)
            .await
            .map(|_| ())
    }

    async fn write_status(&self, value: &str) -> DcsResult<()> {
        self.put(self.paths.key("status"), value.to_owned(), None, None)
            .await
            .map(|_| ())
    }

    async fn write_failsafe(&self, value: &str) -> DcsResult<()> {
        self.put(self.paths.key("failsafe"), value.to_owned(), None, None)
            .await
            .map(|_| ())
    }

    async fn delete_cluster(&self) -> DcsResult<()> {
        self.delete(self.paths.prefix(), None, true).await
    }

    async fn watch(&self, leader_version: Option<i64>, timeout: Duration) -> bool {
        if let Ok(mut l) = self.lease.lock() {
            l.last_refresh = None; // refresh the lease on the next cycle
            if l.ttl_changed {
                return true;
            }
        }
        // Replicas wait a little longer so that they run after the leader.
        let timeout = if leader_version.is_some() {
            timeout + Duration::from_millis(500)
        } else {
            timeout
        };
        tokio::time::timeout(timeout, self.wake.notified())
            .await
            .is_ok()
    }
}
