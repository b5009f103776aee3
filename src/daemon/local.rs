//! The local PostgreSQL as the daemon drives it: the files written before
//! each start, the postmaster, the monitoring connection and Patroni's
//! in-memory `state` and `role` words.
//!
//! The HA decision never sees this type; the executor observes it into a
//! [`LocalPg`] and carries out actions through its methods.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::api::status::PgQuery;
use crate::config::Value;
use crate::ha::decide::LocalPg;
use crate::model::Cluster;
use crate::postgres::controldata::ControlData;
use crate::postgres::pg15_catalog::Pg15Catalog;
use crate::postgres::process::{controldata, Postmaster, StartOptions, StopMode, StopOutcome};
use crate::postgres::query::{local_conn_params, ClusterInfo, MonitorOptions, PgMonitor};
use crate::postgres::{render_node, NodeInput, ReplicationSource, Role, SignalFile};

use super::callbacks::{CallbackAction, Callbacks};
use super::node::NodeConfig;

/// Why an operation on the local PostgreSQL failed.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{0}")]
    Config(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Process(String),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalError {
    let what = what.into();
    move |source| LocalError::Io { what, source }
}

/// The local PostgreSQL.
pub struct LocalPostgres {
    pub cfg: NodeConfig,
    postmaster: Option<Postmaster>,
    /// The HA loop's own connection.
    pub monitor: PgMonitor,
    /// Patroni's `state` word (`running`, `stopped`, `starting`, ...).
    pub state: String,
    /// Patroni's `role` word (`primary`, `replica`, `uninitialized`, ...).
    pub role: String,
    /// The member whose address is in `primary_conninfo` now.
    pub following: Option<String>,
    /// The last successful monitoring query.
    pub last_info: Option<ClusterInfo>,
    /// When `last_info` was taken (the REST snapshot's staleness clock).
    pub last_info_at: Option<std::time::Instant>,
    /// The `postgres` binary's version (150018), read once.
    binary_version: Option<i64>,
    /// The command line of the last rendered start.
    argv: Vec<String>,
    /// Single-user crash recovery ran since PostgreSQL last stopped.
    pub crash_recovery_started: bool,
    /// The last start this daemon ran ended without a running PostgreSQL.
    pub start_failed: bool,
    /// A cycle finished with PostgreSQL running under this daemon.
    pub seen_running: bool,
    callbacks: Callbacks,
    /// A start, stop or role change callback was due once (Patroni's
    /// `cb_called`): a later start as replica is a role change.
    cb_called: bool,
    /// Parameters that wait for a restart: name -> {old_value, new_value}.
    pub pending_restart_reason: serde_json::Map<String, serde_json::Value>,
    /// When this daemon last started PostgreSQL or pointed it at a new
    /// upstream.
    pub started_at: Option<std::time::Instant>,
    /// No callbacks now (a bootstrap, or a restart that reports
    /// `on_restart` alone).
    pub block_callbacks: bool,
    /// Synchronous mode is on: `Some(synchronous_mode_strict)`.
    pub sync_mode: Option<bool>,
    /// `hot_standby_feedback = on` is forced into `postgresql.conf`
    /// (permanent logical slot copies here or downstream).
    pub enforce_hot_standby_feedback: bool,
    /// The last observation found the postmaster alive but the monitoring
    /// query failed.
    pub query_failed: bool,
    /// The `synchronous_standby_names` this daemon maintains in synchronous
    /// mode (`None`: none, or `*` for a strict primary).
    pub ssn: Option<String>,
}

/// The server version number of a `postgres --version` line.
fn parse_version(text: &str) -> Option<i64> {
    let version = text
        .split_whitespace()
        .find(|w| w.starts_with(|c: char| c.is_ascii_digit()))?;
    let mut parts = version.split(['.', '-', '~']).map(|p| {
        p.chars()
            .take_while(char::is_ascii_digit)
            .collect::<String>()
            .parse::<i64>()
            .ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    Some(if major >= 10 {
        major * 10_000 + minor
    } else {
        let patch = parts.next().flatten().unwrap_or(0);
        major * 10_000 + minor * 100 + patch
    })
}

impl LocalPostgres {
    pub fn new(cfg: NodeConfig) -> Result<LocalPostgres, LocalError> {
        let monitor = Self::monitor_for(&cfg)?;
        Ok(LocalPostgres {
            cfg,
            postmaster: None,
            monitor,
            state: "stopped".to_owned(),
            role: "uninitialized".to_owned(),
            following: None,
            last_info: None,
            last_info_at: None,
            binary_version: None,
            argv: Vec::new(),
            crash_recovery_started: false,
            start_failed: false,
            seen_running: false,
            callbacks: Callbacks::default(),
            cb_called: false,
            block_callbacks: false,
            started_at: None,
            pending_restart_reason: serde_json::Map::new(),
            sync_mode: None,
            enforce_hot_standby_feedback: false,
            ssn: None,
            query_failed: false,
        })
    }

    fn monitor_for(cfg: &NodeConfig) -> Result<PgMonitor, LocalError> {
        let params = local_conn_params(&cfg.postgresql, "heartbeat")
            .map_err(|e| LocalError::Config(e.to_string()))?;
        Ok(PgMonitor::new(params, MonitorOptions::default()))
    }

    /// A new configuration (reload). The connection is rebuilt when its
    /// parameters changed.
    pub async fn set_config(&mut self, cfg: NodeConfig) -> Result<(), LocalError> {
        let monitor = Self::monitor_for(&cfg)?;
        if monitor.params() != self.monitor.params() {
            self.monitor.close().await;
            self.monitor = monitor;
        }
        self.cfg = cfg;
        Ok(())
    }

    pub fn data_dir(&self) -> &Path {
        &self.cfg.data_dir
    }

    /// The data directory is missing or has nothing in it.
    pub fn data_directory_empty(&self) -> bool {
        self.inspect_data_directory().unwrap_or(false)
    }

    /// `Ok(empty)`, or why the directory cannot be read (a missing one is
    /// empty).
    fn inspect_data_directory(&self) -> Result<bool, String> {
        match std::fs::read_dir(self.data_dir()) {
            Ok(mut entries) => Ok(entries.next().is_none()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(format!("{}: {e}", self.data_dir().display())),
        }
    }

    /// `PG_VERSION` as a server version number (15 -> 150000).
    pub fn major_version(&self) -> Option<i64> {
        let text = std::fs::read_to_string(self.data_dir().join("PG_VERSION")).ok()?;
        let (major, minor) = match text.trim().split_once('.') {
            Some((a, b)) => (a.parse::<i64>().ok()?, b.parse::<i64>().ok()?),
            None => (text.trim().parse::<i64>().ok()?, 0),
        };
        Some(major * 10_000 + minor * 100)
    }

    pub async fn binary_version(&mut self) -> Result<i64, LocalError> {
        if let Some(v) = self.binary_version {
            return Ok(v);
        }
        let program = self.cfg.program("postgres");
        let output = tokio::process::Command::new(&program)
            .arg("--version")
            .output()
            .await
            .map_err(io_err(format!("cannot run {}", program.display())))?;
        let text = String::from_utf8_lossy(&output.stdout);
        let version = parse_version(&text)
            .ok_or_else(|| LocalError::Process(format!("cannot read the version from {text:?}")))?;
        self.binary_version = Some(version);
        Ok(version)
    }

    /// `pg_controldata`, or `None` when it cannot be read.
    pub async fn controldata(&self) -> Option<ControlData> {
        controldata(self.cfg.bin_dir.as_deref(), self.data_dir())
            .await
            .ok()
    }

    /// Whether the postmaster runs, attaching to one found through
    /// `postmaster.pid` (after a daemon restart).
    pub fn is_running(&mut self) -> bool {
        if let Some(pm) = self.postmaster.as_mut() {
            if pm.is_running() {
                return true;
            }
            self.postmaster = None;
        }
        if let Some(pm) = Postmaster::attach(self.data_dir()) {
            log::info!(target: "patroni.postgresql", "attached to a running postmaster (pid {})", pm.pid());
            self.postmaster = Some(pm);
            return true;
        }
        false
    }

    pub fn postmaster_pid(&self) -> Option<i32> {
        self.postmaster.as_ref().map(Postmaster::pid)
    }

    /// Run a `postgresql.callbacks` command for the current role.
    pub fn callback(&mut self, action: CallbackAction) {
        if self.block_callbacks {
            return;
        }
        if action != CallbackAction::OnReload {
            self.cb_called = true;
        }
        let callbacks = self
            .cfg
            .postgresql
            .get("callbacks")
            .and_then(Value::as_map)
            .cloned();
        let role = self.role.clone();
        let scope = self.cfg.scope.clone();
        self.callbacks
            .call(callbacks.as_ref(), action, &role, &scope);
    }

    /// Observe PostgreSQL for this cycle.
    pub async fn observe(&mut self, sysid: Option<String>) -> LocalPg {
        let running = self.is_running();
        let info = if running {
            match self.monitor.cluster_info().await {
                Ok(info) => Some(info),
                Err(e) => {
                    log::debug!(target: "patroni.postgresql", "monitoring query failed: {e}");
                    None
                }
            }
        } else {
            None
        };
        // The postmaster is there but did not answer (hung, overloaded).
        self.query_failed = running && info.is_none();
        if running && self.state != "starting" {
            self.state = "running".to_owned();
        } else if !running && self.state == "running" {
            log::warn!(target: "patroni.postgresql", "PostgreSQL is not running");
            self.state = "crashed".to_owned();
        }
        if let Some(i) = &info {
            if !i.is_in_recovery && self.role != "primary" {
                self.role = "primary".to_owned();
            } else if i.is_in_recovery
                && !matches!(
                    self.role.as_str(),
                    "replica" | "promoted" | "standby_leader"
                )
            {
                self.role = "replica".to_owned();
            }
        }
        self.last_info = info.clone();
        self.last_info_at = info.as_ref().map(|_| std::time::Instant::now());
        let inspected = self.inspect_data_directory();
        let data_directory_empty = matches!(inspected, Ok(true));
        let cluster_state = if running || data_directory_empty {
            None
        } else {
            self.controldata()
                .await
                .and_then(|c| c.get("Database cluster state").map(str::to_owned))
        };
        let dir = self.data_dir().to_path_buf();
        let has = |name: &str| dir.join(name).exists();
        LocalPg {
            running: running && info.is_some(),
            starting: self.state == "starting",
            is_primary: info.as_ref().is_some_and(|i| !i.is_in_recovery),
            role: self.role.clone(),
            timeline: info.as_ref().and_then(ClusterInfo::current_timeline),
            wal_position: info
                .as_ref()
                .and_then(ClusterInfo::last_operation)
                .unwrap_or(0),
            data_directory_empty,
            data_directory_error: inspected.err(),
            sysid,
            cluster_state,
            crashed: self.state == "crashed",
            recovery_conf: has("standby.signal") || has("recovery.signal") || has("recovery.conf"),
            backup_label: has("backup_label"),
            crash_recovery_started: self.crash_recovery_started,
            start_failed: self.start_failed,
            seen_running: self.seen_running,
        }
    }

    /// The status-query part of the REST status, from the last observation.
    pub fn pg_query(&self) -> Option<PgQuery> {
        self.last_info.as_ref().map(super::probe::pg_query_of)
    }

    /// Write every file PostgreSQL needs for a start as `role` streaming
    /// from `source`.
    pub async fn write_files(
        &mut self,
        role: Role,
        source: Option<&ReplicationSource>,
    ) -> Result<(), LocalError> {
        let major = self
            .major_version()
            .ok_or_else(|| LocalError::Config("cannot read PG_VERSION".to_owned()))?;
        let pg_version = self.binary_version().await?;
        let controldata = match role {
            Role::Primary => None,
            _ => self.controldata().await.map(|c| c.raw),
        };
        let files = render_node(&NodeInput {
            effective: &self.cfg.effective,
            major_version: major,
            pg_version,
            role,
            source,
            enforce_hot_standby_feedback: self.enforce_hot_standby_feedback,
            sync: self
                .sync_mode
                .map(|strict| crate::postgres::params::SyncState {
                    strict,
                    is_primary: role == Role::Primary,
                    current: self.ssn.clone(),
                }),
            controldata: controldata.as_ref(),
            catalog: &Pg15Catalog::new(),
            cwd: &self.cfg.cwd,
            home: &self.cfg.home,
        })
        .map_err(|e| LocalError::Config(e.to_string()))?;
        let config_dir = PathBuf::from(&files.config_dir);
        let conf_path = PathBuf::from(&files.postgresql_conf_path);
        // Keep the configuration initdb or pg_basebackup wrote as the base
        // file our generated one includes (unless `custom_conf` is used).
        let base = config_dir.join(base_conf_name(&conf_path));
        if !self.cfg.postgresql.contains_key("custom_conf") && !base.exists() && conf_path.exists()
        {
            std::fs::rename(&conf_path, &base)
                .map_err(io_err(format!("cannot rename {}", conf_path.display())))?;
        }
        write_private(&conf_path, &files.postgresql_conf)?;
        if let Some(hba) = &files.pg_hba_conf {
            write_private(&config_dir.join("pg_hba.conf"), hba)?;
        }
        if let Some(ident) = &files.pg_ident_conf {
            write_private(&config_dir.join("pg_ident.conf"), ident)?;
        }
        if let Some(pgpass) = &files.pgpass {
            write_private(Path::new(&files.pgpass_path), pgpass)?;
        }
        for signal in [SignalFile::Standby, SignalFile::Recovery] {
            let path = self.data_dir().join(signal.file_name());
            if files.signal == Some(signal) {
                write_private(&path, "")?;
            } else if path.exists() {
                std::fs::remove_file(&path)
                    .map_err(io_err(format!("cannot remove {}", path.display())))?;
            }
        }
        if let Some(text) = &files.recovery_conf {
            write_private(&self.data_dir().join("recovery.conf"), text)?;
        }
        self.argv = files.argv;
        Ok(())
    }

    /// Start PostgreSQL as `role`, streaming from `source`, and wait until
    /// it accepts connections.
    pub async fn start(
        &mut self,
        role: Role,
        source: Option<&ReplicationSource>,
    ) -> Result<(), LocalError> {
        if self.is_running() {
            return Ok(());
        }
        self.write_files(role, source).await?;
        self.following = source.map(|s| s.name.clone());
        // Starting a former primary as a replica is a role change.
        let role_change = self.cb_called
            && role != Role::Primary
            && matches!(self.role.as_str(), "primary" | "demoted" | "promoted");
        self.state = "starting".to_owned();
        self.role = match role {
            Role::Primary => "primary",
            Role::Replica => "replica",
            Role::StandbyLeader => "standby_leader",
        }
        .to_owned();
        let options = StartOptions {
            timeout: self.cfg.pg_ctl_timeout,
            ..StartOptions::default()
        };
        match Postmaster::start(&self.argv, &self.cfg.data_dir, &options).await {
            Ok(pm) => {
                self.postmaster = Some(pm);
                self.state = "running".to_owned();
                self.started_at = Some(std::time::Instant::now());
                self.pending_restart_reason.clear();
                self.callback(if role_change {
                    CallbackAction::OnRoleChange
                } else {
                    CallbackAction::OnStart
                });
                Ok(())
            }
            Err(e) => {
                self.state = "start failed".to_owned();
                Err(LocalError::Process(e.to_string()))
            }
        }
    }

    /// Stop PostgreSQL; `Ok` when it is no longer running.
    pub async fn stop(&mut self, mode: StopMode) -> Result<StopOutcome, LocalError> {
        if !self.is_running() {
            self.state = "stopped".to_owned();
            return Ok(StopOutcome::NotRunning);
        }
        self.monitor.close().await;
        self.state = "stopping".to_owned();
        let Some(pm) = self.postmaster.as_mut() else {
            return Ok(StopOutcome::NotRunning);
        };
        match pm.stop(mode, None).await {
            Ok(outcome) => {
                self.postmaster = None;
                self.state = "stopped".to_owned();
                self.last_info = None;
                self.callback(CallbackAction::OnStop);
                Ok(outcome)
            }
            Err(e) => {
                self.state = "stop failed".to_owned();
                Err(LocalError::Process(e.to_string()))
            }
        }
    }

    /// Ask PostgreSQL to promote (does not wait for the end of recovery).
    pub async fn promote(&mut self) -> Result<(), LocalError> {
        let bin_dir = self.cfg.bin_dir.clone();
        let pm = self
            .postmaster
            .as_mut()
            .ok_or_else(|| LocalError::Process("PostgreSQL is not running".to_owned()))?;
        pm.promote(bin_dir.as_deref())
            .await
            .map_err(|e| LocalError::Process(e.to_string()))?;
        self.role = "promoted".to_owned();
        self.following = None;
        self.callback(CallbackAction::OnRoleChange);
        Ok(())
    }

    /// Point a running replica at `source`: rewrite the files and reload
    /// (PostgreSQL 13+ applies `primary_conninfo` on reload).
    pub async fn follow(&mut self, source: Option<&ReplicationSource>) -> Result<bool, LocalError> {
        self.follow_as(Role::Replica, source).await
    }

    /// [`LocalPostgres::follow`] with the files written for `role` (a
    /// standby leader streams from a remote primary).
    pub async fn follow_as(
        &mut self,
        role: Role,
        source: Option<&ReplicationSource>,
    ) -> Result<bool, LocalError> {
        let name = source.map(|s| s.name.clone());
        if name == self.following {
            return Ok(false);
        }
        self.write_files(role, source).await?;
        if let Some(pm) = self.postmaster.as_mut() {
            pm.reload()
                .map_err(|e| LocalError::Process(e.to_string()))?;
        }
        self.following = name;
        self.started_at = Some(std::time::Instant::now());
        Ok(true)
    }

    /// Reload the configuration files into the running postmaster.
    pub fn reload(&mut self) -> Result<(), LocalError> {
        match self.postmaster.as_mut() {
            Some(pm) => {
                pm.reload()
                    .map_err(|e| LocalError::Process(e.to_string()))?;
                self.callback(CallbackAction::OnReload);
                Ok(())
            }
            None => Ok(()),
        }
    }
}

/// `postgresql.conf` -> `postgresql.base.conf`.
fn base_conf_name(conf_path: &Path) -> String {
    let stem = conf_path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "postgresql".to_owned());
    format!("{stem}.base.conf")
}

/// Write a file readable by its owner only (PostgreSQL's own files and
/// `.pgpass`), replacing it through a temporary file so that a crash never
/// leaves half a configuration.
pub fn write_private(path: &Path, text: &str) -> Result<(), LocalError> {
    let tmp = path.with_extension(format!(
        "{}.tmp",
        path.extension()
            .map(|e| e.to_string_lossy())
            .unwrap_or_default()
    ));
    {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(io_err(format!("cannot write {}", tmp.display())))?;
        file.write_all(text.as_bytes())
            .map_err(io_err(format!("cannot write {}", tmp.display())))?;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(io_err(format!("cannot chmod {}", tmp.display())))?;
    }
    std::fs::rename(&tmp, path).map_err(io_err(format!("cannot replace {}", path.display())))
}

/// The member's replication source from the cluster view.
pub fn source_for(cluster: &Cluster, member: Option<&str>) -> Option<ReplicationSource> {
    let member = cluster.member(member?)?;
    let data = Value::from_json(&serde_json::Value::Object(member.data.clone()));
    ReplicationSource::from_member_data(&member.name, data.as_map()?)
}

/// Wait for `probe` to hold, polling every 100 ms, up to `timeout`.
pub async fn wait_until<F, Fut>(timeout: Duration, mut probe: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if probe().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_like_patroni() {
        assert_eq!(
            parse_version("postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)"),
            Some(150018)
        );
        assert_eq!(parse_version("postgres (PostgreSQL) 9.6.24"), Some(90624));
        assert_eq!(parse_version("postgres (PostgreSQL) 17beta1"), Some(170000));
        assert_eq!(parse_version("nonsense"), None);
    }

    #[test]
    fn private_files_replace_atomically() {
        let dir = std::env::temp_dir().join(format!("patroni-rs-local-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("x.conf");
        write_private(&path, "a").expect("first");
        write_private(&path, "b").expect("second");
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "b");
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
