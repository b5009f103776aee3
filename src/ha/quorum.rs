//! Quorum commit (`synchronous_mode: quorum`): the order of changes to
//! `synchronous_standby_names` and to the `/sync` key.
//!
//! With quorum commit both places mean "any n of this set":
//!
//! - the setting, `ANY numsync (sync...)`: a commit returns once `numsync`
//!   of the `sync` standbys acknowledged it;
//! - the key, `{"leader", "quorum", "sync_standby": voters}`: a standby may
//!   win the leader race once it has seen `quorum` of the `voters` (the old
//!   leader counted among them) and is at least as far ahead as they are.
//!
//! No commit is lost on failover as long as every group of nodes that can
//! acknowledge a commit shares a node with every group that can elect a
//! new leader, that is `|voters ∪ sync ∪ {leader}| <= quorum + numsync + 1`.
//! For the standbys that stream now (`active`) the best state is
//! `sync = voters = active`, `numsync = min(wanted, |active|)` and
//! `quorum = |active| - numsync`. Moving there from any state (a node
//! left, the wanted count changed, the last run was interrupted halfway,
//! a new leader took over) must keep the rule true after every single
//! write: a number that grows is raised first, one that shrinks is
//! lowered last; names join the key before the setting unless the setting
//! is empty, and leave the setting first unless it would become empty.
//!
//! [`resolve`] computes those writes, in order, as Patroni 4.1.5's
//! resolver does (the executor writes them one by one and stops at the
//! first failure; the next cycle starts again from what it reads). It is
//! pure; the differential test `pytests/test_quorum_diff.py` compares it
//! with Patroni's on generated states.

use super::sync::NameSet;
use crate::model::SyncState;

/// What one write changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransitionKind {
    /// Set `synchronous_standby_names` to `ANY num (names)`.
    Sync,
    /// Write `/sync`: `leader`, `quorum: num`, `sync_standby: names`.
    Quorum,
    /// Nothing to write yet: the setting was just filled and its standbys
    /// may become synchronous in a moment; read the state again and start
    /// over (Patroni retries within the same cycle, once a second).
    Restart,
}

/// One write and the state it leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    pub kind: TransitionKind,
    pub leader: String,
    pub num: i64,
    pub names: NameSet,
}

/// What the resolver starts from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumInput {
    /// `leader` of the `/sync` key.
    pub leader: String,
    /// `quorum` of the `/sync` key.
    pub quorum: i64,
    /// `sync_standby` of the `/sync` key.
    pub voters: NameSet,
    /// The count of `synchronous_standby_names`.
    pub numsync: i64,
    /// The names of `synchronous_standby_names`.
    pub sync: NameSet,
    /// How many of `sync` are known to have caught up since they were
    /// listed.
    pub numsync_confirmed: i64,
    /// The standbys that stream from us and may be synchronous.
    pub active: NameSet,
    /// `synchronous_node_count`.
    pub sync_wanted: i64,
    /// This node (the leader the key must name).
    pub leader_wanted: String,
}

/// Why no plan could be made. Patroni raises these out of its resolver:
/// nothing is written in that cycle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuorumError {
    /// A wanted state breaks the rule (Patroni's `QuorumError`).
    Broken(String),
    /// The state could not be brought to a consistent point (an internal
    /// assertion of Patroni's resolver fails on such input).
    Inconsistent(String),
}

impl std::fmt::Display for QuorumError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuorumError::Broken(s) | QuorumError::Inconsistent(s) => f.write_str(s),
        }
    }
}

/// The writes to make, in order, and the warnings logged on the way (a
/// broken starting state is logged and then repaired).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Plan {
    pub transitions: Vec<Transition>,
    pub warnings: Vec<String>,
}

/// Compute the writes that take the key and the setting from `input` to
/// the best state. Consecutive writes to the same place are merged (only
/// the last one is made: nobody can have seen the ones in between), and
/// the plan ends at the first [`TransitionKind::Restart`].
pub fn resolve(input: &QuorumInput) -> Result<Plan, QuorumError> {
    let mut r = Resolver::new(input);
    r.generate()?;
    let all = std::mem::take(&mut r.out);
    let mut transitions = Vec::new();
    for (i, t) in all.iter().enumerate() {
        if all.get(i + 1).is_some_and(|next| next.kind == t.kind) {
            continue;
        }
        transitions.push(t.clone());
        if t.kind == TransitionKind::Restart {
            break;
        }
    }
    Ok(Plan {
        transitions,
        warnings: r.warnings,
    })
}

/// The working state: each planned write updates it, and the next step
/// is computed from the updated state.
struct Resolver {
    leader: String,
    quorum: i64,
    voters: NameSet,
    numsync: i64,
    sync: NameSet,
    numsync_confirmed: i64,
    active: NameSet,
    sync_wanted: i64,
    leader_wanted: String,
    out: Vec<Transition>,
    warnings: Vec<String>,
}

/// Sets in log text: `{'a', 'b'}` (sorted, so that it is stable).
fn show(set: &NameSet) -> String {
    if set.is_empty() {
        return "set()".to_owned();
    }
    let items: Vec<String> = set
        .sorted()
        .iter()
        .map(|n| crate::config::pytext::str_repr(n))
        .collect();
    format!("{{{}}}", items.join(", "))
}

fn len(set: &NameSet) -> i64 {
    set.len() as i64
}

fn one(name: &str) -> NameSet {
    NameSet::from_iter([name])
}

/// Counts come from the DCS and the setting, which may hold anything:
/// bound them far beyond any real cluster so that the arithmetic below
/// cannot overflow.
fn bounded(n: i64) -> i64 {
    n.clamp(-(1 << 32), 1 << 32)
}

impl Resolver {
    fn new(input: &QuorumInput) -> Resolver {
        Resolver {
            leader: input.leader.clone(),
            quorum: bounded(input.quorum),
            voters: input.voters.clone(),
            // The setting cannot wait for more standbys than it lists.
            numsync: bounded(input.numsync).min(len(&input.sync)),
            sync: input.sync.clone(),
            numsync_confirmed: bounded(input.numsync_confirmed),
            active: input.active.clone(),
            sync_wanted: bounded(input.sync_wanted),
            leader_wanted: input.leader_wanted.clone(),
            out: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// The rule of the module doc, and that one set contains the other
    /// (they differ only halfway through a change).
    fn check_invariants(&self) -> Result<(), QuorumError> {
        let voters = self.voters.union(&one(&self.leader));
        let sync = self.sync.union(&one(&self.leader_wanted));
        let nodes = len(&voters.union(&sync));
        if !self.voters.is_empty() && nodes > self.quorum + self.numsync + 1 {
            return Err(QuorumError::Broken(format!(
                "Quorum and sync not guaranteed to overlap: nodes {nodes} >= quorum {} + sync {} + 1",
                self.quorum,
                show(&self.sync)
            )));
        }
        if !(voters.is_subset(&sync) || sync.is_subset(&voters)) {
            return Err(QuorumError::Broken(format!(
                "Mismatched sets: voter only={} sync only={}",
                show(&voters.difference(&sync)),
                show(&sync.difference(&voters))
            )));
        }
        Ok(())
    }

    /// Plan a write of the key. Unless the leader changes, `quorum` is
    /// raised by the listed standbys not known to be caught up
    /// (`adjust`), and with none caught up and no voters yet the key is
    /// reset to no voters.
    fn quorum_update(
        &mut self,
        quorum: i64,
        voters: NameSet,
        leader: Option<&str>,
        adjust: bool,
    ) -> Result<(), QuorumError> {
        let (mut quorum, mut voters) = (quorum, voters);
        if quorum < 0 {
            return Err(QuorumError::Broken(format!(
                "Quorum {quorum} < 0 of ({})",
                show(&voters)
            )));
        }
        if quorum > 0 && quorum >= len(&voters) {
            return Err(QuorumError::Broken(format!(
                "Quorum {quorum} >= N of ({})",
                show(&voters)
            )));
        }
        let old_leader = self.leader.clone();
        if let Some(leader) = leader {
            self.leader = leader.to_owned();
        } else if self.numsync_confirmed == 0 && self.voters.is_empty() {
            quorum = 0;
            voters = NameSet::default();
        } else if adjust {
            quorum += (self.numsync - self.numsync_confirmed).max(0);
        }
        if self.leader == old_leader && quorum == self.quorum && voters == self.voters {
            if !self.voters.is_empty() {
                return Ok(());
            }
            // Nothing changes: ask the caller to read the state again.
            self.out.push(Transition {
                kind: TransitionKind::Restart,
                leader: self.leader.clone(),
                num: self.quorum,
                names: self.voters.clone(),
            });
        }
        self.quorum = quorum;
        self.voters = voters;
        self.check_invariants()?;
        self.out.push(Transition {
            kind: TransitionKind::Quorum,
            leader: self.leader.clone(),
            num: self.quorum,
            names: self.voters.clone(),
        });
        Ok(())
    }

    /// Plan a change of the setting.
    fn sync_update(&mut self, numsync: i64, sync: NameSet) -> Result<(), QuorumError> {
        if numsync < 0 {
            return Err(QuorumError::Broken(format!(
                "Sync {numsync} < 0 of ({})",
                show(&sync)
            )));
        }
        if numsync > len(&sync) {
            return Err(QuorumError::Broken(format!(
                "Sync {numsync} > N of ({})",
                show(&sync)
            )));
        }
        self.numsync = numsync;
        self.sync = sync;
        self.check_invariants()?;
        self.out.push(Transition {
            kind: TransitionKind::Sync,
            leader: self.leader.clone(),
            num: self.numsync,
            names: self.sync.clone(),
        });
        Ok(())
    }

    fn generate(&mut self) -> Result<(), QuorumError> {
        match self.take_over() {
            Ok(true) => {}
            // Right after a promotion the standbys may not stream yet:
            // give them a cycle before dropping them from the quorum.
            Ok(false) => return Ok(()),
            Err(e) => {
                self.warnings.push(e.to_string());
                let quorum = len(&self.sync) - self.numsync;
                self.quorum_update(quorum, self.sync.clone(), None, true)?;
            }
        }
        if self.leader != self.leader_wanted {
            return Err(QuorumError::Inconsistent(format!(
                "/sync names {} as leader, not {}",
                self.leader, self.leader_wanted
            )));
        }
        // After a restart or a failover nothing is known to be caught up;
        // the quorum tells how many of the listed standbys must be.
        let streaming = self.sync.intersection(&self.active);
        if self.numsync_confirmed == 0 && !streaming.is_empty() {
            self.numsync_confirmed = len(&streaming).min(len(&self.voters) - self.quorum);
        }
        self.finish_interrupted()?;
        self.remove_gone_nodes()?;
        self.add_new_nodes()?;
        self.change_replication_factor()
    }

    /// A new leader: the old one becomes a voter in our place. `false`
    /// when none of the listed standbys streams yet (stop here).
    fn take_over(&mut self) -> Result<bool, QuorumError> {
        if self.leader_wanted == self.leader {
            self.check_invariants()?;
            return Ok(true);
        }
        let voters = self
            .voters
            .difference(&one(&self.leader_wanted))
            .union(&one(&self.leader));
        if self.sync.is_empty() {
            self.sync_update(len(&voters) - self.quorum, voters.clone())?;
        }
        let leader = self.leader_wanted.clone();
        self.quorum_update(self.quorum, voters, Some(&leader), true)?;
        Ok(!self.sync.intersection(&self.active).is_empty())
    }

    /// Complete a change the previous run left halfway, so that the
    /// setting and the key list the same names again.
    fn finish_interrupted(&mut self) -> Result<(), QuorumError> {
        if self.sync.is_proper_subset(&self.voters) {
            // The key was being changed: drop voters that neither are in
            // the setting nor stream, and list the streaming ones.
            let gone = self.voters.difference(&self.sync.union(&self.active));
            if !gone.is_empty() {
                let adjust = self.sync.difference(&self.active).is_empty();
                let quorum = len(&self.voters) - len(&gone) - self.numsync;
                let voters = self.voters.difference(&gone);
                self.quorum_update(quorum, voters, None, adjust)?;
            }
            let add = self
                .voters
                .intersection(&self.active)
                .difference(&self.sync);
            if !add.is_empty() {
                let sync = self.sync.union(&add);
                self.sync_update(self.numsync, sync)?;
            }
        } else if self.voters.is_proper_subset(&self.sync) {
            // The setting was being changed.
            let dead = self.sync.difference(&self.active);
            let alive = self.sync.difference(&dead);
            // Drop dead names from the setting if that leaves it some names
            // shared with the key.
            if !dead.is_empty()
                && !alive.is_empty()
                && (self.voters.is_empty() || !alive.intersection(&self.voters).is_empty())
            {
                let numsync = self.numsync.min(len(&self.sync) - len(&dead));
                self.sync_update(numsync, alive)?;
            }
            let add = self
                .sync
                .difference(&self.voters)
                .intersection(&self.active);
            if !add.is_empty() {
                let voters = self.voters.union(&add);
                self.quorum_update(len(&voters) - self.numsync, voters, None, true)?;
            }
            let extra = self.sync.difference(&self.voters);
            if !extra.is_empty() {
                let numsync = self.numsync.min(len(&self.sync) - len(&extra));
                let sync = self.sync.difference(&extra);
                self.sync_update(numsync, sync)?;
            }
        }
        if self.voters != self.sync {
            return Err(QuorumError::Inconsistent(format!(
                "voters {} and synchronous standbys {} still differ",
                show(&self.voters),
                show(&self.sync)
            )));
        }
        let both = len(&self.voters.union(&self.sync));
        let margin = self.quorum + self.numsync.min(self.numsync_confirmed) - both;
        if margin > 0 {
            // Halfway through a change of the replication factor.
            if self.numsync > self.sync_wanted {
                let numsync = self.sync_wanted.max(len(&self.voters) - self.quorum);
                self.sync_update(numsync, self.sync.clone())?;
            } else {
                let quorum = len(&self.sync) - self.numsync;
                self.quorum_update(quorum, self.voters.clone(), None, true)?;
            }
        } else {
            let margin = self.quorum + self.numsync - both;
            if self.numsync == self.sync_wanted
                && margin > 0
                && self.numsync > self.numsync_confirmed
            {
                let quorum = len(&self.sync) - self.numsync;
                self.quorum_update(quorum, self.voters.clone(), None, true)?;
            }
        }
        Ok(())
    }

    /// Drop the standbys that no longer stream.
    fn remove_gone_nodes(&mut self) -> Result<(), QuorumError> {
        let mut gone = self.sync.difference(&self.active);
        if gone.is_empty() {
            return Ok(());
        }
        if gone == self.sync {
            self.quorum_update(0, NameSet::default(), None, false)?;
            return self.sync_update(0, NameSet::default());
        }
        if self.quorum > 0 {
            // Lower the quorum first, as far as it goes; the names go in
            // reverse sorted order so the outcome does not depend on the
            // order the set was built in.
            let mut names = gone.sorted();
            names.reverse();
            let remove: NameSet = names
                .into_iter()
                .take(usize::try_from(self.quorum).unwrap_or(0))
                .collect();
            let sync = self.sync.difference(&remove);
            let numsync = if self.sync_wanted > self.numsync {
                self.sync_wanted
            } else {
                self.numsync
            }
            .min(len(&sync));
            self.sync_update(numsync, sync)?;
            let voters = self.voters.difference(&remove);
            gone = gone.intersection(&self.sync);
            let quorum = len(&voters) - self.numsync;
            self.quorum_update(quorum, voters, None, gone.is_empty())?;
        }
        if !gone.is_empty() {
            if self.quorum != 0 {
                return Err(QuorumError::Inconsistent(format!(
                    "quorum {} left while removing {}",
                    self.quorum,
                    show(&gone)
                )));
            }
            let numsync = self.numsync - len(&gone);
            let sync = self.sync.difference(&gone);
            let voters = self.voters.difference(&gone);
            let decrease = numsync - self.sync_wanted.min(len(&sync));
            let quorum = if decrease != 0 {
                decrease.min(len(&voters) - 1)
            } else {
                0
            };
            self.quorum_update(quorum, voters, None, false)?;
            self.sync_update(numsync, sync)?;
        }
        Ok(())
    }

    /// List the standbys that stream and are not listed yet.
    fn add_new_nodes(&mut self) -> Result<(), QuorumError> {
        let mut new = self.active.difference(&self.sync);
        if new.is_empty() {
            return Ok(());
        }
        let wanted = self.sync_wanted.min(len(&self.sync.union(&new)));
        let mut raise_by = wanted - self.numsync;
        if raise_by > 0 {
            // First reach the wanted replication factor.
            let add = if self.sync.is_empty() {
                // Only the leader so far: all can be listed at once.
                new.clone()
            } else {
                let add: NameSet = new
                    .sorted()
                    .into_iter()
                    .take(usize::try_from(raise_by).unwrap_or(0))
                    .collect();
                raise_by = len(&add);
                add
            };
            let sync = self.sync.union(&add);
            self.sync_update(self.numsync + raise_by, sync)?;
            let voters = self.voters.union(&add);
            self.quorum_update(len(&voters) - wanted, voters, None, true)?;
            new = new.difference(&self.sync);
        }
        if !new.is_empty() {
            let voters = self.voters.union(&new);
            let adjust = wanted > self.numsync_confirmed;
            self.quorum_update(len(&voters) - wanted, voters, None, adjust)?;
            let sync = self.sync.union(&new);
            self.sync_update(wanted, sync)?;
        }
        Ok(())
    }

    /// Follow a change of `synchronous_node_count`.
    fn change_replication_factor(&mut self) -> Result<(), QuorumError> {
        let increase = self.sync_wanted.min(len(&self.sync)) - self.numsync;
        if increase > 0 {
            self.sync_update(self.numsync + increase, self.sync.clone())?;
            let quorum = len(&self.voters) - self.numsync;
            self.quorum_update(quorum, self.voters.clone(), None, true)?;
        } else if increase < 0 {
            if self.quorum - increase < len(&self.voters) {
                let quorum = len(&self.voters) - self.numsync - increase;
                let adjust = self.sync_wanted > self.numsync_confirmed;
                self.quorum_update(quorum, self.voters.clone(), None, adjust)?;
            }
            self.sync_update(self.numsync + increase, self.sync.clone())?;
        }
        Ok(())
    }
}

/// `synchronous_standby_names` for quorum commit: `ANY num (names)` with
/// the names sorted and quoted where needed; `*` stands in for "any
/// standby" when there are none but some are required, and no names at
/// all clears the setting.
pub fn quorum_ssn_value(names: &NameSet, num: i64) -> Option<String> {
    if names.contains("*") || (names.is_empty() && num >= 1) {
        return Some(format!("ANY {num} (*)"));
    }
    if names.is_empty() {
        return None;
    }
    let listed: Vec<String> = names
        .sorted()
        .iter()
        .map(|n| super::sync::quote_standby_name(n))
        .collect();
    Some(format!("ANY {num} ({})", listed.join(",")))
}

/// The setting a standby gives PostgreSQL right before promoting itself
/// with quorum commit (Patroni's `process_sync_replication_prepromote`):
/// the names and count to wait for, so that commits stay safe from the
/// first moment. With `/sync` claimed, wait for its members (its leader
/// and voters, less ourselves) with the count that keeps the old quorum
/// (one more when we were no voter: we won with extra votes). Before any
/// claim, wait for nobody (any one standby when strict).
pub fn prepromote_ssn(key: &SyncState, me: &str, strict: bool) -> (NameSet, i64) {
    if key.is_empty() {
        return (NameSet::default(), i64::from(strict));
    }
    let mut members: NameSet = key.leader.iter().cloned().chain(key.members()).collect();
    let mut numsync = len(&members) - key.quorum - 1;
    if members.contains(me) {
        members = members.difference(&one(me));
    } else {
        numsync += 1;
    }
    (members, numsync)
}

#[cfg(test)]
#[path = "quorum_tests.rs"]
mod tests;
