//! The snapshot the REST API answers from.
//!
//! Python Patroni queries PostgreSQL and reads the DCS cache from inside the
//! request handler, so a hung database or DCS can make a health check hang.
//! Here the HA loop owns every slow operation: once per cycle (and whenever
//! something changes) it publishes a fresh, immutable [`NodeStatus`] through a
//! [`StatusPublisher`], and the API only ever clones the latest `Arc`. A GET
//! never waits on anything but that pointer read, so load balancers keep
//! getting an answer (possibly a slightly stale one) whatever state the
//! database or the DCS is in.
//!
//! # Bounded staleness of the PostgreSQL part
//!
//! The PostgreSQL part of the snapshot ([`PostgresView::query`]: role from
//! `pg_is_in_recovery`, WAL positions, timeline, replication state) is
//! refreshed about once a second by the daemon's probe on its own
//! connection (`daemon::probe`, Patroni's separate REST API connection),
//! and once per cycle by the HA loop. [`NodeStatus::pg_confirmed_at`]
//! records when it was last confirmed by a successful query. A request
//! treats a part older than [`PG_STALE_AFTER`] as a failed query, which is
//! what Patroni answers when its per-request status query fails (`state`
//! `unknown`, no `xlog`, 503 from the health checks that need a running
//! server): a PostgreSQL that stopped answering (SIGSTOP, a hung server) is
//! reported within the bound, while the request itself never waits.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

use crate::model::Cluster;

mod channel;
mod global;
pub use channel::{ProbeSignal, StatusPublisher, StatusReader, FRESH_WAIT};
pub use global::GlobalView;
pub(crate) use global::{json_truthy, python_str};

/// The `xlog` object of the status body; its shape follows the role the
/// database reported (`pg_is_in_recovery`).
#[derive(Debug, Clone, PartialEq)]
pub enum Xlog {
    /// Not in recovery: the flush position.
    Primary { location: i64 },
    /// In recovery: receive/replay positions, the last replayed commit
    /// time as Python's `str(datetime)` text, and whether replay is paused.
    Replica {
        received_location: i64,
        replayed_location: i64,
        replayed_timestamp: Option<String>,
        paused: bool,
    },
}

/// What the last successful status query returned from PostgreSQL.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PgQuery {
    /// `pg_postmaster_start_time()` as Python prints a datetime
    /// (`2026-11-22 01:19:23.052006+00:00`).
    pub postmaster_start_time: Option<String>,
    /// Integer server version, e.g. 150020.
    pub server_version: Option<i64>,
    pub xlog: Option<Xlog>,
    /// The timeline; `None` on a replica whose timeline is not known yet
    /// (Python then reports `"timeline": null`).
    pub timeline: Option<i64>,
    /// `latest_end_lsn` of the WAL receiver: only used for lag checks and
    /// never shown in a body.
    pub latest_end_lsn: Option<i64>,
    /// `streaming` / `in archive recovery`, replicas only.
    pub replication_state: Option<String>,
    /// The `pg_stat_replication` rows, already shaped as JSON objects.
    pub replication: Option<Vec<Value>>,
}

/// The local PostgreSQL as the HA loop last saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct PostgresView {
    /// Patroni's in-memory state name (`running`, `stopped`, `starting`,
    /// ...): see [`POSTGRES_STATES`].
    pub state: String,
    /// Patroni's in-memory role (`primary`, `replica`, `standby_leader`,
    /// `demoted`, `uninitialized`, ...).
    pub role: String,
    /// `Some` when the status query succeeded; `None` when PostgreSQL was not
    /// running or could not be queried (the body then shrinks to state and
    /// role, and a `running` state reads `unknown`).
    pub query: Option<PgQuery>,
}

/// Patroni's PostgreSQL state texts (as shown in `state`), in the frozen
/// order `/metrics` numbers them.
pub const POSTGRES_STATES: [&str; 15] = [
    "initializing new cluster",
    "initdb failed",
    "running custom bootstrap script",
    "custom bootstrap failed",
    "creating replica",
    "running",
    "starting",
    "starting after custom bootstrap",
    "start failed",
    "restarting",
    "restart failed",
    "stopping",
    "stopped",
    "stop failed",
    "crashed",
];

/// Everything the read endpoints need, published as one immutable value.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeStatus {
    pub scope: String,
    pub name: String,
    /// The Patroni version reported in bodies and metrics.
    pub version: String,
    pub postgres: PostgresView,
    /// This node held the leader key at the last cycle; read it through
    /// [`NodeStatus::holds_leader`], which also honours `leader_expiry`.
    pub is_leader: bool,
    /// When that hold lapses without a refresh (refresh start + ttl). An
    /// HA loop stuck past it (a hung DCS call, a frozen process) must not
    /// keep a load balancer sending writes here: Patroni's `is_leader()`
    /// compares the same deadline with the clock. `None`: no bound known.
    pub leader_expiry: Option<Instant>,
    /// The last cluster view read from the DCS, kept even once it is too old
    /// to trust (then `cluster_valid` is false): `/config`, `/history`,
    /// `/failsafe` and the global settings still come from it, as Patroni's
    /// do from its cache.
    pub cluster: Option<Arc<Cluster>>,
    /// The DCS was reached recently enough for the view to count (Patroni's
    /// `dcs.cluster` is not `None`).
    pub cluster_valid: bool,
    /// Epoch seconds of the last successful DCS contact.
    pub dcs_last_seen: i64,
    /// The last valid dynamic configuration the HA loop knows (Patroni's
    /// in-memory `global_config`), used when the cluster view has no valid
    /// `config` key, e.g. after the DCS was wiped. `None`: the defaults.
    pub global_config: Option<Arc<Map<String, Value>>>,
    /// Tags from the configuration file, for `?tag_<k>=` filters.
    pub tags: Map<String, Value>,
    /// Configured tags merged with the ones the HA loop adds (e.g.
    /// `nofailover` while a dynamic setting forbids failover), shown in
    /// the `tags` field of the body.
    pub effective_tags: Map<String, Value>,
    /// `sysid` from pg_controldata, when known.
    pub database_system_identifier: Option<String>,
    /// Parameters waiting for a restart: name -> {old, new} details.
    pub pending_restart_reason: Map<String, Value>,
    /// The scheduled restart: `schedule` as ISO text plus its filters (no
    /// `postmaster_start_time`).
    pub scheduled_restart: Option<Map<String, Value>>,
    pub watchdog_failed: bool,
    /// The log queue length, reported only while above the normal size.
    pub logger_queue_size: usize,
    pub logger_records_lost: u64,
    /// The queue length Patroni treats as normal.
    pub logger_normal_queue_size: usize,
    /// The node keeps running as primary thanks to failsafe mode.
    pub failsafe_active: bool,
    /// `failsafe_mode` is enabled (POST /failsafe is served).
    pub failsafe_mode: bool,
    /// Epoch seconds at which the HA loop plans its next cycle.
    pub next_run: f64,
    /// The DCS ttl in seconds, for /liveness.
    pub ttl: u64,
    /// IP addresses resolved from the members' `api_url`s, for
    /// `restapi.allowlist_include_members`. The publisher resolves them so
    /// that a request never waits on DNS.
    pub member_ips: Vec<IpAddr>,
    /// PID of the postmaster the last status query ran against. Patroni
    /// queries PostgreSQL inside every request, so right after the
    /// postmaster dies its health checks already fail; a snapshot would
    /// still say `running` until the next cycle. With the PID the API can
    /// notice that for the price of one syscall (see
    /// [`NodeStatus::checked_now`]). `None`: no check.
    pub postmaster_pid: Option<u32>,
    /// When `postgres.query` was last confirmed by a successful query
    /// (the HA loop's or the probe's). Past [`PG_STALE_AFTER`] the query
    /// counts as failed. `None`: not tracked, no staleness check.
    pub pg_confirmed_at: Option<Instant>,
}

/// How often the probe refreshes the PostgreSQL part of the snapshot.
pub const PG_PROBE_INTERVAL: Duration = Duration::from_secs(1);

/// How old a confirmed PostgreSQL part may get before requests treat it as
/// a failed query: max(2 s, three probe intervals) = 3 s. Two probe rounds
/// may be late or lost (a query slowed by a checkpoint, a reconnect)
/// without a healthy node flapping, and a stuck PostgreSQL is still
/// reported well inside one HAProxy check cycle (`inter 3s fall 3`).
pub const PG_STALE_AFTER: Duration = Duration::from_secs(3);

/// Whether a PostgreSQL part confirmed at `confirmed` is too old at `now`.
pub fn pg_part_stale(confirmed: Option<Instant>, now: Instant) -> bool {
    confirmed.is_some_and(|t| now.saturating_duration_since(t) > PG_STALE_AFTER)
}

impl NodeStatus {
    /// A node that knows nothing yet: PostgreSQL state unknown, no DCS view.
    pub fn new(scope: &str, name: &str) -> NodeStatus {
        NodeStatus {
            scope: scope.to_owned(),
            name: name.to_owned(),
            version: crate::PATRONI_VERSION.to_owned(),
            postgres: PostgresView {
                state: "stopped".to_owned(),
                role: "uninitialized".to_owned(),
                query: None,
            },
            is_leader: false,
            leader_expiry: None,
            cluster: None,
            cluster_valid: false,
            dcs_last_seen: 0,
            global_config: None,
            tags: Map::new(),
            effective_tags: Map::new(),
            database_system_identifier: None,
            pending_restart_reason: Map::new(),
            scheduled_restart: None,
            watchdog_failed: false,
            logger_queue_size: 0,
            logger_records_lost: 0,
            logger_normal_queue_size: 2,
            failsafe_active: false,
            failsafe_mode: false,
            next_run: 0.0,
            ttl: 30,
            member_ips: Vec::new(),
            postmaster_pid: None,
            pg_confirmed_at: None,
        }
    }

    /// The snapshot as a request should see it now: when the postmaster
    /// last queried has died since, or the PostgreSQL part has not been
    /// confirmed for [`PG_STALE_AFTER`], the query results are dropped, as
    /// Patroni's per-request query would have failed (`state` then reads
    /// `unknown`, the body shrinks to state and role, and the health
    /// checks that need a running server answer 503).
    pub fn checked_now(self: Arc<Self>) -> Arc<NodeStatus> {
        self.checked_at(Instant::now())
    }

    /// [`NodeStatus::checked_now`] at a given instant.
    pub fn checked_at(self: Arc<Self>, now: Instant) -> Arc<NodeStatus> {
        if self.postgres.query.is_none() {
            return self;
        }
        let dead = self
            .postmaster_pid
            .is_some_and(|pid| !alive_recently(pid, now));
        if dead || pg_part_stale(self.pg_confirmed_at, now) {
            let mut s = NodeStatus::clone(&self);
            s.postgres.query = None;
            return Arc::new(s);
        }
        self
    }

    /// The cluster view when it is still valid (Python's `dcs.cluster`).
    pub fn valid_cluster(&self) -> Option<&Cluster> {
        self.cluster.as_deref().filter(|_| self.cluster_valid)
    }

    /// The dynamic configuration the global settings come from: the last
    /// view's `config` when it is valid (the view itself need not be
    /// current), else the last valid one the HA loop published.
    pub fn global(&self) -> GlobalView<'_> {
        match self.cluster.as_deref().map(GlobalView::from_cluster) {
            Some(view) if view.data.is_some() => view,
            _ => GlobalView {
                data: self.global_config.as_deref(),
            },
        }
    }

    /// `noloadbalance` from the configured tags, read as Patroni's tag
    /// booleans (any truthy value).
    pub fn noloadbalance(&self) -> bool {
        self.tags.get("noloadbalance").is_some_and(json_truthy)
    }

    /// This replica is listed in `/sync` while synchronous mode is on:
    /// `Some("quorum_standby")` or `Some("sync_standby")`.
    pub fn sync_flag(&self) -> Option<&'static str> {
        let q = self.postgres.query.as_ref()?;
        if !matches!(q.xlog, Some(Xlog::Replica { .. })) || self.reported_role() != "replica" {
            return None;
        }
        let global = self.global();
        if !global.is_synchronous_mode() {
            return None;
        }
        let cluster = self.valid_cluster()?;
        if !cluster.sync.matches(&self.name, false) {
            return None;
        }
        Some(if global.is_quorum_commit_mode() {
            "quorum_standby"
        } else {
            "sync_standby"
        })
    }

    /// The `state` field: the in-memory state, except that `running` with a
    /// failed query reads `unknown`.
    pub fn reported_state(&self) -> &str {
        match &self.postgres.query {
            None if self.postgres.state == "running" => "unknown",
            _ => &self.postgres.state,
        }
    }

    /// The `role` field: from `pg_is_in_recovery` when the query succeeded
    /// (in a standby cluster a recovering node shows its own role, e.g.
    /// `standby_leader`), else the in-memory role.
    pub fn reported_role(&self) -> &str {
        match self.postgres.query.as_ref().map(|q| &q.xlog) {
            Some(Some(Xlog::Primary { .. })) => "primary",
            Some(Some(Xlog::Replica { .. })) => {
                if self.global().is_standby_cluster() {
                    &self.postgres.role
                } else {
                    "replica"
                }
            }
            _ => &self.postgres.role,
        }
    }

    /// `replayed_location` of the body, 0 when absent.
    pub fn replayed_location(&self) -> i64 {
        match self.postgres.query.as_ref().and_then(|q| q.xlog.as_ref()) {
            Some(Xlog::Replica {
                replayed_location, ..
            }) => *replayed_location,
            _ => 0,
        }
    }

    /// `received_location` of the body, 0 when absent.
    pub fn received_location(&self) -> i64 {
        match self.postgres.query.as_ref().and_then(|q| q.xlog.as_ref()) {
            Some(Xlog::Replica {
                received_location, ..
            }) => *received_location,
            _ => 0,
        }
    }

    /// `latest_end_lsn` of the WAL receiver, 0 when unknown.
    /// Patroni's `ha.is_leader()`: the key was ours at the last cycle and
    /// its ttl has not run out since.
    pub fn holds_leader(&self) -> bool {
        self.holds_leader_at(Instant::now())
    }

    /// [`NodeStatus::holds_leader`] at `now`.
    pub fn holds_leader_at(&self, now: Instant) -> bool {
        self.is_leader && self.leader_expiry.is_none_or(|expiry| now < expiry)
    }

    pub fn latest_end_lsn(&self) -> i64 {
        self.postgres
            .query
            .as_ref()
            .and_then(|q| q.latest_end_lsn)
            .unwrap_or(0)
    }

    /// The primary's position as this node knows it: the larger of the
    /// `/status` optime (valid view only) and the WAL receiver's
    /// `latest_end_lsn`.
    pub fn leader_optime(&self) -> i64 {
        let optime = self.valid_cluster().map_or(0, |c| c.status.last_lsn);
        optime.max(self.latest_end_lsn())
    }

    /// `cluster_unlocked`: no valid view, or nobody holds the leader key.
    pub fn cluster_unlocked(&self) -> bool {
        self.valid_cluster().is_none_or(Cluster::is_unlocked)
    }
}

/// How long an "alive" verdict of [`process_alive`] is reused. The check
/// costs a signal and a procfs read, which at thousands of requests per
/// second is a good part of a request; a postmaster's death is still seen
/// within this bound.
const ALIVE_REUSE: Duration = Duration::from_millis(50);

/// The last "alive" verdict in one atomic word: the pid in the high half,
/// 1 + milliseconds since a process-wide origin (wrapping) in the low half;
/// 0 means none.
static ALIVE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn millis_since_origin(t: Instant) -> u32 {
    static ORIGIN: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    let origin = *ORIGIN.get_or_init(Instant::now);
    // Truncation is the point: the low half wraps every 49 days, and only
    // differences of a few milliseconds are compared.
    #[allow(clippy::cast_possible_truncation)]
    let ms = t.saturating_duration_since(origin).as_millis() as u32;
    ms
}

/// [`process_alive`], reusing an "alive" verdict for the same pid taken
/// less than [`ALIVE_REUSE`] before `now`. A "dead" verdict is never
/// reused: it is rechecked (and a new postmaster may have the pid later).
fn alive_recently(pid: u32, now: Instant) -> bool {
    use std::sync::atomic::Ordering;
    let now_ms = millis_since_origin(now).wrapping_add(1);
    let last = ALIVE.load(Ordering::Acquire);
    let (last_pid, last_ms) = ((last >> 32) as u32, last as u32);
    let reuse_ms = u32::try_from(ALIVE_REUSE.as_millis()).unwrap_or(0);
    if last_ms != 0 && last_pid == pid && now_ms.wrapping_sub(last_ms) < reuse_ms {
        return true;
    }
    let alive = process_alive(pid);
    if alive {
        ALIVE.store(
            (u64::from(pid) << 32) | u64::from(now_ms.max(1)),
            Ordering::Release,
        );
    }
    alive
}

/// Whether process `pid` exists and is not a zombie (a killed postmaster
/// stays a zombie until the daemon reaps it).
fn process_alive(pid: u32) -> bool {
    let Ok(raw) = libc::pid_t::try_from(pid) else {
        return false;
    };
    if raw <= 0 {
        return false;
    }
    // SAFETY: signal 0 only checks that the process exists; nothing is sent.
    let rc = unsafe { libc::kill(raw, 0) };
    if rc != 0 && std::io::Error::last_os_error().raw_os_error() != Some(libc::EPERM) {
        return false;
    }
    // The state letter follows the parenthesised command name.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !matches!(
            stat.rsplit_once(')')
                .and_then(|(_, rest)| rest.trim_start().chars().next()),
            Some('Z' | 'X')
        ),
        // No procfs: the signal check is all there is.
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Cluster;

    fn with_config(config: &str) -> NodeStatus {
        let mut s = NodeStatus::new("demo", "node2");
        s.cluster = Some(Arc::new(Cluster::from_nodes([
            ("config", config, Some(3)),
            ("leader", "node1", Some(4)),
            (
                "sync",
                r#"{"leader":"node1","sync_standby":"node2"}"#,
                Some(5),
            ),
        ])));
        s.cluster_valid = true;
        s.postgres = PostgresView {
            state: "running".into(),
            role: "replica".into(),
            query: Some(PgQuery {
                xlog: Some(Xlog::Replica {
                    received_location: 10,
                    replayed_location: 5,
                    replayed_timestamp: None,
                    paused: false,
                }),
                ..PgQuery::default()
            }),
        };
        s
    }

    #[test]
    fn global_settings_follow_patroni_parsing() {
        let s = with_config(
            r#"{"synchronous_mode":"on","maximum_lag_on_failover":"2048","pause":"yes"}"#,
        );
        let g = s.global();
        assert!(g.is_synchronous_mode());
        assert!(!g.is_quorum_commit_mode());
        assert!(g.is_paused());
        assert_eq!(g.maximum_lag_on_failover(), 2048);
        assert_eq!(s.sync_flag(), Some("sync_standby"));

        let s = with_config(r#"{"synchronous_mode":"QUORUM"}"#);
        assert_eq!(s.sync_flag(), Some("quorum_standby"));
        assert_eq!(s.global().maximum_lag_on_failover(), 1_048_576);

        let s = with_config(r#"{"synchronous_mode":true,"standby_cluster":{"host":"h","port":0}}"#);
        assert!(s.global().is_standby_cluster());
        assert!(!s.global().is_synchronous_mode());
        assert_eq!(s.sync_flag(), None);
    }

    #[test]
    fn stale_view_counts_as_no_cluster() {
        let mut s = with_config(r#"{"synchronous_mode":true}"#);
        assert!(!s.cluster_unlocked());
        s.cluster_valid = false;
        assert!(s.cluster_unlocked());
        assert_eq!(s.sync_flag(), None);
        // The global settings still come from the last view.
        assert!(s.global().is_synchronous_mode());
    }

    #[test]
    fn invalid_config_falls_back_to_the_last_valid_one() {
        let mut s = with_config("[1]");
        assert!(!s.global().is_synchronous_mode());
        let mut last = Map::new();
        last.insert("synchronous_mode".into(), Value::Bool(true));
        s.global_config = Some(Arc::new(last));
        assert!(s.global().is_synchronous_mode());
        // A valid config in the view wins over the fallback.
        let mut s2 = with_config(r#"{"synchronous_mode":false}"#);
        s2.global_config = s.global_config.clone();
        assert!(!s2.global().is_synchronous_mode());
    }

    #[test]
    fn unreachable_running_postgres_reads_unknown() {
        let mut s = with_config("{}");
        assert_eq!(s.reported_state(), "running");
        s.postgres.query = None;
        assert_eq!(s.reported_state(), "unknown");
        s.postgres.state = "stopped".into();
        assert_eq!(s.reported_state(), "stopped");
    }

    #[test]
    fn python_text_of_values() {
        let cases = [
            (serde_json::json!(null), "None"),
            (serde_json::json!(true), "True"),
            (serde_json::json!(3), "3"),
            (serde_json::json!(1.5), "1.5"),
            (serde_json::json!(1e20), "1e+20"),
            (serde_json::json!("it's"), "it's"),
            (
                serde_json::json!([1, "a", null, ["it's"]]),
                r#"[1, 'a', None, ["it's"]]"#,
            ),
            (
                serde_json::json!({"k": false, "t": "x\ny"}),
                r#"{'k': False, 't': 'x\ny'}"#,
            ),
        ];
        for (value, text) in cases {
            assert_eq!(python_str(&value), text, "{value}");
        }
    }

    #[test]
    fn a_dead_postmaster_turns_the_snapshot_into_a_failed_query() {
        let _turn = REAL_PIDS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut s = with_config("{}");
        s.postgres = PostgresView {
            state: "running".into(),
            role: "replica".into(),
            query: Some(PgQuery::default()),
        };
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        s.postmaster_pid = Some(child.id());
        let alive = Arc::new(s).checked_now();
        assert_eq!(alive.reported_state(), "running");
        assert!(alive.postgres.query.is_some());

        // Killed but not reaped yet: a zombie counts as dead.
        child.kill().expect("kill");
        std::thread::sleep(std::time::Duration::from_millis(200));
        let zombie = alive.clone().checked_now();
        assert_eq!(zombie.reported_state(), "unknown");
        assert!(zombie.postgres.query.is_none());

        let _ = child.wait();
        let gone = alive.clone().checked_now();
        assert_eq!(gone.reported_state(), "unknown");

        // Without a PID nothing is checked.
        let mut unchecked = NodeStatus::clone(&alive);
        unchecked.postmaster_pid = None;
        assert_eq!(
            Arc::new(unchecked).checked_now().reported_state(),
            "running"
        );
        assert!(process_alive(std::process::id()));
        assert!(!process_alive(0));
    }

    /// The liveness cache is process-wide: tests that use real pids take
    /// turns.
    static REAL_PIDS: std::sync::Mutex<()> = std::sync::Mutex::new(());

    #[test]
    fn alive_verdicts_are_reused_briefly_and_dead_ones_never() {
        let _turn = REAL_PIDS
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        let t0 = Instant::now();
        assert!(alive_recently(pid, t0));
        child.kill().expect("kill");
        let _ = child.wait();
        // Within the reuse window the earlier verdict stands...
        assert!(alive_recently(pid, t0 + ALIVE_REUSE / 2));
        // ...past it the process is checked again.
        assert!(!alive_recently(pid, t0 + ALIVE_REUSE * 2));
        assert!(!alive_recently(pid, t0 + ALIVE_REUSE * 2));
        // Another pid never reuses a verdict.
        assert!(!alive_recently(0, t0));
    }

    fn running_primary(location: i64) -> PgQuery {
        PgQuery {
            xlog: Some(Xlog::Primary { location }),
            timeline: Some(1),
            ..PgQuery::default()
        }
    }

    #[test]
    fn a_pg_part_older_than_the_bound_reads_as_a_failed_query() {
        let t0 = Instant::now();
        let mut s = with_config("{}");
        s.postgres.query = Some(running_primary(7));
        s.pg_confirmed_at = Some(t0);
        let s = Arc::new(s);
        // Just inside the bound: the query stands.
        let fresh = s.clone().checked_at(t0 + PG_STALE_AFTER);
        assert_eq!(fresh.reported_state(), "running");
        assert_eq!(fresh.reported_role(), "primary");
        // Past it: what Patroni answers when its status query fails.
        let stale = s
            .clone()
            .checked_at(t0 + PG_STALE_AFTER + Duration::from_millis(1));
        assert_eq!(stale.reported_state(), "unknown");
        assert_eq!(stale.reported_role(), "replica");
        assert!(stale.postgres.query.is_none());
        // An instant before the confirmation (clock read earlier) is fresh.
        assert!(s.clone().checked_at(t0).postgres.query.is_some());
        // Untracked parts (no confirmation time) never go stale.
        let mut untracked = NodeStatus::clone(&s);
        untracked.pg_confirmed_at = None;
        let far = t0 + Duration::from_secs(3600);
        assert!(Arc::new(untracked).checked_at(far).postgres.query.is_some());
        assert!(PG_STALE_AFTER >= Duration::from_secs(2));
        assert!(PG_STALE_AFTER >= 2 * PG_PROBE_INTERVAL);
    }

    fn running(pid: u32, query: Option<PgQuery>, at: Option<Instant>) -> NodeStatus {
        let mut s = NodeStatus::new("demo", "n");
        s.postgres.state = "running".into();
        s.postgres.role = "primary".into();
        s.postgres.query = query;
        s.postmaster_pid = Some(pid);
        s.pg_confirmed_at = at;
        s
    }

    #[test]
    fn probe_confirmations_and_ha_publications_merge_by_age() {
        let t0 = Instant::now();
        let later = t0 + Duration::from_millis(1500);
        let (publisher, reader) =
            StatusPublisher::new(running(42, Some(running_primary(1)), Some(t0)));
        let probe = publisher.clone();
        // The probe's newer answer replaces the PostgreSQL part.
        assert!(probe.confirm_query(42, running_primary(2), later));
        assert_eq!(reader.current().postgres.query, Some(running_primary(2)));
        assert_eq!(reader.current().pg_confirmed_at, Some(later));
        // An answer older than the published one, or from another
        // postmaster, is ignored.
        assert!(!probe.confirm_query(42, running_primary(0), t0));
        assert!(!probe.confirm_query(43, running_primary(9), later + PG_PROBE_INTERVAL));
        assert_eq!(reader.current().postgres.query, Some(running_primary(2)));
        // The HA loop publishes its older query: the probe's part stays,
        // everything else is the HA loop's.
        let mut from_ha = running(42, Some(running_primary(1)), Some(t0));
        from_ha.is_leader = true;
        publisher.publish(from_ha);
        assert!(reader.current().is_leader);
        assert_eq!(reader.current().postgres.query, Some(running_primary(2)));
        // A newer HA query wins.
        let newest = later + PG_PROBE_INTERVAL;
        publisher.publish(running(42, Some(running_primary(3)), Some(newest)));
        assert_eq!(reader.current().postgres.query, Some(running_primary(3)));
        // A stopped PostgreSQL: the HA loop's state wins, and the probe
        // cannot bring the query back.
        let mut stopped = running(42, None, None);
        stopped.postgres.state = "stopping".into();
        publisher.publish(stopped);
        assert!(reader.current().postgres.query.is_none());
        assert!(!probe.confirm_query(42, running_primary(4), newest + PG_PROBE_INTERVAL));
        assert!(reader.current().postgres.query.is_none());
        // A new postmaster: the old probe part is not carried over.
        publisher.publish(running(42, Some(running_primary(5)), Some(newest)));
        publisher.publish(running(77, None, None));
        assert!(reader.current().postgres.query.is_none());
    }

    #[test]
    fn reader_sees_latest_publication() {
        let (publisher, reader) = StatusPublisher::new(NodeStatus::new("demo", "a"));
        assert_eq!(reader.current().name, "a");
        publisher.publish(NodeStatus::new("demo", "b"));
        assert_eq!(reader.current().name, "b");
        assert_eq!(publisher.reader().current().name, "b");
    }
}
