//! The leader race: may this node take the leader key?
//!
//! When the leader key is gone, every eligible replica asks the other
//! members for their `/patroni` status and stands only if it is the
//! healthiest: not lagging past `maximum_lag_on_failover`, not behind the
//! cluster timeline (with `check_timeline`), no primary still alive, no
//! eligible member ahead of it, no member at the same position with a higher
//! `failover_priority`, and, in quorum commit mode, enough votes. Several
//! nodes may conclude they are healthiest; the DCS's create-if-absent on the
//! leader key then picks one.
//!
//! Pure: the caller fetches the peers' statuses (2 s timeout, no retries, a
//! failure makes the peer "not reachable") and passes them in. The verdict
//! carries the lines Patroni logs, so the daemon's log reads the same.

use serde_json::{Map, Value};

use crate::model::member::value_as_i64;
use crate::model::{Member, SyncState, Tags};

/// What a peer's `GET /patroni` said, reduced to what the race needs.
#[derive(Debug, Clone, PartialEq)]
pub struct PeerStatus {
    pub name: String,
    /// The tags in the member's DCS key (decide who is asked at all).
    pub member_tags: Map<String, Value>,
    /// False when the request failed or the body lacked `xlog`/`wal`.
    pub reachable: bool,
    /// `Some(false)` when the peer runs as a primary.
    pub in_recovery: Option<bool>,
    /// max(received, replayed) for a replica, 0 for a primary.
    pub wal_position: i64,
    /// The tags the peer reported in its `/patroni` answer (decide whether
    /// it may be promoted).
    pub tags: Map<String, Value>,
    pub watchdog_failed: bool,
    pub timeline: i64,
}

impl PeerStatus {
    /// A peer whose status could not be fetched or read.
    pub fn unknown(member: &Member) -> PeerStatus {
        PeerStatus {
            name: member.name.clone(),
            member_tags: member.tags(),
            reachable: false,
            in_recovery: None,
            wal_position: 0,
            tags: Map::new(),
            watchdog_failed: false,
            timeline: 0,
        }
    }

    /// Read a `/patroni` body the way Patroni does: the WAL object is `wal`
    /// or `xlog`, and a non-zero `location` or a primary role means "not in
    /// recovery". A body without either object is an unreachable peer.
    pub fn from_api_response(member: &Member, body: &Value) -> PeerStatus {
        let wal = body
            .get("wal")
            .filter(|w| !w.is_null() && w.as_object().is_some_and(|o| !o.is_empty()))
            .or_else(|| body.get("xlog"));
        let Some(Value::Object(wal)) = wal else {
            return PeerStatus::unknown(member);
        };
        let location = wal.get("location").and_then(value_as_i64).unwrap_or(0);
        let role = body.get("role").and_then(Value::as_str);
        let in_recovery = !(location != 0 || matches!(role, Some("master" | "primary")));
        let field = |k: &str| wal.get(k).and_then(value_as_i64).unwrap_or(0);
        PeerStatus {
            name: member.name.clone(),
            member_tags: member.tags(),
            reachable: true,
            in_recovery: Some(in_recovery),
            wal_position: if in_recovery {
                field("received_location").max(field("replayed_location"))
            } else {
                0
            },
            tags: body
                .get("tags")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default(),
            watchdog_failed: body
                .get("watchdog_failed")
                .is_some_and(crate::model::member::truthy),
            timeline: body.get("timeline").and_then(value_as_i64).unwrap_or(0),
        }
    }

    /// Why this peer cannot be promoted, if it cannot.
    pub fn failover_limitation(&self) -> Option<&'static str> {
        if !self.reachable {
            Some("not reachable")
        } else if Tags(&self.tags).nofailover() {
            Some("not allowed to promote")
        } else if self.watchdog_failed {
            Some("not watchdog capable")
        } else {
            None
        }
    }
}

/// Everything the race looks at.
#[derive(Debug, Clone)]
pub struct RaceInput<'a> {
    pub my_name: &'a str,
    pub my_wal_position: i64,
    /// `None` when the timeline could not be determined.
    pub my_timeline: Option<i64>,
    pub my_failover_priority: i64,
    /// `status.optime` from the DCS.
    pub cluster_last_lsn: i64,
    /// [`crate::model::Cluster::timeline`].
    pub cluster_timeline: i64,
    pub maximum_lag_on_failover: i64,
    pub check_replication_lag: bool,
    pub check_timeline: bool,
    pub standby_cluster: bool,
    /// This node's required watchdog cannot be used: it must not lead.
    pub watchdog_unusable: bool,
    /// Synchronous mode (either kind) is on and `sync` names a leader.
    pub sync_mode_active: bool,
    pub quorum_commit_active: bool,
    pub sync: &'a SyncState,
    /// The former leader (from the failover context), whose higher
    /// `failover_priority` does not count against us.
    pub former_leader: Option<&'a str>,
    /// Statuses of the members that have an `api_url` (others are skipped
    /// by the caller), excluding this node.
    pub peers: &'a [PeerStatus],
    /// The voting set in quorum commit: the leader `sync` names and its
    /// voters (Patroni's `SyncState.members`); nofailover
    /// members in it still count.
    pub voters: Vec<String>,
}

/// The outcome and the lines Patroni would log on the way.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub healthiest: bool,
    pub log: Vec<String>,
}

fn contains_ci(names: &[String], name: &str) -> bool {
    names.iter().any(|n| n.eq_ignore_ascii_case(name))
}

/// Patroni's `_is_healthiest_node`.
pub fn is_healthiest_node(input: &RaceInput<'_>) -> Verdict {
    let mut log = Vec::new();
    let no = |log: Vec<String>| Verdict {
        healthiest: false,
        log,
    };
    let lag = input.cluster_last_lsn.saturating_sub(input.my_wal_position);
    if input.check_replication_lag && lag > input.maximum_lag_on_failover {
        log.push("My wal position exceeds maximum replication lag".into());
        return no(log);
    }
    if !input.standby_cluster && input.check_timeline {
        match input.my_timeline {
            None => {
                log.push("Can not figure out my timeline".into());
                return no(log);
            }
            Some(t) if t < input.cluster_timeline => {
                log.push(format!(
                    "My timeline {t} is behind last known cluster timeline {}",
                    input.cluster_timeline
                ));
                return no(log);
            }
            Some(_) => {}
        }
    }
    if input.watchdog_unusable {
        log.push("Watchdog device is not usable".into());
        return no(log);
    }
    let (quorum, voting_set): (i64, &[String]) = if input.quorum_commit_active {
        (input.sync.quorum, &input.voters)
    } else {
        (0, &[])
    };
    let mut quorum_votes: i64 = if contains_ci(voting_set, input.my_name) {
        0
    } else {
        -1
    };
    let mut nodes_ahead = 0;
    let leader_name = if input.sync_mode_active {
        input.sync.leader.as_deref()
    } else {
        input.former_leader
    };
    for st in input.peers.iter().filter(|p| p.name != input.my_name) {
        if Tags(&st.member_tags).nofailover() && !contains_ci(voting_set, &st.name) {
            continue;
        }
        let peer_tags = Tags(&st.tags);
        if st.failover_limitation().is_some() {
            continue;
        }
        if st.in_recovery == Some(false) {
            log.push(format!("Primary ({}) is still alive", st.name));
            return no(log);
        }
        if input.my_wal_position < st.wal_position {
            nodes_ahead += 1;
            log.push(format!(
                "Wal position of {} is ahead of my wal position",
                st.name
            ));
            let is_former_sync_leader = input
                .sync
                .leader
                .as_deref()
                .is_some_and(|l| l.eq_ignore_ascii_case(&st.name));
            if !input.sync_mode_active || !is_former_sync_leader {
                return no(log);
            }
            log.push("Ignoring the former leader being ahead of us".into());
        } else if st.wal_position > 0 {
            let quorum_vote = contains_ci(voting_set, &st.name);
            let peer_priority = peer_tags.failover_priority();
            let mut low_priority = input.my_wal_position == st.wal_position
                && input.my_failover_priority < peer_priority;
            if low_priority && leader_name == Some(st.name.as_str()) {
                log.push(format!(
                    "Ignoring former leader {} having priority {} higher than this nodes {} priority",
                    st.name, peer_priority, input.my_failover_priority
                ));
                low_priority = false;
            }
            if low_priority && (!input.quorum_commit_active || quorum_vote) {
                log.push(format!(
                    "{} has equally tolerable WAL position and priority {}, while this node has priority {}",
                    st.name, peer_priority, input.my_failover_priority
                ));
                return no(log);
            }
            if quorum_vote {
                log.push(format!("Got quorum vote from {}", st.name));
                quorum_votes += 1;
            }
        }
    }
    let healthiest = !input.quorum_commit_active
        || quorum_votes >= quorum
        || (nodes_ahead == 0 && input.sync.leader.as_deref() == Some(input.my_name));
    Verdict { healthiest, log }
}

#[cfg(test)]
#[path = "race_tests.rs"]
mod tests;
