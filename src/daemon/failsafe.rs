//! DCS failsafe mode, the executor's half (the decisions are in
//! [`crate::ha::decide::failsafe`]).
//!
//! - The leader keeps the `/failsafe` key current after each refresh of
//!   its leader key.
//! - When the DCS cannot be read, the primary `POST`s `/failsafe` to every
//!   member of that topology at once and keeps running only if all of
//!   them answer `200 Accepted`.
//! - A member receiving that `POST` remembers the leader for `ttl`
//!   seconds: meanwhile it reports `failsafe_mode_is_active`, and if the
//!   DCS shows no leader it keeps following that one instead of racing.
//!
//! [`FailsafeState`] is shared between the HA loop and the REST API (which
//! answers the `POST`s between cycles), hence the mutex.

use std::sync::Mutex;
use std::time::Duration;

use serde_json::{json, Map, Value};
use tokio::time::Instant;

use crate::ha::decide::failsafe::{self, FailsafePeer};
use crate::ha::decide::LocalPg;
use crate::model::{Cluster, Leader, Member};

use super::Daemon;

/// Timeout of one `POST /failsafe` attempt (Patroni's).
const POST_TIMEOUT: Duration = Duration::from_secs(2);

/// The leader that last asked us to accept it, from its `POST /failsafe`.
#[derive(Debug, Clone, PartialEq)]
pub struct FailsafeLeader {
    pub name: String,
    pub conn_url: String,
    pub api_url: String,
    /// The leader's replication slots and their positions, as sent.
    pub slots: Option<Value>,
}

#[derive(Debug, Default)]
struct Inner {
    ttl: Duration,
    /// When failsafe mode was last confirmed: a `POST` accepted (member)
    /// or all members accepting (primary). Active for `ttl` after it.
    last_update: Option<Instant>,
    leader: Option<FailsafeLeader>,
    /// PostgreSQL runs as a primary: such a node refuses the `POST`.
    running_primary: bool,
    /// Our last known WAL position, returned in the `lsn` header.
    last_wal_lsn: Option<i64>,
}

/// Failsafe state shared by the HA loop and the REST API.
#[derive(Debug, Default)]
pub struct FailsafeState {
    inner: Mutex<Inner>,
}

/// The leader described by a `POST /failsafe` body, or why it cannot be
/// accepted (`name`, `conn_url` and `api_url` must be strings).
fn leader_from_request(request: &Map<String, Value>) -> Result<FailsafeLeader, String> {
    let text = |key: &str| match request.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "failsafe request: '{key}' must be a string, not {other}"
        )),
        None => Err(format!("failsafe request: '{key}' is missing")),
    };
    Ok(FailsafeLeader {
        name: text("name")?,
        conn_url: text("conn_url")?,
        api_url: text("api_url")?,
        slots: request.get("slots").cloned(),
    })
}

impl FailsafeState {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock leaves plain data behind;
        // carrying on with it is safe.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `POST /failsafe` from the leader: `Ok(lsn)` accepted (with our last
    /// known WAL position for the `lsn` header), `Err(reason)` refused.
    pub fn accept(&self, request: &Map<String, Value>) -> Result<Option<i64>, String> {
        self.accept_at(request, Instant::now())
    }

    fn accept_at(&self, request: &Map<String, Value>, now: Instant) -> Result<Option<i64>, String> {
        let mut inner = self.lock();
        if inner.running_primary {
            return Err("Running as a leader".to_owned());
        }
        let leader = leader_from_request(request)?;
        inner.leader = Some(leader);
        inner.last_update = Some(now);
        Ok(inner.last_wal_lsn)
    }

    /// Failsafe mode is active: confirmed less than `ttl` ago.
    pub fn is_active(&self) -> bool {
        self.is_active_at(Instant::now())
    }

    fn is_active_at(&self, now: Instant) -> bool {
        let inner = self.lock();
        inner
            .last_update
            .is_some_and(|t| now.saturating_duration_since(t) < inner.ttl)
    }

    /// The leader that asked us to accept it, while that is still active.
    pub fn active_leader(&self) -> Option<FailsafeLeader> {
        let now = Instant::now();
        if !self.is_active_at(now) {
            return None;
        }
        self.lock().leader.clone()
    }

    /// The primary kept its role at `at` (all members accepted).
    pub fn held(&self, at: Instant) {
        self.lock().last_update = Some(at);
    }

    /// Failsafe mode no longer applies (the DCS answers our refresh, we
    /// promoted, or we demote): forget everything.
    pub fn reset(&self) {
        let mut inner = self.lock();
        inner.last_update = None;
        inner.leader = None;
    }

    /// What the `POST` handler needs to know about us: the key's ttl,
    /// whether PostgreSQL runs as a primary, our WAL position.
    pub fn observe(&self, ttl: Duration, running_primary: bool, last_wal_lsn: Option<i64>) {
        let mut inner = self.lock();
        inner.ttl = ttl;
        inner.running_primary = running_primary;
        if last_wal_lsn.is_some() {
            inner.last_wal_lsn = last_wal_lsn;
        }
    }
}

/// `<scheme>://<host[:port]>/failsafe` from a member's `api_url` (the path
/// is replaced, as Patroni builds member endpoints).
fn failsafe_url(api_url: &str) -> Option<String> {
    let (scheme, rest) = api_url.split_once("://")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if scheme.is_empty() || host.is_empty() {
        return None;
    }
    Some(format!("{scheme}://{host}/failsafe"))
}

/// `cluster` with the failsafe leader as its leader, when the DCS shows
/// none (Patroni's `Failsafe.update_cluster`). A member the snapshot does
/// not have is added with the addresses the leader sent.
pub fn with_failsafe_leader(mut cluster: Cluster, leader: &FailsafeLeader) -> Cluster {
    if cluster.leader.is_some() || leader.name.is_empty() {
        return cluster;
    }
    if cluster.member(&leader.name).is_none() {
        let data = json!({"conn_url": leader.conn_url, "api_url": leader.api_url});
        cluster
            .members
            .push(Member::from_node(&leader.name, None, &data.to_string()));
    }
    cluster.leader = Some(Leader {
        version: None,
        name: leader.name.clone(),
        session: None,
    });
    cluster
}

impl Daemon {
    /// After a successful refresh of the leader key: bring `/failsafe` up
    /// to date when failsafe mode is on and the topology changed.
    pub(super) async fn write_failsafe_topology(&self, cluster: &Cluster) {
        let Some(value) =
            failsafe::topology_to_write(cluster, &self.cfg.name, &self.cfg.api_url, &self.cfg.ha)
        else {
            return;
        };
        if let Err(e) = self.dcs.write_failsafe(&value).await {
            log::warn!(target: "patroni.ha", "failed to write /failsafe: {e}");
        }
    }

    /// The DCS is unreachable and failsafe mode is on: ask every member to
    /// accept us as the leader. True when all of them did. Remembers when
    /// the asking started, for [`Daemon::hold_primary_in_failsafe`].
    pub(super) async fn ask_failsafe_members(&mut self, peers: &[FailsafePeer]) -> bool {
        self.failsafe_asked_at = Some(Instant::now());
        let slots = self.live_slot_positions().await.map(Value::Object);
        let mut body = Map::new();
        body.insert("name".into(), json!(self.cfg.name));
        body.insert("conn_url".into(), json!(self.cfg.conn_url));
        body.insert("api_url".into(), json!(self.cfg.api_url));
        if let Some(slots) = slots {
            body.insert("slots".into(), slots);
        }
        let body = Value::Object(body);
        let calls: Vec<_> = peers
            .iter()
            .map(|peer| {
                let http = self.http.clone();
                let body = body.clone();
                let peer = peer.clone();
                tokio::spawn(async move { post_one(&http, &peer, &body).await })
            })
            .collect();
        let mut all = true;
        let mut positions = Vec::new();
        for (peer, call) in peers.iter().zip(calls) {
            // A task that panicked did not get an acceptance.
            let (accepted, lsn) = call.await.unwrap_or((false, None));
            all &= accepted;
            if let Some(lsn) = lsn {
                positions.push((peer.name.clone(), lsn));
            }
        }
        if all {
            self.failsafe_positions = positions;
        }
        all
    }

    /// While holding in failsafe mode: keep the primary's slots moving.
    /// Slots kept for members that stream from another replica
    /// (`replicatefrom`) advance to the positions those members reported
    /// in their `lsn` header, which would otherwise come from their member
    /// keys in the DCS.
    pub(super) async fn failsafe_primary_slots(&mut self) {
        let positions = std::mem::take(&mut self.failsafe_positions);
        let (Some(cached), Some(info)) = (self.cluster.clone(), self.pg.last_info.clone()) else {
            return;
        };
        if info.is_in_recovery {
            return;
        }
        let mut view = Cluster::clone(&cached);
        for member in &mut view.members {
            let cascading = crate::model::Tags(&member.tags()).replicatefrom().is_some();
            if let Some((_, lsn)) = positions.iter().find(|(n, _)| *n == member.name) {
                if cascading {
                    member.data.insert("xlog_location".into(), json!(lsn));
                }
            }
        }
        let input = super::slots::SyncInput {
            cluster: &view,
            me: &self.cfg.name,
            tags: &self.cfg.tags,
            role: super::slots::role_of(&self.pg.role),
            in_recovery: false,
            replay_lsn: None,
            server_version: info.server_version,
            create_only: false,
        };
        if let Err(e) = super::slots::sync_slots(&self.pg.monitor, &input).await {
            log::error!(target: "patroni.postgresql.slots", "Exception when changing replication slots: {e}");
        }
    }

    /// The primary's replication slots and their positions (confirmed
    /// flush for logical slots, restart LSN for physical ones), plus our
    /// own slot name at our flush position, for the `POST /failsafe` body:
    /// members advance their copies of the permanent slots from it while
    /// the DCS (and so `/status`) is out of reach. `None` when PostgreSQL
    /// does not answer.
    async fn live_slot_positions(&self) -> Option<Map<String, Value>> {
        let rows = self
            .pg
            .monitor
            .query(
                "SELECT slot_name::text, pg_catalog.pg_wal_lsn_diff(CASE WHEN slot_type = 'logical' \
                 THEN confirmed_flush_lsn ELSE restart_lsn END, '0/0')::bigint \
                 FROM pg_catalog.pg_replication_slots WHERE NOT temporary \
                 UNION ALL SELECT NULL, \
                 pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint",
                &[],
            )
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                log::warn!(target: "patroni.ha", "cannot read the replication slots for failsafe: {e}");
                return None;
            }
        };
        let mut slots = Map::new();
        let mut own = None;
        for row in rows {
            let name = row.try_get::<_, Option<String>>(0).ok().flatten();
            let Some(lsn) = row.try_get::<_, Option<i64>>(1).ok().flatten() else {
                continue;
            };
            match name {
                Some(name) => {
                    slots.insert(name, json!(lsn));
                }
                None => own = Some(lsn),
            }
        }
        if let Some(lsn) = own {
            slots.insert(
                crate::postgres::slot_name_from_member_name(&self.cfg.name),
                json!(lsn),
            );
        }
        Some(slots)
    }

    /// A replica without a DCS, accepted by a failsafe leader less than
    /// ttl ago: keep its permanent slots moving with the positions that
    /// leader sent (they would otherwise hold WAL back until the DCS
    /// returns).
    pub(super) async fn failsafe_replica_slots(&mut self) {
        let Some(leader) = self.failsafe.active_leader() else {
            return;
        };
        let Some(cached) = self.cluster.clone() else {
            return;
        };
        let mut view = with_failsafe_leader(Cluster::clone(&cached), &leader);
        if let Some(Value::Object(slots)) = &leader.slots {
            view.status.slots = Some(slots.clone());
        }
        self.cluster = Some(std::sync::Arc::new(view));
        self.slots_in_recovery_or_unlocked().await;
        self.cluster = Some(cached);
    }

    /// Every member accepted us: stay primary until the next cycle.
    pub(super) fn hold_primary_in_failsafe(&mut self) {
        let at = self.failsafe_asked_at.take().unwrap_or_else(Instant::now);
        self.is_leader = true;
        self.failsafe.held(at);
        // Nobody may take over before `at + ttl`: every member accepted us
        // for that long, and the DCS does not answer anyone.
        self.lease_renewed(at);
        // As after a refresh of the key (Patroni pings it here too).
        self.watchdog.keepalive();
    }

    /// Hand the REST API's `POST /failsafe` handler our current state.
    pub(super) fn observe_for_failsafe(&self, pg: &LocalPg) {
        let running_primary = self.pg.state == "running" && self.pg.role == "primary";
        let lsn = (pg.running && pg.wal_position > 0).then_some(pg.wal_position);
        self.failsafe
            .observe(self.cfg.timing.ttl, running_primary, lsn);
    }

    /// With failsafe mode on and no leader in the DCS, a leader that asked
    /// us to accept it less than ttl ago leads (we follow it, not race).
    pub(super) fn cluster_with_failsafe_leader(&self, cluster: Cluster) -> Cluster {
        if !self.cfg.ha.failsafe_mode || cluster.leader.is_some() {
            return cluster;
        }
        match self.failsafe.active_leader() {
            Some(leader) if leader.name != self.cfg.name => with_failsafe_leader(cluster, &leader),
            _ => cluster,
        }
    }
}

/// `POST /failsafe` to one member (one retry after a failed attempt, as
/// Patroni's request with `retries=1`): accepted only on `200 Accepted`.
async fn post_one(
    http: &reqwest::Client,
    peer: &FailsafePeer,
    body: &Value,
) -> (bool, Option<i64>) {
    let Some(url) = peer.api_url.as_deref().and_then(failsafe_url) else {
        log::warn!(target: "patroni.ha", "Request failed to {}: POST failsafe (no usable api_url in /failsafe)", peer.name);
        return (false, None);
    };
    let payload = body.to_string();
    let mut last_error = String::new();
    for _ in 0..2 {
        let sent = http
            .post(&url)
            .timeout(POST_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(payload.clone())
            .send()
            .await;
        match sent {
            Ok(response) => {
                let status = response.status().as_u16();
                // The member's WAL position, when it sent one.
                let lsn = response
                    .headers()
                    .get("lsn")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<i64>().ok());
                let text = response.text().await.unwrap_or_default();
                log::info!(target: "patroni.ha", "Got response from {} {url}: {text}", peer.name);
                return (status == 200 && text == "Accepted", lsn);
            }
            Err(e) => last_error = e.to_string(),
        }
    }
    log::warn!(target: "patroni.ha", "Request failed to {}: POST {url} ({last_error})", peer.name);
    (false, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(v: Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap_or_default()
    }

    fn state(ttl: u64) -> FailsafeState {
        let s = FailsafeState::default();
        s.observe(Duration::from_secs(ttl), false, Some(1234));
        s
    }

    #[test]
    fn a_replica_accepts_and_reports_its_position_for_ttl() {
        let s = state(30);
        let now = Instant::now();
        assert!(!s.is_active_at(now));
        let ok = s.accept_at(
            &request(json!({"name": "n1", "conn_url": "postgres://h1/postgres", "api_url": "http://h1:8008/patroni", "slots": {"n1": 5}})),
            now,
        );
        assert_eq!(ok, Ok(Some(1234)));
        assert!(s.is_active_at(now + Duration::from_secs(29)));
        assert!(!s.is_active_at(now + Duration::from_secs(30)));
        let leader = s.lock().leader.clone();
        assert_eq!(leader.map(|l| l.name), Some("n1".to_owned()));
        s.reset();
        assert!(!s.is_active_at(now));
        assert_eq!(s.lock().leader, None);
    }

    #[test]
    fn a_running_primary_refuses() {
        let s = FailsafeState::default();
        s.observe(Duration::from_secs(30), true, None);
        let r = s.accept(&request(
            json!({"name": "n1", "conn_url": "c", "api_url": "a"}),
        ));
        assert_eq!(r, Err("Running as a leader".to_owned()));
        assert!(!s.is_active());
    }

    #[test]
    fn bad_bodies_are_refused_with_a_reason() {
        let s = state(30);
        let missing = s.accept(&request(json!({"name": "n1", "api_url": "a"})));
        assert_eq!(
            missing,
            Err("failsafe request: 'conn_url' is missing".to_owned())
        );
        let wrong = s.accept(&request(
            json!({"name": 1, "conn_url": "c", "api_url": "a"}),
        ));
        assert_eq!(
            wrong,
            Err("failsafe request: 'name' must be a string, not 1".to_owned())
        );
        assert!(!s.is_active());
    }

    #[test]
    fn the_endpoint_replaces_the_path() {
        assert_eq!(
            failsafe_url("http://127.0.0.1:8008/patroni").as_deref(),
            Some("http://127.0.0.1:8008/failsafe")
        );
        assert_eq!(
            failsafe_url("https://h:8443").as_deref(),
            Some("https://h:8443/failsafe")
        );
        assert_eq!(failsafe_url("garbage"), None);
    }

    #[test]
    fn the_failsafe_leader_fills_an_unlocked_cluster_only() {
        let leader = FailsafeLeader {
            name: "n1".into(),
            conn_url: "postgres://h1:5432/postgres".into(),
            api_url: "http://h1:8008/patroni".into(),
            slots: None,
        };
        let c = with_failsafe_leader(Cluster::default(), &leader);
        assert_eq!(c.leader.as_ref().map(|l| l.name.as_str()), Some("n1"));
        let m = c.member("n1").expect("the leader is added as a member");
        assert_eq!(m.api_url(), Some("http://h1:8008/patroni"));
        let locked = Cluster::from_nodes([("leader", "n2", Some(1))]);
        let c = with_failsafe_leader(locked, &leader);
        assert_eq!(c.leader.map(|l| l.name), Some("n2".to_owned()));
    }
}
