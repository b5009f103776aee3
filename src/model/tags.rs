//! Patroni's tags: the predefined boolean tags, the priorities derived from
//! them, and the filter applied before a member publishes its tags.
//!
//! - `nofailover` wins over `failover_priority` when set; unset, it is
//!   implied by a priority `<= 0`. `failover_priority` is 0 for a
//!   `nofailover` member, otherwise the tag (parsed like `parse_int`), 1 by
//!   default. `nosync`/`sync_priority` follow the same rules.
//! - Published tags drop the predefined booleans that are false, except
//!   `nofailover`/`nosync` when their priority tag is also present.

use serde_json::{Map, Value};

use crate::config::units::{parse_bool, parse_int};
use crate::config::Value as ConfigValue;

use super::member::truthy;

const PREDEFINED: [&str; 5] = [
    "clonefrom",
    "nofailover",
    "noloadbalance",
    "nosync",
    "nostream",
];

/// Read-only view of a tags object (a member's, or this node's own).
#[derive(Debug, Clone, Copy)]
pub struct Tags<'a>(pub &'a Map<String, Value>);

fn parse_int_json(v: Option<&Value>) -> Option<i64> {
    parse_int(&ConfigValue::from_json(v.unwrap_or(&Value::Null)), None)
}

impl Tags<'_> {
    fn bool_tag(&self, bool_name: &str, priority_name: &str) -> bool {
        match self.0.get(bool_name) {
            Some(v) if !v.is_null() => truthy(v),
            _ => parse_int_json(self.0.get(priority_name)).is_some_and(|p| p <= 0),
        }
    }

    fn priority_tag(&self, bool_name: &str, priority_name: &str) -> i64 {
        if self.0.get(bool_name).is_some_and(truthy) {
            return 0;
        }
        parse_int_json(self.0.get(priority_name)).unwrap_or(1)
    }

    pub fn clonefrom(&self) -> bool {
        self.0.get("clonefrom").is_some_and(truthy)
    }

    pub fn nofailover(&self) -> bool {
        self.bool_tag("nofailover", "failover_priority")
    }

    pub fn failover_priority(&self) -> i64 {
        self.priority_tag("nofailover", "failover_priority")
    }

    pub fn noloadbalance(&self) -> bool {
        self.0.get("noloadbalance").is_some_and(truthy)
    }

    pub fn nosync(&self) -> bool {
        self.bool_tag("nosync", "sync_priority")
    }

    pub fn sync_priority(&self) -> i64 {
        self.priority_tag("nosync", "sync_priority")
    }

    pub fn replicatefrom(&self) -> Option<&str> {
        self.0.get("replicatefrom").and_then(Value::as_str)
    }

    pub fn nostream(&self) -> bool {
        let v = ConfigValue::from_json(self.0.get("nostream").unwrap_or(&Value::Null));
        parse_bool(&v).unwrap_or(false)
    }

    /// The tags a member publishes, in configuration order.
    pub fn filtered(&self) -> Map<String, Value> {
        self.0
            .iter()
            .filter(|(tag, value)| {
                !PREDEFINED.contains(&tag.as_str())
                    || truthy(value)
                    || (tag.as_str() == "nofailover" && self.0.contains_key("failover_priority"))
                    || (tag.as_str() == "nosync" && self.0.contains_key("sync_priority"))
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tags(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn priorities_and_booleans() {
        // (tags, nofailover, failover_priority)
        let cases = [
            (json!({}), false, 1),
            (json!({"nofailover": true}), true, 0),
            (
                json!({"nofailover": false, "failover_priority": 0}),
                false,
                0,
            ),
            (json!({"failover_priority": 0}), true, 0),
            (json!({"failover_priority": "5"}), false, 5),
            (json!({"failover_priority": -1}), true, -1),
            (json!({"failover_priority": "abc"}), false, 1),
            (json!({"nofailover": "yes"}), true, 0),
            (
                json!({"nofailover": null, "failover_priority": 2}),
                false,
                2,
            ),
        ];
        for (t, nofailover, priority) in cases {
            let m = tags(t.clone());
            assert_eq!(Tags(&m).nofailover(), nofailover, "{t}");
            assert_eq!(Tags(&m).failover_priority(), priority, "{t}");
        }
        let m = tags(json!({"sync_priority": 0, "nostream": "on", "replicatefrom": "n2"}));
        assert!(Tags(&m).nosync() && Tags(&m).nostream());
        assert_eq!(Tags(&m).replicatefrom(), Some("n2"));
    }

    #[test]
    fn published_tags_drop_false_predefined_ones() {
        let m = tags(
            json!({"clonefrom": true, "nofailover": false, "noloadbalance": false,
                            "datacenter": "dc3", "nosync": false, "sync_priority": 1, "nostream": false}),
        );
        assert_eq!(
            Value::Object(Tags(&m).filtered()),
            json!({"clonefrom": true, "datacenter": "dc3", "nosync": false, "sync_priority": 1})
        );
        let with_priority = tags(json!({"nofailover": false, "failover_priority": 1}));
        assert_eq!(
            Value::Object(Tags(&with_priority).filtered()),
            json!({"nofailover": false, "failover_priority": 1})
        );
    }
}
