//! Health-check status codes, as pure functions of a [`NodeStatus`].
//!
//! Load balancers route on these codes, so every rule of Patroni's generic
//! GET handler is kept: the path is matched by substring in a fixed order,
//! `/` means `/primary`, unknown paths fall through to 503, tag filters
//! compare lower-cased string forms, and an invalid `?lag=` means "no
//! limit". The codes follow leader-lock ownership, not the PostgreSQL role,
//! so they stay right during a switchover.

use crate::config::units::parse_int;
use crate::config::value::Value as CfgValue;

use super::status::NodeStatus;

/// A parsed query string: each key once with its first value, keys in the
/// order they first appear (Python's `parse_qs` dict, reduced to `[0]`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    /// Parse like `urllib.parse.parse_qs` with default arguments: `&`
    /// separates pairs, `+` is a space, `%XX` escapes are decoded (invalid
    /// UTF-8 becomes U+FFFD), and pairs without `=` or with an empty value
    /// are dropped.
    pub fn parse(query: &str) -> Query {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for part in query.split('&') {
            let Some((k, v)) = part.split_once('=') else {
                continue;
            };
            if v.is_empty() {
                continue;
            }
            let key = percent_decode(k);
            if pairs.iter().any(|(existing, _)| *existing == key) {
                continue;
            }
            pairs.push((key, percent_decode(v)));
        }
        Query { pairs }
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h * 16 + l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
}

/// `?lag=` as bytes: Patroni's `parse_int(value, 'B')`; absent or invalid
/// means no limit.
fn lag_limit(query: &Query) -> Option<i64> {
    query
        .get("lag")
        .and_then(|v| parse_int(&CfgValue::Str(v.to_owned()), Some("B")))
}

/// The codes every health path is built from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Codes {
    replica: u16,
    leader: u16,
    primary: u16,
    standby_leader: u16,
}

fn ok(cond: bool) -> u16 {
    if cond {
        200
    } else {
        503
    }
}

fn codes(s: &NodeStatus, query: &Query) -> Codes {
    let role = s.reported_role();
    let state = s.reported_state();
    let leader_optime = i128::from(s.leader_optime());
    let limit = lag_limit(query).map_or(i128::from(i64::MAX), i128::from);
    let lagging = leader_optime != 0 && leader_optime > i128::from(s.replayed_location()) + limit;
    let mut replica = ok(!s.noloadbalance() && !lagging && role == "replica" && state == "running");
    let paused_in_memory = s.global().is_paused();
    let (leader, primary, standby_leader);
    if s.valid_cluster().is_none() && paused_in_memory {
        // Without a DCS view in maintenance mode only PostgreSQL's own
        // role is known.
        leader = ok(role == "primary" || role == "standby_leader");
        primary = ok(role == "primary");
        standby_leader = ok(role == "standby_leader");
    } else if s.holds_leader() {
        leader = 200;
        if s.global().is_standby_cluster() {
            primary = 503;
            replica = 503;
            standby_leader = ok(role == "replica" || role == "standby_leader");
        } else {
            primary = 200;
            standby_leader = 503;
        }
    } else {
        leader = 503;
        primary = 503;
        standby_leader = 503;
    }
    Codes {
        replica,
        leader,
        primary,
        standby_leader,
    }
}

/// The status code of a GET (or HEAD/OPTIONS) that lands in the generic
/// health handler. `path` is the URL path without the query string.
pub fn health_status(s: &NodeStatus, path: &str, query: &Query) -> u16 {
    let path = if path == "/" { "/primary" } else { path };
    let c = codes(s, query);
    let writable = c.primary == 200 || c.standby_leader == 200;
    let mut ignore_tags = false;
    let mut code = 503;
    if path.contains("standby_leader") || path.contains("standby-leader") {
        code = c.standby_leader;
        ignore_tags = true;
    } else if path.contains("leader") {
        code = c.leader;
        ignore_tags = true;
    } else if path.contains("master") || path.contains("primary") || path.contains("read-write") {
        code = c.primary;
        ignore_tags = true;
    } else if path.contains("replica") {
        code = c.replica;
    } else if path.contains("read-only") && !path.contains("sync") && !path.contains("quorum") {
        code = if writable { 200 } else { c.replica };
    } else if path.contains("health") {
        code = ok(s.reported_state() == "running");
    } else if s.valid_cluster().is_some() {
        let flag = s.sync_flag();
        let is_sync = flag == Some("sync_standby");
        let is_quorum = flag == Some("quorum_standby");
        match path {
            "/sync" | "/synchronous" if is_sync => code = c.replica,
            "/quorum" if is_quorum => code = c.replica,
            "/async" | "/asynchronous" if !is_sync && !is_quorum => code = c.replica,
            "/read-only-quorum" => {
                if writable {
                    code = 200;
                } else if is_quorum {
                    code = c.replica;
                }
            }
            "/read-only-sync" | "/read-only-synchronous" => {
                if writable {
                    code = 200;
                } else if is_sync {
                    code = c.replica;
                }
            }
            _ => {}
        }
    }
    if !ignore_tags && code == 200 && !tags_match(s, query) {
        code = 503;
    }
    code
}

/// Every `tag_<k>=<v>` parameter must name a configured tag with that value
/// (non-string tags compare as their lower-cased Python `str()`).
fn tags_match(s: &NodeStatus, query: &Query) -> bool {
    query.iter().all(|(k, v)| {
        let Some(tag) = k.strip_prefix("tag_") else {
            return true;
        };
        match s.tags.get(tag) {
            None | Some(serde_json::Value::Null) => false,
            Some(serde_json::Value::String(t)) => t == v,
            Some(other) => super::status::python_str(other).to_lowercase() == v,
        }
    })
}

/// `GET /liveness`: 200 while paused, or while the HA loop is on time
/// (`next_run` + ttl on a running primary, + 2*ttl elsewhere, is still in
/// the future). `now` is epoch seconds.
pub fn liveness_status(s: &NodeStatus, now: f64) -> u16 {
    let running_primary = s.postgres.role == "primary" && s.postgres.state == "running";
    let factor = if running_primary { 1.0 } else { 2.0 };
    #[allow(clippy::cast_precision_loss)]
    let threshold = s.ttl as f64 * factor;
    ok(s.global().is_paused() || s.next_run + threshold > now)
}

/// Why `GET /readiness` fails, or `None` when ready.
pub fn readiness_failure(s: &NodeStatus, query: &Query) -> Option<String> {
    if s.holds_leader() {
        return None;
    }
    if s.postgres.state != "running" {
        return Some("PostgreSQL is not running".into());
    }
    let q = s.postgres.query.as_ref();
    if q.and_then(|q| q.replication_state.as_deref()) != Some("streaming") {
        return Some("PostgreSQL replication state is not streaming".into());
    }
    let latest_end_lsn = s.latest_end_lsn();
    if s.valid_cluster().is_none() && latest_end_lsn == 0 {
        if s.failsafe_active {
            return None;
        }
        return Some("DCS is not accessible".into());
    }
    let write = query.get("mode") == Some("write");
    let location = if write {
        s.received_location()
    } else {
        s.replayed_location()
    };
    let lag = i128::from(s.leader_optime()) - i128::from(location);
    let limit = lag_limit(query).unwrap_or_else(|| s.global().maximum_lag_on_failover());
    if lag > i128::from(limit) {
        let mode = if write { "write" } else { "apply" };
        return Some(format!(
            "Replication {mode} lag {lag} exceeds maximum allowable {limit}"
        ));
    }
    None
}

/// `GET /readiness` as a status code.
pub fn readiness_status(s: &NodeStatus, query: &Query) -> u16 {
    ok(readiness_failure(s, query).is_none())
}

#[cfg(test)]
mod tests;
