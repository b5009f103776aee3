//! One HA cycle: read the cluster, observe PostgreSQL, hold the
//! conversation with [`decide`], run the actions in order (stopping at the
//! first failure), then publish this member's state.

use std::sync::Arc;

use crate::config::Value;
use crate::dcs::DcsError;
use crate::ha::decide::{
    decide, decide_dcs_error, Action, DemoteMode, Facts, LocalPg, Me, Query, Step,
};
use crate::model::{Cluster, MemberStatus, WalStatus};
use crate::postgres::process::StopMode;
use crate::postgres::Role;

use super::local::{source_for, wait_until, LocalError};
use super::{epoch_now, peers, slots, Daemon};

/// Why a cycle's conversation ended early.
enum CycleEnd {
    /// An action failed: its message is the cycle's.
    Message(String),
    /// The DCS became unreachable mid-cycle and that was handled as a
    /// failed cluster read (this is its message); the cycle is over.
    DcsFailed(String),
}

/// The most questions one cycle may ask before giving up (a decision that
/// keeps asking is a bug, not a reason to spin).
const MAX_QUERIES: usize = 8;

impl Daemon {
    pub(super) fn nofailover(&self) -> bool {
        crate::model::Tags(&self.cfg.tags).nofailover()
    }

    pub(super) fn me(&self) -> Me {
        Me {
            name: self.cfg.name.clone(),
            tags: self.cfg.tags.clone(),
        }
    }

    /// Read the cluster; on success adopt a changed dynamic configuration.
    pub(super) async fn load_cluster(&mut self) -> Result<Arc<Cluster>, DcsError> {
        let cluster = Arc::new(self.dcs.get_cluster().await?);
        self.cluster = Some(cluster.clone());
        self.cluster_valid = true;
        self.dcs_last_seen = epoch_now() as i64;
        if let Some(config) = &cluster.config {
            let dynamic = Value::from_json(&serde_json::Value::Object(config.data.clone()));
            if let Some(map) = dynamic.as_map() {
                let changed = match config.modify_version {
                    Some(v) => self.config.set_dynamic_configuration_versioned(map, v),
                    None => self.config.set_dynamic_configuration(map),
                };
                if changed {
                    super::log_config_events(&mut self.config);
                    self.apply_config().await;
                    if let Err(e) = self.config.save_cache() {
                        log::warn!(target: "patroni.config", "cannot save the dynamic configuration cache: {e}");
                    }
                }
            }
        }
        Ok(cluster)
    }

    pub(super) async fn run_cycle(&mut self) -> String {
        let cluster = match self.load_cluster().await {
            Ok(c) => c,
            Err(e) => return self.dcs_unreachable(e).await,
        };
        // Failsafe mode: a leader that asked us to accept it still leads.
        let cluster = match cluster.leader {
            None if self.cfg.ha.failsafe_mode => {
                Arc::new(self.cluster_with_failsafe_leader(Cluster::clone(&cluster)))
            }
            _ => cluster,
        };
        // After the read: a new ttl from `/config` reaches the device at
        // this cycle's keepalive.
        self.watchdog.reload(self.watchdog_config());
        if self.adopt_global_settings(&cluster) && self.pg.is_running() {
            // Synchronous mode was switched: the setting changes hands.
            if let Err(e) = self.rewrite_files().await.and_then(|()| self.pg.reload()) {
                log::error!(target: "patroni.postgresql", "cannot apply synchronous_standby_names: {e}");
            }
        }
        if self.sysid.is_none() && !self.pg.data_directory_empty() {
            self.sysid = self
                .pg
                .controldata()
                .await
                .and_then(|c| c.system_identifier().map(str::to_owned));
        }
        if self.pg.is_running() && !self.cfg.ha.paused {
            if let Some(message) = self.run_scheduled_restart().await {
                log::info!(target: "patroni.ha", "{message}");
            }
        }
        let pg = self.pg.observe(self.sysid.clone()).await;
        if self.pg.query_failed && self.pg.state == "running" && !pg.starting {
            // A running PostgreSQL that does not answer decides nothing:
            // not "stopped", not "crashed" (Patroni's answer too). The key
            // is not refreshed meanwhile, so a hung primary loses it after
            // ttl and the fence stops it.
            return "Error communicating with PostgreSQL. Will try again later".to_owned();
        }
        self.pg.start_failed = false;
        if self.cfg.ha.paused && !pg.running && self.pg.state == "crashed" {
            // Paused: nobody restarts it, Patroni reports it stopped.
            self.pg.state = "stopped".to_owned();
        }
        if cluster.member(&self.cfg.name).is_none() {
            self.touch_member(&pg).await;
        }
        let message = match self.converse(cluster.clone(), &pg).await {
            Ok(m) => m,
            Err(CycleEnd::Message(m)) => m,
            // Handled as a failed read: nothing more to do with the DCS.
            Err(CycleEnd::DcsFailed(m)) => return m,
        };
        // Observe again first: a promotion in this cycle must create the
        // members' slots now, not one loop later.
        let pg = self.pg.observe(self.sysid.clone()).await;
        if self.is_leader {
            self.leader_housekeeping().await;
        } else {
            self.replica_housekeeping().await;
        }
        self.pg.seen_running = pg.running;
        if self.is_leader {
            // The DCS answered the leader this cycle: failsafe is over.
            self.failsafe.reset();
        }
        self.observe_for_failsafe(&pg);
        if !self.is_leader || self.cfg.ha.paused {
            self.fence.disarm();
        }
        // The watchdog guards a running primary only: off in pause, off
        // once we neither lead nor run a primary. (A primary that failed
        // to stop keeps it armed, so the machine resets.)
        let guards_a_primary = self.is_leader || (pg.running && pg.is_primary);
        if self.cfg.ha.paused || !guards_a_primary {
            self.watchdog.disable();
        }
        self.touch_member(&pg).await;
        message
    }

    /// Ask `decide` until it decides, answering its questions.
    async fn converse(
        &mut self,
        mut cluster: Arc<Cluster>,
        pg: &LocalPg,
    ) -> Result<String, CycleEnd> {
        let me = self.me();
        self.cfg.ha.watchdog_unusable = !self.watchdog.is_healthy();
        let settings = self.cfg.ha.clone();
        let mut facts = Facts {
            watchdog_armed: self.watchdog.is_running().then_some(true),
            ..Facts::default()
        };
        for _ in 0..MAX_QUERIES {
            match decide(&cluster, &me, pg, &settings, &facts) {
                Step::Query(q) => {
                    if let Err(e) = self.answer(q, &mut cluster, &mut facts).await {
                        return Err(CycleEnd::DcsFailed(self.dcs_unreachable(e).await));
                    }
                }
                Step::Done(decision) => {
                    for note in &decision.notes {
                        log::info!(target: "patroni.ha", "{note}");
                    }
                    // Patroni runs these in the background and logs the
                    // cycle's message first; keep that order in the log.
                    let long = decision.actions.iter().any(|a| {
                        matches!(
                            a,
                            Action::Bootstrap
                                | Action::BootstrapStandbyLeader
                                | Action::CreateReplica { .. }
                                | Action::CreateReplicaWithoutLeader
                        )
                    });
                    if long {
                        log::info!(target: "patroni.ha", "{}", decision.message);
                        self.execute(&decision.actions, &cluster)
                            .await
                            .map_err(CycleEnd::Message)?;
                        return Ok(String::new());
                    }
                    self.execute(&decision.actions, &cluster)
                        .await
                        .map_err(CycleEnd::Message)?;
                    return Ok(decision.message);
                }
                Step::Unsupported(what) => {
                    return Ok(format!(
                        "no action: {what} is not handled by patroni-rs yet"
                    ));
                }
            }
        }
        Err(CycleEnd::Message(
            "the HA decision did not converge; doing nothing this cycle".to_owned(),
        ))
    }

    /// Answer one question of [`decide`] into `facts`. `Err` only when
    /// refreshing the leader key found the DCS unreachable in failsafe
    /// mode: the cycle then ends as one whose cluster read failed
    /// (Patroni handles any DCS failure of its cycle that way).
    async fn answer(
        &mut self,
        q: Query,
        cluster: &mut Arc<Cluster>,
        facts: &mut Facts,
    ) -> Result<(), DcsError> {
        match q {
            Query::RefreshLock => {
                let started = tokio::time::Instant::now();
                let ok = match self.dcs.update_leader(cluster).await {
                    Ok(ok) => ok,
                    Err(e @ DcsError::Unreachable(_)) if self.cfg.ha.failsafe_mode => {
                        return Err(e);
                    }
                    Err(e) => {
                        log::error!(target: "patroni.ha", "failed to update leader lock: {e}");
                        false
                    }
                };
                self.is_leader = ok;
                if ok {
                    self.lease_renewed(started);
                    self.write_failsafe_topology(cluster).await;
                    self.watchdog.keepalive();
                }
                facts.lock_refreshed = Some(ok);
            }
            Query::FetchPeerStatuses(names) => {
                facts.peers = Some(peers::fetch_statuses(&self.http, cluster, &names).await);
            }
            Query::AcquireLock => {
                let started = tokio::time::Instant::now();
                let ok = match self.dcs.attempt_to_acquire_leader().await {
                    Ok(ok) => ok,
                    Err(e) => {
                        log::error!(target: "patroni.ha", "failed to acquire the leader lock: {e}");
                        false
                    }
                };
                if ok {
                    log::info!(target: "patroni.ha", "Got response from the DCS: the leader key is ours");
                }
                self.is_leader = ok;
                if ok {
                    self.lease_renewed(started);
                }
                facts.lock_acquired = Some(ok);
            }
            Query::ReloadCluster(pending) => {
                if let Ok(fresh) = self.load_cluster().await {
                    *cluster = fresh;
                }
                facts.pending_follow = Some(pending);
            }
            Query::AcquireInitializeKey => {
                let won = match self.dcs.initialize(true, "").await {
                    Ok(()) => true,
                    Err(DcsError::CasFailed) => false,
                    Err(e) => {
                        log::error!(target: "patroni.ha", "failed to create the initialize key: {e}");
                        false
                    }
                };
                facts.initialize_won = Some(won);
            }
            Query::WriteInitializeKey { sysid, create_new } => {
                let written = match self.dcs.initialize(create_new, &sysid).await {
                    Ok(()) => true,
                    Err(e) => {
                        log::error!(target: "patroni.ha", "failed to write the initialize key: {e}");
                        false
                    }
                };
                facts.initialize_written = Some(written);
            }
            Query::WriteDynamicConfig => {
                let dynamic = Value::Map(self.config.dynamic_configuration().clone());
                if let Some(json) = dynamic.to_json() {
                    let text = crate::model::json::compact(&json);
                    match self.dcs.set_config_value(&text, None).await {
                        Ok(()) => {
                            if let Ok(fresh) = self.load_cluster().await {
                                *cluster = fresh;
                            }
                        }
                        Err(e) => log::warn!(target: "patroni.ha", "failed to write /config: {e}"),
                    }
                }
                facts.config_written = true;
            }
            Query::ClaimSyncForPromote => {
                let claimed = self.claim_sync_for_promote(cluster).await;
                facts.sync_claimed = Some(claimed);
            }
            Query::PostFailsafe(peers) => {
                facts.failsafe_accepted = Some(self.ask_failsafe_members(&peers).await);
            }
            Query::ActivateWatchdog => facts.watchdog_armed = Some(self.watchdog.activate()),
            Query::CurrentTime => facts.now = Some(chrono::Utc::now()),
            Query::SleepUntil(at) => {
                let wait = (at - chrono::Utc::now()).to_std().unwrap_or_default();
                tokio::time::sleep(wait).await;
                facts.slept = true;
            }
        }
        Ok(())
    }

    /// Run the actions in order; the first failure ends the cycle with its
    /// message.
    pub(super) async fn execute(
        &mut self,
        actions: &[Action],
        cluster: &Arc<Cluster>,
    ) -> Result<(), String> {
        for action in actions {
            let result = match action {
                Action::Promote => {
                    // A new primary starts with no failsafe history.
                    self.failsafe.reset();
                    self.promote(cluster).await
                }
                Action::Demote(mode) => self.demote(*mode).await,
                Action::Follow { member } => self.follow(cluster, member.as_deref()).await,
                Action::StartAsReplica { member } => {
                    self.start_as_replica(cluster, member.as_deref()).await
                }
                Action::Bootstrap => self.bootstrap(cluster).await,
                Action::CreateReplica { from } => self.create_replica(cluster, from).await,
                Action::ClearFailoverKey => self.clear_failover_key(cluster).await,
                Action::DropFailoverLeader => self.drop_failover_leader(cluster).await,
                Action::CreateReplicaWithoutLeader => self.create_replica_without_leader().await,
                Action::StartAsPrimary => self.start_as_primary().await,
                Action::FollowRemote { standby_leader } => {
                    self.follow_remote(*standby_leader).await
                }
                Action::BootstrapStandbyLeader => self.bootstrap_standby_leader(cluster).await,
                Action::ProcessSyncReplication => self.process_sync_replication(cluster).await,
                Action::DisableSyncReplication => self.disable_sync_replication(cluster).await,
                Action::CrashRecovery => self.crash_recovery().await,
                Action::StopImmediately => self.pg.stop(StopMode::Immediate).await.map(|_| ()),
                Action::StopFast => self.pg.stop(StopMode::Fast).await.map(|_| ()),
                Action::HoldPrimaryInFailsafe => {
                    self.hold_primary_in_failsafe();
                    Ok(())
                }
                Action::ReleaseLeaderKey => {
                    let lsn = self.last_known_lsn().await;
                    self.release_leader_key(lsn).await;
                    // A primary that could not be started again gives the
                    // key up as `demoted` (Patroni's `post_recover`).
                    if !self.stopping
                        && !self.pg.is_running()
                        && matches!(self.pg.role.as_str(), "primary" | "standby_leader")
                    {
                        self.pg.role = "demoted".to_owned();
                        self.pg
                            .callback(super::callbacks::CallbackAction::OnRoleChange);
                    }
                    let pg = self.pg.observe(self.sysid.clone()).await;
                    self.touch_member(&pg).await;
                    Ok(())
                }
                Action::Exit { reason } => {
                    log::error!(target: "patroni.ha", "{reason}");
                    self.fatal = Some(reason.clone());
                    Ok(())
                }
            };
            if let Err(e) = result {
                log::error!(target: "patroni.ha", "{action:?} failed: {e}");
                return Err(format!("{action:?} failed: {e}"));
            }
        }
        Ok(())
    }

    async fn promote(&mut self, cluster: &Arc<Cluster>) -> Result<(), LocalError> {
        // Physical slots can be created on a standby: make the members'
        // slots before promoting, so that a member that follows us at once
        // (the former leader after a switchover) finds its slot.
        if self.cfg.use_slots {
            if let Err(e) = slots::sync_member_slots(
                &self.pg.monitor,
                cluster,
                &self.cfg.name,
                self.nofailover(),
            )
            .await
            {
                log::warn!(target: "patroni.ha", "creating member slots before promote failed: {e}");
            }
        }
        self.pg.promote().await?;
        let monitor = &self.pg.monitor;
        let promoted = wait_until(self.cfg.pg_ctl_timeout, || async {
            matches!(monitor.cluster_info().await, Ok(i) if !i.is_in_recovery)
        })
        .await;
        if !promoted {
            return Err(LocalError::Process(
                "PostgreSQL did not leave recovery after promote".into(),
            ));
        }
        self.pg.role = "primary".to_owned();
        self.checkpoint_after_promote();
        if cluster.failover.as_ref().is_some_and(|f| !f.is_empty()) {
            self.clear_failover_key(cluster).await?;
        }
        Ok(())
    }

    async fn demote(&mut self, mode: DemoteMode) -> Result<(), LocalError> {
        let (stop, checkpoint, release, offline) = match mode {
            DemoteMode::Offline => (StopMode::Fast, false, false, true),
            DemoteMode::Graceful => (StopMode::Fast, true, true, false),
            DemoteMode::Immediate => (StopMode::Immediate, false, true, false),
            DemoteMode::ImmediateNoLock => (StopMode::Immediate, false, false, false),
            DemoteMode::Cluster => (StopMode::Fast, false, false, false),
        };
        if checkpoint {
            if let Err(e) = self.pg.monitor.query("CHECKPOINT", &[]).await {
                log::warn!(target: "patroni.ha", "CHECKPOINT before demote failed: {e}");
            }
        }
        let last_lsn = self.pg.last_info.as_ref().and_then(|i| i.wal_flush_lsn);
        self.pg.stop(stop).await?;
        // A replica waits for nobody (Patroni clears the setting here).
        self.pg.ssn = None;
        self.sync_tracker.reset();
        if release {
            self.release_leader_key(last_lsn).await;
        }
        if mode == DemoteMode::Cluster {
            // Into a standby cluster: the key holder stays the leader, as
            // the standby leader of the remote primary.
            self.pg.role = "demoted".to_owned();
            return self.follow_remote(self.is_leader).await;
        }
        self.is_leader = false;
        self.pg.role = "demoted".to_owned();
        if offline {
            // Patroni's `offline` demotion restarts read-only with nobody
            // to follow (the DCS is gone), unless the daemon is stopping.
            if self.stopping {
                return Ok(());
            }
            return self.start_as_replica(&Cluster::default(), None).await;
        }
        // Start again as a replica of whoever leads now (nobody yet after a
        // release: the next cycle points it at the new leader).
        let fresh = self.dcs.get_cluster().await.ok().map(Arc::new);
        let leader = fresh
            .as_ref()
            .and_then(|c| c.leader.as_ref())
            .map(|l| l.name.clone())
            .filter(|l| *l != self.cfg.name);
        let cluster = fresh.unwrap_or_default();
        self.start_as_replica(&cluster, leader.as_deref()).await
    }

    /// Our last WAL position: the shutdown checkpoint of a stopped
    /// PostgreSQL, else the last flush position seen.
    async fn last_known_lsn(&mut self) -> Option<i64> {
        if self.pg.is_running() {
            return self.pg.last_info.as_ref().and_then(|i| i.wal_flush_lsn);
        }
        self.pg
            .controldata()
            .await
            .and_then(|c| c.checkpoint_location())
            .and_then(|l| i64::try_from(l).ok())
    }

    /// Write our last position to `/status`, then delete the leader key if
    /// it is still ours.
    async fn release_leader_key(&mut self, last_lsn: Option<i64>) {
        if let Some(lsn) = last_lsn {
            let mut status = self
                .cluster
                .as_ref()
                .map(|c| c.status.clone())
                .unwrap_or_default();
            status.last_lsn = lsn;
            if let Err(e) = self.dcs.write_status(&status.to_node()).await {
                log::warn!(target: "patroni.ha", "failed to write /status: {e}");
            }
        }
        self.fence.disarm();
        match self.dcs.delete_leader().await {
            Ok(true) => log::info!(target: "patroni.ha", "Leader key released"),
            Ok(false) => {}
            Err(e) => log::error!(target: "patroni.ha", "failed to delete the leader key: {e}"),
        }
        self.is_leader = false;
    }

    async fn follow(
        &mut self,
        cluster: &Arc<Cluster>,
        member: Option<&str>,
    ) -> Result<(), LocalError> {
        if !self.pg.is_running() {
            return self.start_as_replica(cluster, member).await;
        }
        if let Some(leader) = member {
            if self.running_replica_diverged(cluster) {
                return self.rewind_running_replica(cluster, leader).await;
            }
        }
        let source = source_for(cluster, member);
        if self.pg.follow(source.as_ref()).await? {
            log::info!(target: "patroni.ha", "Changed primary_conninfo to follow {}", member.unwrap_or("nobody"));
        }
        Ok(())
    }

    async fn start_as_replica(
        &mut self,
        cluster: &Cluster,
        member: Option<&str>,
    ) -> Result<(), LocalError> {
        if self.pg.is_running() {
            return Ok(());
        }
        if let Some(leader) = member {
            if self.needs_rewind(cluster).await {
                if !super::provision::leader_ready_for_rewind(cluster, leader) {
                    log::info!(target: "patroni.postgresql.rewind", "Waiting for checkpoint on {leader} before rewind");
                    return Ok(());
                }
                self.rewind(cluster, leader).await?;
            }
        }
        let source = source_for(cluster, member);
        self.pg.ssn = None;
        let result = self.pg.start(Role::Replica, source.as_ref()).await;
        self.after_start(&result);
        result
    }

    /// Remember how a start ended, for the next cycle's decision.
    pub(super) fn after_start(&mut self, result: &Result<(), LocalError>) {
        match result {
            Ok(()) => self.pg.crash_recovery_started = false,
            Err(_) => self.pg.start_failed = true,
        }
    }

    async fn start_as_primary(&mut self) -> Result<(), LocalError> {
        let result = self.pg.start(Role::Primary, None).await;
        self.after_start(&result);
        result
    }

    async fn clear_failover_key(&mut self, cluster: &Cluster) -> Result<(), LocalError> {
        let version = cluster.failover.as_ref().and_then(|f| f.version);
        match self.dcs.set_failover_value("{}", version).await {
            Ok(()) | Err(DcsError::CasFailed) => Ok(()),
            Err(e) => Err(LocalError::Process(format!(
                "cannot clear the failover key: {e}"
            ))),
        }
    }

    /// Keep `member` and `scheduled_at` of the failover key, drop `leader`.
    async fn drop_failover_leader(&mut self, cluster: &Cluster) -> Result<(), LocalError> {
        let Some(failover) = cluster.failover.as_ref() else {
            return Ok(());
        };
        let value = crate::model::Failover {
            leader: None,
            ..failover.clone()
        }
        .to_node();
        match self.dcs.set_failover_value(&value, failover.version).await {
            Ok(()) | Err(DcsError::CasFailed) => Ok(()),
            Err(e) => Err(LocalError::Process(format!(
                "cannot update the failover key: {e}"
            ))),
        }
    }

    /// The DCS did not answer: a primary must not keep writing, unless
    /// failsafe mode lets it (every member accepted it as the leader).
    async fn dcs_unreachable(&mut self, e: DcsError) -> String {
        log::error!(target: "patroni.ha", "Error communicating with DCS: {e}");
        self.cluster_valid = false;
        self.is_leader = false;
        let pg = self.pg.observe(self.sysid.clone()).await;
        self.observe_for_failsafe(&pg);
        let failsafe = self.cluster.as_ref().and_then(|c| c.failsafe.clone());
        let me = self.me();
        let mut facts = Facts::default();
        loop {
            match decide_dcs_error(failsafe.as_ref(), &me, &pg, &self.cfg.ha, &facts) {
                Step::Done(decision) => {
                    for note in &decision.notes {
                        log::info!(target: "patroni.ha", "{note}");
                    }
                    if !decision.actions.contains(&Action::HoldPrimaryInFailsafe) {
                        self.failsafe_asked_at = None;
                        if self.cfg.ha.failsafe_mode && pg.is_primary {
                            self.failsafe.reset();
                        }
                    }
                    let cluster = Arc::new(Cluster::default());
                    let result = self.execute(&decision.actions, &cluster).await;
                    if decision.actions.contains(&Action::HoldPrimaryInFailsafe) {
                        self.failsafe_primary_slots().await;
                    } else if self.cfg.ha.failsafe_mode && !pg.is_primary {
                        self.failsafe_replica_slots().await;
                    }
                    return match result {
                        Ok(()) => decision.message,
                        Err(m) => m,
                    };
                }
                Step::Query(Query::PostFailsafe(peers)) if facts.failsafe_accepted.is_none() => {
                    facts.failsafe_accepted = Some(self.ask_failsafe_members(&peers).await);
                }
                Step::Unsupported(what) => {
                    return format!("no action: {what} is not handled by patroni-rs yet");
                }
                Step::Query(q) => return format!("unexpected question without a DCS: {q:?}"),
            }
        }
    }

    /// Publish this member's key.
    pub(super) async fn touch_member(&mut self, pg: &LocalPg) {
        let info = self.pg.last_info.as_ref();
        let wal = info.map(|i| WalStatus {
            xlog_location: pg.wal_position,
            replay_lsn: i.is_in_recovery.then_some(i.replay_lsn).flatten(),
            receive_lsn: i.is_in_recovery.then(|| i.received_location()).flatten(),
            replication_state: i.replication_state().map(str::to_owned),
        });
        let status = MemberStatus {
            conn_url: self.cfg.conn_url.clone(),
            api_url: self.cfg.api_url.clone(),
            state: self.pg.state.clone(),
            role: self.pg.role.clone(),
            version: crate::PATRONI_VERSION.to_owned(),
            tags: self.published_tags(),
            wal,
            timeline: pg.timeline,
            scheduled_restart: self.scheduled_restart.clone(),
            pending_restart_reason: self.pg.pending_restart_reason.clone(),
            pause: self.cfg.ha.paused,
            checkpoint_after_promote: (self.is_leader
                && !self
                    .checkpoint_done
                    .load(std::sync::atomic::Ordering::SeqCst))
            .then_some(false),
            ..MemberStatus::default()
        };
        let cluster = self.cluster.clone();
        if let Err(e) = self
            .dcs
            .touch_member(cluster.as_deref(), &status.to_node())
            .await
        {
            log::warn!(target: "patroni.ha", "failed to update the member key: {e}");
        }
    }

    /// Rewrite PostgreSQL's files for its current role (no reload).
    pub(super) async fn rewrite_files(&mut self) -> Result<(), LocalError> {
        let (role, source) = if matches!(self.pg.role.as_str(), "primary" | "promoted") {
            (Role::Primary, None)
        } else {
            let cluster = self.cluster.clone().unwrap_or_default();
            let following = self.pg.following.clone();
            (Role::Replica, source_for(&cluster, following.as_deref()))
        };
        self.pg.write_files(role, source.as_ref()).await
    }

    /// Rewrite PostgreSQL's files for its current role and reload.
    pub(super) async fn rewrite_and_reload(&mut self) -> Result<(), LocalError> {
        self.rewrite_files().await?;
        log::info!(target: "patroni.postgresql.config", "Reloading PostgreSQL configuration.");
        self.pg.reload()?;
        // PostgreSQL applies the reload asynchronously (Patroni also waits
        // a second before asking which parameters wait for a restart).
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
        self.refresh_pending_restart().await;
        Ok(())
    }

    /// Which parameters PostgreSQL applies only after a restart, with
    /// their running and configured values (Patroni's
    /// `pending_restart_reason`).
    async fn refresh_pending_restart(&mut self) {
        const SKIP: [&str; 1] = ["hot_standby"];
        let skip: Vec<String> = SKIP.iter().map(|s| (*s).to_owned()).collect();
        let rows = self
            .pg
            .monitor
            .query(
                "SELECT s.name::text, pg_catalog.current_setting(s.name), \
                 (SELECT f.setting FROM pg_catalog.pg_file_settings f \
                  WHERE pg_catalog.lower(f.name) = pg_catalog.lower(s.name) \
                  ORDER BY f.seqno DESC LIMIT 1) \
                 FROM pg_catalog.pg_settings s \
                 WHERE pg_catalog.lower(s.name) != ALL($1) AND s.pending_restart",
                &[&skip],
            )
            .await;
        let rows = match rows {
            Ok(rows) => rows,
            Err(e) => {
                log::warn!(target: "patroni.postgresql.config", "Exception {e} when running query");
                return;
            }
        };
        let mut reason = serde_json::Map::new();
        for row in rows {
            let (Ok(name), Ok(old)) = (row.try_get::<_, String>(0), row.try_get::<_, String>(1))
            else {
                continue;
            };
            let new = row
                .try_get::<_, Option<String>>(2)
                .ok()
                .flatten()
                .unwrap_or_else(|| "?".to_owned());
            log::info!(target: "patroni.postgresql.config",
                "Changed {name} from '{old}' to '{new}' (restart might be required)");
            let mut diff = serde_json::Map::new();
            diff.insert("old_value".into(), old.into());
            diff.insert("new_value".into(), new.into());
            reason.insert(name, serde_json::Value::Object(diff));
        }
        self.pg.pending_restart_reason = reason;
    }
}
