//! `status`: the leader's last WAL position and permanent slot positions.
//!
//! `{"optime":N,"slots":{...},"retain_slots":[...]}`; `slots` and
//! `retain_slots` are omitted when empty. A bare integer is the legacy form
//! (optime only). Slot maps and lists stored as JSON text are accepted too.

use serde_json::{Map, Value};

use super::json;
use super::member::value_as_i64;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Status {
    /// The leader's WAL position when it last wrote the key (`optime`).
    pub last_lsn: i64,
    /// Slot name -> LSN, in stored order; `None` when absent or invalid.
    pub slots: Option<Map<String, Value>>,
    /// Member slots to keep while their member is away.
    pub retain_slots: Vec<String>,
}

impl Status {
    pub fn from_node(value: &str) -> Status {
        match serde_json::from_str::<Value>(value) {
            Ok(v) => Status::from_json(&v),
            Err(_) => Status::default(),
        }
    }

    pub fn from_json(value: &Value) -> Status {
        if let Some(lsn) = value.as_i64() {
            return Status {
                last_lsn: lsn,
                ..Status::default()
            };
        }
        let Value::Object(data) = value else {
            return Status::default();
        };
        let last_lsn = match data.get("optime") {
            Some(Value::String(s)) => s.trim().parse().unwrap_or(0),
            Some(v) => value_as_i64(v).unwrap_or(0),
            None => 0,
        };
        let decoded = |key: &str| match data.get(key) {
            Some(Value::String(s)) => serde_json::from_str::<Value>(s).ok(),
            other => other.cloned(),
        };
        let slots = match decoded("slots") {
            Some(Value::Object(m)) => Some(m),
            _ => None,
        };
        let retain_slots = match decoded("retain_slots") {
            Some(Value::Array(a)) => a
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect(),
            _ => Vec::new(),
        };
        Status {
            last_lsn,
            slots,
            retain_slots,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.last_lsn == 0 && self.slots.is_none() && self.retain_slots.is_empty()
    }

    /// The LSN recorded for a slot, if any.
    pub fn slot_lsn(&self, name: &str) -> Option<i64> {
        self.slots.as_ref()?.get(name).and_then(value_as_i64)
    }

    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("optime".into(), self.last_lsn.into());
        if let Some(slots) = self.slots.as_ref().filter(|s| !s.is_empty()) {
            m.insert("slots".into(), Value::Object(slots.clone()));
        }
        if !self.retain_slots.is_empty() {
            m.insert(
                "retain_slots".into(),
                Value::Array(
                    self.retain_slots
                        .iter()
                        .cloned()
                        .map(Value::String)
                        .collect(),
                ),
            );
        }
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
    fn round_trip_and_legacy() {
        let v = r#"{"optime":67109640,"slots":{"node1":67109640,"permslot":33554472},"retain_slots":["node1","node2"]}"#;
        let s = Status::from_node(v);
        assert_eq!(s.to_node(), v);
        assert_eq!(s.slot_lsn("permslot"), Some(33554472));
        assert_eq!(Status::from_node("12345").last_lsn, 12345);
        assert_eq!(
            Status::from_node(r#"{"optime":5}"#).to_node(),
            r#"{"optime":5}"#
        );
        let text_slots =
            Status::from_node(r#"{"optime":"7","slots":"{\"a\":1}","retain_slots":"[\"a\"]"}"#);
        assert_eq!(text_slots.last_lsn, 7);
        assert_eq!(text_slots.slot_lsn("a"), Some(1));
        assert_eq!(text_slots.retain_slots, ["a"]);
        assert!(Status::from_node("garbage").is_empty());
        assert!(Status::from_node("[1]").is_empty());
    }
}
