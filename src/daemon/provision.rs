//! Giving the node a data directory: bootstrap of a new cluster, replica
//! creation, and `pg_rewind` of a former primary before it follows.

use std::path::PathBuf;
use std::sync::Arc;

use crate::config::{Map, Value};
use crate::model::json::compact;
use crate::model::Cluster;
use crate::postgres::bootstrap::{
    append_pg_hba, bootstrap_method, custom_bootstrap, initdb, post_bootstrap, InitdbInput,
    PgCommands, PostBootstrap,
};
use crate::postgres::controldata::ClusterState;
use crate::postgres::node::abspath;
use crate::postgres::query::local_conn_params;
use crate::postgres::replica::{create_replica, remove_data_directory, ReplicaInput};
use crate::postgres::{format_dsn, Role};

use super::history::replica_diverged;
use super::local::{source_for, LocalError};
use super::Daemon;

/// The leader may serve as pg_rewind's source: it runs as primary and its
/// post-promote checkpoint is done (no `checkpoint_after_promote` in its
/// member key), so its control file shows the new timeline (Patroni's
/// `Leader.checkpoint_after_promote`).
pub(super) fn leader_ready_for_rewind(cluster: &Cluster, leader: &str) -> bool {
    cluster.member(leader).is_some_and(|m| {
        matches!(m.role(), Some("primary" | "master"))
            && !m.data.contains_key("checkpoint_after_promote")
    })
}

fn section<'a>(map: &'a Map, key: &str) -> Option<&'a Map> {
    map.get(key).and_then(Value::as_map)
}

impl Daemon {
    fn pgpass_path(&self) -> PathBuf {
        let configured = self
            .cfg
            .postgresql
            .get("pgpass")
            .and_then(Value::as_str)
            .filter(|p| !p.is_empty())
            .map(str::to_owned)
            .unwrap_or_else(|| format!("{}/pgpass", self.cfg.home));
        PathBuf::from(abspath(&self.cfg.cwd, &configured))
    }

    /// We won the `initialize` race: create the cluster, then publish it.
    /// A failure gives the race up again and stops the daemon, as Patroni
    /// does (a half-made cluster must not be joined).
    pub(super) async fn bootstrap(&mut self, cluster: &Arc<Cluster>) -> Result<(), LocalError> {
        self.pg.state = "initializing new cluster".to_owned();
        self.publish();
        self.pg.block_callbacks = true;
        let result = self.bootstrap_steps(cluster).await;
        self.pg.block_callbacks = false;
        match result {
            Ok(()) => {
                self.pg.callback(super::callbacks::CallbackAction::OnStart);
                Ok(())
            }
            Err(e) => {
                log::error!(target: "patroni.ha", "bootstrap failed: {e}");
                let _ = self
                    .pg
                    .stop(crate::postgres::process::StopMode::Immediate)
                    .await;
                log::info!(target: "patroni.ha", "removing initialize key after failed attempt to bootstrap the cluster");
                if let Err(e) = self.dcs.cancel_initialization().await {
                    log::error!(target: "patroni.ha", "cannot remove the initialize key: {e}");
                }
                if !self.pg.data_directory_empty() {
                    let _ = remove_data_directory(&self.cfg.data_dir);
                }
                self.pg.state = "initdb failed".to_owned();
                self.fatal = Some("Failed to bootstrap cluster".to_owned());
                Err(e)
            }
        }
    }

    async fn bootstrap_steps(&mut self, cluster: &Arc<Cluster>) -> Result<(), LocalError> {
        let bootstrap = section(&self.cfg.effective, "bootstrap")
            .cloned()
            .unwrap_or_default();
        let commands = PgCommands::from_config(&self.cfg.postgresql);
        let method = bootstrap_method(&bootstrap);
        let err =
            |e: crate::postgres::bootstrap::BootstrapError| LocalError::Process(e.to_string());
        if method == "initdb" {
            initdb(&InitdbInput {
                data_dir: &self.cfg.data_dir,
                commands: &commands,
                options: bootstrap.get("initdb"),
                superuser: self.cfg.auth("superuser"),
                run_as: None,
            })
            .await
            .map_err(err)?;
            if let Some(lines) = bootstrap.get("pg_hba").and_then(Value::as_seq) {
                let lines: Vec<String> = lines.iter().map(crate::postgres::pystr::py_str).collect();
                let parameters = section(&self.cfg.postgresql, "parameters");
                append_pg_hba(
                    &self.cfg.data_dir,
                    &lines,
                    parameters.is_some_and(|p| p.contains_key("hba_file")),
                    self.cfg.postgresql.contains_key("pg_hba"),
                )
                .map_err(err)?;
            }
        } else {
            self.pg.state = "running custom bootstrap script".to_owned();
            self.publish();
            let config = section(&bootstrap, &method).cloned().unwrap_or_default();
            custom_bootstrap(&method, &config, &self.cfg.scope, &self.cfg.data_dir, None)
                .await
                .map_err(err)?;
        }
        self.pg.start(Role::Primary, None).await?;
        let conn = local_conn_params(&self.cfg.postgresql, "heartbeat")
            .map_err(|e| LocalError::Config(e.to_string()))?;
        let server_version = self
            .pg
            .monitor
            .server_version()
            .await
            .map_err(|e| LocalError::Process(e.to_string()))?;
        let empty = Map::new();
        let superuser = self.cfg.auth("superuser").unwrap_or(&empty);
        post_bootstrap(&PostBootstrap {
            conn: &conn,
            superuser,
            replication: self.cfg.auth("replication").unwrap_or(&empty),
            rewind: self.cfg.auth("rewind").unwrap_or(superuser),
            bootstrap: &bootstrap,
            pgpass: &self.pgpass_path(),
            server_version: i64::from(server_version),
            run_as: None,
        })
        .await
        .map_err(err)?;
        self.publish_new_cluster(cluster).await?;
        self.pg.role = "primary".to_owned();
        self.checkpoint_after_promote();
        if self.cfg.ha.synchronous_mode {
            // Until a standby is confirmed: nobody, or any one when strict.
            let strict = self
                .config
                .effective()
                .get("synchronous_mode_strict")
                .and_then(crate::config::units::parse_bool)
                .unwrap_or(false);
            self.set_ssn(strict.then(|| "*".to_owned())).await?;
        }
        log::info!(target: "patroni.ha", "initialized a new cluster");
        Ok(())
    }

    /// A new cluster (or standby cluster) runs here: publish it as
    /// Patroni's `post_bootstrap` does, the `initialize` key with our
    /// system identifier, `/config` unless someone wrote one, then the
    /// leader key.
    pub(super) async fn publish_new_cluster(
        &mut self,
        cluster: &Cluster,
    ) -> Result<(), LocalError> {
        let sysid = self
            .pg
            .controldata()
            .await
            .and_then(|c| c.system_identifier().map(str::to_owned))
            .ok_or_else(|| LocalError::Process("cannot read the system identifier".into()))?;
        self.sysid = Some(sysid.clone());
        let dcs_err = |e: crate::dcs::DcsError| LocalError::Process(e.to_string());
        self.dcs.initialize(false, &sysid).await.map_err(dcs_err)?;
        if cluster
            .config
            .as_ref()
            .is_none_or(|c| c.modify_version.is_none())
        {
            let dynamic = Value::Map(self.config.dynamic_configuration().clone());
            if let Some(json) = dynamic.to_json() {
                self.dcs
                    .set_config_value(&compact(&json), None)
                    .await
                    .map_err(dcs_err)?;
            }
        }
        let started = tokio::time::Instant::now();
        if !self
            .dcs
            .attempt_to_acquire_leader()
            .await
            .map_err(dcs_err)?
        {
            return Err(LocalError::Process(
                "another member took the leader key during bootstrap".into(),
            ));
        }
        self.is_leader = true;
        self.lease_renewed(started);
        // What we just wrote (`/config` above all) is what the REST API
        // must answer from at once, as Patroni reloads the cluster here.
        if let Err(e) = self.load_cluster().await {
            log::warn!(target: "patroni.ha", "cannot read the new cluster back: {e}");
        }
        Ok(())
    }

    /// Run the replica creation methods, copying from `source` (`None`:
    /// only the methods that work without a primary), with the state
    /// `creating replica` published meanwhile. A remote source (standby
    /// cluster) brings its own `create_replica_methods` when it has them.
    pub(super) async fn run_replica_methods(
        &mut self,
        source: Option<&crate::postgres::ReplicationSource>,
    ) -> Result<(), String> {
        let methods = source
            .filter(|s| s.remote)
            .and_then(|s| s.data.get("create_replica_methods"))
            .and_then(Value::as_seq)
            .map(|list| {
                list.iter()
                    .filter_map(|v| v.as_str().map(str::to_owned))
                    .collect::<Vec<_>>()
            })
            .filter(|list| !list.is_empty());
        self.pg.state = "creating replica".to_owned();
        self.publish();
        let commands = PgCommands::from_config(&self.cfg.postgresql);
        let pg_version = self.pg.binary_version().await.map_err(|e| e.to_string())?;
        let result = create_replica(&ReplicaInput {
            data_dir: &self.cfg.data_dir,
            commands: &commands,
            scope: &self.cfg.scope,
            postgresql: &self.cfg.postgresql,
            methods,
            source,
            replication: self.cfg.auth("replication"),
            pgpass: &self.pgpass_path(),
            pg_version,
            retry_sleep: crate::postgres::replica::BASEBACKUP_RETRY_SLEEP,
            run_as: None,
        })
        .await;
        if let Err(e) = result {
            self.pg.state = "stopped".to_owned();
            return Err(e.to_string());
        }
        self.sysid = None;
        Ok(())
    }

    /// Copy a replica from `from` and start it.
    pub(super) async fn create_replica(
        &mut self,
        cluster: &Arc<Cluster>,
        from: &str,
    ) -> Result<(), LocalError> {
        let source = source_for(cluster, Some(from));
        self.run_replica_methods(source.as_ref())
            .await
            .map_err(|e| LocalError::Process(format!("failed to bootstrap from {from}: {e}")))?;
        let role = if cluster.leader.as_ref().is_some_and(|l| l.name == from) {
            "leader"
        } else {
            "replica"
        };
        log::info!(target: "patroni.ha", "bootstrapped from {role} '{from}'");
        let leader = cluster.leader.as_ref().map(|l| l.name.clone());
        let follow = leader.as_deref().unwrap_or(from);
        let source = source_for(cluster, Some(follow));
        self.pg.start(Role::Replica, source.as_ref()).await
    }

    /// No primary, but a method that restores without one (`no_leader`).
    pub(super) async fn create_replica_without_leader(&mut self) -> Result<(), LocalError> {
        self.run_replica_methods(None).await.map_err(|e| {
            LocalError::Process(format!("failed to create a replica without a leader: {e}"))
        })?;
        log::info!(target: "patroni.ha", "bootstrapped (without leader)");
        self.pg.start(Role::Replica, None).await
    }

    /// Single-user mode start and stop, so that a data directory that was
    /// not shut down cleanly becomes clean (before pg_rewind or a start as
    /// replica). Archiving is forced on with a failing command so that no
    /// WAL is archived from a timeline that may be thrown away.
    pub(super) async fn crash_recovery(&mut self) -> Result<(), LocalError> {
        self.pg.crash_recovery_started = true;
        let program = self.cfg.program("postgres");
        log::info!(target: "patroni.postgresql.rewind", "running single-user crash recovery");
        for name in ["standby.signal", "recovery.signal", "recovery.conf"] {
            let path = self.cfg.data_dir.join(name);
            if path.exists() {
                let _ = std::fs::remove_file(&path);
            }
        }
        let output = tokio::process::Command::new(&program)
            .arg("--single")
            .arg("-D")
            .arg(&self.cfg.data_dir)
            .args([
                "-c",
                "archive_mode=on",
                "-c",
                "archive_command=false",
                "template1",
            ])
            .stdin(std::process::Stdio::null())
            .output()
            .await
            .map_err(|e| LocalError::Process(format!("cannot run {}: {e}", program.display())))?;
        if output.status.success() {
            Ok(())
        } else {
            Err(LocalError::Process(format!(
                "crash recovery failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )))
        }
    }

    /// A stopped node must be rewound before it follows: it was a primary
    /// when it stopped (pg_rewind itself then finds out whether anything
    /// diverged), or it was a replica that replayed past the point where
    /// the leader's timeline forked off.
    pub(super) async fn needs_rewind(&self, cluster: &Cluster) -> bool {
        if !self.cfg.use_pg_rewind {
            return false;
        }
        let Some(control) = self.pg.controldata().await else {
            return false;
        };
        match control.cluster_state() {
            Some(ClusterState::InProduction) | Some(ClusterState::ShutDown) => true,
            Some(ClusterState::ShutDownInRecovery) | Some(ClusterState::InArchiveRecovery) => {
                let (timeline, lsn) = match (
                    control.min_recovery_timeline(),
                    control.min_recovery_location(),
                ) {
                    (Some(t), Some(l)) if t > 0 && l > 0 => (t, l),
                    _ => match (control.checkpoint_timeline(), control.checkpoint_location()) {
                        (Some(t), Some(l)) => (t, l),
                        _ => return false,
                    },
                };
                let history = cluster
                    .history
                    .as_ref()
                    .map(|h| h.entries())
                    .unwrap_or_default();
                replica_diverged(&history, timeline, lsn as i64) == Some(true)
            }
            _ => false,
        }
    }

    /// A running replica replayed past the fork point of the leader's
    /// timeline: streaming can never resume without a rewind.
    pub(super) fn running_replica_diverged(&self, cluster: &Cluster) -> bool {
        let Some(info) = self.pg.last_info.as_ref().filter(|i| i.is_in_recovery) else {
            return false;
        };
        let (Some(timeline), Some(lsn)) = (info.received_tli, info.replay_lsn) else {
            return false;
        };
        let history = cluster
            .history
            .as_ref()
            .map(|h| h.entries())
            .unwrap_or_default();
        let leader_timeline = history.iter().map(|e| e.timeline + 1).max().unwrap_or(1);
        i64::from(timeline) < leader_timeline
            && replica_diverged(&history, i64::from(timeline), lsn) == Some(true)
    }

    /// Stop the diverged replica, rewind it from `leader` (or remove its
    /// data when only `remove_data_directory_on_diverged_timelines`
    /// allows a fix), and start it again.
    pub(super) async fn rewind_running_replica(
        &mut self,
        cluster: &Cluster,
        leader: &str,
    ) -> Result<(), LocalError> {
        if self.cfg.use_pg_rewind {
            if !leader_ready_for_rewind(cluster, leader) {
                log::info!(target: "patroni.postgresql.rewind", "Waiting for checkpoint on {leader} before rewind");
                return Ok(());
            }
            log::info!(target: "patroni.ha", "replica diverged from the timeline of {leader}: rewinding");
            self.pg
                .stop(crate::postgres::process::StopMode::Fast)
                .await?;
            self.rewind(cluster, leader).await?;
            let source = source_for(cluster, Some(leader));
            return self.pg.start(Role::Replica, source.as_ref()).await;
        }
        let remove = self
            .cfg
            .postgresql
            .get("remove_data_directory_on_diverged_timelines")
            .and_then(crate::config::units::parse_bool)
            .unwrap_or(false);
        if remove {
            log::warn!(target: "patroni.ha", "replica diverged from {leader}: removing the data directory");
            self.pg
                .stop(crate::postgres::process::StopMode::Fast)
                .await?;
            remove_data_directory(&self.cfg.data_dir)
                .map_err(|e| LocalError::Process(e.to_string()))?;
            self.sysid = None;
            return Ok(());
        }
        log::warn!(target: "patroni.ha", "replica diverged from {leader} and neither use_pg_rewind nor remove_data_directory_on_diverged_timelines is set");
        Ok(())
    }

    /// `pg_rewind` from `leader`. On failure the data directory is removed
    /// when `remove_data_directory_on_rewind_failure` says so (the next
    /// cycle then copies a new replica).
    pub(super) async fn rewind(
        &mut self,
        cluster: &Cluster,
        leader: &str,
    ) -> Result<(), LocalError> {
        // pg_rewind needs a cleanly stopped target; its own single-user
        // recovery fails while a standby.signal is there (Patroni's
        // `ensure_clean_shutdown` does this first, too).
        let clean = self
            .pg
            .controldata()
            .await
            .and_then(|c| c.cluster_state())
            .is_some_and(|s| s.is_clean_shutdown());
        if !clean {
            self.crash_recovery().await?;
        }
        let (dsn, password) = self
            .rewind_dsn(cluster, leader, "postgres")
            .ok_or_else(|| LocalError::Process(format!("no address for {leader}")))?;
        let program = self.cfg.program("pg_rewind");
        log::info!(target: "patroni.postgresql.rewind", "running pg_rewind from {leader}");
        let mut command = tokio::process::Command::new(&program);
        command
            .arg("-D")
            .arg(&self.cfg.data_dir)
            .arg(format!("--source-server={dsn}"))
            .stdin(std::process::Stdio::null());
        if let Some(p) = &password {
            command.env("PGPASSWORD", p);
        }
        let output = command
            .output()
            .await
            .map_err(|e| LocalError::Process(format!("cannot run {}: {e}", program.display())))?;
        if output.status.success() {
            log::info!(target: "patroni.postgresql.rewind", "pg_rewind finished: {}",
                String::from_utf8_lossy(&output.stderr).trim());
            self.flush_source_wal(&dsn, password.as_deref()).await;
            return Ok(());
        }
        let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
        log::error!(target: "patroni.postgresql.rewind", "Failed to rewind from healthy primary: {leader}: {stderr}");
        if self.cfg.remove_data_directory_on_rewind_failure {
            log::warn!(target: "patroni.postgresql.rewind", "remove_data_directory_on_rewind_failure is set. removing...");
            remove_data_directory(&self.cfg.data_dir)
                .map_err(|e| LocalError::Process(e.to_string()))?;
            self.sysid = None;
        }
        Err(LocalError::Process(format!("pg_rewind failed: {stderr}")))
    }

    /// A libpq connection string to `leader` as the rewind user (else the
    /// superuser) on `dbname`, and the password to pass in the
    /// environment: for pg_rewind and for `psql` on the leader (libpq
    /// brings the TLS the leader may require).
    pub(super) fn rewind_dsn(
        &self,
        cluster: &Cluster,
        leader: &str,
        dbname: &str,
    ) -> Option<(String, Option<String>)> {
        let source = source_for(cluster, Some(leader))?;
        let auth = self
            .cfg
            .auth("rewind")
            .or_else(|| self.cfg.auth("superuser"))
            .cloned();
        let mut kwargs = source.conn_kwargs_with_auth(auth.as_ref());
        kwargs.set("dbname", Value::Str(dbname.to_owned()));
        let password = match kwargs.remove("password") {
            Some(Value::Str(p)) => Some(p),
            _ => None,
        };
        let major = self.pg.major_version().unwrap_or(150000);
        Some((format_dsn(&kwargs, major), password))
    }

    /// After a rewind, make the source flush its WAL. pg_rewind sets our
    /// minimum recovery point to the source's *insert* position, and a
    /// record inserted but not yet flushed there (a standby snapshot on an
    /// idle primary, say) is not streamed until something else flushes,
    /// which keeps the rewound node from accepting connections for that
    /// long (seen: 21 s). One tiny transaction, committed with a local
    /// flush only (never waiting for synchronous standbys), ends the wait.
    /// Best effort: a failure only costs that wait.
    async fn flush_source_wal(&self, dsn: &str, password: Option<&str>) {
        let program = self.cfg.program("psql");
        let mut command = tokio::process::Command::new(&program);
        command
            .args([
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                dsn,
                "-c",
            ])
            .arg(
                "BEGIN; SET LOCAL synchronous_commit TO local; \
                 SELECT pg_catalog.txid_current(); COMMIT;",
            )
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        if let Some(p) = password {
            command.env("PGPASSWORD", p);
        }
        match tokio::time::timeout(std::time::Duration::from_secs(5), command.output()).await {
            Ok(Ok(out)) if out.status.success() => {}
            Ok(Ok(out)) => log::debug!(target: "patroni.postgresql.rewind",
                "could not make the source flush its WAL: {}", String::from_utf8_lossy(&out.stderr).trim()),
            Ok(Err(e)) => {
                log::debug!(target: "patroni.postgresql.rewind", "cannot run {}: {e}", program.display())
            }
            Err(_) => {
                log::debug!(target: "patroni.postgresql.rewind", "flushing the source's WAL timed out")
            }
        }
    }
}
