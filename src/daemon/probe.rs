//! The REST API's PostgreSQL probe: refreshes the PostgreSQL part of the
//! published status about once a second on a connection of its own.
//!
//! Patroni runs its status query inside every REST request, on a
//! connection separate from the HA loop's (`application_name` `Patroni
//! restapi`); a hung PostgreSQL therefore hangs the request. Here the query
//! runs in this task instead, every [`PG_PROBE_INTERVAL`], and the result
//! is merged into the snapshot with the time it was taken
//! ([`StatusPublisher::confirm_query`]). Requests only read the snapshot:
//! when the probe's query hangs (a SIGSTOPped postmaster or backend) the
//! snapshot stops being confirmed and, past
//! [`crate::api::status::PG_STALE_AFTER`], requests answer as Patroni does
//! when its query fails. The query is the HA loop's own monitoring query
//! ([`PgMonitor::cluster_info`]); nothing here knows SQL.
//!
//! The probe follows the HA loop: it queries only while the published
//! snapshot says PostgreSQL is `running` with a known postmaster, and it
//! adopts new connection parameters after a reload ([`Probe::follow`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::api::status::{PgQuery, StatusPublisher, StatusReader, Xlog, PG_PROBE_INTERVAL};
use crate::postgres::query::{ClusterInfo, ConnParams, MonitorOptions, PgMonitor};

/// The probe's own bound on one query: past it the connection is dropped
/// and the next round reconnects. Longer than the interval (a slow answer
/// is still worth having) but well inside the time the HA loop would take
/// to notice.
const PROBE_QUERY_TIMEOUT: Duration = Duration::from_secs(5);

/// The application name Patroni gives its REST API connection.
const PROBE_CONNECTION: &str = "restapi";

/// The handle the daemon keeps; dropping it stops the probe.
pub struct Probe {
    params: watch::Sender<ConnParams>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Probe {
    /// Start probing with the HA loop's connection parameters (the
    /// application name becomes `Patroni restapi`).
    pub fn start(heartbeat: &ConnParams, publisher: StatusPublisher) -> Probe {
        let (params, rx) = watch::channel(probe_params(heartbeat));
        let task = tokio::spawn(run(rx, publisher));
        Probe { params, task }
    }

    /// Adopt the HA loop's current connection parameters (after a reload);
    /// the probe reconnects only when they changed.
    pub fn follow(&self, heartbeat: &ConnParams) {
        let wanted = probe_params(heartbeat);
        self.params.send_if_modified(|current| {
            let changed = *current != wanted;
            if changed {
                *current = wanted;
            }
            changed
        });
    }
}

fn probe_params(heartbeat: &ConnParams) -> ConnParams {
    let mut params = heartbeat.clone();
    params.application_name = format!("Patroni {PROBE_CONNECTION}");
    params
}

fn monitor(params: &ConnParams) -> Arc<PgMonitor> {
    Arc::new(PgMonitor::new(
        params.clone(),
        MonitorOptions {
            query_timeout: PROBE_QUERY_TIMEOUT,
        },
    ))
}

async fn run(mut params: watch::Receiver<ConnParams>, publisher: StatusPublisher) {
    let reader: StatusReader = publisher.reader();
    let signal = publisher.probe_signal();
    let mut monitor = monitor(&params.borrow_and_update());
    let mut ticks = tokio::time::interval(PG_PROBE_INTERVAL);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // Every interval, and at once when a request wants a fresh answer
        // (`GET /patroni`); requests arriving while a query runs are
        // served by the next one.
        tokio::select! {
            _ = ticks.tick() => {}
            () = signal.wanted.notified() => {}
        }
        if params.has_changed().unwrap_or(false) {
            monitor.close().await;
            monitor = self::monitor(&params.borrow_and_update());
        }
        let current = reader.current();
        let pid = match current.postmaster_pid {
            Some(pid) if current.postgres.state == "running" => pid,
            _ => {
                // Nothing to ask: do not hold a backend of a PostgreSQL
                // that is being stopped or restarted.
                if monitor.is_connected().await {
                    monitor.close().await;
                }
                continue;
            }
        };
        // The answer is as fresh as the query's start: a request that
        // came in while the query ran waits for the next one.
        let started = Instant::now();
        signal.begin(started);
        let answer = monitor.cluster_info().await;
        signal.end();
        match answer {
            Ok(info) => {
                publisher.confirm_query(pid, pg_query_of(&info), started);
            }
            Err(e) => log::debug!(target: "patroni.api", "status probe failed: {e}"),
        }
    }
}

/// The PostgreSQL part of the REST status from one monitoring query, as
/// Patroni's `get_postgresql_status` shapes it.
pub fn pg_query_of(i: &ClusterInfo) -> PgQuery {
    let xlog = if i.is_in_recovery {
        Xlog::Replica {
            received_location: i.received_location().unwrap_or(0),
            replayed_location: i.replay_lsn.unwrap_or(0),
            replayed_timestamp: i
                .last_xact_replay_timestamp
                .map(|t| t.format("%Y-%m-%d %H:%M:%S%.6f%:z").to_string()),
            paused: i.replay_paused,
        }
    } else {
        Xlog::Primary {
            location: i.wal_flush_lsn.unwrap_or(0),
        }
    };
    PgQuery {
        postmaster_start_time: Some(
            i.postmaster_start_time
                .format("%Y-%m-%d %H:%M:%S%.6f%:z")
                .to_string(),
        ),
        server_version: Some(i64::from(i.server_version)),
        xlog: Some(xlog),
        timeline: i.current_timeline(),
        latest_end_lsn: i.latest_end_lsn,
        replication_state: i.replication_state().map(str::to_owned),
        replication: Some(i.replication.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(in_recovery: bool) -> ClusterInfo {
        ClusterInfo {
            is_in_recovery: in_recovery,
            timeline: (!in_recovery).then_some(3),
            wal_flush_lsn: (!in_recovery).then_some(1000),
            replay_lsn: Some(900),
            receive_lsn: Some(950),
            written_lsn: Some(960),
            replay_paused: false,
            last_xact_replay_timestamp: None,
            received_tli: in_recovery.then_some(2),
            replay_tli: None,
            receiver_slot_name: None,
            receiver_conninfo: None,
            receiver_status: in_recovery.then(|| "streaming".to_owned()),
            postmaster_start_time: chrono::DateTime::from_timestamp_micros(1_700_000_000_123_456)
                .unwrap_or_default(),
            server_version: 150020,
            latest_end_lsn: in_recovery.then_some(970),
            restore_command: Some(String::new()),
            replication: if in_recovery {
                Vec::new()
            } else {
                vec![serde_json::json!({"usename": "replicator", "application_name": "node1"})]
            },
        }
    }

    #[test]
    fn query_shapes_follow_the_role() {
        let p = pg_query_of(&info(false));
        assert_eq!(p.xlog, Some(Xlog::Primary { location: 1000 }));
        assert_eq!(p.timeline, Some(3));
        assert_eq!(p.replication_state, None);
        assert_eq!(
            p.postmaster_start_time.as_deref(),
            Some("2023-11-14 22:13:20.123456+00:00")
        );
        let r = pg_query_of(&info(true));
        assert_eq!(
            r.xlog,
            Some(Xlog::Replica {
                received_location: 960,
                replayed_location: 900,
                replayed_timestamp: None,
                paused: false
            })
        );
        assert_eq!(r.timeline, Some(2));
        assert_eq!(r.replication_state.as_deref(), Some("streaming"));
        assert_eq!(r.latest_end_lsn, Some(970));
        assert_eq!(p.latest_end_lsn, None);
        let rows = p.replication.unwrap_or_default();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0]["application_name"], "node1");
    }

    #[test]
    fn a_replica_without_receiver_is_in_archive_recovery_only_with_a_restore_command() {
        let mut i = info(true);
        i.receiver_status = None;
        assert_eq!(pg_query_of(&i).replication_state, None);
        i.restore_command = Some("cp /archive/%f %p".into());
        assert_eq!(
            pg_query_of(&i).replication_state.as_deref(),
            Some("in archive recovery")
        );
        i.receiver_status = Some("streaming".into());
        assert_eq!(
            pg_query_of(&i).replication_state.as_deref(),
            Some("streaming")
        );
    }

    #[test]
    fn probe_connection_is_named_like_patronis() {
        let yaml =
            "listen: 127.0.0.1:5432\nauthentication:\n  superuser:\n    username: postgres\n";
        let value = crate::config::yaml::load(yaml).unwrap_or(crate::config::Value::Null);
        let empty = crate::config::Map::new();
        let heartbeat = crate::postgres::query::local_conn_params(
            value.as_map().unwrap_or(&empty),
            "heartbeat",
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let p = probe_params(&heartbeat);
        assert_eq!(p.application_name, "Patroni restapi");
        // Everything else is the HA loop's.
        let mut back = p.clone();
        back.application_name = heartbeat.application_name.clone();
        assert_eq!(back, heartbeat);
        assert_ne!(p, heartbeat);
    }
}
