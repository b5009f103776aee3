//! REST requests that act on PostgreSQL, carried out by the HA loop
//! between two cycles so that they never race a decision: restart (now
//! or scheduled), reinitialize, reload.

use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::oneshot;

use crate::model::Cluster;
use crate::postgres::process::StopMode;
use crate::postgres::replica::remove_data_directory;
use crate::postgres::Role;

use super::callbacks::CallbackAction;
use super::local::source_for;
use super::Daemon;

/// A request from the REST API to the HA loop.
#[derive(Debug)]
pub enum Request {
    Reload,
    Restart {
        data: Map<String, Value>,
        reply: oneshot::Sender<(bool, String)>,
    },
    ScheduleRestart {
        data: Map<String, Value>,
        reply: oneshot::Sender<bool>,
    },
    DeleteScheduledRestart {
        reply: oneshot::Sender<bool>,
    },
    Reinitialize {
        force: bool,
        from_leader: bool,
        reply: oneshot::Sender<Option<String>>,
    },
}

/// `15.2` -> 150002, `9.6.24` -> 90624 (Patroni's
/// `postgres_version_to_int`).
fn version_number(text: &str) -> Option<i64> {
    let parts: Vec<i64> = text
        .split('.')
        .map(|p| p.trim().parse().ok())
        .collect::<Option<_>>()?;
    match parts.as_slice() {
        [major, minor] if *major >= 10 => Some(major * 10_000 + minor),
        [major, minor, patch] if *major < 10 => Some(major * 10_000 + minor * 100 + patch),
        _ => None,
    }
}

impl Daemon {
    pub(super) async fn handle_request(&mut self, request: Request) {
        match request {
            Request::Reload => self.reload().await,
            Request::Restart { data, reply } => {
                let outcome = self.restart(&data).await;
                let _ = reply.send(outcome);
            }
            Request::ScheduleRestart { mut data, reply } => {
                let accepted = self.scheduled_restart.is_none();
                if accepted {
                    if let Some(start) = self.pg.pg_query().and_then(|q| q.postmaster_start_time) {
                        data.insert("postmaster_start_time".into(), Value::String(start));
                    }
                    self.scheduled_restart = Some(data);
                }
                let _ = reply.send(accepted);
            }
            Request::DeleteScheduledRestart { reply } => {
                let _ = reply.send(self.scheduled_restart.take().is_some());
            }
            Request::Reinitialize {
                force: _,
                from_leader,
                reply,
            } => self.reinitialize(from_leader, reply).await,
        }
        self.publish();
    }

    /// Patroni's `restart_matches`: the request's filters against this
    /// node. `None` when they match, else why not.
    fn restart_mismatch(&self, data: &Map<String, Value>) -> Option<&'static str> {
        let mut reason = None;
        if let Some(role) = data.get("role").and_then(Value::as_str) {
            if role != self.pg.role {
                reason = Some("host role mismatch");
            }
        }
        if let Some(version) = data.get("postgres_version").and_then(Value::as_str) {
            let ours = self
                .pg
                .last_info
                .as_ref()
                .map_or(0, |i| i64::from(i.server_version));
            if version_number(version).is_some_and(|v| v <= ours) {
                reason = Some("postgres version mismatch");
            }
        }
        if data.contains_key("restart_pending") && self.pg.pending_restart_reason.is_empty() {
            reason = Some("pending restart flag is not set");
        }
        reason
    }

    /// Restart PostgreSQL in its current role.
    async fn restart(&mut self, data: &Map<String, Value>) -> (bool, String) {
        if let Some(reason) = self.restart_mismatch(data) {
            log::info!(target: "patroni.ha", "not restarting: {reason}");
            return (false, "restart conditions are not satisfied".to_owned());
        }
        let cluster = self.cluster.clone().unwrap_or_default();
        let (role, source) = match self.pg.role.as_str() {
            "primary" => (Role::Primary, None),
            "standby_leader" => (Role::StandbyLeader, Some(self.remote_member())),
            _ => {
                let following = self.pg.following.clone();
                (Role::Replica, source_for(&cluster, following.as_deref()))
            }
        };
        self.pg.state = "restarting".to_owned();
        self.publish();
        self.begin_sync_release().await;
        self.pg.block_callbacks = true;
        let result = match self.pg.stop(StopMode::Fast).await {
            Ok(_) => self.pg.start(role, source.as_ref()).await,
            Err(e) => Err(e),
        };
        self.pg.block_callbacks = false;
        self.end_sync_release();
        match result {
            Ok(()) => {
                self.pg.callback(CallbackAction::OnRestart);
                (true, "restarted successfully".to_owned())
            }
            Err(e) => {
                log::error!(target: "patroni.ha", "restart failed: {e}");
                self.pg.state = "restart failed".to_owned();
                (false, "restart failed".to_owned())
            }
        }
    }

    /// Run a due scheduled restart (`schedule` in the past), dropping it
    /// when its filters do not match or PostgreSQL restarted meanwhile.
    pub(super) async fn run_scheduled_restart(&mut self) -> Option<String> {
        let data = self.scheduled_restart.clone()?;
        let due = data
            .get("schedule")
            .and_then(Value::as_str)
            .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
            .is_none_or(|at| at <= chrono::Utc::now());
        if !due {
            return None;
        }
        self.scheduled_restart = None;
        let started = self.pg.pg_query().and_then(|q| q.postmaster_start_time);
        if data
            .get("postmaster_start_time")
            .and_then(Value::as_str)
            .is_some_and(|s| Some(s) != started.as_deref())
        {
            return Some(
                "Cancelling scheduled restart: postgres restart has already happened".into(),
            );
        }
        let (ok, message) = self.restart(&data).await;
        Some(if ok {
            "restarted successfully after scheduled restart".to_owned()
        } else {
            format!("scheduled restart: {message}")
        })
    }

    /// `POST /reinitialize`: wipe the data directory and copy a new
    /// replica from the leader (or a `clonefrom` member).
    async fn reinitialize(&mut self, from_leader: bool, reply: oneshot::Sender<Option<String>>) {
        let cluster = match self.load_cluster().await {
            Ok(c) => c,
            Err(e) => {
                let _ = reply.send(Some(format!("DCS is not accessible: {e}")));
                return;
            }
        };
        let Some(leader) = cluster.leader.as_ref().map(|l| l.name.clone()) else {
            let _ = reply.send(Some("Cluster has no leader, can not reinitialize".into()));
            return;
        };
        if leader == self.cfg.name {
            let _ = reply.send(Some("I am the leader, can not reinitialize".into()));
            return;
        }
        // patronictl's `reinit --wait` polls for this state right away.
        self.pg.state = "creating replica".to_owned();
        self.publish();
        let _ = reply.send(None);
        let from = if from_leader {
            leader
        } else {
            clone_member(&cluster, &self.cfg.name).unwrap_or(leader)
        };
        if let Err(e) = self.pg.stop(StopMode::Immediate).await {
            log::error!(target: "patroni.ha", "reinitialize: stop failed: {e}");
            return;
        }
        if let Err(e) = remove_data_directory(&self.cfg.data_dir) {
            log::error!(target: "patroni.ha", "reinitialize: {e}");
            return;
        }
        self.sysid = None;
        if let Err(e) = self.create_replica(&cluster, &from).await {
            log::error!(target: "patroni.ha", "reinitialize failed: {e}");
        }
    }
}

/// A member tagged `clonefrom` that is running (not us), else none.
fn clone_member(cluster: &Arc<Cluster>, me: &str) -> Option<String> {
    cluster
        .members
        .iter()
        .filter(|m| m.name != me && m.state() == Some("running"))
        .find(|m| crate::model::Tags(&m.tags()).clonefrom())
        .map(|m| m.name.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        assert_eq!(version_number("15.2"), Some(150002));
        assert_eq!(version_number("9.6.24"), Some(90624));
        assert_eq!(version_number("15"), None);
        assert_eq!(version_number("x.1"), None);
    }
}
