//! `history`: the timeline history the leader publishes after a promotion.
//!
//! A JSON list of `[timeline, switch_lsn, reason, timestamp, new_leader]`
//! entries, where `timeline` is the one that ended. Older Patroni versions
//! wrote three-element entries; entries are kept as written.

use serde_json::Value;

use super::json;
use super::member::value_as_i64;

#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimelineHistory {
    pub version: Option<i64>,
    /// The raw stored text.
    pub raw: String,
    /// The entries; empty when the value is not a JSON list.
    pub lines: Vec<Value>,
}

/// One entry, typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HistoryEntry {
    pub timeline: i64,
    pub lsn: i64,
    pub reason: String,
    pub timestamp: Option<String>,
    pub new_leader: Option<String>,
}

impl TimelineHistory {
    pub fn from_node(version: Option<i64>, value: &str) -> TimelineHistory {
        let lines = match serde_json::from_str::<Value>(value) {
            Ok(Value::Array(lines)) => lines,
            _ => Vec::new(),
        };
        TimelineHistory {
            version,
            raw: value.to_owned(),
            lines,
        }
    }

    /// The entries that have at least a timeline and an LSN.
    pub fn entries(&self) -> Vec<HistoryEntry> {
        self.lines
            .iter()
            .filter_map(HistoryEntry::from_json)
            .collect()
    }

    /// The bytes to store for a list of entries.
    pub fn to_node(entries: &[HistoryEntry]) -> String {
        json::compact(&Value::Array(
            entries.iter().map(HistoryEntry::to_json).collect(),
        ))
    }
}

impl HistoryEntry {
    pub fn from_json(v: &Value) -> Option<HistoryEntry> {
        let a = v.as_array()?;
        let text = |i: usize| a.get(i).and_then(Value::as_str).map(str::to_owned);
        Some(HistoryEntry {
            timeline: a.first().and_then(value_as_i64)?,
            lsn: a.get(1).and_then(value_as_i64)?,
            reason: text(2).unwrap_or_default(),
            timestamp: text(3),
            new_leader: text(4),
        })
    }

    pub fn to_json(&self) -> Value {
        let mut a = vec![
            Value::from(self.timeline),
            Value::from(self.lsn),
            Value::from(self.reason.clone()),
        ];
        if let Some(ts) = &self.timestamp {
            a.push(ts.clone().into());
            if let Some(l) = &self.new_leader {
                a.push(l.clone().into());
            }
        }
        Value::Array(a)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let v = r#"[[1,67420064,"no recovery target specified","2026-11-22T01:21:26.702833+00:00","node2"],[2,67420896,"no recovery target specified","2026-11-22T01:22:00.1+00:00","node1"]]"#;
        let h = TimelineHistory::from_node(Some(4), v);
        assert_eq!(TimelineHistory::to_node(&h.entries()), v);
        assert_eq!(h.entries()[1].timeline, 2);
        assert!(TimelineHistory::from_node(None, "{}").lines.is_empty());
        assert_eq!(TimelineHistory::to_node(&[]), "[]");
    }
}
