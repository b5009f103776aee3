//! Bodies of the read endpoints, byte for byte as Patroni writes them:
//! spaced JSON (`", "`, `": "`, ASCII escapes, insertion order) for
//! `/patroni` and friends, Prometheus text for `/metrics`.

use chrono::{DateTime, FixedOffset, Timelike};
use serde_json::{json, Map, Value};

use crate::config::value::python_float_repr;
use crate::model::json::spaced;
use crate::model::{Cluster, Member};

use super::status::{NodeStatus, Xlog, POSTGRES_STATES};

/// The status object shared by `/patroni` and every health check, fields in
/// Patroni's order.
pub fn status_object(s: &NodeStatus) -> Map<String, Value> {
    let mut r = Map::new();
    r.insert("state".into(), json!(s.reported_state()));
    if let Some(q) = &s.postgres.query {
        if let Some(t) = &q.postmaster_start_time {
            r.insert("postmaster_start_time".into(), json!(t));
        }
        r.insert("role".into(), json!(s.reported_role()));
        if let Some(v) = q.server_version {
            r.insert("server_version".into(), json!(v));
        }
        match &q.xlog {
            Some(Xlog::Primary { location }) => {
                r.insert("xlog".into(), json!({ "location": location }));
            }
            Some(Xlog::Replica {
                received_location,
                replayed_location,
                replayed_timestamp,
                paused,
            }) => {
                let mut x = Map::new();
                x.insert("received_location".into(), json!(received_location));
                x.insert("replayed_location".into(), json!(replayed_location));
                x.insert("replayed_timestamp".into(), json!(replayed_timestamp));
                x.insert("paused".into(), json!(paused));
                r.insert("xlog".into(), Value::Object(x));
            }
            None => {}
        }
        if let Some(flag) = s.sync_flag() {
            r.insert(flag.into(), json!(true));
        }
        r.insert("timeline".into(), json!(q.timeline));
        if let Some(state) = &q.replication_state {
            r.insert("replication_state".into(), json!(state));
        }
        if let Some(rows) = q.replication.as_ref().filter(|r| !r.is_empty()) {
            r.insert("replication".into(), Value::Array(rows.clone()));
        }
    } else {
        r.insert("role".into(), json!(s.postgres.role));
    }
    if s.global().is_paused() {
        r.insert("pause".into(), json!(true));
    }
    if s.cluster_unlocked() {
        r.insert("cluster_unlocked".into(), json!(true));
    }
    if s.failsafe_active {
        r.insert("failsafe_mode_is_active".into(), json!(true));
    }
    r.insert("dcs_last_seen".into(), json!(s.dcs_last_seen));
    let tags = filter_tags(&s.effective_tags);
    if !tags.is_empty() {
        r.insert("tags".into(), Value::Object(tags));
    }
    if let Some(sysid) = s
        .database_system_identifier
        .as_ref()
        .filter(|v| !v.is_empty())
    {
        r.insert("database_system_identifier".into(), json!(sysid));
    }
    if !s.pending_restart_reason.is_empty() {
        r.insert("pending_restart".into(), json!(true));
        r.insert(
            "pending_restart_reason".into(),
            Value::Object(s.pending_restart_reason.clone()),
        );
    }
    r.insert(
        "patroni".into(),
        json!({"version": s.version, "scope": s.scope, "name": s.name}),
    );
    if let Some(sr) = &s.scheduled_restart {
        let mut sr = sr.clone();
        sr.shift_remove("postmaster_start_time");
        r.insert("scheduled_restart".into(), Value::Object(sr));
    }
    if s.watchdog_failed {
        r.insert("watchdog_failed".into(), json!(true));
    }
    if s.logger_queue_size > s.logger_normal_queue_size {
        r.insert("logger_queue_size".into(), json!(s.logger_queue_size));
        if s.logger_records_lost > 0 {
            r.insert("logger_records_lost".into(), json!(s.logger_records_lost));
        }
    }
    r
}

/// The tags a node shows (in `/patroni` and its member key), as Patroni's
/// `Tags._filter_tags`: the switch-like tags `clonefrom`, `nofailover`,
/// `noloadbalance`, `nosync` and `nostream` appear only when truthy
/// (Python truthiness: `"false"` is a set tag), except that `nofailover`
/// stays next to `failover_priority` and `nosync` next to `sync_priority`
/// (the pair is needed to see a contradiction). Other tags always appear.
pub fn filter_tags(tags: &Map<String, Value>) -> Map<String, Value> {
    crate::model::Tags(tags).filtered()
}

/// `GET /patroni` and the health-check body.
pub fn status_body(s: &NodeStatus) -> String {
    spaced(&Value::Object(status_object(s)))
}

/// Patroni's `format_lsn`: upper-case hex halves, no padding (`0/404BE78`).
pub fn format_lsn(lsn: i64) -> String {
    // LSNs are unsigned 64-bit in PostgreSQL; the bit pattern is what
    // matters for the two halves.
    let u = lsn as u64;
    format!("{:X}/{:X}", u >> 32, u & 0xFFFF_FFFF)
}

/// An LSN field of a member key: an int, or text Patroni's `parse_int`
/// accepts; 0 and invalid values are unknown.
fn member_lsn(m: &Member, key: &str) -> Option<i64> {
    let v = m.data.get(key)?;
    let cfg = crate::config::value::Value::from_json(v);
    crate::config::units::parse_int(&cfg, None).filter(|n| *n != 0)
}

/// `host`/`port` of a member: from `conn_kwargs` when present, else parsed
/// from `conn_url` (host lower-cased, port defaulting to 5432, as
/// `urlparse` gives them).
fn member_host_port(m: &Member) -> (Option<String>, Option<i64>) {
    if let Some(Value::Object(kw)) = m
        .data
        .get("conn_kwargs")
        .filter(|v| super::status::json_truthy(v))
    {
        let host = kw
            .get("host")
            .filter(|v| super::status::json_truthy(v))
            .map(super::status::python_str);
        let port = kw.get("port").and_then(|p| match p {
            Value::Number(n) => n.as_i64(),
            Value::String(s) => s.trim().parse().ok(),
            _ => None,
        });
        return (host, port.filter(|p| *p != 0));
    }
    let Some(url) = m.conn_url() else {
        return (None, None);
    };
    let Some((_, rest)) = url.split_once("://") else {
        return (None, None);
    };
    let netloc = rest.split(['/', '?', '#']).next().unwrap_or("");
    let hostport = netloc.rsplit_once('@').map_or(netloc, |(_, h)| h);
    let (host, port) = if let Some(inner) = hostport.strip_prefix('[') {
        match inner.split_once(']') {
            Some((h, p)) => (h, p.strip_prefix(':')),
            None => (inner, None),
        }
    } else {
        match hostport.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (hostport, None),
        }
    };
    let port = match port.filter(|p| !p.is_empty()) {
        Some(p) => p.parse::<i64>().ok(),
        None => Some(5432),
    };
    let host = Some(host.to_lowercase()).filter(|h| !h.is_empty());
    (host, port)
}

/// Python's `datetime.isoformat()` of a stored timestamp (microseconds
/// only when non-zero); the text itself when it does not parse.
pub fn isoformat(text: &str) -> String {
    match parse_datetime(text) {
        Some(dt) => {
            let base = dt.format("%Y-%m-%dT%H:%M:%S").to_string();
            let micros = dt.nanosecond() / 1000;
            let frac = if micros != 0 {
                format!(".{micros:06}")
            } else {
                String::new()
            };
            format!("{base}{frac}{}", dt.format("%:z"))
        }
        None => text.to_owned(),
    }
}

fn parse_datetime(text: &str) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f%:z"))
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%:z"))
        .ok()
}

/// Seconds since the epoch as Python's `timedelta.total_seconds()` prints
/// them (`1795310363.052006`); 0 when absent or unparsable.
fn epoch_seconds(text: Option<&str>) -> String {
    match text.and_then(parse_datetime) {
        Some(dt) => {
            let micros = dt.timestamp() * 1_000_000 + i64::from(dt.nanosecond() / 1000);
            #[allow(clippy::cast_precision_loss)]
            let secs = micros as f64 / 1e6;
            python_float_repr(secs)
        }
        None => "0".into(),
    }
}

/// `GET /cluster`: the topology from the last cluster view.
pub fn cluster_body(s: &NodeStatus) -> String {
    let empty = Cluster::default();
    let cluster = s.cluster.as_deref().unwrap_or(&empty);
    let mut ret = cluster_object(cluster);
    ret.insert("scope".into(), json!(s.scope));
    spaced(&Value::Object(ret))
}

/// Patroni's `cluster_as_json` (without `scope`).
pub fn cluster_object(cluster: &Cluster) -> Map<String, Value> {
    let global = super::status::GlobalView::from_cluster(cluster);
    let leader_name = cluster.leader.as_ref().map(|l| l.name.as_str());
    let cluster_lsn = cluster.status.last_lsn;
    let sync_role = if global.is_quorum_commit_mode() {
        "quorum_standby"
    } else {
        "sync_standby"
    };
    let mut members = Vec::new();
    for m in &cluster.members {
        let is_leader = Some(m.name.as_str()) == leader_name;
        let role = if is_leader {
            if global.is_standby_cluster() {
                "standby_leader"
            } else {
                "leader"
            }
        } else if global.is_synchronous_mode() && cluster.sync.matches(&m.name, false) {
            sync_role
        } else {
            "replica"
        };
        let text = |k: &str| match m.data.get(k) {
            Some(v) if super::status::json_truthy(v) => v.clone(),
            _ => json!(""),
        };
        let mut state = if role != "leader" {
            text("replication_state")
        } else {
            json!("")
        };
        if !super::status::json_truthy(&state) {
            // Python's `or` yields the raw value, even a null one.
            state = m.data.get("state").cloned().unwrap_or_else(|| json!(""));
        }
        let mut o = Map::new();
        o.insert("name".into(), json!(m.name));
        o.insert("role".into(), json!(role));
        o.insert("state".into(), state);
        o.insert(
            "api_url".into(),
            m.data.get("api_url").cloned().unwrap_or(Value::Null),
        );
        let (host, port) = member_host_port(m);
        if let Some(h) = host {
            o.insert("host".into(), json!(h));
            if let Some(p) = port {
                o.insert("port".into(), json!(p));
            }
        }
        for k in [
            "timeline",
            "pending_restart",
            "pending_restart_reason",
            "scheduled_restart",
            "tags",
        ] {
            if let Some(v) = m.data.get(k) {
                o.insert(k.into(), v.clone());
            }
        }
        if !is_leader {
            for (lsn_key, lag_key, field) in [
                ("receive_lsn", "receive_lag", "receive_lsn"),
                ("replay_lsn", "replay_lag", "replay_lsn"),
                ("lsn", "lag", "xlog_location"),
            ] {
                match member_lsn(m, field) {
                    None => {
                        o.insert(lsn_key.into(), json!("unknown"));
                        o.insert(lag_key.into(), json!("unknown"));
                    }
                    Some(lsn) => {
                        let lag = if cluster_lsn >= lsn {
                            cluster_lsn.saturating_sub(lsn)
                        } else {
                            0
                        };
                        o.insert(lag_key.into(), json!(lag));
                        o.insert(lsn_key.into(), json!(format_lsn(lsn)));
                    }
                }
            }
        }
        members.push((m.name.clone(), Value::Object(o)));
    }
    members.sort_by(|a, b| a.0.cmp(&b.0));
    let mut ret = Map::new();
    ret.insert(
        "members".into(),
        Value::Array(members.into_iter().map(|(_, v)| v).collect()),
    );
    if global.is_paused() {
        ret.insert("pause".into(), json!(true));
    }
    if let Some(f) = cluster.failover.as_ref() {
        if let Some(at) = f.scheduled_at.as_deref() {
            let mut sw = Map::new();
            sw.insert("at".into(), json!(isoformat(at)));
            if let Some(l) = &f.leader {
                sw.insert("from".into(), json!(l));
            }
            if let Some(c) = &f.candidate {
                sw.insert("to".into(), json!(c));
            }
            ret.insert("scheduled_switchover".into(), Value::Object(sw));
        }
    }
    ret
}

/// `GET /history`: the stored history lines, or `[]`.
pub fn history_body(s: &NodeStatus) -> String {
    let lines = s
        .cluster
        .as_deref()
        .and_then(|c| c.history.as_ref())
        .map(|h| h.lines.clone())
        .unwrap_or_default();
    spaced(&Value::Array(lines))
}

/// `GET /config`: the dynamic configuration; `None` means a 502 error page
/// (no config key, or one that is not a JSON object).
pub fn config_body(s: &NodeStatus) -> Option<String> {
    let config = s.cluster.as_deref()?.config.as_ref()?;
    if config.modify_version.unwrap_or(0) == 0 {
        return None;
    }
    Some(spaced(&Value::Object(config.data.clone())))
}

/// `GET /failsafe`: the `/failsafe` key as last read; `None` means 502.
pub fn failsafe_body(s: &NodeStatus) -> Option<String> {
    let failsafe = s.cluster.as_deref()?.failsafe.as_ref()?;
    Some(spaced(&Value::Object(failsafe.clone())))
}

/// One metric: HELP, optional extra comment, TYPE, sample.
fn metric(out: &mut Vec<String>, labels: &str, name: &str, kind: &str, help: &str, value: String) {
    out.push(format!("# HELP {name} {help}"));
    if name == "patroni_postgres_state" {
        let values: Vec<String> = STATE_NAMES
            .iter()
            .enumerate()
            .map(|(i, st)| format!("{i}={st}"))
            .collect();
        out.push(format!("# Values: {}", values.join(", ")));
    }
    out.push(format!("# TYPE {name} {kind}"));
    out.push(format!("{name}{labels} {value}"));
}

/// The enum member names Patroni lists in the `# Values:` line.
const STATE_NAMES: [&str; 15] = [
    "initdb",
    "initdb_failed",
    "custom_bootstrap",
    "custom_bootstrap_failed",
    "creating_replica",
    "running",
    "starting",
    "bootstrap_starting",
    "start_failed",
    "restarting",
    "restart_failed",
    "stopping",
    "stopped",
    "stop_failed",
    "crashed",
];

fn flag(b: bool) -> String {
    u8::from(b).to_string()
}

/// `GET /metrics`: Prometheus text, lines joined by `\n` with a trailing
/// one.
pub fn metrics_body(s: &NodeStatus) -> String {
    let labels = format!("{{scope=\"{}\",name=\"{}\"}}", s.scope, s.name);
    let q = s.postgres.query.as_ref();
    let state = s.reported_state();
    let role = s.reported_role();
    let xlog = q.and_then(|q| q.xlog.as_ref());
    let (location, received, replayed, replayed_ts, paused) = match xlog {
        Some(Xlog::Primary { location }) => (*location, 0, 0, None, false),
        Some(Xlog::Replica {
            received_location,
            replayed_location,
            replayed_timestamp,
            paused,
        }) => (
            0,
            *received_location,
            *replayed_location,
            replayed_timestamp.as_deref(),
            *paused,
        ),
        None => (0, 0, 0, None, false),
    };
    let server_version = q.and_then(|q| q.server_version).unwrap_or(0);
    let replication_state = q.and_then(|q| q.replication_state.as_deref());
    let sync = s.sync_flag();
    let version: String = s.version.split('.').map(|p| format!("{p:0>2}")).collect();
    let mut m = Vec::new();
    let l = labels.as_str();
    metric(
        &mut m,
        l,
        "patroni_version",
        "gauge",
        "Patroni semver without periods.",
        version,
    );
    metric(
        &mut m,
        l,
        "patroni_postgres_running",
        "gauge",
        "Value is 1 if Postgres is running, 0 otherwise.",
        flag(state == "running"),
    );
    metric(
        &mut m,
        l,
        "patroni_postmaster_start_time",
        "gauge",
        "Epoch seconds since Postgres started.",
        epoch_seconds(q.and_then(|q| q.postmaster_start_time.as_deref())),
    );
    metric(
        &mut m,
        l,
        "patroni_primary",
        "gauge",
        "Value is 1 if this node is the leader, 0 otherwise.",
        flag(role == "primary"),
    );
    metric(
        &mut m,
        l,
        "patroni_xlog_location",
        "counter",
        "Current location of the Postgres transaction log, 0 if this node is not the leader.",
        location.to_string(),
    );
    metric(
        &mut m,
        l,
        "patroni_standby_leader",
        "gauge",
        "Value is 1 if this node is the standby_leader, 0 otherwise.",
        flag(role == "standby_leader"),
    );
    metric(
        &mut m,
        l,
        "patroni_replica",
        "gauge",
        "Value is 1 if this node is a replica, 0 otherwise.",
        flag(role == "replica"),
    );
    metric(
        &mut m,
        l,
        "patroni_sync_standby",
        "gauge",
        "Value is 1 if this node is a sync standby, 0 otherwise.",
        flag(sync == Some("sync_standby")),
    );
    metric(
        &mut m,
        l,
        "patroni_quorum_standby",
        "gauge",
        "Value is 1 if this node is a quorum standby, 0 otherwise.",
        flag(sync == Some("quorum_standby")),
    );
    metric(&mut m, l, "patroni_xlog_received_location", "counter", "Current location of the received Postgres transaction log, 0 if this node is not a replica.", received.to_string());
    metric(&mut m, l, "patroni_xlog_replayed_location", "counter", "Current location of the replayed Postgres transaction log, 0 if this node is not a replica.", replayed.to_string());
    metric(
        &mut m,
        l,
        "patroni_xlog_replayed_timestamp",
        "gauge",
        "Current timestamp of the replayed Postgres transaction log, 0 if null.",
        epoch_seconds(replayed_ts),
    );
    metric(
        &mut m,
        l,
        "patroni_xlog_paused",
        "gauge",
        "Value is 1 if the Postgres xlog is paused, 0 otherwise.",
        flag(paused),
    );
    if server_version >= 90600 {
        metric(
            &mut m,
            l,
            "patroni_postgres_streaming",
            "gauge",
            "Value is 1 if Postgres is streaming, 0 otherwise.",
            flag(replication_state == Some("streaming")),
        );
        metric(
            &mut m,
            l,
            "patroni_postgres_in_archive_recovery",
            "gauge",
            "Value is 1 if Postgres is replicating from archive, 0 otherwise.",
            flag(replication_state == Some("in archive recovery")),
        );
    }
    metric(
        &mut m,
        l,
        "patroni_postgres_server_version",
        "gauge",
        "Version of Postgres (if running), 0 otherwise.",
        server_version.to_string(),
    );
    metric(
        &mut m,
        l,
        "patroni_cluster_unlocked",
        "gauge",
        "Value is 1 if the cluster is unlocked, 0 if locked.",
        flag(s.cluster_unlocked()),
    );
    metric(
        &mut m,
        l,
        "patroni_failsafe_mode_is_active",
        "gauge",
        "Value is 1 if failsafe mode is active, 0 if inactive.",
        flag(s.failsafe_active),
    );
    metric(
        &mut m,
        l,
        "patroni_postgres_timeline",
        "gauge",
        "Postgres timeline of this node (if running), 0 otherwise.",
        q.and_then(|q| q.timeline).unwrap_or(0).to_string(),
    );
    metric(
        &mut m,
        l,
        "patroni_dcs_last_seen",
        "gauge",
        "Epoch timestamp when DCS was last contacted successfully by Patroni.",
        s.dcs_last_seen.to_string(),
    );
    metric(
        &mut m,
        l,
        "patroni_pending_restart",
        "gauge",
        "Value is 1 if the node needs a restart, 0 otherwise.",
        flag(!s.pending_restart_reason.is_empty()),
    );
    metric(
        &mut m,
        l,
        "patroni_is_paused",
        "gauge",
        "Value is 1 if auto failover is disabled, 0 otherwise.",
        flag(s.global().is_paused()),
    );
    let state_index = POSTGRES_STATES
        .iter()
        .position(|st| *st == state)
        .map_or(-1, |i| i64::try_from(i).unwrap_or(-1));
    metric(
        &mut m,
        l,
        "patroni_postgres_state",
        "gauge",
        "Numeric representation of Postgres state.",
        state_index.to_string(),
    );
    let mut text = m.join("\n");
    text.push('\n');
    text
}

#[cfg(test)]
mod tests;
