//! The monitoring connection: one superuser connection to the local
//! PostgreSQL and the query the HA loop runs on it every cycle.
//!
//! Patroni asks PostgreSQL once per cycle, in a single statement, for
//! everything the loop decides on (recovery state, timeline, WAL
//! positions, the WAL receiver) and caches the row for the cycle. We keep
//! that shape: [`PgMonitor::cluster_info`] runs one statement and returns
//! a typed [`ClusterInfo`].
//!
//! Connection handling follows Patroni's: the connection is opened lazily,
//! kept between calls, and a broken one is dropped so that the next call
//! opens a new one. A call never hangs: connecting is bounded by the
//! connect timeout, and the query by the server's `statement_timeout` and,
//! in case the server or the network does not answer at all, by a
//! client-side timeout after which the connection is dropped as well.
//!
//! No TLS: these are local connections (loopback or a unix socket), and
//! the client is built without a TLS connector. A configured `sslmode` of
//! `require`, `verify-ca` or `verify-full` is refused with
//! [`QueryError::TlsUnsupported`] rather than silently downgraded.

pub mod isready;
pub mod params;

use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::Mutex;
use tokio_postgres::config::{Host, SslMode};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, Config, NoTls, Row};

pub use isready::{pg_isready, PgIsReady};
pub use params::{local_conn_params, ConnParams, ConnParamsError};

/// The oldest server this query supports (the `wal`/`lsn` function names).
pub const MIN_SERVER_VERSION: i32 = 100_000;

/// Errors of the monitoring connection. None of them is fatal for the
/// monitor: the next call tries again (reconnecting if needed).
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("could not connect to PostgreSQL: {0}")]
    Connect(#[source] tokio_postgres::Error),
    #[error("timed out after {0:?} connecting to PostgreSQL")]
    ConnectTimeout(Duration),
    #[error("the monitoring query timed out after {0:?} without an answer")]
    Timeout(Duration),
    /// The server cancelled the statement (SQLSTATE 57014, usually the
    /// `statement_timeout`); the connection is kept.
    #[error("the monitoring query was cancelled by the server: {0}")]
    Cancelled(#[source] tokio_postgres::Error),
    /// The connection broke (server stopped, network); it is dropped and
    /// the next call reconnects.
    #[error("the connection to PostgreSQL was lost: {0}")]
    ConnectionLost(#[source] tokio_postgres::Error),
    #[error("the monitoring query failed: {0}")]
    Query(#[source] tokio_postgres::Error),
    #[error("PostgreSQL server version {0} is not supported (10 or newer is needed)")]
    UnsupportedVersion(i32),
    #[error("sslmode={0} is configured, but the monitoring connection has no TLS support")]
    TlsUnsupported(String),
    #[error("unexpected answer from PostgreSQL: {0}")]
    Decode(String),
}

/// One answer of the monitoring query. Positions are byte offsets from
/// `0/0`, as Patroni computes them.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterInfo {
    pub is_in_recovery: bool,
    /// The primary's current timeline (from the name of the current WAL
    /// file); `None` in recovery, where [`ClusterInfo::received_tli`]
    /// is the one to look at.
    pub timeline: Option<u32>,
    /// The primary's current flush position; `None` in recovery.
    pub wal_flush_lsn: Option<i64>,
    /// Last WAL position replayed (a replica, or a primary that was one).
    pub replay_lsn: Option<i64>,
    /// Last WAL position received and flushed by the WAL receiver.
    pub receive_lsn: Option<i64>,
    /// Last WAL position written by the running WAL receiver (PG 13+).
    pub written_lsn: Option<i64>,
    /// `pg_is_wal_replay_paused()`, false outside recovery.
    pub replay_paused: bool,
    pub last_xact_replay_timestamp: Option<DateTime<Utc>>,
    /// The WAL receiver's timeline, once it has received something.
    pub received_tli: Option<u32>,
    /// In recovery: the timeline of the minimum recovery point, which
    /// follows replay (a replica's timeline before its WAL receiver
    /// reports one).
    pub replay_tli: Option<u32>,
    pub receiver_slot_name: Option<String>,
    pub receiver_conninfo: Option<String>,
    /// `streaming`, `starting`, `waiting`, ...; `None` without a receiver.
    pub receiver_status: Option<String>,
    pub postmaster_start_time: DateTime<Utc>,
    pub server_version: i32,
    /// The WAL receiver's `latest_end_lsn`: the primary's position as last
    /// reported to this replica (the REST API's fallback for the leader's
    /// optime when the DCS view is missing).
    pub latest_end_lsn: Option<i64>,
    /// The `restore_command` setting (PG 12+; empty when unset): a replica
    /// that is not streaming is "in archive recovery" only with one.
    pub restore_command: Option<String>,
    /// One row per WAL sender, in sender order: `usename`,
    /// `application_name`, `client_addr`, `state`, `sync_state`,
    /// `sync_priority`, as the REST API's `replication` list shows them.
    pub replication: Vec<serde_json::Value>,
}

impl ClusterInfo {
    /// The received position as Patroni reports it: the larger of the
    /// flushed and written positions.
    pub fn received_location(&self) -> Option<i64> {
        match (self.receive_lsn, self.written_lsn) {
            (Some(r), Some(w)) => Some(r.max(w)),
            (r, w) => w.or(r),
        }
    }

    /// The replica's replication state as Patroni reports it: `streaming`
    /// with a streaming WAL receiver, else `in archive recovery` when a
    /// `restore_command` is set, else nothing (and nothing on a primary).
    pub fn replication_state(&self) -> Option<&'static str> {
        if !self.is_in_recovery {
            None
        } else if self.receiver_status.as_deref() == Some("streaming") {
            Some("streaming")
        } else if self
            .restore_command
            .as_deref()
            .is_some_and(|c| !c.is_empty())
        {
            Some("in archive recovery")
        } else {
            None
        }
    }

    /// The timeline this member reports: the primary's own; on a replica
    /// the WAL receiver's, else the one replay is on.
    pub fn current_timeline(&self) -> Option<i64> {
        self.timeline
            .or(self.received_tli)
            .or(self.replay_tli)
            .map(i64::from)
    }

    /// The position Patroni publishes as this member's `xlog_location`:
    /// the flush position on a primary, else the larger of received and
    /// replayed.
    pub fn last_operation(&self) -> Option<i64> {
        if self.is_in_recovery {
            match (self.received_location(), self.replay_lsn) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            }
        } else {
            self.wal_flush_lsn
        }
    }
}

/// Monitor settings.
#[derive(Debug, Clone)]
pub struct MonitorOptions {
    /// Bound on a whole call when the server does not answer at all.
    /// It should exceed the statement timeout so that the server's own
    /// cancellation (which keeps the connection) normally comes first.
    pub query_timeout: Duration,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions {
            query_timeout: Duration::from_secs(5),
        }
    }
}

struct Connection {
    client: Client,
    server_version: i32,
}

/// The monitoring connection. Safe to share: calls are serialised on the
/// one connection, like Patroni's per-connection lock.
pub struct PgMonitor {
    params: ConnParams,
    options: MonitorOptions,
    conn: Mutex<Option<Connection>>,
}

/// The statement; `written_lsn` only exists from PostgreSQL 13 on.
fn cluster_info_sql(server_version: i32) -> String {
    let written = if server_version >= 130_000 {
        "pg_catalog.pg_wal_lsn_diff(written_lsn, '0/0')::bigint"
    } else {
        "NULL::bigint"
    };
    let restore = if server_version >= 120_000 {
        "pg_catalog.current_setting('restore_command')"
    } else {
        "NULL::text"
    };
    format!(
        "SELECT pg_catalog.pg_is_in_recovery(), \
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE \
           ('x' || pg_catalog.substr(pg_catalog.pg_walfile_name(pg_catalog.pg_current_wal_lsn()), 1, 8))::bit(32)::int END, \
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN NULL ELSE \
           pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint END, \
         pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_replay_lsn(), '0/0')::bigint, \
         pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_last_wal_receive_lsn(), '0/0')::bigint, \
         pg_catalog.pg_is_in_recovery() AND pg_catalog.pg_is_wal_replay_paused(), \
         (extract(epoch FROM pg_catalog.pg_last_xact_replay_timestamp()) * 1000000)::bigint, \
         CASE WHEN latest_end_lsn IS NULL THEN NULL ELSE received_tli END, \
         {written}, slot_name, conninfo, status, \
         (extract(epoch FROM pg_catalog.pg_postmaster_start_time()) * 1000000)::bigint, \
         pg_catalog.current_setting('server_version_num')::int, \
         CASE WHEN pg_catalog.pg_is_in_recovery() THEN \
           (SELECT NULLIF(min_recovery_end_timeline, 0) FROM pg_catalog.pg_control_recovery()) END, \
         pg_catalog.pg_wal_lsn_diff(latest_end_lsn, '0/0')::bigint, \
         {restore}, \
         (SELECT pg_catalog.json_agg(pg_catalog.json_build_object( \
             'usename', pg_catalog.pg_get_userbyid(a.usesysid), \
             'application_name', a.application_name, 'client_addr', a.client_addr, \
             'state', w.state, 'sync_state', w.sync_state, 'sync_priority', w.sync_priority))::text \
           FROM pg_catalog.pg_stat_get_wal_senders() w, \
             LATERAL pg_catalog.pg_stat_get_activity(w.pid) a) \
         FROM pg_catalog.pg_stat_get_wal_receiver()"
    )
}

fn micros_to_utc(micros: i64) -> Result<DateTime<Utc>, QueryError> {
    DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| QueryError::Decode(format!("timestamp out of range: {micros} µs")))
}

fn timeline(value: Option<i32>, what: &str) -> Result<Option<u32>, QueryError> {
    value
        .map(|v| u32::try_from(v).map_err(|_| QueryError::Decode(format!("negative {what}: {v}"))))
        .transpose()
}

fn decode_row(row: &Row) -> Result<ClusterInfo, QueryError> {
    fn col<'a, T: tokio_postgres::types::FromSql<'a>>(
        row: &'a Row,
        idx: usize,
    ) -> Result<T, QueryError> {
        row.try_get(idx)
            .map_err(|e| QueryError::Decode(format!("column {idx}: {e}")))
    }
    let is_in_recovery: bool = col(row, 0)?;
    let replay_paused: Option<bool> = col(row, 5)?;
    let replay_ts: Option<i64> = col(row, 6)?;
    let start: Option<i64> = col(row, 12)?;
    let start = start.ok_or_else(|| QueryError::Decode("no postmaster start time".to_owned()))?;
    Ok(ClusterInfo {
        is_in_recovery,
        timeline: timeline(col(row, 1)?, "timeline")?,
        wal_flush_lsn: col(row, 2)?,
        replay_lsn: col(row, 3)?,
        receive_lsn: col(row, 4)?,
        replay_paused: replay_paused.unwrap_or(false),
        last_xact_replay_timestamp: replay_ts.map(micros_to_utc).transpose()?,
        received_tli: timeline(col(row, 7)?, "received timeline")?,
        written_lsn: col(row, 8)?,
        receiver_slot_name: col(row, 9)?,
        receiver_conninfo: col(row, 10)?,
        receiver_status: col(row, 11)?,
        postmaster_start_time: micros_to_utc(start)?,
        server_version: col(row, 13)?,
        replay_tli: timeline(col(row, 14)?, "minimum recovery timeline")?,
        latest_end_lsn: col(row, 15)?,
        restore_command: col(row, 16)?,
        replication: replication_rows(col(row, 17)?)?,
    })
}

/// The WAL senders' JSON array (NULL without senders).
fn replication_rows(text: Option<String>) -> Result<Vec<serde_json::Value>, QueryError> {
    match text {
        None => Ok(Vec::new()),
        Some(t) => match serde_json::from_str(&t) {
            Ok(serde_json::Value::Array(rows)) => Ok(rows),
            Ok(other) => Err(QueryError::Decode(format!(
                "WAL senders: expected a JSON array, got {other}"
            ))),
            Err(e) => Err(QueryError::Decode(format!("WAL senders: {e}"))),
        },
    }
}

/// The client configuration for `params`.
pub(crate) fn client_config(params: &ConnParams) -> Result<Config, QueryError> {
    let mut config = Config::new();
    match &params.host {
        Some(h) => {
            config.host(h);
        }
        None => {
            for dir in params::DEFAULT_SOCKET_DIRS {
                config.host_path(dir);
            }
        }
    }
    config
        .port(params.port)
        .dbname(&params.dbname)
        .application_name(&params.application_name)
        .options(&params.options)
        .connect_timeout(params.connect_timeout);
    if let Some(user) = &params.user {
        config.user(user);
    }
    if let Some(password) = &params.password {
        config.password(password);
    }
    match params.effective_sslmode() {
        None | Some("prefer") | Some("allow") => {
            config.ssl_mode(SslMode::Prefer);
        }
        Some("disable") => {
            config.ssl_mode(SslMode::Disable);
        }
        Some(other) => return Err(QueryError::TlsUnsupported(other.to_owned())),
    }
    Ok(config)
}

/// Whether an error means the connection is unusable.
fn is_connection_error(err: &tokio_postgres::Error) -> bool {
    if err.is_closed() {
        return true;
    }
    match err.code() {
        // Class 08 (connection exception), 57P01-57P03 (shutdown, crash,
        // cannot connect now): the server is going away.
        Some(code) => {
            let c = code.code();
            c.starts_with("08") || c == "57P01" || c == "57P02" || c == "57P03"
        }
        // No SQLSTATE: an IO or protocol error on the socket.
        None => true,
    }
}

impl PgMonitor {
    pub fn new(params: ConnParams, options: MonitorOptions) -> PgMonitor {
        PgMonitor {
            params,
            options,
            conn: Mutex::new(None),
        }
    }

    /// The parameters this monitor connects with.
    pub fn params(&self) -> &ConnParams {
        &self.params
    }

    async fn connect(&self) -> Result<Connection, QueryError> {
        let config = client_config(&self.params)?;
        // The client's own connect timeout applies per host; this bounds
        // the whole attempt (all hosts plus the startup exchange).
        let hosts = config.get_hosts().len().max(1) as u32;
        let bound = self.params.connect_timeout * hosts + Duration::from_secs(1);
        let (client, connection) = match tokio::time::timeout(bound, config.connect(NoTls)).await {
            Ok(Ok(pair)) => pair,
            Ok(Err(e)) => return Err(QueryError::Connect(e)),
            Err(_) => return Err(QueryError::ConnectTimeout(bound)),
        };
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                log::debug!(target: "patroni.postgresql", "monitoring connection ended: {e}");
            }
        });
        let version = tokio::time::timeout(
            self.options.query_timeout,
            client.query_one(
                "SELECT pg_catalog.current_setting('server_version_num')::int",
                &[],
            ),
        )
        .await
        .map_err(|_| QueryError::Timeout(self.options.query_timeout))?
        .map_err(QueryError::Connect)?;
        let server_version: i32 = version
            .try_get(0)
            .map_err(|e| QueryError::Decode(format!("server_version_num: {e}")))?;
        if server_version < MIN_SERVER_VERSION {
            return Err(QueryError::UnsupportedVersion(server_version));
        }
        Ok(Connection {
            client,
            server_version,
        })
    }

    /// Closes the connection; the next call opens a new one.
    pub async fn close(&self) {
        *self.conn.lock().await = None;
    }

    /// Whether a connection is currently open (and not known broken).
    pub async fn is_connected(&self) -> bool {
        matches!(&*self.conn.lock().await, Some(c) if !c.client.is_closed())
    }

    /// Runs one single-row statement on the connection, connecting first
    /// if needed. `sql` gets the server version (to pick function names).
    async fn query_row(
        &self,
        sql: impl FnOnce(i32) -> String,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Row, QueryError> {
        self.query_with(sql, args)
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| QueryError::Decode("the statement returned no row".to_owned()))
    }

    /// Runs one statement and returns its rows, connecting first if
    /// needed. A connection that broke or did not answer is dropped, so
    /// the next call reconnects; a server-side cancellation keeps it.
    async fn query_with(
        &self,
        sql: impl FnOnce(i32) -> String,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, QueryError> {
        let mut guard = self.conn.lock().await;
        if matches!(&*guard, Some(c) if c.client.is_closed()) {
            *guard = None;
        }
        if guard.is_none() {
            log::info!(
                target: "patroni.postgresql",
                "establishing a new patroni {} connection to postgres",
                self.params.application_name.trim_start_matches("Patroni ")
            );
            *guard = Some(self.connect().await?);
        }
        let Some(conn) = guard.as_ref() else {
            return Err(QueryError::Decode("no connection".to_owned()));
        };
        let sql = sql(conn.server_version);
        let result =
            tokio::time::timeout(self.options.query_timeout, conn.client.query(&sql, args)).await;
        match result {
            Err(_) => {
                // The server never answered: the connection's state is
                // unknown, so it is not reused.
                *guard = None;
                Err(QueryError::Timeout(self.options.query_timeout))
            }
            Ok(Err(e)) if is_connection_error(&e) => {
                *guard = None;
                Err(QueryError::ConnectionLost(e))
            }
            Ok(Err(e)) => {
                if e.code() == Some(&tokio_postgres::error::SqlState::QUERY_CANCELED) {
                    Err(QueryError::Cancelled(e))
                } else {
                    Err(QueryError::Query(e))
                }
            }
            Ok(Ok(rows)) => Ok(rows),
        }
    }

    /// Runs any statement on this connection and returns its rows (the HA
    /// loop's slot management and checkpoints).
    pub async fn query(
        &self,
        sql: &str,
        args: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, QueryError> {
        self.query_with(|_| sql.to_owned(), args).await
    }

    /// The server version of the open connection, connecting if needed.
    pub async fn server_version(&self) -> Result<i32, QueryError> {
        let row = self
            .query_row(
                |_| "SELECT pg_catalog.current_setting('server_version_num')::int".to_owned(),
                &[],
            )
            .await?;
        row.try_get(0)
            .map_err(|e| QueryError::Decode(format!("server_version_num: {e}")))
    }

    /// Runs the monitoring query, connecting first if needed.
    pub async fn cluster_info(&self) -> Result<ClusterInfo, QueryError> {
        let row = self.query_row(cluster_info_sql, &[]).await?;
        decode_row(&row)
    }

    /// The session's value of a server setting (`None` when the setting
    /// does not exist), on the monitoring connection.
    pub async fn current_setting(&self, name: &str) -> Result<Option<String>, QueryError> {
        let row = self
            .query_row(
                |_| "SELECT pg_catalog.current_setting($1, true)".to_owned(),
                &[&name],
            )
            .await?;
        row.try_get(0)
            .map_err(|e| QueryError::Decode(format!("current_setting({name}): {e}")))
    }
}

/// The hosts a client configuration will try, for diagnostics.
pub fn describe_hosts(params: &ConnParams) -> Vec<String> {
    match client_config(params) {
        Ok(c) => c
            .get_hosts()
            .iter()
            .map(|h| match h {
                Host::Tcp(s) => s.clone(),
                Host::Unix(p) => p.display().to_string(),
            })
            .collect(),
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::value::{Map, Value};

    fn params_for(listen: &str, sslmode: Option<&str>) -> ConnParams {
        let mut conf = Map::new();
        conf.set("listen", Value::Str(listen.to_owned()));
        if let Some(mode) = sslmode {
            let mut su = Map::new();
            su.set("sslmode", Value::Str(mode.to_owned()));
            let mut auth = Map::new();
            auth.set("superuser", Value::Map(su));
            conf.set("authentication", Value::Map(auth));
        }
        local_conn_params(&conf, "heartbeat").expect("params")
    }

    #[test]
    fn sql_uses_written_lsn_only_from_13() {
        assert!(cluster_info_sql(150_004).contains("pg_wal_lsn_diff(written_lsn"));
        assert!(!cluster_info_sql(120_010).contains("written_lsn"));
        assert!(cluster_info_sql(120_010).contains("NULL::bigint, slot_name"));
    }

    #[test]
    fn tls_modes_that_need_tls_are_refused() {
        for mode in ["require", "verify-ca", "verify-full"] {
            assert!(matches!(
                client_config(&params_for("127.0.0.1:5432", Some(mode))),
                Err(QueryError::TlsUnsupported(m)) if m == mode
            ));
        }
        for mode in [None, Some("disable"), Some("prefer"), Some("allow")] {
            assert!(client_config(&params_for("127.0.0.1:5432", mode)).is_ok());
        }
    }

    #[test]
    fn sslmode_is_ignored_on_a_socket() {
        let mut params = params_for("127.0.0.1:5432", Some("verify-ca"));
        assert!(client_config(&params).is_err());
        params.host = Some("/tmp".to_owned());
        assert!(client_config(&params).is_ok());
        params.host = None;
        assert!(client_config(&params).is_ok());
    }

    #[test]
    fn default_socket_dirs_are_all_tried() {
        let mut p = params_for("127.0.0.1:5432", None);
        assert_eq!(describe_hosts(&p), vec!["localhost".to_owned()]);
        p.host = None;
        assert_eq!(describe_hosts(&p), vec!["/var/run/postgresql", "/tmp"]);
    }

    fn info(recovery: bool) -> ClusterInfo {
        ClusterInfo {
            is_in_recovery: recovery,
            timeline: None,
            wal_flush_lsn: Some(500),
            replay_lsn: Some(300),
            receive_lsn: Some(400),
            written_lsn: None,
            replay_paused: false,
            last_xact_replay_timestamp: None,
            received_tli: None,
            replay_tli: None,
            receiver_slot_name: None,
            receiver_conninfo: None,
            receiver_status: None,
            postmaster_start_time: DateTime::from_timestamp(0, 0).unwrap_or_default(),
            server_version: 150_000,
            latest_end_lsn: None,
            restore_command: None,
            replication: Vec::new(),
        }
    }

    #[test]
    fn positions_combine_like_patroni() {
        let mut i = info(true);
        assert_eq!(i.received_location(), Some(400));
        assert_eq!(i.last_operation(), Some(400));
        i.written_lsn = Some(450);
        assert_eq!(i.received_location(), Some(450));
        i.receive_lsn = None;
        i.written_lsn = None;
        assert_eq!(i.last_operation(), Some(300));
        assert_eq!(info(false).last_operation(), Some(500));
    }

    #[tokio::test]
    async fn connecting_to_nothing_is_a_typed_error() {
        // A port nobody listens on: bind, read the port, close.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("port");
        let mut p = params_for(&format!("127.0.0.1:{port}"), None);
        p.host = Some("127.0.0.1".to_owned());
        let monitor = PgMonitor::new(p, MonitorOptions::default());
        assert!(matches!(
            monitor.cluster_info().await,
            Err(QueryError::Connect(_))
        ));
        assert!(!monitor.is_connected().await);
    }
}
