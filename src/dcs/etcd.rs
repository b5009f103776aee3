//! etcd with the v2 API, over HTTP (`/v2/keys`).
//!
//! The same keys and values as Patroni's `etcd` backend: `leader` and
//! `members/<name>` are TTL keys (the member key is rewritten with its TTL
//! every loop), the leader key is created with `prevExist=false`, refreshed
//! with `prevValue=<name>` and released with a compare-and-delete on the
//! same; `config`, `failover` and `sync` use `prevIndex` compare-and-set
//! (`prevIndex=0` is unconditional). Replicas watch the leader key with
//! `wait=true&waitIndex=` so that a vanished or changed leader wakes them at
//! once.
//!
//! Endpoints: every configured host is tried in turn when one does not
//! answer; the one that answered is used first next time.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use serde_json::Value;

use super::settings::EtcdConnection;
use super::{Dcs, DcsError, DcsResult, KeyPaths, Timing};
use crate::model::cluster::RawNode;
use crate::model::Cluster;

#[derive(Debug)]
struct State {
    timing: Timing,
    /// Index into the endpoint list of the host that last answered.
    current: usize,
    /// Set when `ttl` changed: the next `watch` returns at once.
    ttl_changed: bool,
    /// The last cluster read found the leader key holding our name: the
    /// etcd index to watch `members/` from (see [`Etcd::watch_new_members`]).
    members_from: Option<i64>,
}

pub struct Etcd {
    paths: KeyPaths,
    settings: EtcdConnection,
    http: reqwest::Client,
    state: Mutex<State>,
}

/// An etcd v2 error body: `{"errorCode":101,"message":"Compare failed",...}`.
fn etcd_error(body: &Value) -> Option<(i64, String)> {
    let code = body.get("errorCode")?.as_i64()?;
    let message = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    Some((code, message))
}

/// One stored leaf: (relative key, value, modifiedIndex, ttl).
type Leaf = (String, String, i64, Option<i64>);

fn collect_leaves(node: &Value, paths: &KeyPaths, out: &mut Vec<Leaf>) {
    if node.get("dir").and_then(Value::as_bool) == Some(true) {
        if let Some(children) = node.get("nodes").and_then(Value::as_array) {
            for child in children {
                collect_leaves(child, paths, out);
            }
        }
        return;
    }
    let Some(key) = node.get("key").and_then(Value::as_str) else {
        return;
    };
    let Some(rel) = paths.relative(key) else {
        return;
    };
    out.push((
        rel.to_owned(),
        node.get("value")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned(),
        node.get("modifiedIndex")
            .and_then(Value::as_i64)
            .unwrap_or(0),
        node.get("ttl").and_then(Value::as_i64),
    ));
}

enum Method {
    Get,
    Put,
    Delete,
}

impl Etcd {
    pub fn new(paths: KeyPaths, settings: EtcdConnection, timing: Timing) -> DcsResult<Etcd> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .pool_idle_timeout(Duration::from_secs(60))
            .user_agent(format!("Patroni/{} Rust", crate::PATRONI_VERSION));
        if let Some(ca) = &settings.cacert {
            let pem = std::fs::read(ca)
                .map_err(|e| DcsError::Other(format!("cannot read etcd cacert {ca}: {e}")))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .map_err(|e| DcsError::Other(format!("bad etcd cacert {ca}: {e}")))?;
            builder = builder.add_root_certificate(cert);
        }
        if let (Some(cert), Some(key)) = (&settings.cert, &settings.key) {
            let mut pem = std::fs::read(cert)
                .map_err(|e| DcsError::Other(format!("cannot read etcd cert {cert}: {e}")))?;
            pem.extend(
                std::fs::read(key)
                    .map_err(|e| DcsError::Other(format!("cannot read etcd key {key}: {e}")))?,
            );
            let identity = reqwest::Identity::from_pem(&pem)
                .map_err(|e| DcsError::Other(format!("bad etcd client certificate: {e}")))?;
            builder = builder.identity(identity);
        }
        let http = builder
            .build()
            .map_err(|e| DcsError::Other(format!("etcd HTTP client: {e}")))?;
        if settings.hosts.is_empty() {
            return Err(DcsError::Other("etcd: no hosts configured".into()));
        }
        Ok(Etcd {
            paths,
            settings,
            http,
            state: Mutex::new(State {
                timing,
                current: 0,
                ttl_changed: false,
                members_from: None,
            }),
        })
    }

    fn timing(&self) -> Timing {
        self.state.lock().map(|s| s.timing).unwrap_or_default()
    }

    fn base_urls(&self) -> Vec<String> {
        let scheme = if self.settings.protocol == "https" {
            "https"
        } else {
            "http"
        };
        self.settings
            .hosts
            .iter()
            .map(|h| {
                let h = h.trim_end_matches('/');
                if h.contains("://") {
                    h.to_owned()
                } else {
                    format!("{scheme}://{h}")
                }
            })
            .collect()
    }

    /// One request to `/v2/keys<key>`, trying each endpoint in turn until
    /// one answers or the retry deadline passes. Returns the HTTP status,
    /// the `X-Etcd-Index` header and the JSON body.
    async fn request(
        &self,
        method: Method,
        key: &str,
        params: &[(&str, String)],
        timeout: Option<Duration>,
    ) -> DcsResult<(u16, i64, Value)> {
        let urls = self.base_urls();
        let retry_timeout = self.timing().retry_timeout;
        let deadline =
            Instant::now() + timeout.unwrap_or(retry_timeout) + Duration::from_millis(500);
        let per_request = timeout
            .unwrap_or(retry_timeout / 2)
            .max(Duration::from_millis(500));
        let mut index = self.state.lock().map(|s| s.current).unwrap_or(0);
        let mut last_error = String::from("no endpoint tried");
        let mut delay = Duration::from_millis(50);
        while Instant::now() < deadline {
            let base = &urls[index % urls.len()];
            let url = format!("{base}/v2/keys{key}");
            let mut req = match method {
                Method::Get => self.http.get(&url).query(params),
                Method::Delete => self.http.delete(&url).query(params),
                Method::Put => self.http.put(&url).form(params),
            };
            if let (Some(u), Some(p)) = (&self.settings.username, &self.settings.password) {
                req = req.basic_auth(u, Some(p));
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            match req
                .timeout(per_request.min(remaining.max(Duration::from_millis(100))))
                .send()
                .await
            {
                Ok(resp) => {
                    if let Ok(mut s) = self.state.lock() {
                        s.current = index % urls.len();
                    }
                    let status = resp.status().as_u16();
                    let etcd_index = resp
                        .headers()
                        .get("x-etcd-index")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(0);
                    let text = resp
                        .text()
                        .await
                        .map_err(|e| DcsError::Unreachable(e.to_string()))?;
                    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
                    if status >= 500 && etcd_error(&body).is_none_or(|(code, _)| code == 300) {
                        last_error = format!("{base}: HTTP {status}");
                    } else {
                        return Ok((status, etcd_index, body));
                    }
                }
                Err(e) if e.is_timeout() && timeout.is_some() => {
                    // A watch that saw nothing: not an outage.
                    return Ok((408, 0, Value::Null));
                }
                Err(e) => last_error = format!("{base}: {e}"),
            }
            index += 1;
            if index % urls.len() == 0 {
                tokio::time::sleep(delay.min(deadline.saturating_duration_since(Instant::now())))
                    .await;
                delay = (delay * 2).min(Duration::from_secs(1));
            }
        }
        Err(DcsError::Unreachable(last_error))
    }

    /// A write (`PUT`) with etcd's conditions; maps etcd error codes to
    /// [`DcsError`]. Returns the new `modifiedIndex`.
    async fn write(
        &self,
        relative: &str,
        value: &str,
        conditions: &[(&str, String)],
    ) -> DcsResult<i64> {
        let mut params: Vec<(&str, String)> = vec![("value", value.to_owned())];
        params.extend(conditions.iter().cloned());
        let (status, _, body) = self
            .request(Method::Put, &self.paths.key(relative), &params, None)
            .await?;
        if (200..300).contains(&status) {
            return Ok(body
                .pointer("/node/modifiedIndex")
                .and_then(Value::as_i64)
                .unwrap_or(0));
        }
        Err(Self::status_error(status, &body))
    }

    fn status_error(status: u16, body: &Value) -> DcsError {
        match etcd_error(body) {
            // 101 compare failed, 105 key already exists
            Some((101 | 105, _)) => DcsError::CasFailed,
            Some((100, m)) => DcsError::NotFound(m),
            Some((code, m)) => DcsError::Other(format!("etcd error {code}: {m}")),
            None => DcsError::Other(format!("etcd answered HTTP {status}")),
        }
    }

    async fn delete(&self, relative: &str, conditions: &[(&str, String)]) -> DcsResult<()> {
        let key = if relative.is_empty() {
            self.paths.prefix().trim_end_matches('/').to_owned()
        } else {
            self.paths.key(relative)
        };
        let (status, _, body) = self.request(Method::Delete, &key, conditions, None).await?;
        if (200..300).contains(&status) {
            Ok(())
        } else {
            Err(Self::status_error(status, &body))
        }
    }

    fn ttl(&self) -> String {
        self.timing().ttl.as_secs().to_string()
    }
}

#[async_trait]
impl Dcs for Etcd {
    fn set_timing(&self, timing: Timing) {
        if let Ok(mut s) = self.state.lock() {
            if s.timing.ttl != timing.ttl {
                s.ttl_changed = true;
            }
            s.timing = timing;
        }
    }

    async fn get_cluster(&self) -> DcsResult<Cluster> {
        let base = self.paths.prefix().trim_end_matches('/').to_owned();
        let (status, etcd_index, body) = self
            .request(Method::Get, &base, &[("recursive", "true".into())], None)
            .await?;
        if status == 404 {
            return Ok(Cluster::default());
        }
        if !(200..300).contains(&status) {
            return Err(Self::status_error(status, &body));
        }
        let mut leaves = Vec::new();
        if let Some(node) = body.get("node") {
            collect_leaves(node, &self.paths, &mut leaves);
        }
        let leading = leaves
            .iter()
            .any(|(key, value, _, _)| key == "leader" && value == self.paths.name());
        if let Ok(mut s) = self.state.lock() {
            s.members_from = leading.then_some(etcd_index + 1);
        }
        let sessions: Vec<Option<String>> =
            leaves.iter().map(|l| l.3.map(|t| t.to_string())).collect();
        let nodes = leaves
            .iter()
            .zip(&sessions)
            .map(|((key, value, index, _), ttl)| {
                // The leader's version is the index to watch from (Patroni: the
                // cluster index when newer than the key, else the key's + 1).
                let version = if key == "leader" {
                    Some(if etcd_index > *index {
                        etcd_index
                    } else {
                        index + 1
                    })
                } else {
                    Some(*index)
                };
                RawNode {
                    key,
                    value,
                    version,
                    session: ttl.as_deref(),
                }
            });
        Ok(Cluster::from_raw_nodes(nodes))
    }

    async fn initialize(&self, create_new: bool, sysid: &str) -> DcsResult<()> {
        let prev_exist = if create_new { "false" } else { "true" };
        self.write("initialize", sysid, &[("prevExist", prev_exist.into())])
            .await
            .map(|_| ())
    }

    async fn cancel_initialization(&self) -> DcsResult<()> {
        self.delete("initialize", &[]).await
    }

    async fn attempt_to_acquire_leader(&self) -> DcsResult<bool> {
        match self
            .write(
                "leader",
                self.paths.name(),
                &[("ttl", self.ttl()), ("prevExist", "false".into())],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(DcsError::CasFailed) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn update_leader(&self, _cluster: &Cluster) -> DcsResult<bool> {
        let name = self.paths.name();
        match self
            .write(
                "leader",
                name,
                &[("ttl", self.ttl()), ("prevValue", name.to_owned())],
            )
            .await
        {
            Ok(_) => Ok(true),
            Err(DcsError::CasFailed) => Ok(false),
            // The key expired: take it again if nobody else did.
            Err(DcsError::NotFound(_)) => self.attempt_to_acquire_leader().await,
            Err(e) => Err(e),
        }
    }

    async fn delete_leader(&self) -> DcsResult<bool> {
        match self
            .delete("leader", &[("prevValue", self.paths.name().to_owned())])
            .await
        {
            Ok(()) => Ok(true),
            Err(DcsError::CasFailed | DcsError::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn touch_member(&self, _cluster: Option<&Cluster>, value: &str) -> DcsResult<()> {
        let member = format!("members/{}", self.paths.name());
        self.write(&member, value, &[("ttl", self.ttl())])
            .await
            .map(|_| ())
    }

    async fn set_config_value(&self, value: &str, version: Option<i64>) -> DcsResult<()> {
        self.write(
            "config",
            value,
            &[("prevIndex", version.unwrap_or(0).to_string())],
        )
        .await
        .map(|_| ())
    }

    async fn set_failover_value(&self, value: &str, version: Option<i64>) -> DcsResult<()> {
        self.write(
            "failover",
            value,
            &[("prevIndex", version.unwrap_or(0).to_string())],
        )
        .await
        .map(|_| ())
    }

    async fn set_sync_state_value(&self, value: &str, version: Option<i64>) -> DcsResult<i64> {
        self.write(
            "sync",
            value,
            &[("prevIndex", version.unwrap_or(0).to_string())],
        )
        .await
    }

    async fn delete_sync_state(&self, version: Option<i64>) -> DcsResult<()> {
        self.delete("sync", &[("prevIndex", version.unwrap_or(0).to_string())])
            .await
    }

    async fn set_history_value(&self, value: &str) -> DcsResult<()> {
        self.write("history", value, &[]).await.map(|_| ())
    }

    async fn write_status(&self, value: &str) -> DcsResult<()> {
        self.write("status", value, &[]).await.map(|_| ())
    }

    async fn write_failsafe(&self, value: &str) -> DcsResult<()> {
        self.write("failsafe", value, &[]).await.map(|_| ())
    }

    async fn delete_cluster(&self) -> DcsResult<()> {
        match self.delete("", &[("recursive", "true".into())]).await {
            Err(DcsError::NotFound(_)) => Ok(()),
            other => other,
        }
    }

    async fn watch(&self, leader_version: Option<i64>, timeout: Duration) -> bool {
        if let Ok(mut s) = self.state.lock() {
            if s.ttl_changed {
                s.ttl_changed = false;
                return true;
            }
        }
        let started = Instant::now();
        let members_from = self.state.lock().ok().and_then(|s| s.members_from);
        if let (None, Some(from)) = (leader_version, members_from) {
            if timeout >= Duration::from_secs(1) {
                return self.watch_new_members(from, started + timeout).await;
            }
        }
        if let Some(index) = leader_version.filter(|_| timeout >= Duration::from_secs(1)) {
            let params = [
                ("wait", "true".to_owned()),
                ("waitIndex", index.to_string()),
            ];
            let wait = timeout + Duration::from_millis(500);
            match self
                .request(Method::Get, &self.paths.leader(), &params, Some(wait))
                .await
            {
                Ok((408, _, _)) => return false,
                Ok((status, _, body)) if (200..300).contains(&status) => {
                    if body.get("action").and_then(Value::as_str) == Some("compareAndSwap") {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                    return true;
                }
                // 401 "event index cleared": the same watch would fail again.
                Ok(_) => return true,
                Err(_) => {}
            }
        }
        tokio::time::sleep(timeout.saturating_sub(started.elapsed())).await;
        false
    }
}

impl Etcd {
    /// The leader's wait: woken early only when a member key is created
    /// (a new replica, whose slot the leader should make before the
    /// replica's first attempt to stream), as on etcd3. Refreshes of
    /// existing member keys (every member rewrites its key each loop on
    /// etcd v2) are skipped over until `deadline`.
    async fn watch_new_members(&self, mut from: i64, deadline: Instant) -> bool {
        let members = self.paths.key("members");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left < Duration::from_millis(100) {
                return false;
            }
            let params = [
                ("wait", "true".to_owned()),
                ("recursive", "true".to_owned()),
                ("waitIndex", from.to_string()),
            ];
            match self
                .request(Method::Get, &members, &params, Some(left))
                .await
            {
                Ok((status, _, body)) if (200..300).contains(&status) => {
                    if is_new_key(&body) {
                        if let Ok(mut s) = self.state.lock() {
                            s.members_from = None;
                        }
                        return true;
                    }
                    match body.pointer("/node/modifiedIndex").and_then(Value::as_i64) {
                        Some(index) => from = index + 1,
                        None => break,
                    }
                }
                // A timeout (408), "event index cleared" or an error:
                // fall back to sleeping out the loop.
                _ => break,
            }
        }
        tokio::time::sleep(deadline.saturating_duration_since(Instant::now())).await;
        false
    }
}

/// A watch event that created a key (no previous node).
fn is_new_key(event: &Value) -> bool {
    matches!(
        event.get("action").and_then(Value::as_str),
        Some("set" | "create")
    ) && event.get("prevNode").is_none()
}
