//! `sync`: the synchronous replication state the leader last published.
//!
//! Exactly three fields, always in this order: `leader`, `quorum` (an int)
//! and `sync_standby` (the sorted, comma-joined standby names, or `null`).

use serde_json::{Map, Value};

use super::json;
use super::member::value_as_i64;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncState {
    pub version: Option<i64>,
    pub leader: Option<String>,
    /// The raw comma-separated list as stored.
    pub sync_standby: Option<String>,
    /// How many of the listed nodes a racing standby must see; 0 when there
    /// is no leader.
    pub quorum: i64,
}

impl SyncState {
    /// Parse a stored value; anything but an object reads as empty.
    pub fn from_node(version: Option<i64>, value: &str) -> SyncState {
        let empty = SyncState {
            version,
            ..SyncState::default()
        };
        let Ok(Value::Object(data)) = serde_json::from_str::<Value>(value) else {
            return empty;
        };
        let leader = match data.get("leader") {
            Some(Value::String(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        };
        let quorum = match (&leader, data.get("quorum")) {
            (Some(_), Some(Value::String(s))) => match s.trim().parse() {
                Ok(q) => q,
                Err(_) => return empty,
            },
            (Some(_), Some(q)) => value_as_i64(q)
                .or_else(|| q.as_f64().map(|f| f.trunc() as i64))
                .or_else(|| q.as_bool().map(i64::from))
                .unwrap_or(0),
            _ => 0,
        };
        SyncState {
            version,
            leader,
            sync_standby: data
                .get("sync_standby")
                .and_then(Value::as_str)
                .map(str::to_owned),
            quorum,
        }
    }

    /// A new state for `leader` with the given standbys (sorted and joined
    /// here, as Patroni does).
    pub fn new(leader: &str, standbys: &[String], quorum: i64) -> SyncState {
        let mut names: Vec<&str> = standbys.iter().map(String::as_str).collect();
        names.sort_unstable();
        SyncState {
            version: None,
            leader: Some(leader.to_owned()),
            sync_standby: (!names.is_empty()).then(|| names.join(",")),
            quorum,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.leader.is_none()
    }

    /// The standby names: split on commas, trimmed, empty parts dropped.
    pub fn members(&self) -> Vec<String> {
        self.sync_standby
            .as_deref()
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    }

    /// Whether `name` is listed (case-insensitively), as a standby or, with
    /// `check_leader`, as the leader.
    pub fn matches(&self, name: &str, check_leader: bool) -> bool {
        if self.is_empty() {
            return false;
        }
        let name = name.to_lowercase();
        if check_leader && self.leader.as_deref().map(str::to_lowercase) == Some(name.clone()) {
            return true;
        }
        self.members().iter().any(|m| m.to_lowercase() == name)
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert(
            "leader".into(),
            self.leader.clone().map_or(Value::Null, Value::String),
        );
        m.insert("quorum".into(), self.quorum.into());
        m.insert(
            "sync_standby".into(),
            self.sync_standby.clone().map_or(Value::Null, Value::String),
        );
        Value::Object(m)
    }

    pub fn to_node(&self) -> String {
        json::compact(&self.to_json())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matching() {
        for v in [
            r#"{"leader":"node1","quorum":0,"sync_standby":"node2"}"#,
            r#"{"leader":"node1","quorum":1,"sync_standby":"node2,node3"}"#,
            r#"{"leader":"node2","quorum":0,"sync_standby":null}"#,
        ] {
            assert_eq!(SyncState::from_node(None, v).to_node(), v);
        }
        let s = SyncState::from_node(
            Some(1),
            r#"{"leader":"node1","quorum":1,"sync_standby":"node2, Node3"}"#,
        );
        assert!(s.matches("NODE3", false));
        assert!(!s.matches("node1", false));
        assert!(s.matches("node1", true));
        assert_eq!(s.members(), ["node2", "Node3"]);
    }

    #[test]
    fn quorum_rules() {
        assert_eq!(
            SyncState::from_node(None, r#"{"quorum":3,"sync_standby":"a"}"#).quorum,
            0
        );
        assert_eq!(
            SyncState::from_node(None, r#"{"leader":"a","quorum":"2"}"#).quorum,
            2
        );
        assert!(SyncState::from_node(None, r#"{"leader":"a","quorum":"x"}"#).is_empty());
        for bad in ["", "{", "[]", "null"] {
            assert!(SyncState::from_node(None, bad).is_empty(), "{bad:?}");
        }
        assert_eq!(
            SyncState::new("n1", &["n3".into(), "n2".into()], 1).to_node(),
            r#"{"leader":"n1","quorum":1,"sync_standby":"n2,n3"}"#
        );
    }
}
