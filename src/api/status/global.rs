//! Patroni's `global_config`: typed reads of the dynamic configuration
//! (`/config`) that the REST API and the daemon share, and the Python
//! truthiness and `str()` rules they are read with.

use serde_json::{Map, Value};

use crate::config::units::parse_int;
use crate::config::value::Value as CfgValue;
use crate::model::Cluster;

/// Patroni's `global_config`: typed reads of the dynamic configuration.
#[derive(Debug, Clone, Copy)]
pub struct GlobalView<'a> {
    pub(super) data: Option<&'a Map<String, Value>>,
}

impl<'a> GlobalView<'a> {
    /// The settings of `cluster`; defaults when it has no valid `config`.
    pub fn from_cluster(cluster: &'a Cluster) -> GlobalView<'a> {
        GlobalView {
            data: cluster
                .config
                .as_ref()
                .filter(|c| c.modify_version.unwrap_or(0) != 0)
                .map(|c| &c.data),
        }
    }

    fn get(&self, key: &str) -> Option<&Value> {
        self.data.and_then(|d| d.get(key))
    }

    fn check_mode(&self, key: &str) -> bool {
        self.get(key)
            .and_then(|v| crate::config::units::parse_bool(&CfgValue::from_json(v)))
            .unwrap_or(false)
    }

    /// `pause` is set.
    pub fn is_paused(&self) -> bool {
        self.check_mode("pause")
    }

    /// `synchronous_mode: quorum`.
    pub fn is_quorum_commit_mode(&self) -> bool {
        match self.get("synchronous_mode") {
            Some(v) => python_str(v).to_lowercase() == "quorum",
            None => false,
        }
    }

    /// Synchronous (or quorum) replication, which a standby cluster never
    /// uses.
    pub fn is_synchronous_mode(&self) -> bool {
        (self.check_mode("synchronous_mode") || self.is_quorum_commit_mode())
            && !self.is_standby_cluster()
    }

    /// `standby_cluster` is an object with a host, port or restore_command.
    pub fn is_standby_cluster(&self) -> bool {
        match self.get("standby_cluster") {
            Some(Value::Object(m)) => ["host", "port", "restore_command"]
                .iter()
                .any(|k| m.get(*k).is_some_and(json_truthy)),
            _ => false,
        }
    }

    /// `maximum_lag_on_failover`, 1 MiB when unset or invalid.
    pub fn maximum_lag_on_failover(&self) -> i64 {
        self.get("maximum_lag_on_failover")
            .and_then(|v| parse_int(&CfgValue::from_json(v), None))
            .unwrap_or(1_048_576)
    }
}

/// Python truthiness of a JSON value.
pub(crate) fn json_truthy(v: &Value) -> bool {
    crate::model::member::truthy(v)
}

/// Python's `str()` of a JSON value (`True`, `None`, `1`, `[1, 'a']`), as
/// Patroni compares tag and configuration values.
pub(crate) fn python_str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => python_repr(other),
    }
}

/// Python's `repr()` of a JSON value: what `str()` shows for containers.
fn python_repr(v: &Value) -> String {
    crate::config::pytext::py_repr(&crate::config::Value::from_json(v))
}
