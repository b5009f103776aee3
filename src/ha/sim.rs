//! A deterministic simulation of several nodes running the pure HA core
//! against a simulated DCS, with faults injected from a seeded RNG.
//!
//! Test-only. Each run builds `N` (3..=5) nodes, each a daemon plus a
//! PostgreSQL reduced to what the decisions see (running or not, primary
//! or replica, timeline, WAL position, data directory state), some tagged
//! `nofailover`, some replicas lagging past `maximum_lag_on_failover`;
//! `check_timeline` and `primary_start_timeout: 0` are drawn per run. All
//! data directories start empty: the nodes race for `initialize`, one
//! bootstraps, the others copy it. A scheduler runs every node's HA cycle
//! at `loop_wait` intervals with jitter. A cycle is the conversation of
//! `src/daemon/cycle.rs`: read the cluster, ask
//! [`decide`](crate::ha::decide::decide) until it decides, answer its
//! queries (peers' `/patroni` answers come from the simulated nodes), run
//! the actions in order stopping at the first failure, then write the
//! leader's `/status` and the member key. The cluster read, the queries
//! that touch the DCS and those final writes are events of their own, each
//! applied at the instant it reaches the DCS, so other nodes act in
//! between (a snapshot can be stale by the time it is used, as in real
//! life).
//!
//! Faults: a node lost with its PostgreSQL (and brought back later),
//! PostgreSQL crashing alone, a node cut from the DCS (its calls hang to
//! the deadline or fail at once) or from its peers, a slow DCS (calls take
//! up to twice `retry_timeout`; one past the deadline fails for the caller
//! and may still land, a leader key write up to a ttl later), a clean stop
//! of the daemon ([`decide_shutdown`]), and manual switchovers and
//! failovers (immediate or scheduled) written into the `failover` key.
//! After the fault phase every fault is healed and the run goes on quietly
//! for a bounded time.
//!
//! What is deliberately simple: PostgreSQL starts, stops and promotes
//! instantly (a start fails now and then, see [`START_FAILURE_PERCENT`]);
//! replication streams whenever both ends can reach each other, down to
//! the replica's lag; pg_rewind always succeeds; the DCS calls made inside
//! actions (release, clear the failover key, the re-read after a
//! demotion) take no time; pause mode, synchronous mode, failsafe mode,
//! standby clusters, restarts/reinitialize from the API and a daemon dying
//! while its PostgreSQL runs on are not modelled. The invariants are in
//! [`check`].
//!
//! [`decide_shutdown`]: crate::ha::decide::decide_shutdown

mod check;
mod dcs;
mod exec;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

use serde_json::{Map, Value};

use crate::ha::decide::{Facts, HaSettings, LocalPg};
use crate::model::Cluster;
use dcs::Dcs;

/// The system identifier every node's data directory carries once made.
const SYSID: &str = "7000000000000000001";
/// How often a PostgreSQL start fails (the next cycle sees `start_failed`).
const START_FAILURE_PERCENT: u64 = 4;
/// WAL bytes a primary writes per simulated millisecond.
const WAL_RATE: i64 = 40;

/// Timing of one run, in milliseconds.
#[derive(Debug, Clone, Copy)]
pub(super) struct Timing {
    pub ttl: i64,
    pub loop_wait: i64,
    pub retry_timeout: i64,
    /// The most a cycle starts late (scheduler jitter).
    pub jitter: i64,
    /// How much longer than `retry_timeout` a failing DCS call may take
    /// before the caller sees the failure (0: the client's deadline is
    /// exactly `retry_timeout`).
    pub call_slack: i64,
}

impl Timing {
    /// Safe for this executor. After a leader's last successful refresh
    /// its cycle may still sleep until a scheduled switchover (up to
    /// `loop_wait`, decided after the refresh, as in Patroni), wait for
    /// the peers (2 s), and write `/status` and its member key; then the
    /// next cycle reads the cluster and refreshes. With every DCS call
    /// giving up at `retry_timeout`, `loop_wait + 2 s + 4 * retry_timeout
    /// + jitter` must stay below `ttl`: 28.9 s here.
    pub fn safe() -> Timing {
        Timing {
            ttl: 30_000,
            loop_wait: 10_000,
            retry_timeout: 4_000,
            jitter: 900,
            call_slack: 0,
        }
    }

    /// Patroni's defaults (ttl 30 s, loop_wait 10 s, retry_timeout 10 s):
    /// `loop_wait + 2 * retry_timeout == ttl`, the rule Patroni documents,
    /// which does not cover the writes after a refresh hanging too (see
    /// `tests::default_timing_is_not_enough_when_writes_hang`).
    pub fn patroni_defaults() -> Timing {
        Timing {
            ttl: 30_000,
            loop_wait: 10_000,
            retry_timeout: 10_000,
            jitter: 0,
            call_slack: 0,
        }
    }
}

/// What one run does.
#[derive(Debug, Clone)]
pub(super) struct Plan {
    pub seed: u64,
    pub nodes: usize,
    pub timing: Timing,
    /// Faults are injected during `[fault_start, fault_end)`.
    pub fault_start: i64,
    pub fault_end: i64,
    /// After `fault_end` everything is healed; the run ends this much
    /// later, when liveness is checked.
    pub quiet: i64,
    /// The run stops after this many events (the liveness check then
    /// only runs if the quiet phase was reached).
    pub max_events: usize,
    /// Mean time between two faults.
    pub fault_every: i64,
    /// How many of the last trace lines a failure report shows.
    pub trace_len: usize,
    /// Fail on Patroni's own `check_timeline` stall too (see [`check`]).
    pub strict_liveness: bool,
}

impl Plan {
    pub fn new(seed: u64) -> Plan {
        let mut rng = Rng::new(seed ^ 0x5eed);
        Plan {
            seed,
            nodes: 3 + rng.below(3) as usize,
            timing: Timing::safe(),
            fault_start: 40_000,
            fault_end: 240_000,
            quiet: 150_000,
            max_events: 20_000,
            fault_every: 12_000,
            trace_len: 80,
            strict_liveness: false,
        }
    }
}

/// A small deterministic RNG (splitmix64): reproducible from the seed,
/// with no dependency.
#[derive(Debug, Clone)]
pub(super) struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    pub fn range(&mut self, lo: i64, hi: i64) -> i64 {
        lo + self.below((hi - lo + 1).max(1) as u64) as i64
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// The simulated PostgreSQL of one node.
#[derive(Debug, Clone, Default)]
pub(super) struct Pg {
    pub running: bool,
    /// Runs (or last ran) as a primary.
    pub primary: bool,
    pub timeline: i64,
    pub wal: i64,
    /// The data directory holds a cluster.
    pub data: bool,
    /// `Database cluster state` as pg_controldata would report it.
    pub cluster_state: &'static str,
    /// `standby.signal` exists.
    pub standby_signal: bool,
    /// The member it streams from.
    pub following: Option<String>,
}

/// One DCS call in flight and how it will end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Applied and answered.
    Ok,
    /// Timed out for the caller; the DCS applies it anyway, up to a ttl
    /// later (a leader key write may land after the key expired).
    LostReply,
    /// Failed: not applied.
    Failed,
}

/// What a node's cycle waits for.
#[derive(Debug, Clone)]
enum Pending {
    /// The cluster read at the start of the cycle.
    Read(Outcome),
    /// A query of `decide` that talks to the DCS.
    Query(crate::ha::decide::Query, Outcome),
    /// `SleepUntil`.
    Sleep,
    /// The peers' `/patroni` answers, known once the slowest returns (a
    /// peer that cannot be reached costs the 2 s timeout).
    Peers(Vec<crate::ha::race::PeerStatus>),
    /// The writes after the decision: `/status` (and `/history`) for a
    /// leader, then the member key, each a DCS call of its own.
    Publish { leader: bool },
}

/// A node's cycle between two of its events.
#[derive(Debug, Clone)]
struct InFlight {
    started: i64,
    pg: LocalPg,
    cluster: Cluster,
    facts: Facts,
    queries: usize,
    pending: Pending,
}

/// One simulated node: the daemon's memory plus its PostgreSQL.
#[derive(Debug, Clone)]
pub(super) struct Node {
    pub name: String,
    pub tags: Map<String, Value>,
    pub nofailover: bool,
    /// The daemon runs.
    pub alive: bool,
    /// Bumped when the daemon stops, so its queued events are dropped.
    epoch: u64,
    pub pg: Pg,
    /// The daemon's `state` and `role` words (see `daemon/local.rs`).
    state: String,
    role: String,
    /// The daemon believes it holds the leader key.
    pub is_leader: bool,
    crash_recovery_started: bool,
    start_failed: bool,
    seen_running: bool,
    /// The last cluster read (what a shutdown decides on).
    cached: Option<Cluster>,
    cycle: Option<InFlight>,
    /// Cut from the DCS / from the other nodes.
    pub dcs_cut: bool,
    pub peers_cut: bool,
    /// A clean stop was asked while a cycle ran: done at its end.
    stop_requested: bool,
    /// How far behind its primary this replica streams.
    lag: i64,
}

/// Scheduled events. Ordered by (time, sequence) in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Cycle {
        node: usize,
        epoch: u64,
    },
    Resume {
        node: usize,
        epoch: u64,
    },
    Fault,
    Restart {
        node: usize,
    },
    HealDcs {
        node: usize,
    },
    HealPeers {
        node: usize,
    },
    DcsFast,
    /// A leader key write whose caller gave up reaches the DCS.
    LateWrite {
        node: usize,
        acquire: bool,
    },
    /// The quiet phase begins.
    Heal,
}

/// The whole simulated world.
pub(super) struct Sim {
    pub plan: Plan,
    pub settings: HaSettings,
    pub now: i64,
    rng: Rng,
    dcs: Dcs,
    pub nodes: Vec<Node>,
    queue: BinaryHeap<Reverse<(i64, u64, Ev)>>,
    seq: u64,
    /// Until when DCS calls are slow.
    dcs_slow_until: i64,
    /// Timeline switches: (ended timeline, switch LSN, new leader).
    pub forks: Vec<(i64, i64, String)>,
    trace: VecDeque<String>,
    pub events: usize,
    /// Counters for the report.
    pub stats: Stats,
}

#[derive(Debug, Clone, Default)]
pub(super) struct Stats {
    pub promotions: usize,
    pub faults: usize,
    pub cycles: usize,
    /// Runs that ended leaderless in Patroni's `check_timeline` stall
    /// (see [`check`]).
    pub timeline_stalls: usize,
    /// How often each decision message came out (node names as `X`), to
    /// see which paths of `decide` the runs went through.
    pub messages: std::collections::BTreeMap<String, usize>,
}

impl Sim {
    pub fn new(plan: Plan) -> Sim {
        let mut rng = Rng::new(plan.seed);
        let nodes = (0..plan.nodes)
            .map(|i| {
                let mut tags = Map::new();
                // Node 0 may always fail over; others sometimes may not.
                let nofailover = i > 0 && rng.chance(25);
                if nofailover {
                    tags.insert("nofailover".into(), Value::Bool(true));
                }
                let lag = if rng.chance(20) {
                    rng.range(1_100_000, 3_000_000)
                } else {
                    rng.range(0, 64_000)
                };
                Node {
                    name: format!("n{i}"),
                    tags,
                    nofailover,
                    alive: true,
                    epoch: 0,
                    pg: Pg::default(),
                    state: "stopped".into(),
                    role: "uninitialized".into(),
                    is_leader: false,
                    crash_recovery_started: false,
                    start_failed: false,
                    seen_running: false,
                    cached: None,
                    cycle: None,
                    dcs_cut: false,
                    peers_cut: false,
                    stop_requested: false,
                    lag,
                }
            })
            .collect();
        let settings = HaSettings {
            loop_wait: plan.timing.loop_wait / 1000,
            bootstrap_configured: true,
            check_timeline: rng.chance(50),
            // 0: a crashed primary hands over instead of restarting.
            primary_start_timeout: if rng.chance(25) { 0 } else { 300 },
            ..HaSettings::default()
        };
        let mut sim = Sim {
            dcs: Dcs::new(plan.timing.ttl),
            now: 0,
            settings,
            rng,
            nodes,
            queue: BinaryHeap::new(),
            seq: 0,
            dcs_slow_until: 0,
            forks: Vec::new(),
            trace: VecDeque::new(),
            events: 0,
            stats: Stats::default(),
            plan,
        };
        for i in 0..sim.nodes.len() {
            let at = sim.rng.range(0, 2_000);
            sim.schedule(at, Ev::Cycle { node: i, epoch: 0 });
        }
        sim.schedule(sim.plan.fault_start, Ev::Fault);
        sim.schedule(sim.plan.fault_end, Ev::Heal);
        sim
    }

    fn schedule(&mut self, at: i64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Reverse((at, self.seq, ev)));
    }

    pub(super) fn log(&mut self, node: Option<usize>, line: impl AsRef<str>) {
        if self.trace.len() >= self.plan.trace_len {
            self.trace.pop_front();
        }
        let who = node.map_or("--".to_owned(), |i| self.nodes[i].name.clone());
        self.trace
            .push_back(format!("{:>7} {who}: {}", self.now, line.as_ref()));
    }

    /// The failure report: seed, the last events, every node's state.
    pub fn report(&self, what: &str) -> String {
        let mut out = format!(
            "simulation invariant violated (seed {}, check_timeline {}): {what}\n--- last {} events ---\n",
            self.plan.seed,
            self.settings.check_timeline,
            self.trace.len()
        );
        for l in &self.trace {
            out.push_str(l);
            out.push('\n');
        }
        out.push_str("--- nodes ---\n");
        for n in &self.nodes {
            out.push_str(&format!(
                "{} alive={} leader={} nofailover={} dcs_cut={} peers_cut={} pg={:?}\n",
                n.name, n.alive, n.is_leader, n.nofailover, n.dcs_cut, n.peers_cut, n.pg
            ));
        }
        out.push_str(&format!("dcs leader: {:?}\n", self.dcs.lease(self.now)));
        out
    }

    /// Run to the end; `Err` carries the failure report.
    pub fn run(&mut self) -> Result<(), String> {
        let end = self.plan.fault_end + self.plan.quiet;
        self.run_until(end)?;
        if self.now >= end {
            match self.check_liveness() {
                Ok(()) => {}
                Err(_) if !self.plan.strict_liveness && self.timeline_stall() => {
                    self.stats.timeline_stalls += 1
                }
                Err(e) => return Err(self.report(&e)),
            }
        }
        Ok(())
    }

    /// Handle every event due up to `until`, checking safety after each,
    /// then move the clock to `until` (unless the event budget ran out).
    pub fn run_until(&mut self, until: i64) -> Result<(), String> {
        while let Some(Reverse((at, _, _))) = self.queue.peek() {
            if *at > until || self.events >= self.plan.max_events {
                break;
            }
            let Some(Reverse((at, _, ev))) = self.queue.pop() else {
                break;
            };
            self.advance(at);
            self.events += 1;
            self.handle(ev).map_err(|e| self.report(&e))?;
            self.check_safety().map_err(|e| self.report(&e))?;
        }
        if self.events < self.plan.max_events {
            self.advance(until);
        }
        Ok(())
    }

    /// Move the clock: primaries write, replicas stream what they can
    /// reach.
    fn advance(&mut self, to: i64) {
        let dt = (to - self.now).max(0);
        self.now = to.max(self.now);
        for n in &mut self.nodes {
            if n.pg.running && n.pg.primary {
                n.pg.wal += dt * WAL_RATE;
            }
        }
        for i in 0..self.nodes.len() {
            self.stream(i);
        }
    }

    /// Can `a` and `b` talk to each other (API or replication)?
    pub(super) fn linked(&self, a: usize, b: usize) -> bool {
        !self.nodes[a].peers_cut && !self.nodes[b].peers_cut
    }

    /// A running replica catches up with the primary it follows, down to
    /// its lag, moving to the primary's timeline first.
    fn stream(&mut self, i: usize) {
        let n = &self.nodes[i];
        if !n.pg.running || n.pg.primary {
            return;
        }
        let Some(src) = n.pg.following.as_deref() else {
            return;
        };
        let Some(j) = self.nodes.iter().position(|m| m.name == src) else {
            return;
        };
        let s = &self.nodes[j];
        if j == i || !s.pg.running || !s.pg.primary || !self.linked(i, j) {
            return;
        }
        let (stl, swal, lag) = (s.pg.timeline, s.pg.wal, n.lag);
        let n = &mut self.nodes[i];
        if stl != n.pg.timeline {
            // A timeline switch, or pg_rewind back to the primary's
            // history when ours diverged (a newer or older timeline).
            n.pg.timeline = stl;
            n.pg.wal = n.pg.wal.min(swal);
        }
        n.pg.wal = n.pg.wal.max(swal - lag);
    }

    fn handle(&mut self, ev: Ev) -> Result<(), String> {
        match ev {
            Ev::Cycle { node, epoch } => {
                if self.nodes[node].alive && self.nodes[node].epoch == epoch {
                    self.start_cycle(node)?;
                }
            }
            Ev::Resume { node, epoch } => {
                if self.nodes[node].alive && self.nodes[node].epoch == epoch {
                    self.resume(node)?;
                }
            }
            Ev::Fault => {
                if self.now < self.plan.fault_end {
                    self.inject_fault()?;
                    let next = self.rng.range(1_000, 2 * self.plan.fault_every);
                    self.schedule(self.now + next, Ev::Fault);
                }
            }
            Ev::Restart { node } => {
                if self.nodes[node].stop_requested {
                    // The stop waits for the running cycle: come back after.
                    self.schedule(self.now + 1_000, Ev::Restart { node });
                } else {
                    self.restart(node);
                }
            }
            Ev::HealDcs { node } => {
                self.nodes[node].dcs_cut = false;
                self.log(Some(node), "reaches the DCS again");
            }
            Ev::HealPeers { node } => {
                self.nodes[node].peers_cut = false;
                self.log(Some(node), "reaches its peers again");
            }
            Ev::LateWrite { node, acquire } => {
                let name = self.nodes[node].name.clone();
                let ok = if acquire {
                    self.dcs.acquire(&name, self.now)
                } else {
                    self.dcs.refresh(&name, self.now)
                };
                let what = if acquire { "acquire" } else { "refresh" };
                self.log(Some(node), format!("late {what} reaches the DCS -> {ok}"));
            }
            Ev::DcsFast => {
                if self.now >= self.dcs_slow_until {
                    self.log(None, "DCS fast again");
                }
            }
            Ev::Heal => {
                self.log(None, "faults stop; everything healed");
                self.dcs_slow_until = 0;
                for i in 0..self.nodes.len() {
                    self.nodes[i].dcs_cut = false;
                    self.nodes[i].peers_cut = false;
                    if !self.nodes[i].alive {
                        self.restart(i);
                    }
                }
            }
        }
        Ok(())
    }

    fn inject_fault(&mut self) -> Result<(), String> {
        self.stats.faults += 1;
        let i = self.rng.below(self.nodes.len() as u64) as usize;
        let name = self.nodes[i].name.clone();
        match self.rng.below(100) {
            0..=14 => {
                if self.nodes[i].alive {
                    self.log(Some(i), "FAULT: node lost (daemon and PostgreSQL)");
                    self.kill(i);
                    self.pg_crash(i);
                    let back = self.rng.range(5_000, 60_000);
                    self.schedule(self.now + back, Ev::Restart { node: i });
                }
            }
            15..=29 => {
                if self.nodes[i].pg.running {
                    self.log(Some(i), "FAULT: PostgreSQL crashed");
                    self.pg_crash(i);
                }
            }
            30..=44 => {
                self.log(Some(i), "FAULT: cut from the DCS");
                self.nodes[i].dcs_cut = true;
                let back = self.rng.range(5_000, 60_000);
                self.schedule(self.now + back, Ev::HealDcs { node: i });
            }
            45..=54 => {
                self.log(Some(i), "FAULT: cut from its peers");
                self.nodes[i].peers_cut = true;
                let back = self.rng.range(5_000, 60_000);
                self.schedule(self.now + back, Ev::HealPeers { node: i });
            }
            55..=64 => {
                let d = self.rng.range(5_000, 40_000);
                self.log(None, format!("FAULT: DCS slow for {d} ms"));
                self.dcs_slow_until = self.dcs_slow_until.max(self.now + d);
                self.schedule(self.now + d, Ev::DcsFast);
            }
            65..=79 => {
                if self.nodes[i].alive {
                    self.log(Some(i), "FAULT: clean stop requested");
                    self.request_stop(i)?;
                    let back = self.rng.range(5_000, 40_000);
                    self.schedule(self.now + back, Ev::Restart { node: i });
                }
            }
            p => {
                // patronictl switchover/failover: write the failover key.
                let leader = self.dcs.leader_owner(self.now).map(str::to_owned);
                let candidates: Vec<String> = self
                    .nodes
                    .iter()
                    .filter(|n| !n.nofailover && Some(&n.name) != leader.as_ref())
                    .map(|n| n.name.clone())
                    .collect();
                let mut value = Map::new();
                let switchover = p < 92 && leader.is_some();
                if switchover {
                    value.insert("leader".into(), leader.clone().unwrap_or_default().into());
                }
                if !candidates.is_empty() && (!switchover || self.rng.chance(70)) {
                    let c = &candidates[self.rng.below(candidates.len() as u64) as usize];
                    value.insert("member".into(), c.clone().into());
                }
                if value.is_empty() {
                    return Ok(());
                }
                if switchover && self.rng.chance(25) {
                    let delay = self.rng.range(2_000, 25_000);
                    let at = self.clock(self.now + delay);
                    value.insert("scheduled_at".into(), at.to_rfc3339().into());
                }
                let text = Value::Object(value).to_string();
                self.log(
                    None,
                    format!("FAULT: operator writes failover key {text} (on {name})"),
                );
                self.dcs.set_failover(&text, None, self.now);
            }
        }
        Ok(())
    }

    /// The wall clock the nodes read: a fixed epoch plus simulated time.
    pub(super) fn clock(&self, at: i64) -> chrono::DateTime<chrono::Utc> {
        chrono::DateTime::from_timestamp_millis(1_795_000_000_000 + at).unwrap_or_default()
    }

    /// The daemon process is gone (its PostgreSQL is handled apart).
    fn kill(&mut self, i: usize) {
        let n = &mut self.nodes[i];
        n.alive = false;
        n.epoch += 1;
        n.cycle = None;
        n.is_leader = false;
        n.stop_requested = false;
    }

    /// PostgreSQL dies without a shutdown checkpoint.
    fn pg_crash(&mut self, i: usize) {
        let pg = &mut self.nodes[i].pg;
        if pg.running {
            pg.running = false;
            pg.cluster_state = if pg.primary {
                "in production"
            } else {
                "in archive recovery"
            };
        }
    }

    /// A fresh daemon starts (its in-memory state starts over).
    fn restart(&mut self, i: usize) {
        if self.nodes[i].alive {
            return;
        }
        let n = &mut self.nodes[i];
        n.alive = true;
        n.state = if n.pg.running { "running" } else { "stopped" }.into();
        n.role = "uninitialized".into();
        n.is_leader = false;
        n.crash_recovery_started = false;
        n.start_failed = false;
        n.seen_running = false;
        n.cached = None;
        let epoch = n.epoch;
        self.log(Some(i), "daemon starts");
        let at = self.now + self.rng.range(0, 1_000);
        self.schedule(at, Ev::Cycle { node: i, epoch });
    }
}
