//! `failover`: a requested manual failover or switchover.
//!
//! Patroni never deletes this key: it resets it to `{}`. Fields appear only
//! when set, in the order `leader`, `member` (the candidate) and
//! `scheduled_at` (ISO 8601 with a timezone). The pre-JSON format
//! `leader:candidate` is still read.

use serde_json::{Map, Value};

use super::json;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Failover {
    /// The DCS modification version, used for compare-and-set.
    pub version: Option<i64>,
    /// The current leader the switchover is from; `None` for a failover.
    pub leader: Option<String>,
    /// The member to promote (`member` in the stored JSON).
    pub candidate: Option<String>,
    /// When to run, as the stored ISO 8601 text.
    pub scheduled_at: Option<String>,
}

impl Failover {
    /// Parse a stored value. An object gives its fields; text that is not
    /// JSON is the legacy `leader:candidate` form; any other JSON (a list, a
    /// number) reads as empty, as in Patroni.
    pub fn from_node(version: Option<i64>, value: &str) -> Failover {
        let mut f = Failover {
            version,
            ..Failover::default()
        };
        if value.is_empty() {
            return f;
        }
        match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(data)) => {
                let text = |k: &str| match data.get(k) {
                    Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
                    _ => None,
                };
                f.leader = text("leader");
                f.candidate = text("member");
                f.scheduled_at = text("scheduled_at");
            }
            Ok(_) => {}
            Err(_) => {
                let mut parts = value.split(':').map(str::trim);
                f.leader = parts.next().map(str::to_owned).filter(|s| !s.is_empty());
                f.candidate = parts.next().map(str::to_owned).filter(|s| !s.is_empty());
            }
        }
        f
    }

    /// True for `{}`: no failover requested.
    pub fn is_empty(&self) -> bool {
        self.leader.is_none() && self.candidate.is_none()
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        if let Some(l) = &self.leader {
            m.insert("leader".into(), l.clone().into());
        }
        if let Some(c) = &self.candidate {
            m.insert("member".into(), c.clone().into());
        }
        if let Some(s) = &self.scheduled_at {
            m.insert("scheduled_at".into(), s.clone().into());
        }
        Value::Object(m)
    }

    /// The exact bytes to store; `{}` when empty.
    pub fn to_node(&self) -> String {
        json::compact(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for v in [
            "{}",
            r#"{"leader":"node1","member":"node2"}"#,
            r#"{"member":"node1"}"#,
            r#"{"leader":"node2","member":"node1","scheduled_at":"2026-11-22T01:26:02+00:00"}"#,
        ] {
            assert_eq!(Failover::from_node(None, v).to_node(), v);
        }
    }

    #[test]
    fn legacy_and_garbage() {
        let f = Failover::from_node(Some(3), "node1: node2");
        assert_eq!(f.leader.as_deref(), Some("node1"));
        assert_eq!(f.candidate.as_deref(), Some("node2"));
        assert_eq!(f.version, Some(3));
        assert!(Failover::from_node(None, "[1,2]").is_empty());
        assert!(Failover::from_node(None, "").is_empty());
        let only_leader = Failover::from_node(None, "node1");
        assert_eq!(only_leader.leader.as_deref(), Some("node1"));
        assert_eq!(only_leader.candidate, None);
    }
}
