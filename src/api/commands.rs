//! The modifying endpoints: request validation with Patroni's exact
//! messages, and the [`ApiCommands`] trait through which the daemon carries
//! out the actions that need the HA loop or a DCS write.
//!
//! Everything that can be decided from the request and a cluster view is
//! decided here, so the checks patronictl and operators see are the same
//! whatever the daemon does behind the trait.
//!
//! Known deviations from Python Patroni:
//! - Scheduled times must be ISO 8601 (`T` or space, optional fraction,
//!   `Z`/`±HH:MM`/`±HHMM`, or a bare date); `dateutil` also reads
//!   free-form dates, which get the 422 "Unable to parse" reply here.
//! - Bodies are parsed by serde_json: `NaN`/`Infinity`, which Python's
//!   `json` accepts, give a 400 page.
//! - When the fresh DCS read fails, switchover/failover, DELETE
//!   /switchover and PATCH /config answer with a 503 error page; Python's
//!   handler raises and the client sees the connection closed.
//! - POST /restart decides "paused" from the published snapshot instead of
//!   a fresh DCS read.
//! - POST /reinitialize with an unparsable body: Patroni sends the 400
//!   page and then still starts the reinitialization (writing a second
//!   response); we only send the 400 and do nothing.
//! - A switchover with a valid `scheduled_at` that then fails a 400 check
//!   (e.g. leader == candidate) crashes Patroni's handler (its status code
//!   is left unset) and the client sees the connection closed; we answer
//!   400 with the message.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, FixedOffset, NaiveDate, NaiveDateTime, Utc};
use serde_json::{Map, Value};

use crate::config::units::{parse_bool, parse_int};
use crate::config::value::Value as CfgValue;
use crate::model::json::{compact, spaced};
use crate::model::{Cluster, Member};

use super::bodies::isoformat;
use super::status::{python_str, GlobalView, NodeStatus};

/// What the daemon does for the modifying endpoints. Implementations may
/// block for as long as the action takes; the API awaits them only on the
/// request that asked for it.
#[async_trait]
pub trait ApiCommands: Send + Sync {
    /// A fresh cluster view read from the DCS (Patroni's
    /// `dcs.get_cluster()`).
    async fn get_cluster(&self) -> Result<Arc<Cluster>, String>;
    /// Re-read the configuration file (like SIGHUP).
    async fn reload(&self);
    /// Restart PostgreSQL now if the filters in `request` match: `Ok(true,
    /// _)` restarted, `Ok(false, reason)` not done; `Err` an unexpected
    /// failure.
    async fn restart(&self, request: &Map<String, Value>) -> Result<(bool, String), String>;
    /// Store a scheduled restart (`schedule` is ISO text); false when one is
    /// already scheduled.
    async fn schedule_restart(&self, request: &Map<String, Value>) -> bool;
    /// Drop the scheduled restart; false when there was none.
    async fn delete_scheduled_restart(&self) -> bool;
    /// Start a reinitialization; `Some(reason)` when refused.
    async fn reinitialize(&self, force: bool, from_leader: bool) -> Option<String>;
    /// Write the `failover` key (`leader`, `member`, `scheduled_at`); with
    /// `version`, as a compare-and-set. Empty strings clear the key (`{}`).
    async fn manual_failover(
        &self,
        leader: Option<&str>,
        candidate: Option<&str>,
        scheduled_at: Option<&str>,
        version: Option<i64>,
    ) -> bool;
    /// Whether at least one of `members` can take over: its `/patroni`
    /// answers and it is not nofailover or watchdog-failed.
    async fn has_healthy_candidate(&self, members: &[Member]) -> bool;
    /// Write the `config` key (compact JSON); with `version`, as a
    /// compare-and-set.
    async fn set_config(&self, value: &str, version: Option<i64>) -> bool;
    /// A failsafe heartbeat from the leader: `Ok(lsn)` accepted (with this
    /// node's WAL position when known), `Err(reason)` refused.
    async fn update_failsafe(&self, request: &Map<String, Value>) -> Result<Option<i64>, String>;
    /// An MPP (Citus) event from a worker.
    async fn mpp_event(&self, request: &Map<String, Value>);
    /// Run the HA loop now.
    fn wakeup(&self);
}

/// The outcome of a modifying request, for the HTTP layer to frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// A normal `text/html` (or given type) response with extra headers
    /// placed before `Content-Type`.
    Text {
        code: u16,
        body: String,
        content_type: &'static str,
        headers: Vec<(String, String)>,
    },
    /// Python's `send_error(code)` HTML page.
    Error(u16),
}

impl Reply {
    pub fn html(code: u16, body: impl Into<String>) -> Reply {
        Reply::Text {
            code,
            body: body.into(),
            content_type: "text/html",
            headers: Vec::new(),
        }
    }

    fn json(code: u16, value: &Value) -> Reply {
        Reply::Text {
            code,
            body: spaced(value),
            content_type: "application/json",
            headers: Vec::new(),
        }
    }
}

/// The request body as the handler reads it.
#[derive(Debug, Clone, Copy)]
pub struct Body<'a> {
    /// The `Content-Length` header, if sent.
    pub content_length: Option<&'a str>,
    pub bytes: &'a [u8],
}

/// Patroni's `_read_json_content`: a JSON object from the body.
/// `optional` bodies may be absent, empty or `{}`; required ones must be a
/// non-empty object (411 without Content-Length, 400 otherwise).
pub fn read_json(body: Body<'_>, optional: bool) -> Result<Map<String, Value>, Reply> {
    let Some(cl) = body.content_length else {
        return if optional {
            Ok(Map::new())
        } else {
            Err(Reply::Error(411))
        };
    };
    let length = match cl.trim() {
        "" => 0,
        t => t.parse::<i64>().map_err(|_| Reply::Error(400))?,
    };
    if length == 0 && optional {
        return Ok(Map::new());
    }
    let Ok(text) = std::str::from_utf8(body.bytes) else {
        return Err(Reply::Error(400));
    };
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(m)) if optional || !m.is_empty() => Ok(m),
        _ => Err(Reply::Error(400)),
    }
}

/// A client-supplied schedule, parsed like Patroni's `parse_schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// Valid: the time as Python's `isoformat()`.
    At(String),
    /// Rejected: status code and message.
    Invalid(u16, String),
}

/// Parse a scheduled time for `action` (`switchover`, `restart`). ISO 8601
/// forms (with `T` or a space, optional fraction, `Z`/`±HH:MM`/`±HHMM`
/// offsets) are accepted; `dateutil` accepts more free-form text, which we
/// reject as unparsable.
pub fn parse_schedule(value: &Value, action: &str, now: DateTime<Utc>) -> Schedule {
    let unparsable = || {
        Schedule::Invalid(
            422,
            "Unable to parse scheduled timestamp. It should be in an unambiguous format, e.g. ISO 8601"
                .into(),
        )
    };
    let Value::String(text) = value else {
        return unparsable();
    };
    let text = text.trim();
    match parse_datetime(text) {
        Some(Parsed::Aware(dt)) => {
            if dt < now {
                Schedule::Invalid(422, format!("Cannot schedule {action} in the past"))
            } else {
                Schedule::At(isoformat(&dt.to_rfc3339()))
            }
        }
        Some(Parsed::Naive) => Schedule::Invalid(
            400,
            format!("Timezone information is mandatory for the scheduled {action}"),
        ),
        None => unparsable(),
    }
}

enum Parsed {
    Aware(DateTime<FixedOffset>),
    Naive,
}

fn parse_datetime(text: &str) -> Option<Parsed> {
    let text = text.replacen(' ', "T", 1);
    let text = text
        .strip_suffix('Z')
        .map_or(text.clone(), |t| format!("{t}+00:00"));
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f%:z",
        "%Y-%m-%dT%H:%M:%S%.f%z",
        "%Y-%m-%dT%H:%M%:z",
    ] {
        if let Ok(dt) = DateTime::parse_from_str(&text, fmt) {
            return Some(Parsed::Aware(dt));
        }
    }
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%dT%H:%M"] {
        if NaiveDateTime::parse_from_str(&text, fmt).is_ok() {
            return Some(Parsed::Naive);
        }
    }
    NaiveDate::parse_from_str(&text, "%Y-%m-%d")
        .ok()
        .map(|_| Parsed::Naive)
}

/// Patroni's `postgres_version_to_int` check: `X.Y` (X >= 10) or `X.Y.Z`.
fn check_postgres_version(value: &Value) -> Result<(), String> {
    let text = python_str(value);
    let parts: Result<Vec<i64>, _> = text.split('.').map(|p| p.trim().parse::<i64>()).collect();
    let Ok(parts) = parts else {
        return Err(format!("Invalid PostgreSQL version: {text}"));
    };
    if parts.len() < 2 || (parts.len() == 2 && parts[0] < 10) || parts.len() > 3 {
        return Err(format!(
            "Invalid PostgreSQL version format: X.Y or X.Y.Z is accepted: {text}"
        ));
    }
    Ok(())
}

/// `POST /restart`.
pub async fn post_restart(
    cmds: &dyn ApiCommands,
    status: &NodeStatus,
    mut request: Map<String, Value>,
    now: DateTime<Utc>,
) -> Reply {
    if status.global().is_paused() && request.contains_key("schedule") {
        return Reply::html(500, "Can't schedule restart in the paused state");
    }
    let keys: Vec<String> = request.keys().cloned().collect();
    for k in keys {
        let Some(v) = request.get(&k).cloned() else {
            continue;
        };
        match k.as_str() {
            "schedule" => match parse_schedule(&v, "restart", now) {
                Schedule::At(at) => {
                    request.insert(k, Value::String(at));
                }
                Schedule::Invalid(code, msg) => return Reply::html(code, msg),
            },
            "role" => {
                if !matches!(v.as_str(), Some("primary" | "standby_leader" | "replica")) {
                    return Reply::html(
                        400,
                        "PostgreSQL role should be either primary, standby_leader, or replica",
                    );
                }
            }
            "postgres_version" => {
                if let Err(msg) = check_postgres_version(&v) {
                    return Reply::html(400, msg);
                }
            }
            "timeout" => match parse_int(&CfgValue::from_json(&v), Some("s")) {
                Some(t) if t > 0 => {
                    request.insert(k, Value::from(t));
                }
                _ => return Reply::html(400, "Timeout should be a positive number of seconds"),
            },
            "restart_pending" => {}
            other => {
                return Reply::html(
                    400,
                    format!("Unknown filter for the scheduled restart: {other}"),
                )
            }
        }
    }
    if request.contains_key("schedule") {
        if cmds.schedule_restart(&request).await {
            Reply::html(202, "Restart scheduled")
        } else {
            Reply::html(409, "Another restart is already scheduled")
        }
    } else {
        match cmds.restart(&request).await {
            Ok((true, msg)) => Reply::html(200, msg),
            Ok((false, msg)) => Reply::html(503, msg),
            Err(_) => Reply::html(400, "restart failed"),
        }
    }
}

/// `DELETE /restart`.
pub async fn delete_restart(cmds: &dyn ApiCommands) -> Reply {
    if cmds.delete_scheduled_restart().await {
        Reply::html(200, "scheduled restart deleted")
    } else {
        Reply::html(404, "no restarts are scheduled")
    }
}

/// `DELETE /switchover`: clear a scheduled switchover with a
/// compare-and-set on the `failover` key.
pub async fn delete_switchover(cmds: &dyn ApiCommands) -> Reply {
    let Ok(cluster) = cmds.get_cluster().await else {
        return Reply::Error(503);
    };
    match cluster.failover.as_ref() {
        Some(f) if f.scheduled_at.is_some() => {
            if cmds
                .manual_failover(Some(""), Some(""), None, f.version)
                .await
            {
                Reply::html(200, "scheduled switchover deleted")
            } else {
                Reply::Error(409)
            }
        }
        _ => Reply::html(404, "no switchover is scheduled"),
    }
}

/// `POST /reinitialize`.
pub async fn post_reinitialize(cmds: &dyn ApiCommands, request: &Map<String, Value>) -> Reply {
    let flag = |k: &str| {
        request
            .get(k)
            .and_then(|v| parse_bool(&CfgValue::from_json(v)))
            .unwrap_or(false)
    };
    match cmds.reinitialize(flag("force"), flag("from_leader")).await {
        None => Reply::html(200, "reinitialize started"),
        Some(reason) => Reply::html(503, reason),
    }
}

/// Patroni's `patch_config`: merge `data` into `config`; `null` deletes,
/// objects merge, other values replace when their text differs. Returns
/// whether anything changed.
pub fn patch_config(config: &mut Map<String, Value>, data: &Map<String, Value>) -> bool {
    let mut changed = false;
    for (name, value) in data {
        if value.is_null() {
            if config.shift_remove(name).is_some_and(|v| !v.is_null()) {
                changed = true;
            }
        } else if let Some(current) = config.get_mut(name) {
            if let Value::Object(patch) = value {
                if let Value::Object(inner) = current {
                    changed |= patch_config(inner, patch);
                } else {
                    *current = value.clone();
                    changed = true;
                }
            } else if python_str(current) != python_str(value) {
                *current = value.clone();
                changed = true;
            }
        } else {
            config.insert(name.clone(), value.clone());
            changed = true;
        }
    }
    changed
}

/// Patroni's `deep_compare`: same keys, nested objects compared
/// recursively, other values by their text.
pub fn deep_compare(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    if a.len() != b.len() || !a.keys().all(|k| b.contains_key(k)) {
        return false;
    }
    b.iter().all(|(k, v)| match (v, a.get(k)) {
        (Value::Object(bv), Some(Value::Object(av))) => deep_compare(av, bv),
        (Value::Object(_), _) => false,
        (v, Some(av)) => python_str(v) == python_str(av),
        (_, None) => false,
    })
}

/// `PATCH /config`.
pub async fn patch_config_endpoint(cmds: &dyn ApiCommands, request: &Map<String, Value>) -> Reply {
    let Ok(cluster) = cmds.get_cluster().await else {
        return Reply::Error(503);
    };
    let Some(config) = cluster
        .config
        .as_ref()
        .filter(|c| c.modify_version.unwrap_or(0) != 0)
    else {
        return Reply::Error(503);
    };
    let mut data = config.data.clone();
    if patch_config(&mut data, request) {
        let value = compact(&Value::Object(data.clone()));
        if !cmds.set_config(&value, config.version).await {
            return Reply::Error(409);
        }
    }
    cmds.wakeup();
    Reply::json(200, &Value::Object(data))
}

/// `PUT /config`.
pub async fn put_config(cmds: &dyn ApiCommands, request: &Map<String, Value>) -> Reply {
    let cluster = cmds.get_cluster().await.ok();
    let same = cluster
        .as_deref()
        .and_then(|c| c.config.as_ref())
        .is_some_and(|c| deep_compare(request, &c.data));
    if !same {
        let value = compact(&Value::Object(request.clone()));
        if !cmds.set_config(&value, None).await {
            return Reply::Error(502);
        }
    }
    Reply::json(200, &Value::Object(request.clone()))
}

/// `POST /failsafe` (after the failsafe_mode check).
pub async fn post_failsafe(cmds: &dyn ApiCommands, request: &Map<String, Value>) -> Reply {
    match cmds.update_failsafe(request).await {
        Ok(lsn) => Reply::Text {
            code: 200,
            body: "Accepted".into(),
            content_type: "text/html",
            headers: lsn
                .map(|l| vec![("lsn".to_owned(), l.to_string())])
                .unwrap_or_default(),
        },
        Err(msg) => Reply::html(500, msg),
    }
}

/// Timing of the failover result poll: Patroni checks once a second for
/// up to 2 * max(10, loop_wait) seconds.
#[derive(Debug, Clone, Copy)]
pub struct PollTiming {
    pub interval: Duration,
}

impl Default for PollTiming {
    fn default() -> Self {
        PollTiming {
            interval: Duration::from_secs(1),
        }
    }
}

/// `POST /switchover` (`action = "switchover"`) and `POST /failover`.
pub async fn post_failover(
    cmds: &dyn ApiCommands,
    request: &Map<String, Value>,
    mut action: &'static str,
    now: DateTime<Utc>,
    timing: PollTiming,
) -> Reply {
    let text = |k: &str| -> Option<String> {
        request
            .get(k)
            .filter(|v| super::status::json_truthy(v))
            .map(python_str)
    };
    let leader = text("leader");
    let candidate = text("candidate").or_else(|| text("member"));
    let scheduled_at = request
        .get("scheduled_at")
        .filter(|v| super::status::json_truthy(v));
    let Ok(cluster) = cmds.get_cluster().await else {
        return Reply::Error(503);
    };
    let global = GlobalView::from_cluster(&cluster);

    let mut code = 400;
    let mut data: Option<String> = None;
    if action == "failover" && candidate.is_none() {
        data = Some("Failover could be performed only to a specific candidate".into());
    } else if action == "switchover" && leader.is_none() {
        data = Some("Switchover could be performed only from a specific leader".into());
    }
    let mut schedule: Option<String> = None;
    if data.is_none() {
        if let Some(at) = scheduled_at {
            if action == "failover" {
                data = Some("Failover can't be scheduled".into());
            } else if global.is_paused() {
                data = Some("Can't schedule switchover in the paused state".into());
            } else {
                match parse_schedule(at, action, now) {
                    Schedule::At(iso) => schedule = Some(iso),
                    Schedule::Invalid(c, msg) => {
                        code = c;
                        data = Some(msg);
                    }
                }
            }
        }
    }
    if data.is_none() && global.is_paused() && candidate.is_none() {
        data = Some("Switchover is possible only to a specific candidate in a paused state".into());
    }
    if action == "failover" && leader.is_some() {
        action = "switchover";
    }
    if data.is_none() && leader == candidate {
        data = Some("Switchover target and source are the same".into());
    }
    if data.is_none() && schedule.is_none() {
        if let Some(msg) = failover_impossible(
            cmds,
            &cluster,
            leader.as_deref(),
            candidate.as_deref(),
            action,
        )
        .await
        {
            code = 412;
            data = Some(msg);
        }
    }
    if let Some(msg) = data {
        return Reply::html(code, msg);
    }
    if !cmds
        .manual_failover(
            leader.as_deref(),
            candidate.as_deref(),
            schedule.as_deref(),
            None,
        )
        .await
    {
        return Reply::html(503, "failed to write failover key into DCS");
    }
    cmds.wakeup();
    if schedule.is_some() {
        return Reply::html(202, format!("{} scheduled", title(action)));
    }
    let old_leader = cluster.leader.as_ref().map(|l| l.name.clone());
    let loop_wait = global_int(&cluster, "loop_wait", 10);
    let (code, msg) = poll_failover_result(
        cmds,
        old_leader.as_deref(),
        candidate.as_deref(),
        action,
        loop_wait,
        timing,
    )
    .await;
    Reply::html(code, msg)
}

fn global_int(cluster: &Cluster, key: &str, default: i64) -> i64 {
    cluster
        .config
        .as_ref()
        .and_then(|c| c.data.get(key))
        .and_then(|v| parse_int(&CfgValue::from_json(v), None))
        .unwrap_or(default)
}

fn title(action: &str) -> String {
    let mut c = action.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Patroni's `is_failover_possible`: `Some(reason)` when no member could
/// take over.
async fn failover_impossible(
    cmds: &dyn ApiCommands,
    cluster: &Cluster,
    leader: Option<&str>,
    candidate: Option<&str>,
    action: &str,
) -> Option<String> {
    let global = GlobalView::from_cluster(cluster);
    let cluster_leader = cluster.leader.as_ref().map(|l| l.name.as_str());
    if let Some(l) = leader {
        if cluster_leader != Some(l) {
            return Some("leader name does not match".into());
        }
    }
    let strict_sync = global.is_synchronous_mode() && !global.is_quorum_commit_mode();
    let members: Vec<Member> = if let Some(c) = candidate {
        if action == "switchover" && strict_sync && !cluster.sync.matches(c, false) {
            return Some("candidate name does not match with sync_standby".into());
        }
        let m: Vec<Member> = cluster
            .members
            .iter()
            .filter(|m| m.name == c)
            .cloned()
            .collect();
        if m.is_empty() {
            return Some("candidate does not exists".into());
        }
        m
    } else if strict_sync {
        let m: Vec<Member> = cluster
            .members
            .iter()
            .filter(|m| cluster.sync.matches(&m.name, false))
            .cloned()
            .collect();
        if m.is_empty() {
            return Some(format!(
                "{action} is not possible: can not find sync_standby"
            ));
        }
        m
    } else {
        let m: Vec<Member> = cluster
            .members
            .iter()
            .filter(|m| {
                cluster_leader.is_none()
                    || (Some(m.name.as_str()) != cluster_leader && m.api_url().is_some())
            })
            .cloned()
            .collect();
        if m.is_empty() {
            return Some(format!(
                "{action} is not possible: cluster does not have members except leader"
            ));
        }
        m
    };
    if cmds.has_healthy_candidate(&members).await {
        None
    } else {
        Some(format!(
            "{action} is not possible: no good candidates have been found"
        ))
    }
}

/// Wait for the HA loop to act on a written failover key.
async fn poll_failover_result(
    cmds: &dyn ApiCommands,
    leader: Option<&str>,
    candidate: Option<&str>,
    action: &str,
    loop_wait: i64,
    timing: PollTiming,
) -> (u16, String) {
    let rounds = loop_wait.max(10) * 2;
    let stem = &action[..action.len().saturating_sub(4)];
    for _ in 0..rounds {
        tokio::time::sleep(timing.interval).await;
        let Ok(cluster) = cmds.get_cluster().await else {
            continue;
        };
        if let Some(new) = cluster.leader.as_ref().map(|l| l.name.as_str()) {
            if Some(new) != leader {
                return if candidate.is_none_or(|c| c == new) {
                    (200, format!("Successfully {stem}ed over to \"{new}\""))
                } else {
                    (
                        200,
                        format!(
                            "{}ed over to \"{new}\" instead of \"{}\"",
                            title(stem),
                            candidate.unwrap_or("")
                        ),
                    )
                };
            }
        }
        if cluster.failover.as_ref().is_none_or(|f| f.is_empty()) {
            return (503, format!("{} failed", title(action)));
        }
    }
    (503, format!("{} status unknown", title(action)))
}

#[cfg(test)]
mod tests;
