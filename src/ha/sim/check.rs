//! The properties every simulated run must keep.
//!
//! Safety, checked after every event ([`Sim::check_safety`]):
//!
//! - **One writer.** At every simulated instant at most one node's
//!   PostgreSQL runs as a primary. This is the strong form of "at most one
//!   node is a writable primary that believes it holds the lock and whose
//!   lease has not expired": Patroni's argument is timing, not fencing. A
//!   leader refreshes the key every cycle; a leader that cannot (DCS cut,
//!   slow, or the key taken) demotes in the cycle that finds out. Between
//!   its last successful refresh and that demotion lie at most: the wait
//!   for a scheduled switchover that `decide` asks after the refresh (up
//!   to `loop_wait`), the peers' timeout, its `/status` and member writes,
//!   the rest of `loop_wait` plus jitter, the next cluster read and the
//!   next refresh, each DCS call bounded by `retry_timeout`. With that
//!   below `ttl`
//!   ([`super::Timing::safe`]) the old primary is down before the key
//!   expires, and nobody else can take the key, hence promote, before it
//!   expires. (A daemon that dies while its PostgreSQL keeps running
//!   breaks this without a watchdog; the simulation loses both together.)
//! - **One believer.** At most one running daemon believes it holds the
//!   leader key (it refreshed or acquired it and has not since failed to,
//!   demoted or released it): the issue's "at most one node believes it
//!   holds the lock at any instant", by the same timing argument.
//! - **nofailover never leads.** The leader key never names a node tagged
//!   `nofailover`.
//!
//! At each `Promote` ([`Sim::check_promote`]):
//!
//! - the node refreshed or acquired the key in this very cycle, and the
//!   DCS says it holds it at this instant;
//! - it is not tagged `nofailover`;
//! - when it won a leader race (no failover key asking for it), it was
//!   not lagging more than `maximum_lag_on_failover` behind `/status`'s
//!   optime in the snapshot it decided on, and no reachable replica that
//!   may fail over had reported a WAL position ahead of its own.
//!
//! Liveness, at the end of a run ([`Sim::check_liveness`]): after the
//! faults stop and everything is healed, within the quiet phase (a ttl
//! and several loop_waits), exactly one node holds the key and runs as
//! the primary, and every other node runs as a replica streaming from it
//! on its timeline.
//!
//! One stall is Patroni's own and accepted ([`Sim::timeline_stall`]):
//! with `check_timeline`, a replica on an older timeline drops out of the
//! race, yet the others still compare raw WAL positions with it, so when
//! it is ahead of the replicas on the current timeline (it kept writes the
//! new timeline never got: the old primary wrote on while cut from the
//! DCS, or a lagging node was promoted by a manual failover), nobody
//! stands until an operator steps in. Python Patroni 4.1.5 does the
//! same (`_is_healthiest_node` has no per-peer timeline filter).

use super::{InFlight, Sim};
use crate::model::Tags;

impl Sim {
    pub(super) fn check_safety(&self) -> Result<(), String> {
        let primaries: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.pg.running && n.pg.primary)
            .map(|n| n.name.as_str())
            .collect();
        if primaries.len() > 1 {
            return Err(format!("two writable primaries at once: {primaries:?}"));
        }
        let believers: Vec<&str> = self
            .nodes
            .iter()
            .filter(|n| n.alive && n.is_leader)
            .map(|n| n.name.as_str())
            .collect();
        if believers.len() > 1 {
            return Err(format!(
                "two nodes believe they hold the key: {believers:?}"
            ));
        }
        if let Some(owner) = self.dcs.leader_owner(self.now) {
            if self.nodes.iter().any(|n| n.name == owner && n.nofailover) {
                return Err(format!("nofailover node {owner} holds the leader key"));
            }
        }
        Ok(())
    }

    pub(super) fn check_promote(
        &self,
        i: usize,
        cycle: &InFlight,
        message: &str,
    ) -> Result<(), String> {
        let n = &self.nodes[i];
        let facts = &cycle.facts;
        if n.nofailover {
            return Err(format!("nofailover node {} promotes", n.name));
        }
        if facts.lock_refreshed != Some(true) && facts.lock_acquired != Some(true) {
            return Err(format!(
                "{} promotes without refreshing or acquiring the key this cycle ({facts:?})",
                n.name
            ));
        }
        if self.dcs.leader_owner(self.now) != Some(n.name.as_str()) {
            return Err(format!(
                "{} promotes while the DCS says the key is {:?}",
                n.name,
                self.dcs.leader_owner(self.now)
            ));
        }
        let manual = cycle
            .cluster
            .failover
            .as_ref()
            .is_some_and(|f| !f.is_empty());
        if message.contains("by acquiring session lock") && !manual {
            let lag = cycle.cluster.status.last_lsn - cycle.pg.wal_position;
            if lag > self.settings.maximum_lag_on_failover {
                return Err(format!(
                    "{} promotes {lag} bytes behind the last known optime",
                    n.name
                ));
            }
            let ahead = facts.peers.iter().flatten().find(|p| {
                p.reachable
                    && p.in_recovery == Some(true)
                    && !Tags(&p.tags).nofailover()
                    && !Tags(&p.member_tags).nofailover()
                    && p.wal_position > cycle.pg.wal_position
            });
            if let Some(p) = ahead {
                return Err(format!(
                    "{} promotes at {} while {} reported {}",
                    n.name, cycle.pg.wal_position, p.name, p.wal_position
                ));
            }
        }
        Ok(())
    }

    /// The accepted `check_timeline` stall: no leader, and either no
    /// eligible node runs on the cluster's timeline, or an eligible node on
    /// an older timeline is ahead in WAL of one that does (that one then
    /// defers to it, directly in the race or through a failover key's
    /// "someone else can take over", while it is itself out of the race).
    pub(super) fn timeline_stall(&self) -> bool {
        if !self.settings.check_timeline || self.dcs.leader_owner(self.now).is_some() {
            return false;
        }
        let timeline = self.dcs.snapshot(self.now).timeline();
        let eligible = || {
            self.nodes
                .iter()
                .filter(|n| n.alive && n.pg.running && !n.nofailover)
        };
        let current: Vec<i64> = eligible()
            .filter(|n| n.pg.timeline >= timeline)
            .map(|n| n.pg.wal)
            .collect();
        current.is_empty()
            || eligible().any(|n| n.pg.timeline < timeline && current.iter().any(|w| n.pg.wal > *w))
    }

    pub(super) fn check_liveness(&self) -> Result<(), String> {
        let Some(owner) = self.dcs.leader_owner(self.now) else {
            return Err("no leader after the quiet phase".into());
        };
        let Some(l) = self.nodes.iter().find(|n| n.name == owner) else {
            return Err(format!("the leader key names unknown {owner}"));
        };
        if !(l.alive && l.is_leader && l.pg.running && l.pg.primary) {
            return Err(format!("leader {owner} is not a running primary"));
        }
        for n in self.nodes.iter().filter(|n| n.name != owner) {
            let ok = n.alive
                && n.pg.running
                && !n.pg.primary
                && n.pg.following.as_deref() == Some(owner)
                && n.pg.timeline == l.pg.timeline;
            if !ok {
                return Err(format!(
                    "{} does not stream from the leader {owner} after the quiet phase",
                    n.name
                ));
            }
        }
        Ok(())
    }
}
