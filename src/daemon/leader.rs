//! What the leader keeps up each cycle besides holding its key: the
//! members' and permanent slots with their positions in `/status`, the
//! `/history` key after a promotion, and the CHECKPOINT after a promotion
//! that replicas wait for before they rewind from us.

use crate::model::{Cluster, Status};

use super::slots::{self, plan, plan::SlotSettings};
use super::Daemon;

impl Daemon {
    /// What the leader does each cycle besides holding the key: slots
    /// (members', permanent ones) and `/status`. The slots are published
    /// in the same cycle they are made, so that `/status` lists a new
    /// member's slot as soon as it exists.
    pub(super) async fn leader_housekeeping(&mut self) {
        let Some(cluster) = self.cluster.clone() else {
            return;
        };
        let Some(info) = self.pg.last_info.clone() else {
            return;
        };
        if info.is_in_recovery {
            // A standby leader keeps the slots of the members that follow
            // it (its `/status` is not written here).
            self.slots_in_recovery_or_unlocked().await;
            return;
        }
        let optime = info.wal_flush_lsn.unwrap_or(0);
        let mut status = Status {
            last_lsn: optime,
            ..Status::default()
        };
        let settings = SlotSettings::from_cluster(&cluster, info.server_version);
        let input = slots::SyncInput {
            cluster: &cluster,
            me: &self.cfg.name,
            tags: &self.cfg.tags,
            role: slots::role_of(&self.pg.role),
            in_recovery: false,
            replay_lsn: None,
            server_version: info.server_version,
            create_only: false,
        };
        match slots::sync_slots(&self.pg.monitor, &input).await {
            Ok(slots::SyncOutcome {
                positions: mut found,
                ..
            }) if settings.can_advance_slots => {
                // Our own position under our slot name: replicas advance
                // their copy of it from here.
                let own = crate::postgres::slot_name_from_member_name(&self.cfg.name);
                match found.iter_mut().find(|(n, _)| *n == own) {
                    Some((_, lsn)) => *lsn = optime,
                    None => found.push((own, optime)),
                }
                let published = plan::publishable(&cluster, &self.cfg.name, &settings, found);
                let now = super::epoch_now();
                status.retain_slots =
                    self.retain_slots
                        .update(&cluster, &self.cfg.name, &published, &settings, now);
                if !published.is_empty() {
                    status.slots = Some(
                        published
                            .into_iter()
                            .map(|(name, lsn)| (name, lsn.into()))
                            .collect(),
                    );
                }
            }
            Ok(_) => {}
            Err(e) => {
                log::error!(target: "patroni.postgresql.slots", "Exception when changing replication slots: {e}")
            }
        }
        self.update_cluster_history(&cluster, info.timeline.map(i64::from))
            .await;
        if status != cluster.status {
            if let Err(e) = self.dcs.write_status(&status.to_node()).await {
                log::warn!(target: "patroni.ha", "failed to write /status: {e}");
            }
        }
    }

    /// Publish the timeline history once per promotion (Patroni's
    /// `update_cluster_history`).
    async fn update_cluster_history(&mut self, cluster: &Cluster, timeline: Option<i64>) {
        let Some(timeline) = timeline else {
            return;
        };
        let lines = cluster
            .history
            .as_ref()
            .map(|h| h.lines.as_slice())
            .unwrap_or(&[]);
        let value = if timeline == 1 {
            if lines.is_empty() {
                return;
            }
            "[]".to_owned()
        } else {
            let last = lines.last().and_then(serde_json::Value::as_array);
            let current = last.is_some_and(|l| {
                l.len() == 5 && l.first().and_then(serde_json::Value::as_i64) == Some(timeline - 1)
            });
            if current {
                return;
            }
            let known = cluster
                .history
                .as_ref()
                .map(|h| h.entries())
                .unwrap_or_default();
            let max = self
                .cfg
                .effective
                .get("max_timelines_history")
                .and_then(|v| crate::config::units::parse_int(v, None))
                .filter(|m| *m > 0)
                .map_or(usize::MAX, |m| m as usize);
            let wal_dir = self.cfg.data_dir.join("pg_wal");
            match super::history::history_for(&wal_dir, timeline, &self.cfg.name, &known, max) {
                Some(entries) if !entries.is_empty() => {
                    crate::model::TimelineHistory::to_node(&entries)
                }
                _ => return,
            }
        };
        if let Err(e) = self.dcs.set_history_value(&value).await {
            log::warn!(target: "patroni.ha", "failed to write /history: {e}");
        }
    }

    /// After a promotion: a CHECKPOINT on a connection of its own, so that
    /// pg_control shows the new timeline before anyone rewinds from us.
    /// Until it is done the member key says `checkpoint_after_promote:
    /// false` (Patroni's `ensure_checkpoint_after_promote`).
    pub(super) fn checkpoint_after_promote(&mut self) {
        use std::sync::atomic::Ordering;
        self.checkpoint_done.store(false, Ordering::SeqCst);
        let done = self.checkpoint_done.clone();
        let params = self.pg.monitor.params().clone();
        let wake = self.wake.clone();
        tokio::spawn(async move {
            let conn = crate::postgres::query::PgMonitor::new(params, Default::default());
            for _ in 0..60 {
                match conn.query("CHECKPOINT", &[]).await {
                    Ok(_) => {
                        done.store(true, Ordering::SeqCst);
                        wake.notify_one();
                        break;
                    }
                    Err(e) => {
                        log::warn!(target: "patroni.postgresql.rewind", "CHECKPOINT after promote failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
            }
            conn.close().await;
        });
    }
}
