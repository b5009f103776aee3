//! `members/<name>`: what each node publishes about itself.
//!
//! Readers keep the whole JSON object (a newer or older Patroni may add
//! fields we must not drop when we look at them); [`MemberStatus`] is the
//! typed value this node writes, with Patroni's field order.

use serde_json::{Map, Value};

use super::json;

/// A member as read from the DCS.
#[derive(Debug, Clone, PartialEq)]
pub struct Member {
    pub name: String,
    /// The DCS modification version of the key (etcd mod_revision, ZooKeeper
    /// version, ...); `None` when not known.
    pub version: Option<i64>,
    /// The lease (etcd3) or session (ZooKeeper, Consul) that owns the key,
    /// when the DCS has one.
    pub session: Option<String>,
    /// The raw object, in the order it was written.
    pub data: Map<String, Value>,
}

impl Member {
    /// Parse a member value. Patroni's rules: a value starting with
    /// `postgres` is a legacy bare connection URL; anything that is not a
    /// JSON object reads as an empty member (it still exists, so it still
    /// counts as a member, but has no URLs).
    pub fn from_node(name: &str, version: Option<i64>, value: &str) -> Member {
        let data = if value.starts_with("postgres") {
            let mut m = Map::new();
            m.insert("conn_url".into(), Value::String(value.to_owned()));
            m
        } else {
            match serde_json::from_str::<Value>(value) {
                Ok(Value::Object(m)) => m,
                _ => Map::new(),
            }
        };
        Member {
            name: name.to_owned(),
            version,
            session: None,
            data,
        }
    }

    fn str_field(&self, key: &str) -> Option<&str> {
        self.data.get(key).and_then(Value::as_str)
    }

    pub fn conn_url(&self) -> Option<&str> {
        self.str_field("conn_url").filter(|s| !s.is_empty())
    }

    pub fn api_url(&self) -> Option<&str> {
        self.str_field("api_url").filter(|s| !s.is_empty())
    }

    pub fn state(&self) -> Option<&str> {
        self.str_field("state")
    }

    pub fn role(&self) -> Option<&str> {
        self.str_field("role")
    }

    /// The Patroni version the member reports, as dotted integers; `None`
    /// when absent or not numeric (Patroni then skips version-gated logic).
    pub fn patroni_version(&self) -> Option<Vec<u64>> {
        let v = self.str_field("version")?;
        v.split('.').map(|p| p.parse().ok()).collect()
    }

    /// The member's last reported WAL position (`xlog_location`), 0 when
    /// unknown.
    pub fn lsn(&self) -> i64 {
        self.data
            .get("xlog_location")
            .and_then(value_as_i64)
            .unwrap_or(0)
    }

    pub fn timeline(&self) -> Option<i64> {
        self.data.get("timeline").and_then(value_as_i64)
    }

    pub fn tags(&self) -> Map<String, Value> {
        match self.data.get("tags") {
            Some(Value::Object(t)) => t.clone(),
            _ => Map::new(),
        }
    }

    pub fn is_paused(&self) -> bool {
        self.data.get("pause").is_some_and(truthy)
    }

    /// The bytes stored for this member, unchanged.
    pub fn to_node(&self) -> String {
        json::compact(&Value::Object(self.data.clone()))
    }
}

/// An integer field the way Python's `int()` accepts it from JSON: ints and
/// integral floats.
pub(crate) fn value_as_i64(v: &Value) -> Option<i64> {
    v.as_i64().or_else(|| {
        v.as_f64()
            .filter(|f| f.fract() == 0.0 && f.abs() < 9.2e18)
            .map(|f| f as i64)
    })
}

/// Python truthiness of a JSON value.
pub(crate) fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// WAL-related fields a running member reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WalStatus {
    /// Primary: flush LSN. Replica: max(received, replayed).
    pub xlog_location: i64,
    /// Replica only.
    pub replay_lsn: Option<i64>,
    /// Replica only.
    pub receive_lsn: Option<i64>,
    /// Replica only: `streaming` or `in archive recovery`.
    pub replication_state: Option<String>,
}

/// The member value this node writes. Field order is Patroni's
/// `touch_member` order; optional fields are omitted when unset.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MemberStatus {
    pub conn_url: String,
    pub api_url: String,
    pub state: String,
    pub role: String,
    pub version: String,
    pub proxy_url: Option<String>,
    /// `Some(false)` on a leader until the post-promote checkpoint is done.
    pub checkpoint_after_promote: Option<bool>,
    /// Effective tags, already filtered; omitted when empty.
    pub tags: Map<String, Value>,
    /// `pending_restart_reason`; a non-empty one also sets `pending_restart`.
    pub pending_restart_reason: Map<String, Value>,
    /// Present only while PostgreSQL is running, starting or restarting.
    pub wal: Option<WalStatus>,
    pub timeline: Option<i64>,
    pub scheduled_restart: Option<Map<String, Value>>,
    pub pause: bool,
}

impl MemberStatus {
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("conn_url".into(), self.conn_url.clone().into());
        m.insert("api_url".into(), self.api_url.clone().into());
        m.insert("state".into(), self.state.clone().into());
        m.insert("role".into(), self.role.clone().into());
        m.insert("version".into(), self.version.clone().into());
        if let Some(p) = self.proxy_url.as_ref().filter(|p| !p.is_empty()) {
            m.insert("proxy_url".into(), p.clone().into());
        }
        if let Some(c) = self.checkpoint_after_promote {
            m.insert("checkpoint_after_promote".into(), c.into());
        }
        if !self.tags.is_empty() {
            m.insert("tags".into(), Value::Object(self.tags.clone()));
        }
        if !self.pending_restart_reason.is_empty() {
            m.insert("pending_restart".into(), true.into());
            m.insert(
                "pending_restart_reason".into(),
                Value::Object(self.pending_restart_reason.clone()),
            );
        }
        if let Some(wal) = &self.wal {
            m.insert("xlog_location".into(), wal.xlog_location.into());
            if let Some(r) = wal.replay_lsn.filter(|r| *r != 0) {
                m.insert("replay_lsn".into(), r.into());
            }
            if let Some(r) = wal.receive_lsn.filter(|r| *r != 0) {
                m.insert("receive_lsn".into(), r.into());
            }
            if let Some(s) = wal.replication_state.as_ref().filter(|s| !s.is_empty()) {
                m.insert("replication_state".into(), s.clone().into());
            }
        }
        if let Some(t) = self.timeline.filter(|t| *t != 0) {
            m.insert("timeline".into(), t.into());
        }
        if let Some(s) = &self.scheduled_restart {
            m.insert("scheduled_restart".into(), Value::Object(s.clone()));
        }
        if self.pause {
            m.insert("pause".into(), true.into());
        }
        Value::Object(m)
    }

    /// The exact bytes to store in `members/<name>`.
    pub fn to_node(&self) -> String {
        json::compact(&self.to_json())
    }

    /// Read back a value written by Patroni or by us into the typed form.
    /// `None` when a required field is missing or has the wrong type.
    pub fn from_member(member: &Member) -> Option<MemberStatus> {
        let d = &member.data;
        let s = |k: &str| d.get(k).and_then(Value::as_str).map(str::to_owned);
        let obj = |k: &str| match d.get(k) {
            Some(Value::Object(o)) => Some(o.clone()),
            _ => None,
        };
        let wal = d
            .get("xlog_location")
            .and_then(value_as_i64)
            .map(|x| WalStatus {
                xlog_location: x,
                replay_lsn: d.get("replay_lsn").and_then(value_as_i64),
                receive_lsn: d.get("receive_lsn").and_then(value_as_i64),
                replication_state: s("replication_state"),
            });
        Some(MemberStatus {
            conn_url: s("conn_url")?,
            api_url: s("api_url")?,
            state: s("state")?,
            role: s("role")?,
            version: s("version")?,
            proxy_url: s("proxy_url"),
            checkpoint_after_promote: d.get("checkpoint_after_promote").and_then(Value::as_bool),
            tags: obj("tags").unwrap_or_default(),
            pending_restart_reason: obj("pending_restart_reason").unwrap_or_default(),
            wal,
            timeline: d.get("timeline").and_then(value_as_i64),
            scheduled_restart: obj("scheduled_restart"),
            pause: d.get("pause").is_some_and(truthy),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REPLICA: &str = r#"{"conn_url":"postgres://127.0.0.1:15433/postgres","api_url":"http://127.0.0.1:18009/patroni","state":"running","role":"replica","version":"4.1.5","tags":{"clonefrom":true,"datacenter":"dc2"},"xlog_location":67109640,"replay_lsn":67109640,"receive_lsn":67109640,"replication_state":"streaming","timeline":2}"#;

    #[test]
    fn typed_round_trip() {
        let m = Member::from_node("node2", Some(7), REPLICA);
        let status = MemberStatus::from_member(&m).expect("complete member");
        assert_eq!(status.to_node(), REPLICA);
        assert_eq!(m.lsn(), 67109640);
        assert_eq!(m.timeline(), Some(2));
        assert_eq!(m.patroni_version(), Some(vec![4, 1, 5]));
    }

    #[test]
    fn legacy_and_garbage_values() {
        let m = Member::from_node("a", None, "postgres://u@h:5432/postgres");
        assert_eq!(m.conn_url(), Some("postgres://u@h:5432/postgres"));
        assert_eq!(m.api_url(), None);
        for bad in ["{", "[]", "5", ""] {
            let m = Member::from_node("b", None, bad);
            assert!(m.data.is_empty(), "{bad:?}");
            assert_eq!(m.lsn(), 0);
        }
        let m = Member::from_node("c", None, r#"{"version":"4.x"}"#);
        assert_eq!(m.patroni_version(), None);
    }

    #[test]
    fn optional_fields_in_patroni_order() {
        let mut reason = Map::new();
        reason.insert(
            "shared_buffers".into(),
            serde_json::json!({"old_value": "128MB", "new_value": "256MB"}),
        );
        let s = MemberStatus {
            conn_url: "postgres://h:5432/postgres".into(),
            api_url: "http://h:8008/patroni".into(),
            state: "running".into(),
            role: "primary".into(),
            version: "4.1.5".into(),
            checkpoint_after_promote: Some(false),
            pending_restart_reason: reason,
            wal: Some(WalStatus {
                xlog_location: 5,
                ..Default::default()
            }),
            timeline: Some(3),
            pause: true,
            ..Default::default()
        };
        assert_eq!(
            s.to_node(),
            r#"{"conn_url":"postgres://h:5432/postgres","api_url":"http://h:8008/patroni","state":"running","role":"primary","version":"4.1.5","checkpoint_after_promote":false,"pending_restart":true,"pending_restart_reason":{"shared_buffers":{"old_value":"128MB","new_value":"256MB"}},"xlog_location":5,"timeline":3,"pause":true}"#
        );
    }
}
