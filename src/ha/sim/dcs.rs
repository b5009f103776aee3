//! The simulated DCS: a handful of keys, a logical clock in milliseconds,
//! and the few atomic operations Patroni relies on (create-if-absent,
//! refresh-if-owner, compare-and-delete, compare-and-set on a version).
//!
//! The leader key and the member keys carry an expiry (`ttl` after their
//! last write); an expired key reads as absent and may be created again.
//! The snapshot handed to `decide` is built with the real model types from
//! raw key values, exactly as a DCS backend builds it.

use std::collections::BTreeMap;

use crate::model::cluster::RawNode;
use crate::model::Cluster;

/// The leader key: its owner (the stored value) and when it expires.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Lease {
    pub owner: String,
    pub expires: i64,
    pub version: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Versioned {
    value: String,
    version: i64,
    /// `None`: the key does not expire.
    expires: Option<i64>,
}

#[derive(Debug, Clone)]
pub(super) struct Dcs {
    ttl: i64,
    /// Bumped on every write, as etcd's revision.
    revision: i64,
    leader: Option<Lease>,
    keys: BTreeMap<String, Versioned>,
}

impl Dcs {
    pub fn new(ttl_ms: i64) -> Dcs {
        Dcs {
            ttl: ttl_ms,
            revision: 0,
            leader: None,
            keys: BTreeMap::new(),
        }
    }

    fn bump(&mut self) -> i64 {
        self.revision += 1;
        self.revision
    }

    /// The leader key as it reads at `now` (`None` once expired).
    pub fn lease(&self, now: i64) -> Option<&Lease> {
        self.leader.as_ref().filter(|l| l.expires > now)
    }

    pub fn leader_owner(&self, now: i64) -> Option<&str> {
        self.lease(now).map(|l| l.owner.as_str())
    }

    /// Create the leader key for `name` if it is absent or expired.
    pub fn acquire(&mut self, name: &str, now: i64) -> bool {
        if self.lease(now).is_some() {
            return false;
        }
        let version = self.bump();
        self.leader = Some(Lease {
            owner: name.to_owned(),
            expires: now + self.ttl,
            version,
        });
        true
    }

    /// Refresh the key's expiry if `name` owns it; recreate it when it
    /// vanished (both our backends do: etcd v2 on `NotFound`, etcd3 by
    /// re-binding to a fresh lease); `false` when someone else holds it.
    pub fn refresh(&mut self, name: &str, now: i64) -> bool {
        match self.lease(now) {
            Some(l) if l.owner == name => {
                let expires = now + self.ttl;
                if let Some(l) = self.leader.as_mut() {
                    l.expires = expires;
                }
                true
            }
            Some(_) => false,
            None => self.acquire(name, now),
        }
    }

    /// Compare-and-delete: remove the leader key only if `name` holds it.
    pub fn delete_leader(&mut self, name: &str, now: i64) -> bool {
        if self.leader_owner(now) == Some(name) {
            self.leader = None;
            self.bump();
            true
        } else {
            false
        }
    }

    fn live(&self, key: &str, now: i64) -> Option<&Versioned> {
        self.keys
            .get(key)
            .filter(|v| v.expires.is_none_or(|e| e > now))
    }

    fn put(&mut self, key: &str, value: &str, expires: Option<i64>) {
        let version = self.bump();
        self.keys.insert(
            key.to_owned(),
            Versioned {
                value: value.to_owned(),
                version,
                expires,
            },
        );
    }

    /// Create `initialize` if absent (the bootstrap race).
    pub fn create_initialize(&mut self, value: &str, now: i64) -> bool {
        if self.live("initialize", now).is_some() {
            return false;
        }
        self.put("initialize", value, None);
        true
    }

    /// Write `initialize`: create only when `create_new`, else overwrite.
    pub fn write_initialize(&mut self, value: &str, create_new: bool, now: i64) -> bool {
        if create_new {
            return self.create_initialize(value, now);
        }
        self.put("initialize", value, None);
        true
    }

    /// Compare-and-set `failover` on `version` (`None`: overwrite).
    pub fn set_failover(&mut self, value: &str, version: Option<i64>, now: i64) -> bool {
        let current = self.live("failover", now).map(|v| v.version);
        if version.is_some() && current != version {
            return false;
        }
        self.put("failover", value, None);
        true
    }

    pub fn touch_member(&mut self, name: &str, value: &str, now: i64) {
        let expires = Some(now + self.ttl);
        self.put(&format!("members/{name}"), value, expires);
    }

    pub fn write_status(&mut self, value: &str) {
        self.put("status", value, None);
    }

    pub fn write_history(&mut self, value: &str) {
        self.put("history", value, None);
    }

    /// One consistent read at `now`, built like a real backend builds it.
    pub fn snapshot(&self, now: i64) -> Cluster {
        let leader = self.lease(now);
        let leader_version = leader.map(|l| l.version.to_string());
        let mut nodes: Vec<RawNode<'_>> = self
            .keys
            .iter()
            .filter(|(k, _)| self.live(k, now).is_some())
            .map(|(k, v)| RawNode {
                key: k.as_str(),
                value: v.value.as_str(),
                version: Some(v.version),
                session: None,
            })
            .collect();
        if let Some(l) = leader {
            nodes.push(RawNode {
                key: "leader",
                value: l.owner.as_str(),
                version: Some(l.version),
                session: leader_version.as_deref(),
            });
        }
        Cluster::from_raw_nodes(nodes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leader_key_expires_and_is_exclusive() {
        let mut d = Dcs::new(30_000);
        assert!(d.acquire("a", 0));
        assert!(!d.acquire("b", 10_000), "held by a");
        assert!(!d.refresh("b", 10_000));
        assert!(d.refresh("a", 20_000), "owner refreshes");
        assert!(
            !d.acquire("b", 49_999),
            "refreshed at 20 s, expires at 50 s"
        );
        assert!(d.acquire("b", 50_000), "expired, anyone may take it");
        assert!(
            !d.delete_leader("a", 50_001),
            "compare-and-delete by a non-owner"
        );
        assert_eq!(d.leader_owner(50_001), Some("b"));
        assert!(d.delete_leader("b", 50_002));
        assert_eq!(d.leader_owner(50_002), None);
        // A refresh of a vanished key recreates it, as our backends do.
        assert!(d.refresh("a", 50_003));
        assert_eq!(
            d.snapshot(50_004).leader.map(|l| l.name).as_deref(),
            Some("a")
        );
    }

    #[test]
    fn keys_and_cas() {
        let mut d = Dcs::new(30_000);
        assert!(d.create_initialize("", 0));
        assert!(!d.create_initialize("", 1));
        assert!(d.write_initialize("7000000000000000001", false, 2));
        d.touch_member("a", r#"{"api_url":"http://a/patroni"}"#, 0);
        assert!(d.set_failover(r#"{"member":"a"}"#, None, 0));
        let c = d.snapshot(10);
        assert_eq!(c.initialize.as_deref(), Some("7000000000000000001"));
        assert_eq!(c.members.len(), 1);
        let version = c.failover.as_ref().and_then(|f| f.version);
        assert!(!d.set_failover("{}", Some(-1), 11), "stale version");
        assert!(d.set_failover("{}", version, 11));
        assert_eq!(d.snapshot(40_000).members.len(), 0, "member key expired");
    }
}
