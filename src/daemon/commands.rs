//! The REST API's modifying requests, carried out by the daemon: DCS
//! writes done directly (they are atomic on their own), everything that
//! touches PostgreSQL handed to the HA loop.

use std::sync::Arc;

use async_trait::async_trait;
use serde_json::{Map, Value};
use tokio::sync::{mpsc, Notify};

use crate::api::commands::ApiCommands;
use crate::dcs::Dcs;
use crate::model::{Cluster, Failover, Member};

use super::{peers, Request};

pub struct DaemonCommands {
    pub dcs: Arc<dyn Dcs>,
    pub http: reqwest::Client,
    pub wake: Arc<Notify>,
    pub requests: mpsc::UnboundedSender<Request>,
}

const NOT_SUPPORTED: &str = "not supported by patroni-rs yet";

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

    async fn restart(&self, _request: &Map<String, Value>) -> Result<(bool, String), String> {
        Ok((false, format!("restart is {NOT_SUPPORTED}")))
    }

    async fn schedule_restart(&self, _request: &Map<String, Value>) -> bool {
        false
    }

    async fn delete_scheduled_restart(&self) -> bool {
        false
    }

    async fn reinitialize(&self, _force: bool, _from_leader: bool) -> Option<String> {
        Some(format!("reinitialize is {NOT_SUPPORTED}"))
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

    async fn update_failsafe(&self, _request: &Map<String, Value>) -> Result<Option<i64>, String> {
        Err(format!("failsafe mode is {NOT_SUPPORTED}"))
    }

    async fn mpp_event(&self, _request: &Map<String, Value>) {}

    fn wakeup(&self) {
        self.wake.notify_one();
    }
}
