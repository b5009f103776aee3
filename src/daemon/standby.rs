//! The executor's side of a standby cluster: where the remote primary is
//! (`standby_cluster` in the dynamic configuration), copying it to
//! bootstrap the standby leader, and pointing PostgreSQL at it.

use std::sync::Arc;

use crate::config::{Map, Value};
use crate::model::json::compact;
use crate::model::Cluster;
use crate::postgres::{ReplicationSource, Role};

use super::callbacks::CallbackAction;
use super::local::LocalError;
use super::Daemon;

/// The `standby_cluster` keys a remote member carries (Patroni's
/// `RemoteMember.ALLOWED_KEYS`).
const REMOTE_KEYS: [&str; 6] = [
    "primary_slot_name",
    "create_replica_methods",
    "restore_command",
    "archive_cleanup_command",
    "recovery_min_apply_delay",
    "no_replication_slot",
];

/// The remote primary described by a `standby_cluster` section (Patroni's
/// `get_remote_member`): `host`/`port` as connection keywords, the
/// allowed keys as its data, and `no_replication_slot` unless a
/// `primary_slot_name` is given. Its name encodes the whole section, so a
/// changed section reads as a different upstream.
pub(super) fn remote_source(standby: &Map) -> ReplicationSource {
    let mut data = Map::new();
    for key in REMOTE_KEYS {
        if let Some(v) = standby.get(key).filter(|v| !v.is_null()) {
            data.set(key, v.clone());
        }
    }
    data.set(
        "no_replication_slot",
        Value::Bool(!standby.contains_key("primary_slot_name")),
    );
    let mut conn_kwargs = Map::new();
    for key in ["host", "port"] {
        if let Some(v) = standby.get(key).filter(|v| v.truthy()) {
            conn_kwargs.set(key, v.clone());
        }
    }
    let fingerprint = Value::Map(standby.clone())
        .to_json()
        .map(|j| compact(&j))
        .unwrap_or_default();
    ReplicationSource {
        name: format!("remote_member:{fingerprint}"),
        conn_kwargs,
        remote: true,
        data,
    }
}

impl Daemon {
    /// The remote primary of the `standby_cluster` section in force.
    pub(super) fn remote_member(&self) -> ReplicationSource {
        remote_source(&self.standby_section())
    }

    /// The `standby_cluster` section in force.
    fn standby_section(&self) -> Map {
        self.config
            .effective()
            .get("standby_cluster")
            .and_then(Value::as_map)
            .cloned()
            .unwrap_or_default()
    }

    /// Stream from the remote primary, as the standby leader or (nobody
    /// holds the key) as a plain replica.
    pub(super) async fn follow_remote(&mut self, standby_leader: bool) -> Result<(), LocalError> {
        let source = self.remote_member();
        let role = if standby_leader {
            Role::StandbyLeader
        } else {
            Role::Replica
        };
        if !self.pg.is_running() {
            self.pg.ssn = None;
            let result = self.pg.start(role, Some(&source)).await;
            self.after_start(&result);
            return result;
        }
        if self.pg.follow_as(role, Some(&source)).await? {
            log::info!(target: "patroni.ha", "Changed primary_conninfo to follow the remote primary");
        }
        let word = if standby_leader {
            "standby_leader"
        } else {
            "replica"
        };
        if self.pg.role != word {
            self.pg.role = word.to_owned();
            self.pg.callback(CallbackAction::OnRoleChange);
        }
        Ok(())
    }

    /// Patroni's `bootstrap_standby_leader`: copy the remote primary (its
    /// `create_replica_methods`, else ours), start streaming from it, then
    /// publish the cluster as ours: `initialize`, the leader key, `/config`.
    pub(super) async fn bootstrap_standby_leader(
        &mut self,
        cluster: &Arc<Cluster>,
    ) -> Result<(), LocalError> {
        let source = self.remote_member();
        let what = format!(
            "clone from remote member {}",
            source
                .conn_kwargs
                .get("host")
                .map(crate::postgres::pystr::py_str)
                .unwrap_or_default()
        );
        if let Err(e) = self.run_replica_methods(Some(&source)).await {
            log::error!(target: "patroni.ha", "failed to bootstrap {what}");
            if let Err(e) = self.dcs.cancel_initialization().await {
                log::error!(target: "patroni.ha", "cannot remove the initialize key: {e}");
            }
            return Err(LocalError::Process(e));
        }
        log::info!(target: "patroni.ha", "bootstrapped {what}");
        self.pg.start(Role::StandbyLeader, Some(&source)).await?;
        self.publish_new_cluster(cluster).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(yaml: &[(&str, Value)]) -> Map {
        let mut m = Map::new();
        for (k, v) in yaml {
            m.set(k, v.clone());
        }
        m
    }

    #[test]
    fn the_remote_member_carries_what_patroni_gives_it() {
        let s = section(&[
            ("host", Value::Str("10.0.0.1".into())),
            ("port", Value::Int(5433)),
            ("restore_command", Value::Str("cp /a/%f %p".into())),
            (
                "create_replica_methods",
                Value::Seq(vec![Value::Str("basebackup".into())]),
            ),
            ("unknown", Value::Str("x".into())),
        ]);
        let r = remote_source(&s);
        assert!(r.remote);
        assert_eq!(
            r.conn_kwargs.get("host"),
            Some(&Value::Str("10.0.0.1".into()))
        );
        assert_eq!(r.conn_kwargs.get("port"), Some(&Value::Int(5433)));
        assert_eq!(r.data.get("no_replication_slot"), Some(&Value::Bool(true)));
        assert!(r.data.get("restore_command").is_some());
        assert!(r.data.get("unknown").is_none());
        // With a slot name the remote slot is used.
        let mut with_slot = s.clone();
        with_slot.set("primary_slot_name", Value::Str("standby_1".into()));
        let r2 = remote_source(&with_slot);
        assert_eq!(
            r2.data.get("no_replication_slot"),
            Some(&Value::Bool(false))
        );
        assert_ne!(r.name, r2.name, "a changed section is a different upstream");
        // restore_command only: no connection keywords.
        let r3 = remote_source(&section(&[("restore_command", Value::Str("x".into()))]));
        assert!(r3.conn_kwargs.is_empty());
    }
}
