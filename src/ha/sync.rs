//! Synchronous replication on the primary (`synchronous_mode: on`, one or
//! more synchronous standbys). Quorum commit (`synchronous_mode: quorum`)
//! shares the reading of PostgreSQL's state ([`SyncTracker`]) and orders
//! its writes in [`super::quorum`].
//!
//! Two places name the synchronous standbys: PostgreSQL's
//! `synchronous_standby_names` (what commits wait for) and the `/sync` key
//! (who may be promoted without losing a commit). Patroni keeps them in an
//! order that never lets `/sync` name a standby PostgreSQL does not wait
//! for: names are added to the setting first and to the key only once
//! `pg_stat_replication` shows them synchronous and caught up; names are
//! removed from the key first. This module makes those choices from what
//! the executor read (the key, the setting, the WAL senders); the executor
//! writes the key (compare-and-set) and the setting, in the order of the
//! [`SyncOp`]s it gets.
//!
//! Names compare case-insensitively, as standby names do in PostgreSQL.

use regex::Regex;
use std::sync::OnceLock;

use crate::model::{Cluster, SyncState, Tags};

/// A set of member names: insertion-ordered, compared without case.
#[derive(Debug, Clone, Default, Eq)]
pub struct NameSet(Vec<String>);

impl PartialEq for NameSet {
    fn eq(&self, other: &NameSet) -> bool {
        self.0.len() == other.0.len() && self.0.iter().all(|n| other.contains(n))
    }
}

impl<S: Into<String>> FromIterator<S> for NameSet {
    fn from_iter<I: IntoIterator<Item = S>>(iter: I) -> NameSet {
        let mut set = NameSet::default();
        for name in iter {
            set.insert(name.into());
        }
        set
    }
}

impl NameSet {
    pub fn contains(&self, name: &str) -> bool {
        let name = name.to_lowercase();
        self.0.iter().any(|n| n.to_lowercase() == name)
    }

    /// Add `name` unless an equal one is there (the first spelling stays).
    pub fn insert(&mut self, name: String) {
        if !self.contains(&name) {
            self.0.push(name);
        }
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn iter(&self) -> impl Iterator<Item = &String> {
        self.0.iter()
    }

    /// The names of `self` that `other` also has, in `self`'s order.
    pub fn intersection(&self, other: &NameSet) -> NameSet {
        self.0
            .iter()
            .filter(|n| other.contains(n))
            .cloned()
            .collect()
    }

    /// The names of `self` and then those of `other` it lacks.
    pub fn union(&self, other: &NameSet) -> NameSet {
        self.0.iter().chain(other.0.iter()).cloned().collect()
    }

    /// The names of `self` that `other` does not have, in `self`'s order.
    pub fn difference(&self, other: &NameSet) -> NameSet {
        self.0
            .iter()
            .filter(|n| !other.contains(n))
            .cloned()
            .collect()
    }

    /// Every name of `self` is in `other`.
    pub fn is_subset(&self, other: &NameSet) -> bool {
        self.0.iter().all(|n| other.contains(n))
    }

    /// A subset of `other` that is smaller than it (Python's `<`).
    pub fn is_proper_subset(&self, other: &NameSet) -> bool {
        self.len() < other.len() && self.is_subset(other)
    }

    /// The names, sorted (the order of the `/sync` key and of the setting).
    pub fn sorted(&self) -> Vec<String> {
        let mut v = self.0.clone();
        v.sort();
        v
    }

    /// Python's `list(...)` text (`['a', 'b']`), for log lines.
    pub fn py_list(&self) -> String {
        let items: Vec<String> = self
            .0
            .iter()
            .map(|n| crate::config::pytext::str_repr(n))
            .collect();
        format!("[{}]", items.join(", "))
    }

    fn is_star(&self) -> bool {
        self.0.len() == 1 && self.0[0] == "*"
    }
}

/// How `synchronous_standby_names` asks commits to wait.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SsnKind {
    /// Empty: no synchronous replication.
    #[default]
    Off,
    /// `FIRST n (...)`, `n (...)` or a plain list.
    Priority,
    /// `ANY n (...)`.
    Quorum,
}

/// A parsed `synchronous_standby_names`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ssn {
    pub kind: SsnKind,
    /// The list contains `*` (any standby).
    pub has_star: bool,
    /// How many standbys a commit waits for.
    pub num: i64,
    pub members: NameSet,
}

fn tokenizer() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    // The alternatives are tried in this order at each position, like
    // PostgreSQL's own grammar is read by Patroni: keywords before names.
    RE.get_or_init(|| {
        Regex::new(
            r#"(?P<first>[fF][iI][rR][sS][tT])|(?P<any>[aA][nN][yY])|(?P<space>\s+)|(?P<ident>[A-Za-z_][A-Za-z_0-9$]*)|(?P<dquot>"(?:[^"]+|"")*")|(?P<star>[*])|(?P<num>\d+)|(?P<comma>,)|(?P<parenstart>\()|(?P<parenend>\))|(?P<junk>.)"#,
        )
        .expect("static regex")
    })
}

const TOKEN_KINDS: [&str; 11] = [
    "first",
    "any",
    "space",
    "ident",
    "dquot",
    "star",
    "num",
    "comma",
    "parenstart",
    "parenend",
    "junk",
];

/// Parse `synchronous_standby_names` the way Patroni does (which is not
/// quite PostgreSQL's grammar: a name starting with `first` or `any` is
/// read as that keyword followed by a name, and fails). An error names
/// the offending token.
pub fn parse_ssn(value: &str) -> Result<Ssn, String> {
    let mut tokens: Vec<(&'static str, &str, usize)> = Vec::new();
    for caps in tokenizer().captures_iter(value) {
        let Some((kind, m)) = TOKEN_KINDS
            .iter()
            .find_map(|k| caps.name(k).map(|m| (*k, m)))
        else {
            continue;
        };
        if kind != "space" {
            tokens.push((kind, m.as_str(), m.start()));
        }
    }
    if tokens.is_empty() {
        return Ok(Ssn::default());
    }
    let kinds: Vec<&str> = tokens.iter().map(|t| t.0).collect();
    let closed = kinds.last() == Some(&"parenend");
    let num_at = |i: usize| tokens[i].1.parse::<i64>().unwrap_or(i64::MAX);
    let (kind, num, list) = if kinds.starts_with(&["any", "num", "parenstart"]) && closed {
        (SsnKind::Quorum, num_at(1), &tokens[3..tokens.len() - 1])
    } else if kinds.starts_with(&["first", "num", "parenstart"]) && closed {
        (SsnKind::Priority, num_at(1), &tokens[3..tokens.len() - 1])
    } else if kinds.starts_with(&["num", "parenstart"]) && closed {
        (SsnKind::Priority, num_at(0), &tokens[2..tokens.len() - 1])
    } else {
        (SsnKind::Priority, 1, &tokens[..])
    };
    let repr = crate::config::pytext::str_repr;
    let unparsable = |what: String| {
        format!(
            "Unparsable synchronous_standby_names value {}: {what}",
            repr(value)
        )
    };
    let mut ssn = Ssn {
        kind,
        has_star: false,
        num,
        members: NameSet::default(),
    };
    for (i, (kind, text, pos)) in list.iter().enumerate() {
        if i % 2 == 1 {
            if i + 1 == list.len() {
                return Err(unparsable(format!(
                    "Unexpected token {kind} {} at {pos}",
                    repr(text)
                )));
            }
            if *kind != "comma" {
                return Err(unparsable(format!(
                    "Got token {kind} {} while expecting comma at {pos}",
                    repr(text)
                )));
            }
            continue;
        }
        match *kind {
            "ident" | "first" | "any" => ssn.members.insert((*text).to_owned()),
            "star" => {
                ssn.members.insert("*".to_owned());
                ssn.has_star = true;
            }
            "dquot" => ssn
                .members
                .insert(text[1..text.len() - 1].replace("\"\"", "\"")),
            _ => {
                return Err(unparsable(format!(
                    "Unexpected token {kind} {} at {pos}",
                    repr(text)
                )))
            }
        }
    }
    Ok(ssn)
}

/// A standby name as it must be written in the setting: bare when it is a
/// plain identifier (and not a keyword), else double-quoted.
pub fn quote_standby_name(name: &str) -> String {
    let plain = {
        let mut chars = name.chars();
        chars
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
    };
    let keyword = ["first", "any"].contains(&name.to_lowercase().as_str());
    if plain && !keyword {
        name.to_owned()
    } else {
        format!("\"{}\"", name.replace('"', "\"\""))
    }
}

/// The `synchronous_standby_names` value for these standbys (priority
/// mode): `None` for none, `*`, a single name, or `N (a,b,...)` waiting
/// for all of them.
pub fn ssn_value(picked: &NameSet) -> Option<String> {
    if picked.contains("*") {
        return Some("*".to_owned());
    }
    let names: Vec<String> = picked
        .sorted()
        .iter()
        .map(|n| quote_standby_name(n))
        .collect();
    match names.len() {
        0 => None,
        1 => names.into_iter().next(),
        n => Some(format!("{n} ({})", names.join(","))),
    }
}

/// One `pg_stat_replication` row of a streaming WAL sender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalSender {
    pub pid: i64,
    pub application_name: String,
    /// `async`, `potential`, `sync` or `quorum`.
    pub sync_state: String,
    pub write_lsn: Option<i64>,
    pub flush_lsn: Option<i64>,
    pub replay_lsn: Option<i64>,
}

impl WalSender {
    /// The position that matters for this `synchronous_commit` level.
    fn lsn(&self, synchronous_commit: &str) -> Option<i64> {
        match synchronous_commit {
            "remote_apply" => self.replay_lsn,
            "remote_write" => self.write_lsn,
            _ => self.flush_lsn,
        }
    }
}

/// The global settings that shape the choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SyncSettings {
    /// `synchronous_node_count` (at least 1 when strict).
    pub node_count: i64,
    /// `maximum_lag_on_syncnode`; 0 or less never swaps a lagging standby.
    pub maximum_lag_on_syncnode: i64,
    /// `synchronous_mode_strict`.
    pub strict: bool,
    /// `synchronous_mode: quorum` (PostgreSQL reports the listed
    /// standbys as `quorum` rather than `sync`).
    pub quorum: bool,
}

/// What PostgreSQL does now and could do (Patroni's `_SyncState`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentSync {
    /// Standbys the setting waits for (0 when empty or unparsable).
    pub numsync: i64,
    /// The names in the setting (none when it holds `*`).
    pub sync: NameSet,
    /// Names in the setting that `pg_stat_replication` reports `sync` and
    /// that caught up once: the ones that may be published in `/sync`.
    pub sync_confirmed: NameSet,
    /// The best standbys to be synchronous, at most `node_count` of them.
    pub active: NameSet,
}

/// What the primary remembers between cycles about the setting it last
/// saw (Patroni's `SyncHandler`): a standby newly added to it counts as
/// synchronous only once it reached the WAL position of that moment.
#[derive(Debug, Clone, Default)]
pub struct SyncTracker {
    ssn_text: Option<String>,
    ssn: Ssn,
    primary_flush_lsn: i64,
    ready: NameSet,
    /// Quorum commit: when this primary first ran the resolver.
    quorum_started: Option<std::time::Instant>,
}

/// What [`SyncTracker::note_ssn`] found.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SsnChange {
    /// The setting changed since the last look: the executor should make
    /// some WAL (so the standbys report a position past the mark).
    pub changed: bool,
    /// The setting could not be parsed (it is then treated as empty).
    pub warning: Option<String>,
}

/// A standby that may become synchronous.
struct Candidate<'a> {
    name: &'a str,
    sync_state: &'a str,
    lsn: i64,
    nofailover: bool,
    sync_priority: i64,
}

impl SyncTracker {
    /// Record the setting PostgreSQL runs with now; `flush_lsn` is the
    /// primary's current position, the mark new names must reach.
    pub fn note_ssn(&mut self, live: &str, flush_lsn: i64) -> SsnChange {
        if self.ssn_text.as_deref() == Some(live) {
            return SsnChange::default();
        }
        self.ssn_text = Some(live.to_owned());
        let mut warning = None;
        self.ssn = parse_ssn(live).unwrap_or_else(|e| {
            warning = Some(e);
            Ssn::default()
        });
        self.ready = self.ready.intersection(&self.ssn.members);
        self.primary_flush_lsn = flush_lsn;
        SsnChange {
            changed: true,
            warning,
        }
    }

    /// Forget everything (after a demotion).
    pub fn reset(&mut self) {
        *self = SyncTracker::default();
    }

    /// Quorum commit: may the resolver run `now`? The first time as
    /// primary it runs at once (to publish what was set before the
    /// promotion); then it waits `loop_wait`, so that the standbys have
    /// time to connect to the new primary before they are dropped from
    /// the key (Patroni's `_promote_timestamp`).
    pub fn quorum_due(&mut self, now: std::time::Instant, loop_wait: std::time::Duration) -> bool {
        match self.quorum_started {
            None => {
                self.quorum_started = Some(now);
                true
            }
            Some(t) => now.saturating_duration_since(t) > loop_wait,
        }
    }

    /// Patroni's `current_state`: from the WAL senders, which standbys
    /// are synchronous now and which should be. Call [`note_ssn`] first.
    ///
    /// [`note_ssn`]: SyncTracker::note_ssn
    pub fn current_state(
        &mut self,
        cluster: &Cluster,
        my_name: &str,
        senders: &[WalSender],
        synchronous_commit: &str,
        flush_lsn: i64,
        settings: &SyncSettings,
    ) -> CurrentSync {
        let candidates = candidates(cluster, my_name, senders, synchronous_commit);
        for c in &candidates {
            // With quorum commit `/sync` lists standbys once some of them
            // caught up, so it cannot vouch for any one of them.
            let caught_up = if settings.quorum {
                c.sync_state == "quorum" && c.lsn >= self.primary_flush_lsn
            } else {
                cluster.sync.matches(c.name, false)
                    || (c.sync_state == "sync" && c.lsn >= self.primary_flush_lsn)
            };
            if !self.ready.contains(c.name) && self.ssn.members.contains(c.name) && caught_up {
                self.ready.insert(c.name.to_owned());
            }
        }
        let max_lsn = if candidates.len() > 1 {
            candidates.iter().map(|c| c.lsn).max().unwrap_or(flush_lsn)
        } else {
            flush_lsn
        };
        let mut ordered: Vec<&Candidate> = candidates.iter().collect();
        ordered.sort_by_key(|c| c.nofailover);
        let mut state = CurrentSync {
            // Patroni reports the number even for `*` (1), which keeps a
            // strict primary without standbys re-asserting `*`.
            numsync: self.ssn.num,
            sync: if self.ssn.has_star {
                NameSet::default()
            } else {
                self.ssn.members.clone()
            },
            ..CurrentSync::default()
        };
        for c in ordered {
            let lag = max_lsn.saturating_sub(c.lsn);
            if settings.maximum_lag_on_syncnode > 0 && lag > settings.maximum_lag_on_syncnode {
                continue;
            }
            if settings.quorum {
                // All promotable standbys take part (a `nofailover` one
                // only to fill up the count: it may not be promoted, and
                // could be ahead of those that may).
                if !c.nofailover || (state.active.len() as i64) < settings.node_count {
                    if self.ready.contains(c.name) {
                        state.sync_confirmed.insert(c.name.to_owned());
                    }
                    state.active.insert(c.name.to_owned());
                }
                continue;
            }
            state.active.insert(c.name.to_owned());
            if c.sync_state == "sync" && self.ready.contains(c.name) {
                state.sync_confirmed.insert(c.name.to_owned());
            }
            if state.active.len() as i64 >= settings.node_count {
                break;
            }
        }
        state
    }
}

/// The streaming standbys that may be synchronous, best first: members
/// that run, do not carry `nosync`, and stream from us rather than
/// through another standby; ordered by `sync_priority`, then `sync`
/// before `potential` before `async`, then position.
fn candidates<'a>(
    cluster: &'a Cluster,
    my_name: &str,
    senders: &'a [WalSender],
    synchronous_commit: &str,
) -> Vec<Candidate<'a>> {
    let eligible: Vec<_> = cluster
        .members
        .iter()
        .filter(|m| {
            m.state() == Some("running")
                && !Tags(&m.tags()).nosync()
                && !m.name.eq_ignore_ascii_case(my_name)
        })
        .collect();
    let streaming: Vec<&WalSender> = senders
        .iter()
        .filter(|s| {
            s.lsn(synchronous_commit).is_some()
                && eligible
                    .iter()
                    .any(|m| m.name.eq_ignore_ascii_case(&s.application_name))
        })
        .collect();
    let mut out: Vec<Candidate> = Vec::new();
    for s in &streaming {
        let Some(member) = eligible
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(&s.application_name))
        else {
            continue;
        };
        if cascades(&eligible, &streaming, member) {
            continue;
        }
        if out
            .iter()
            .any(|c| c.name.eq_ignore_ascii_case(&s.application_name))
        {
            continue;
        }
        let tags = member.tags();
        out.push(Candidate {
            name: &s.application_name,
            sync_state: &s.sync_state,
            lsn: s.lsn(synchronous_commit).unwrap_or(0),
            nofailover: Tags(&tags).nofailover(),
            sync_priority: Tags(&tags).sync_priority(),
        });
    }
    // Stable, best first: equal keys keep pg_stat_replication's order.
    out.sort_by(|a, b| {
        (b.sync_priority, b.sync_state, b.lsn).cmp(&(a.sync_priority, a.sync_state, a.lsn))
    });
    out
}

/// The member is meant to stream through another standby (its
/// `replicatefrom` chain reaches a standby that streams from us), so it
/// cannot be synchronous to us. A chain that loops is cut.
fn cascades(
    eligible: &[&crate::model::Member],
    streaming: &[&WalSender],
    member: &crate::model::Member,
) -> bool {
    let mut current = member;
    for _ in 0..eligible.len() + 1 {
        let tags = current.tags();
        let Some(up_name) = Tags(&tags).replicatefrom().map(str::to_owned) else {
            return false;
        };
        let Some(up) = eligible
            .iter()
            .find(|m| m.name.eq_ignore_ascii_case(&up_name))
        else {
            return false;
        };
        let up_tags = up.tags();
        if Tags(&up_tags).replicatefrom().is_none() {
            return streaming
                .iter()
                .any(|s| s.application_name.eq_ignore_ascii_case(&up.name));
        }
        current = up;
    }
    false
}

/// A log line of the sync process and its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Log {
    Info(String),
    Warning(String),
}

/// One step of bringing the key and the setting in line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncOp {
    Log(Log),
    /// Write `/sync` with us as leader and these standbys (compare-and-set
    /// on the version the previous write returned). On failure, log
    /// `on_failure` and stop.
    WriteSync {
        members: NameSet,
        on_success: Option<Log>,
        on_failure: Log,
    },
    /// Set `synchronous_standby_names` to [`ssn_value`] of these names and
    /// reload PostgreSQL.
    SetSsn(NameSet),
    /// Finally publish the standbys that are confirmed synchronous: if the
    /// new setting may not be in force yet (`wait`), wait two seconds and
    /// read the state again; then [`assign_confirmed`].
    Confirm {
        wait: bool,
        sync_common: NameSet,
    },
}

/// Patroni's `_process_multisync_replication` (with
/// `_maybe_enable_synchronous_mode`): the steps for this cycle, given the
/// `/sync` key and the current state.
pub fn plan_multisync(
    my_name: &str,
    key: &SyncState,
    state: &CurrentSync,
    settings: &SyncSettings,
) -> Vec<SyncOp> {
    let mut ops = Vec::new();
    let mut voters: NameSet = key.members().into_iter().collect();
    let failed = |text: &str| Log::Warning(text.to_owned());
    if key.is_empty() {
        ops.push(SyncOp::WriteSync {
            members: NameSet::default(),
            on_success: Some(Log::Info("Enabled synchronous replication".into())),
            on_failure: failed("Updating sync state failed"),
        });
        voters = NameSet::default();
    } else if key.leader.as_deref() != Some(my_name) {
        ops.push(SyncOp::Log(Log::Warning(format!(
            "Inconsistent state of /sync key detected, leader = {} doesn't match {my_name}, \
             updating synchronous replication key",
            key.leader.as_deref().unwrap_or("None")
        ))));
        ops.push(SyncOp::WriteSync {
            members: NameSet::default(),
            on_success: None,
            on_failure: failed("Updating sync state failed"),
        });
        voters = NameSet::default();
    }
    let mut picked = state.active.clone();
    let allow_promote = &state.sync_confirmed;
    if picked == voters && voters != *allow_promote {
        ops.push(SyncOp::Log(Log::Warning(format!(
            "Inconsistent state between synchronous_standby_names = {} and /sync = {} key \
             detected, updating synchronous replication key...",
            allow_promote.py_list(),
            voters.py_list()
        ))));
        ops.push(SyncOp::WriteSync {
            members: allow_promote.clone(),
            on_success: None,
            on_failure: failed("Updating sync state failed"),
        });
        voters = allow_promote.clone();
    }
    if picked == voters && voters == state.sync && state.numsync == picked.len() as i64 {
        return ops;
    }
    let sync_common = voters.intersection(allow_promote);
    if sync_common != voters {
        ops.push(SyncOp::Log(Log::Info(format!(
            "Updating synchronous privilege temporarily from {} to {}",
            voters.py_list(),
            sync_common.py_list()
        ))));
        ops.push(SyncOp::WriteSync {
            members: sync_common.clone(),
            on_success: None,
            on_failure: Log::Info("Synchronous replication key updated by someone else.".into()),
        });
    }
    if settings.strict && picked.is_empty() {
        picked = NameSet::from_iter(["*"]);
        ops.push(SyncOp::Log(Log::Warning("No standbys available!".into())));
    }
    ops.push(SyncOp::Log(Log::Info(format!(
        "Assigning synchronous standby status to {}",
        picked.py_list()
    ))));
    let wait = !picked.is_empty() && !picked.is_star() && *allow_promote != picked;
    ops.push(SyncOp::SetSsn(picked));
    ops.push(SyncOp::Confirm { wait, sync_common });
    ops
}

/// The last step of [`plan_multisync`]: publish the confirmed standbys
/// when there are some and the key does not already say so.
pub fn assign_confirmed(allow_promote: &NameSet, sync_common: &NameSet) -> Option<SyncOp> {
    (!allow_promote.is_empty() && allow_promote != sync_common).then(|| SyncOp::WriteSync {
        members: allow_promote.clone(),
        on_success: Some(Log::Info(format!(
            "Synchronous standby status assigned to {}",
            allow_promote.py_list()
        ))),
        on_failure: Log::Info("Synchronous replication key updated by someone else".into()),
    })
}

#[cfg(test)]
#[path = "sync_tests.rs"]
mod tests;
