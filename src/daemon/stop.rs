//! Stopping the daemon (SIGTERM/SIGINT): the shutdown decision, the
//! leader's wait for its replicas, the synchronous standby's release, and
//! the watchdog disarmed once PostgreSQL is down.

use crate::ha::decide::{decide_shutdown, Action};

use super::local::wait_until;
use super::{Daemon, SHUTDOWN_REPLICA_WAIT};

impl Daemon {
    /// SIGTERM/SIGINT: stop PostgreSQL; a leader releases the key once the
    /// replicas have received everything up to the shutdown checkpoint.
    pub(super) async fn shutdown(&mut self) {
        self.stopping = true;
        let pg = self.pg.observe(self.sysid.clone()).await;
        let cluster = self.cluster.clone().unwrap_or_default();
        let decision = decide_shutdown(&cluster, &self.me(), &pg, &self.cfg.ha);
        if !decision.message.is_empty() {
            log::info!(target: "patroni.ha", "{}", decision.message);
        }
        if decision.actions.contains(&Action::ReleaseLeaderKey) && pg.running {
            self.wait_for_replicas_to_catch_up().await;
        }
        if decision.actions.contains(&Action::StopFast) && pg.running {
            // A synchronous standby first lets the primary pick another.
            self.begin_sync_release().await;
        }
        if let Err(e) = self.execute(&decision.actions, &cluster).await {
            log::error!(target: "patroni.ha", "shutdown: {e}");
        }
        self.end_sync_release();
        if self.pg.is_running() && !self.cfg.ha.paused {
            if self.watchdog.is_running() {
                log::error!(target: "patroni.ha", "PostgreSQL shutdown failed, leader key not removed. Leaving watchdog running.");
            }
        } else {
            self.watchdog.disable();
        }
        self.publish();
    }

    /// Bounded wait for streaming replicas to have flushed our current
    /// position, so that the fast stop's shutdown checkpoint is the only
    /// record left to ship.
    async fn wait_for_replicas_to_catch_up(&self) {
        let monitor = &self.pg.monitor;
        let caught_up = wait_until(SHUTDOWN_REPLICA_WAIT, || async {
            let rows = monitor
                .query(
                    "SELECT bool_and(flush_lsn >= pg_catalog.pg_current_wal_flush_lsn()) \
                     FROM pg_catalog.pg_stat_replication WHERE state = 'streaming'",
                    &[],
                )
                .await;
            matches!(rows.as_deref(), Ok([row]) if row.try_get::<_, Option<bool>>(0).ok().flatten() != Some(false))
        })
        .await;
        if !caught_up {
            log::warn!(target: "patroni.ha", "replicas did not catch up within {SHUTDOWN_REPLICA_WAIT:?}");
        }
    }
}
