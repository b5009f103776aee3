//! Synchronous replication on the primary: the executor's side of
//! [`crate::ha::sync`]. It reads the WAL senders and the live setting,
//! asks the pure planner what to change, then writes `/sync`
//! (compare-and-set, stopping at the first refusal) and
//! `synchronous_standby_names` (rewrite `postgresql.conf`, reload) in the
//! planned order.

use std::time::Duration;

use crate::config::units::{parse_bool, parse_int};
use crate::config::Value;
use crate::dcs::DcsError;
use crate::ha::quorum::{self, QuorumInput, TransitionKind};
use crate::ha::sync::{
    assign_confirmed, plan_multisync, ssn_value, CurrentSync, Log, NameSet, SyncOp, SyncSettings,
    WalSender,
};
use crate::model::{Cluster, SyncState};

use super::local::LocalError;
use super::Daemon;

/// How long PostgreSQL gets to apply a new setting before the standbys'
/// `sync_state` is read again (Patroni waits the same two seconds).
const CONFIRM_WAIT: Duration = Duration::from_secs(2);

/// The walsenders that stream, with positions as byte offsets.
const WAL_SENDERS: &str = "SELECT w.pid::bigint, a.application_name::text, w.sync_state::text, \
     pg_catalog.pg_wal_lsn_diff(w.write_lsn, '0/0')::bigint, \
     pg_catalog.pg_wal_lsn_diff(w.flush_lsn, '0/0')::bigint, \
     pg_catalog.pg_wal_lsn_diff(w.replay_lsn, '0/0')::bigint \
     FROM pg_catalog.pg_stat_get_wal_senders() w, pg_catalog.pg_stat_get_activity(w.pid) a \
     WHERE w.state = 'streaming'";

const SETTINGS: &str = "SELECT pg_catalog.current_setting('synchronous_commit'), \
     pg_catalog.current_setting('synchronous_standby_names'), \
     pg_catalog.pg_wal_lsn_diff(pg_catalog.pg_current_wal_flush_lsn(), '0/0')::bigint";

/// Some WAL without waiting for any standby, so that standbys report a
/// position past the mark taken when the setting changed.
const NUDGE_WAL: &str = "DO $$\nBEGIN\n    SET local synchronous_commit = 'off';\n    \
     PERFORM * FROM pg_catalog.txid_current();\nEND;$$";

/// The synchronous settings of the dynamic configuration (Patroni's
/// `global_config`): `synchronous_node_count` (default 1, at least 1 when
/// strict), `maximum_lag_on_syncnode` (default -1), and
/// `synchronous_mode_strict`.
pub(super) fn sync_settings(cluster: &Cluster) -> SyncSettings {
    let data = cluster.config.as_ref().map(|c| &c.data);
    let get = |key: &str| data.and_then(|d| d.get(key)).map(Value::from_json);
    let strict = get("synchronous_mode_strict")
        .and_then(|v| parse_bool(&v))
        .unwrap_or(false);
    let count = get("synchronous_node_count")
        .and_then(|v| parse_int(&v, None))
        .unwrap_or(1);
    SyncSettings {
        node_count: count.max(i64::from(strict)),
        maximum_lag_on_syncnode: get("maximum_lag_on_syncnode")
            .and_then(|v| parse_int(&v, None))
            .unwrap_or(-1),
        strict,
        quorum: crate::api::status::GlobalView::from_cluster(cluster).is_quorum_commit_mode(),
    }
}

fn log(line: &Log) {
    match line {
        Log::Info(m) => log::info!(target: "patroni.ha", "{m}"),
        Log::Warning(m) => log::warn!(target: "patroni.ha", "{m}"),
    }
}

impl Daemon {
    /// Keep `/sync` and `synchronous_standby_names` in line with the
    /// standbys that stream now. A refused write ends the attempt; the
    /// next cycle starts again from what it reads.
    pub(super) async fn process_sync_replication(
        &mut self,
        cluster: &Cluster,
    ) -> Result<(), LocalError> {
        if !self.pg.is_running() || self.pg.last_info.as_ref().is_none_or(|i| i.is_in_recovery) {
            // Not a primary yet (a promotion still running): next cycle.
            return Ok(());
        }
        let settings = sync_settings(cluster);
        if settings.quorum {
            if self
                .sync_tracker
                .quorum_due(std::time::Instant::now(), self.cfg.timing.loop_wait)
            {
                return self.process_quorum_replication(cluster, &settings).await;
            }
            return Ok(());
        }
        let state = self.sync_current_state(cluster, &settings).await?;
        let ops = plan_multisync(&self.cfg.name, &cluster.sync, &state, &settings);
        let mut version = cluster.sync.version;
        for op in ops {
            match op {
                SyncOp::Log(line) => log(&line),
                SyncOp::WriteSync {
                    members,
                    on_success,
                    on_failure,
                } => match self.write_sync(&members, version).await {
                    Some(v) => {
                        version = Some(v);
                        on_success.iter().for_each(log);
                    }
                    None => {
                        log(&on_failure);
                        return Ok(());
                    }
                },
                SyncOp::SetSsn(picked) => self.set_ssn(ssn_value(&picked)).await?,
                SyncOp::Confirm { wait, sync_common } => {
                    let confirmed = if wait {
                        tokio::time::sleep(CONFIRM_WAIT).await;
                        self.sync_current_state(cluster, &settings)
                            .await?
                            .sync_confirmed
                    } else {
                        state.sync_confirmed.clone()
                    };
                    if let Some(SyncOp::WriteSync {
                        members,
                        on_success,
                        on_failure,
                    }) = assign_confirmed(&confirmed, &sync_common)
                    {
                        match self.write_sync(&members, version).await {
                            Some(_) => on_success.iter().for_each(log),
                            None => log(&on_failure),
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// Quorum commit (Patroni's `_process_quorum_replication`): claim
    /// `/sync` if nobody did, then make the resolver's writes in order. A
    /// refused write or a broken state ends the attempt; a restart hint
    /// (standbys just listed, none confirmed yet) reads the state again a
    /// second later, within one `loop_wait`.
    async fn process_quorum_replication(
        &mut self,
        cluster: &Cluster,
        settings: &SyncSettings,
    ) -> Result<(), LocalError> {
        let started = std::time::Instant::now();
        let loop_wait = self.cfg.timing.loop_wait;
        let timed_out = |extra: Duration| started.elapsed() + extra >= loop_wait;
        let mut version = cluster.sync.version;
        let (mut leader, mut quorum_now, mut voters) = if cluster.sync.is_empty() {
            let me = self.cfg.name.clone();
            match self
                .write_sync_state(&me, &NameSet::default(), 0, version)
                .await
            {
                Some(v) => {
                    log::info!(target: "patroni.ha", "Enabled synchronous replication");
                    version = Some(v);
                    (me, 0, NameSet::default())
                }
                None => {
                    log::warn!(target: "patroni.ha", "Updating sync state failed");
                    return Ok(());
                }
            }
        } else {
            (
                cluster.sync.leader.clone().unwrap_or_default(),
                cluster.sync.quorum,
                cluster.sync.members().into_iter().collect(),
            )
        };
        // Patroni raises the factor to this when fewer standbys exist:
        // strict mode never lets commits go unacknowledged.
        let min_sync = i64::from(settings.strict);
        loop {
            let state = self.sync_current_state(cluster, settings).await?;
            let input = QuorumInput {
                leader: leader.clone(),
                quorum: quorum_now,
                voters: voters.clone(),
                numsync: state.numsync,
                sync: state.sync.clone(),
                numsync_confirmed: state.sync_confirmed.len() as i64,
                active: state.active.clone(),
                sync_wanted: settings.node_count,
                leader_wanted: self.cfg.name.clone(),
            };
            let plan = match quorum::resolve(&input) {
                Ok(plan) => plan,
                Err(e) => {
                    log::warn!(target: "patroni.quorum", "cannot resolve the quorum state: {e}");
                    return Ok(());
                }
            };
            for w in &plan.warnings {
                log::warn!(target: "patroni.quorum", "{w}");
            }
            let mut restart = false;
            for t in plan.transitions {
                if timed_out(Duration::ZERO) {
                    return Ok(());
                }
                let listed = t.names.sorted().join(", ");
                match t.kind {
                    TransitionKind::Quorum => {
                        log::info!(target: "patroni.ha",
                            "Setting leader to {}, quorum to {} of {} ({listed})",
                            t.leader, t.num, t.names.len());
                        match self
                            .write_sync_state(&t.leader, &t.names, t.num, version)
                            .await
                        {
                            Some(v) => version = Some(v),
                            None => {
                                log::info!(target: "patroni.ha",
                                    "Synchronous replication key updated by someone else.");
                                return Ok(());
                            }
                        }
                        (leader, quorum_now, voters) = (t.leader, t.num, t.names);
                    }
                    TransitionKind::Sync => {
                        log::info!(target: "patroni.ha",
                            "Setting synchronous replication to {} of {} ({listed})",
                            t.num, t.names.len());
                        let mut num = t.num;
                        if num < min_sync {
                            log::warn!(target: "patroni.ha",
                                "Replication factor {} requested, but {num} synchronous standbys available. Commits will be delayed.",
                                min_sync + 1);
                            num = min_sync;
                        }
                        self.set_ssn(quorum::quorum_ssn_value(&t.names, num))
                            .await?;
                    }
                    TransitionKind::Restart => restart = true,
                }
            }
            if !restart || timed_out(Duration::from_secs(1)) {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Synchronous mode was turned off: drop `/sync`, give the setting
    /// back to the configuration.
    pub(super) async fn disable_sync_replication(
        &mut self,
        cluster: &Cluster,
    ) -> Result<(), LocalError> {
        if !cluster.sync.is_empty() {
            match self.dcs.delete_sync_state(cluster.sync.version).await {
                Ok(()) => log::info!(target: "patroni.ha", "Disabled synchronous replication"),
                Err(e) => log::warn!(target: "patroni.ha", "failed to delete /sync: {e}"),
            }
        }
        self.sync_tracker.reset();
        self.set_ssn(None).await
    }

    /// Before a promotion in synchronous mode: `/sync` names us with no
    /// standbys, and PostgreSQL will wait for nobody (any one standby when
    /// strict) until standbys are confirmed. False when the key changed
    /// under us.
    pub(super) async fn claim_sync_for_promote(&mut self, cluster: &Cluster) -> bool {
        let settings = sync_settings(cluster);
        if settings.quorum {
            // Quorum commit: `/sync` stays as it is (the resolver moves it
            // to us after the promotion); PostgreSQL must wait for enough
            // of the old voters from the first commit on.
            self.sync_tracker.reset();
            let (names, num) =
                quorum::prepromote_ssn(&cluster.sync, &self.cfg.name, settings.strict);
            if let Err(e) = self.set_ssn(quorum::quorum_ssn_value(&names, num)).await {
                log::warn!(target: "patroni.ha", "cannot set synchronous_standby_names: {e}");
            }
            return true;
        }
        if self
            .write_sync(&NameSet::default(), cluster.sync.version)
            .await
            .is_none()
        {
            return false;
        }
        let strict = sync_settings(cluster).strict;
        self.sync_tracker.reset();
        if let Err(e) = self.set_ssn(strict.then(|| "*".to_owned())).await {
            log::warn!(target: "patroni.ha", "cannot set synchronous_standby_names: {e}");
        }
        true
    }

    /// Write `/sync` naming us and `members`; the new version, or `None`
    /// when the compare-and-set was refused or the DCS failed.
    async fn write_sync(&self, members: &NameSet, version: Option<i64>) -> Option<i64> {
        let me = self.cfg.name.clone();
        self.write_sync_state(&me, members, 0, version).await
    }

    /// Write `/sync` as `{"leader", "quorum", "sync_standby"}` (the
    /// standbys sorted, comma-separated, `null` when none).
    async fn write_sync_state(
        &self,
        leader: &str,
        members: &NameSet,
        quorum: i64,
        version: Option<i64>,
    ) -> Option<i64> {
        let value = SyncState::new(leader, &members.sorted(), quorum).to_node();
        match self.dcs.set_sync_state_value(&value, version).await {
            Ok(v) => Some(v),
            Err(DcsError::CasFailed) => None,
            Err(e) => {
                log::warn!(target: "patroni.ha", "failed to write /sync: {e}");
                None
            }
        }
    }

    /// Set the maintained `synchronous_standby_names` (rewrite the files
    /// and reload when it changed and PostgreSQL runs).
    pub(super) async fn set_ssn(&mut self, value: Option<String>) -> Result<(), LocalError> {
        if self.pg.ssn == value {
            return Ok(());
        }
        self.pg.ssn = value.clone();
        if !self.pg.is_running() {
            return Ok(());
        }
        self.rewrite_files().await?;
        self.pg.reload()?;
        // `*` (alone or in `ANY n (*)`) names no standby to track.
        let star = |v: &str| v == "*" || v.ends_with("(*)");
        if value.as_deref().is_some_and(|v| !star(v)) && self.pg.role == "primary" {
            // Usually applied within a millisecond; then take the mark
            // the newly listed standbys must reach.
            tokio::time::sleep(Duration::from_millis(100)).await;
            if let Err(e) = self.note_live_ssn().await {
                log::warn!(target: "patroni.ha", "reading synchronous_standby_names failed: {e}");
            }
        }
        Ok(())
    }

    /// Read the live setting and our position; on a change, remember the
    /// mark and make a little WAL.
    async fn note_live_ssn(&mut self) -> Result<(String, i64), LocalError> {
        let rows = self
            .pg
            .monitor
            .query(SETTINGS, &[])
            .await
            .map_err(|e| LocalError::Process(e.to_string()))?;
        let row = rows
            .first()
            .ok_or_else(|| LocalError::Process("no row from current_setting".into()))?;
        let commit: String = row.try_get(0).unwrap_or_default();
        let live: String = row.try_get(1).unwrap_or_default();
        let flush: i64 = row.try_get::<_, Option<i64>>(2).ok().flatten().unwrap_or(0);
        let change = self.sync_tracker.note_ssn(&live, flush);
        if let Some(w) = &change.warning {
            log::warn!(target: "patroni.postgresql.sync", "{w}");
        }
        if change.changed {
            if let Err(e) = self.pg.monitor.query(NUDGE_WAL, &[]).await {
                log::warn!(target: "patroni.postgresql.sync", "could not generate WAL: {e}");
            }
        }
        Ok((commit, flush))
    }

    /// Patroni's `current_state`, read from PostgreSQL now.
    async fn sync_current_state(
        &mut self,
        cluster: &Cluster,
        settings: &SyncSettings,
    ) -> Result<CurrentSync, LocalError> {
        let (commit, flush) = self.note_live_ssn().await?;
        let rows = self
            .pg
            .monitor
            .query(WAL_SENDERS, &[])
            .await
            .map_err(|e| LocalError::Process(e.to_string()))?;
        let senders: Vec<WalSender> = rows
            .iter()
            .filter_map(|r| {
                Some(WalSender {
                    pid: r.try_get::<_, Option<i64>>(0).ok().flatten()?,
                    application_name: r.try_get::<_, Option<String>>(1).ok().flatten()?,
                    sync_state: r
                        .try_get::<_, Option<String>>(2)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                    write_lsn: r.try_get(3).ok().flatten(),
                    flush_lsn: r.try_get(4).ok().flatten(),
                    replay_lsn: r.try_get(5).ok().flatten(),
                })
            })
            .collect();
        Ok(self.sync_tracker.current_state(
            cluster,
            &self.cfg.name,
            &senders,
            &commit,
            flush,
            settings,
        ))
    }

    /// The tags the member key shows: ours, with `nosync` while we ask
    /// the primary to release us (Patroni's `_disable_sync`).
    pub(super) fn published_tags(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut tags = crate::model::Tags(&self.cfg.tags).filtered();
        if self.disable_sync {
            tags.insert("nosync".into(), true.into());
            tags.insert("sync_priority".into(), 0.into());
        }
        tags
    }

    /// Before stopping PostgreSQL on a synchronous standby (Patroni's
    /// `while_not_sync_standby`): say `nosync` in our member key and wait
    /// (up to two loops) until the primary has named someone else, so
    /// that commits do not stall while we are down. Only a hint: a DCS
    /// failure ends the wait. Call [`Daemon::end_sync_release`] after.
    pub(super) async fn begin_sync_release(&mut self) {
        if self.is_leader
            || !self.cfg.ha.synchronous_mode
            || crate::model::Tags(&self.cfg.tags).nosync()
        {
            return;
        }
        self.disable_sync = true;
        let pg = self.pg.observe(self.sysid.clone()).await;
        self.touch_member(&pg).await;
        let deadline = tokio::time::Instant::now() + self.cfg.timing.loop_wait * 2;
        while tokio::time::Instant::now() < deadline {
            match self.dcs.get_cluster().await {
                Ok(c) if !is_sync_standby(&c, &self.cfg.name) => break,
                Ok(_) => {
                    log::info!(target: "patroni.ha", "Waiting for primary to release us from synchronous standby")
                }
                Err(_) => {
                    log::warn!(target: "patroni.ha", "Could not get cluster state, skipping synchronous standby disable");
                    break;
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    }

    /// The stop or restart is over: we may be synchronous again (the
    /// member key says so at the end of this cycle).
    pub(super) fn end_sync_release(&mut self) {
        self.disable_sync = false;
    }
}

/// `/sync` names us as a standby of the current leader.
fn is_sync_standby(cluster: &Cluster, me: &str) -> bool {
    cluster.leader.as_ref().is_some_and(|l| {
        cluster.sync.leader.as_deref().map(str::to_lowercase) == Some(l.name.to_lowercase())
    }) && cluster.sync.matches(me, false)
}
