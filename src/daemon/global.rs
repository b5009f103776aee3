//! The settings a cycle adopts from the cluster's `/config` before
//! deciding: the global flags Patroni reads from the DCS itself, the
//! synchronous mode's ownership of `synchronous_standby_names`, and whether
//! `hot_standby_feedback` must be forced for logical slot copies.

use crate::config::Value;
use crate::model::Cluster;

use super::Daemon;

impl Daemon {
    /// The global flags Patroni reads from `/config` itself rather than
    /// from the effective configuration (`global_config`): pause,
    /// synchronous mode, failsafe, the lag limit, standby cluster. True
    /// when synchronous mode was switched on or off (PostgreSQL's
    /// `synchronous_standby_names` then needs rewriting).
    pub(super) fn adopt_global_settings(&mut self, cluster: &Cluster) -> bool {
        if cluster.config.is_some() {
            self.adopt_config_flags(cluster);
        }
        let feedback = self.hot_standby_feedback_wanted(cluster);
        let feedback_changed = feedback != self.pg.enforce_hot_standby_feedback;
        self.pg.enforce_hot_standby_feedback = feedback;
        let mode = self
            .cfg
            .ha
            .synchronous_mode
            .then(|| super::sync::sync_settings(cluster).strict);
        if self.pg.sync_mode == mode {
            return feedback_changed;
        }
        self.pg.sync_mode = mode;
        if mode.is_none() {
            self.pg.ssn = None;
            self.sync_tracker.reset();
        }
        true
    }

    /// Patroni re-evaluates this whenever `/config` exists; without one
    /// the last answer stands.
    fn hot_standby_feedback_wanted(&self, cluster: &Cluster) -> bool {
        if cluster.config.is_none() {
            return self.pg.enforce_hot_standby_feedback;
        }
        let version = self
            .pg
            .major_version()
            .and_then(|v| i32::try_from(v).ok())
            .unwrap_or(0);
        let settings = super::slots::plan::SlotSettings::from_cluster(cluster, version);
        super::slots::feedback::enforce_hot_standby_feedback(
            cluster,
            &self.cfg.name,
            &self.published_tags(),
            &settings,
        )
    }

    fn adopt_config_flags(&mut self, cluster: &Cluster) {
        let global = crate::api::status::GlobalView::from_cluster(cluster);
        let ha = &mut self.cfg.ha;
        ha.paused = global.is_paused();
        ha.synchronous_mode = global.is_synchronous_mode();
        ha.quorum_commit = global.is_quorum_commit_mode();
        ha.standby_cluster = global.is_standby_cluster();
        ha.maximum_lag_on_failover = global.maximum_lag_on_failover();
        let flag = |key: &str| {
            cluster
                .config
                .as_ref()
                .and_then(|c| c.data.get(key))
                .is_some_and(crate::api::status::json_truthy)
        };
        ha.failsafe_mode = flag("failsafe_mode");
        // `primary_start_timeout`, else its old name, else 300 s.
        let data = cluster.config.as_ref().map(|c| &c.data);
        ha.primary_start_timeout = ["primary_start_timeout", "master_start_timeout"]
            .iter()
            .find_map(|k| data.and_then(|d| d.get(*k)))
            .map_or(300, |v| {
                crate::config::units::parse_int(&Value::from_json(v), None).unwrap_or(300)
            });
        ha.check_timeline = flag("check_timeline");
    }
}
