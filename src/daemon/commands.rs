//! The REST API's modifying requests, carried out by the daemon: DCS
//! writes done directly (they are atomic on their own), everything that
//! touches PostgreSQL handed to the HA loop.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, oneshot, Notify};

use crate::api::commands::ApiCommands;
use crate::dcs::Dcs;
use crate::model::{Cluster, Failover, Member};

use super::peers;
use super::requests::Request;

pub struct DaemonCommands {
    /// Failsafe state shared with the HA loop (`POST /failsafe`).
    pub failsafe: Arc<super::failsafe::FailsafeState>,
    pub dcs: Arc<dyn Dcs>,
    pub http: reqwest::Client,
    pub wake: Arc<Notify>,
    pub requests: mpsc::UnboundedSender<Request>,
}

/// The HA loop ended (the daemon is stopping).
const LOOP_GONE: &str = "the HA loop is not running";

impl DaemonCommands {
    /// Hand a request to the HA loop.
    fn ask(&self, request: Request) -> Result<(), String> {
        self.requests
            .send(request)
            .map_err(|_| LOOP_GONE.to_owned())
    }
}

#[async_trait]
impl ApiCommands for DaemonCommands {
    async fn get_cluster(&self) -> Result<Arc<Cluster>, String> {
        self.dcs
            .get_cluster()
            .await
            .map(Arc::new)
            .map_err(|e| e.to_string())
    }

    async fn reload(&self) {
        let _ = self.requests.send(Request::Reload);
    }

    async fn restart(&self, request: &Map<String, Value>) -> Result<(bool, String), String> {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::Restart {
            data: request.clone(),
            reply,
        })?;
        answer.await.map_err(|_| LOOP_GONE.to_owned())
    }

    async fn schedule_restart(&self, request: &Map<String, Value>) -> bool {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::ScheduleRestart {
            data: request.clone(),
            reply,
        })
        .is_ok()
            && answer.await.unwrap_or(false)
    }

    async fn delete_scheduled_restart(&self) -> bool {
        let (reply, answer) = oneshot::channel();
        self.ask(Request::DeleteScheduledRestart { reply }).is_ok() && answer.await.unwrap_or(false)
    }

    async fn reinitialize(&self, force: bool, from_leader: bool) -> Option<String> {
        let (reply, answer) = oneshot::channel();
        if let Err(e) = self.ask(Request::Reinitialize {
            force,
            from_leader,
            reply,
        }) {
            return Some(e);
        }
        answer.await.unwrap_or_else(|_| Some(LOOP_GONE.to_owned()))
    }

    async fn manual_failover(
        &self,
        leader: Option<&str>,
        candidate: Option<&str>,
        scheduled_at: Option<&str>,
        version: Option<i64>,
    ) -> bool {
        let nonempty = |s: Option<&str>| s.filter(|s| !s.is_empty()).map(str::to_owned);
        let value = Failover {
            version: None,
            leader: nonempty(leader),
            candidate: nonempty(candidate),
            scheduled_at: nonempty(scheduled_at),
        }
        .to_node();
        match self.dcs.set_failover_value(&value, version).await {
            Ok(()) => true,
            Err(e) => {
                log::warn!(target: "patroni.api", "failed to write the failover key: {e}");
                false
            }
        }
    }

    async fn has_healthy_candidate(&self, members: &[Member]) -> bool {
        let cluster = Cluster {
            members: members.to_vec(),
            ..Cluster::default()
        };
        let names: Vec<String> = members.iter().map(|m| m.name.clone()).collect();
        peers::fetch_statuses(&self.http, &cluster, &names)
            .await
            .iter()
            .any(|p| p.reachable && p.failover_limitation().is_none())
    }

    async fn set_config(&self, value: &str, version: Option<i64>) -> bool {
        self.dcs.set_config_value(value, version).await.is_ok()
    }

    async fn update_failsafe(&self, request: &Map<String, Value>) -> Result<Option<i64>, String> {
        self.failsafe.accept(request)
    }

    async fn mpp_event(&self, _request: &Map<String, Value>) {}

    fn wakeup(&self) {
        self.wake.notify_one();
    }
}
