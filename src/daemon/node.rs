//! What the daemon reads from the effective configuration, once per load
//! or reload: names, addresses, directories, timing and the HA settings.
//!
//! Everything here is derived, never stored back: the effective
//! configuration stays the single source, and a reload builds a new
//! [`NodeConfig`].

use std::path::PathBuf;
use std::time::Duration;

use serde_json::Map as JsonMap;

use crate::config::units::{parse_bool, parse_int};
use crate::config::{Map, Value};
use crate::dcs::Timing;
use crate::ha::decide::HaSettings;
use crate::postgres::node::abspath;

/// The daemon's view of its configuration.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub name: String,
    pub scope: String,
    /// The whole effective configuration (local merged over dynamic).
    pub effective: Map,
    /// `postgresql` section of the effective configuration.
    pub postgresql: Map,
    pub data_dir: PathBuf,
    pub bin_dir: Option<PathBuf>,
    /// `postgresql.pg_ctl_timeout`: how long a start or stop may take.
    pub pg_ctl_timeout: Duration,
    /// `postgres://<connect_address>/<database>`.
    pub conn_url: String,
    /// `<http|https>://<restapi.connect_address>/patroni`.
    pub api_url: String,
    /// `tags` as JSON, in configuration order.
    pub tags: JsonMap<String, serde_json::Value>,
    pub timing: Timing,
    pub ha: HaSettings,
    pub use_slots: bool,
    pub use_pg_rewind: bool,
    pub remove_data_directory_on_rewind_failure: bool,
    /// A `bootstrap` section exists: this node may initialize a cluster.
    pub can_bootstrap: bool,
    /// The working directory and home, for relative paths in the
    /// configuration (Python resolves them against the process's).
    pub cwd: String,
    pub home: String,
}

fn text(map: &Map, key: &str) -> Option<String> {
    match map.get(key)? {
        Value::Str(s) if !s.is_empty() => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

fn section<'a>(map: &'a Map, key: &str) -> Option<&'a Map> {
    map.get(key).and_then(Value::as_map)
}

fn seconds(map: &Map, key: &str, default: u64) -> Duration {
    let secs = map
        .get(key)
        .and_then(|v| parse_int(v, Some("s")))
        .filter(|s| *s >= 0)
        .map_or(default, |s| s as u64);
    Duration::from_secs(secs)
}

fn flag(map: &Map, key: &str, default: bool) -> bool {
    map.get(key).and_then(parse_bool).unwrap_or(default)
}

impl NodeConfig {
    /// Reads the daemon settings; an error names the missing or broken
    /// setting.
    pub fn from_effective(effective: &Map) -> Result<NodeConfig, String> {
        let name = text(effective, "name").ok_or("name is not defined")?;
        let scope = text(effective, "scope").ok_or("scope is not defined")?;
        let postgresql = section(effective, "postgresql")
            .cloned()
            .ok_or("postgresql section is missing")?;
        let data_dir = text(&postgresql, "data_dir").ok_or("postgresql.data_dir is not defined")?;
        let cwd = std::env::current_dir()
            .map(|p| p.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "/".to_owned());
        let home = std::env::var("HOME").unwrap_or_else(|_| cwd.clone());
        let pg_connect = text(&postgresql, "connect_address")
            .or_else(|| text(&postgresql, "listen").map(|l| first_listen(&l)))
            .ok_or("postgresql.connect_address is not defined")?;
        let database = text(&postgresql, "database").unwrap_or_else(|| "postgres".to_owned());
        let restapi = section(effective, "restapi").cloned().unwrap_or_default();
        let api_connect = text(&restapi, "connect_address")
            .or_else(|| text(&restapi, "listen"))
            .ok_or("restapi.connect_address is not defined")?;
        let protocol = if text(&restapi, "certfile").is_some() {
            "https"
        } else {
            "http"
        };
        let tags = section(effective, "tags")
            .and_then(|t| Value::Map(t.clone()).to_json())
            .and_then(|j| j.as_object().cloned())
            .unwrap_or_default();
        let timing = Timing {
            ttl: seconds(effective, "ttl", 30),
            loop_wait: seconds(effective, "loop_wait", 10),
            retry_timeout: seconds(effective, "retry_timeout", 10),
        };
        let ha = HaSettings {
            maximum_lag_on_failover: effective
                .get("maximum_lag_on_failover")
                .and_then(|v| parse_int(v, None))
                .unwrap_or(1_048_576),
            check_timeline: flag(effective, "check_timeline", false),
            paused: flag(effective, "pause", false),
            // Patroni's `is_standby_cluster`: the defaults hold the keys
            // with empty values, so only a set address or restore command
            // counts.
            standby_cluster: section(effective, "standby_cluster").is_some_and(|s| {
                ["host", "port", "restore_command"]
                    .iter()
                    .any(|k| s.get(k).is_some_and(Value::truthy))
            }),
            synchronous_mode: effective
                .get("synchronous_mode")
                .is_some_and(|v| parse_bool(v) == Some(true) || v.as_str() == Some("quorum")),
            quorum_commit: effective
                .get("synchronous_mode")
                .is_some_and(|v| v.as_str().is_some_and(|s| s.eq_ignore_ascii_case("quorum"))),
            failsafe_mode: flag(effective, "failsafe_mode", false),
            // Set by the daemon each cycle from the device.
            watchdog_unusable: false,
            bootstrap_configured: effective.contains_key("bootstrap"),
            primary_start_timeout: effective
                .get("primary_start_timeout")
                .and_then(|v| parse_int(v, Some("s")))
                .unwrap_or(300),
            loop_wait: timing.loop_wait.as_secs() as i64,
            replica_without_leader: replica_without_leader(&postgresql),
            can_rewind: flag(&postgresql, "use_pg_rewind", false),
        };
        Ok(NodeConfig {
            bin_dir: text(&postgresql, "bin_dir").map(PathBuf::from),
            pg_ctl_timeout: seconds(&postgresql, "pg_ctl_timeout", 60),
            conn_url: format!("postgres://{pg_connect}/{database}"),
            api_url: format!("{protocol}://{api_connect}/patroni"),
            use_slots: flag(&postgresql, "use_slots", true),
            use_pg_rewind: flag(&postgresql, "use_pg_rewind", false),
            remove_data_directory_on_rewind_failure: flag(
                &postgresql,
                "remove_data_directory_on_rewind_failure",
                false,
            ),
            can_bootstrap: effective.contains_key("bootstrap"),
            data_dir: PathBuf::from(abspath(&cwd, &data_dir)),
            name,
            scope,
            effective: effective.clone(),
            postgresql,
            tags,
            timing,
            ha,
            cwd,
            home,
        })
    }

    /// The path of a PostgreSQL program (`bin_dir` plus its `bin_name`
    /// override, else found on `PATH`).
    pub fn program(&self, program: &str) -> PathBuf {
        let name = section(&self.postgresql, "bin_name")
            .and_then(|b| text(b, program))
            .unwrap_or_else(|| program.to_owned());
        match &self.bin_dir {
            Some(dir) => dir.join(name),
            None => PathBuf::from(name),
        }
    }

    /// `postgresql.authentication.<who>`.
    pub fn auth(&self, who: &str) -> Option<&Map> {
        section(&self.postgresql, "authentication").and_then(|a| section(a, who))
    }
}

/// Whether one of the replica creation methods works without a primary.
fn replica_without_leader(postgresql: &Map) -> bool {
    crate::postgres::replica::configured_methods(postgresql)
        .iter()
        .any(|m| crate::postgres::replica::works_without_leader(postgresql, m))
}

/// The first address of `postgresql.listen` (`a,b:5432` -> `a:5432`).
fn first_listen(listen: &str) -> String {
    let (hosts, port) = match listen.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (listen, None),
    };
    let host = hosts.split(',').next().unwrap_or("").trim();
    match port {
        Some(p) => format!("{host}:{p}"),
        None => host.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::yaml;

    fn node(text: &str) -> Result<NodeConfig, String> {
        match yaml::load(text) {
            Ok(Value::Map(m)) => NodeConfig::from_effective(&m),
            other => panic!("not a map: {other:?}"),
        }
    }

    #[test]
    fn addresses_and_timing() {
        let n = node(
            "{name: n1, scope: s, ttl: 20, loop_wait: '2', retry_timeout: 5,\n\
             restapi: {listen: '0.0.0.0:8008', connect_address: '127.0.0.1:8008'},\n\
             postgresql: {listen: '127.0.0.1,::1:5433', data_dir: /d, use_slots: off},\n\
             tags: {nofailover: true}, bootstrap: {dcs: {}}}",
        )
        .expect("valid");
        assert_eq!(n.conn_url, "postgres://127.0.0.1:5433/postgres");
        assert_eq!(n.api_url, "http://127.0.0.1:8008/patroni");
        assert_eq!(n.timing.ttl, Duration::from_secs(20));
        assert_eq!(n.timing.loop_wait, Duration::from_secs(2));
        assert!(!n.use_slots);
        assert!(n.can_bootstrap);
        assert_eq!(
            n.tags.get("nofailover"),
            Some(&serde_json::Value::Bool(true))
        );
        assert_eq!(n.program("pg_ctl"), PathBuf::from("pg_ctl"));
    }

    #[test]
    fn missing_settings_are_named() {
        let err = node("{scope: s, postgresql: {data_dir: /d}}").expect_err("no name");
        assert!(err.contains("name"), "{err}");
        let err = node("{name: n, scope: s, postgresql: {listen: 'h:1'}}").expect_err("no dir");
        assert!(err.contains("data_dir"), "{err}");
    }
}
