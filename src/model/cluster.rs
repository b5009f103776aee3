//! The cluster snapshot: everything read from the DCS in one go, once per
//! HA loop. Built by a DCS backend from raw key values; immutable after.

use serde_json::{Map, Value};

use super::{Failover, Member, Status, SyncState, TimelineHistory};

/// `config`: the dynamic configuration, kept as written (key order
/// included, because `GET /config` and edit-config show it).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterConfig {
    /// The DCS version for compare-and-set.
    pub version: Option<i64>,
    /// The object; empty when the stored value is not a JSON object.
    pub data: Map<String, Value>,
    /// The version the data was last modified at; 0 for an invalid value.
    pub modify_version: Option<i64>,
}

impl ClusterConfig {
    pub fn from_node(version: Option<i64>, value: &str) -> ClusterConfig {
        match serde_json::from_str::<Value>(value) {
            Ok(Value::Object(data)) => ClusterConfig {
                version,
                data,
                modify_version: version,
            },
            _ => ClusterConfig {
                version,
                data: Map::new(),
                modify_version: Some(0),
            },
        }
    }
}

/// The holder of the leader key. The stored value is the bare member name.
#[derive(Debug, Clone, PartialEq)]
pub struct Leader {
    pub version: Option<i64>,
    /// The member name stored in the key.
    pub name: String,
    /// The DCS session/lease that owns the key, when the DCS has one.
    pub session: Option<String>,
}

/// `failsafe`: member name -> api_url, as the leader last published it.
pub fn failsafe_from_node(value: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str::<Value>(value) {
        Ok(Value::Object(m)) => Some(m),
        _ => None,
    }
}

/// One stored key as a DCS backend read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawNode<'a> {
    /// The key relative to the cluster prefix (`leader`, `members/node1`).
    pub key: &'a str,
    pub value: &'a str,
    /// The DCS modification version (etcd mod_revision, znode version, ...).
    pub version: Option<i64>,
    /// The owning lease or session, for ttl-bound keys.
    pub session: Option<&'a str>,
}

/// One consistent view of the cluster.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Cluster {
    /// `initialize`: the system identifier, `Some("")` during the race.
    pub initialize: Option<String>,
    pub config: Option<ClusterConfig>,
    pub leader: Option<Leader>,
    pub status: Status,
    /// Sorted by name.
    pub members: Vec<Member>,
    pub failover: Option<Failover>,
    pub sync: SyncState,
    pub history: Option<TimelineHistory>,
    pub failsafe: Option<Map<String, Value>>,
}

impl Cluster {
    /// Build a snapshot from raw `(relative key, value, version)` triples as
    /// read from the DCS (`leader`, `members/node1`, `config`, ...).
    pub fn from_nodes<'a, I>(nodes: I) -> Cluster
    where
        I: IntoIterator<Item = (&'a str, &'a str, Option<i64>)>,
    {
        Cluster::from_raw_nodes(nodes.into_iter().map(|(key, value, version)| RawNode {
            key,
            value,
            version,
            session: None,
        }))
    }

    /// Build a snapshot from the stored keys of one cluster. Unknown keys
    /// are ignored; invalid values read the way Patroni reads them.
    pub fn from_raw_nodes<'a, I>(nodes: I) -> Cluster
    where
        I: IntoIterator<Item = RawNode<'a>>,
    {
        let mut c = Cluster::default();
        let mut leader_node: Option<RawNode<'a>> = None;
        let mut legacy_optime: Option<&'a str> = None;
        let mut has_status = false;
        for node in nodes {
            let RawNode {
                key,
                value,
                version,
                session,
            } = node;
            match key {
                "initialize" => c.initialize = Some(value.to_owned()),
                "config" => c.config = Some(ClusterConfig::from_node(version, value)),
                "leader" => leader_node = Some(node),
                "status" => {
                    has_status = true;
                    c.status = Status::from_node(value);
                }
                // Written by leaders older than 2.1.0; read when there is
                // no `status`, as Patroni does.
                "optime/leader" => legacy_optime = Some(value),
                "failover" => c.failover = Some(Failover::from_node(version, value)),
                "sync" => c.sync = SyncState::from_node(version, value),
                "history" => c.history = Some(TimelineHistory::from_node(version, value)),
                "failsafe" => c.failsafe = failsafe_from_node(value),
                _ => {
                    if let Some(name) = key
                        .strip_prefix("members/")
                        .filter(|n| !n.is_empty() && !n.contains('/'))
                    {
                        let mut m = Member::from_node(name, version, value);
                        m.session = session.map(str::to_owned);
                        c.members.push(m);
                    }
                }
            }
        }
        if let Some(optime) = legacy_optime.filter(|_| !has_status) {
            c.status = Status::from_node(optime);
        }
        c.members.sort_by(|a, b| a.name.cmp(&b.name));
        c.leader = leader_node.filter(|n| !n.value.is_empty()).map(|n| Leader {
            version: n.version,
            name: n.value.to_owned(),
            session: n.session.map(str::to_owned),
        });
        c
    }

    pub fn member(&self, name: &str) -> Option<&Member> {
        self.members.iter().find(|m| m.name == name)
    }

    /// The leader's member entry, when the leader key names a known member.
    pub fn leader_member(&self) -> Option<&Member> {
        self.leader.as_ref().and_then(|l| self.member(&l.name))
    }

    /// The cluster's current timeline as the history tells it: one past
    /// the last ended timeline; 1 for an explicitly empty history; 0 when
    /// unknown.
    pub fn timeline(&self) -> i64 {
        match &self.history {
            Some(h) if !h.lines.is_empty() => h
                .lines
                .last()
                .and_then(|l| l.as_array())
                .and_then(|l| l.first())
                .and_then(super::member::value_as_i64)
                .map_or(0, |t| t + 1),
            Some(h) if h.raw == "[]" => 1,
            _ => 0,
        }
    }

    pub fn is_unlocked(&self) -> bool {
        self.leader.is_none()
    }

    /// `pause: true` in the dynamic configuration.
    pub fn is_paused(&self) -> bool {
        self.config
            .as_ref()
            .and_then(|c| c.data.get("pause"))
            .is_some_and(super::member::truthy)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_from_nodes() {
        let c = Cluster::from_nodes([
            ("leader", "node2", Some(10)),
            (
                "members/node2",
                r#"{"conn_url":"postgres://h:2/postgres","api_url":"http://h:8/patroni","state":"running","role":"primary","version":"4.1.5"}"#,
                Some(9),
            ),
            ("members/node1", "{}", Some(8)),
            ("config", r#"{"ttl":30,"pause":true}"#, Some(3)),
            ("failover", "{}", Some(4)),
            ("status", r#"{"optime":100}"#, Some(5)),
            ("initialize", "7710799292757857557", Some(1)),
            ("failsafe", "[]", Some(6)),
        ]);
        assert_eq!(
            c.members
                .iter()
                .map(|m| m.name.as_str())
                .collect::<Vec<_>>(),
            ["node1", "node2"]
        );
        assert_eq!(c.leader_member().map(|m| m.role()), Some(Some("primary")));
        assert!(c.is_paused());
        assert_eq!(c.status.last_lsn, 100);
        assert!(c.failover.as_ref().is_some_and(Failover::is_empty));
        assert_eq!(c.failsafe, None);
        assert_eq!(c.config.as_ref().and_then(|c| c.modify_version), Some(3));
        assert_eq!(
            ClusterConfig::from_node(Some(2), "[1]").modify_version,
            Some(0)
        );
    }
}
