//! The simulated executor: one node's HA cycle the way
//! `src/daemon/cycle.rs` runs it, against the simulated DCS and
//! PostgreSQL. Each DCS call is a separate event (see [`Sim::dcs_call`]),
//! so a cycle spans simulated time and interleaves with other nodes.

use serde_json::{json, Map, Value};

use super::{Ev, InFlight, Outcome, Pending, Sim, START_FAILURE_PERCENT, SYSID};
use crate::ha::decide::{
    decide, decide_dcs_error, decide_shutdown, Action, Decision, DemoteMode, Facts, LocalPg, Me,
    Query, Step,
};
use crate::ha::race::PeerStatus;
use crate::model::Cluster;

/// Questions one cycle may ask before the executor gives up (as cycle.rs).
const MAX_QUERIES: usize = 8;
/// The peers' API timeout (`daemon/peers.rs`), in milliseconds.
const PEER_TIMEOUT: i64 = 2_000;

impl Sim {
    fn me(&self, i: usize) -> Me {
        Me {
            name: self.nodes[i].name.clone(),
            tags: self.nodes[i].tags.clone(),
        }
    }

    /// How a DCS call made now will end, and after how long. Cut from the
    /// DCS, it fails (after a while); a slow DCS takes up to twice
    /// `retry_timeout`, and past `retry_timeout` (plus the client's slack)
    /// the caller gives up while the DCS may still apply the request.
    fn dcs_call(&mut self, i: usize) -> (i64, Outcome) {
        let retry = self.plan.timing.retry_timeout;
        let give_up = retry + self.rng.range(0, self.plan.timing.call_slack);
        if self.nodes[i].dcs_cut {
            // Mostly a connection that hangs until the deadline; sometimes
            // refused at once.
            let delay = if self.rng.chance(70) {
                give_up
            } else {
                self.rng.range(100, 2_000)
            };
            return (delay, Outcome::Failed);
        }
        if self.now < self.dcs_slow_until {
            let latency = self.rng.range(0, 2 * retry);
            if latency <= retry {
                return (latency, Outcome::Ok);
            }
            let outcome = if self.rng.chance(50) {
                Outcome::LostReply
            } else {
                Outcome::Failed
            };
            return (give_up, outcome);
        }
        (self.rng.range(1, 30), Outcome::Ok)
    }

    /// What the daemon observes of its PostgreSQL (`Postgres::observe`).
    fn observe(&mut self, i: usize) -> LocalPg {
        let n = &mut self.nodes[i];
        let running = n.pg.running;
        if running {
            n.state = "running".into();
        } else if n.state == "running" {
            n.state = "crashed".into();
        }
        if running {
            if n.pg.primary && n.role != "primary" {
                n.role = "primary".into();
            } else if !n.pg.primary && n.role != "replica" && n.role != "promoted" {
                n.role = "replica".into();
            }
        }
        LocalPg {
            running,
            starting: false,
            is_primary: running && n.pg.primary,
            role: n.role.clone(),
            timeline: running.then_some(n.pg.timeline),
            wal_position: if running { n.pg.wal } else { 0 },
            data_directory_empty: !n.pg.data,
            data_directory_error: None,
            sysid: n.pg.data.then(|| SYSID.to_owned()),
            cluster_state: (!running && n.pg.data).then(|| n.pg.cluster_state.to_owned()),
            crashed: n.state == "crashed",
            recovery_conf: n.pg.standby_signal,
            backup_label: false,
            crash_recovery_started: n.crash_recovery_started,
            start_failed: n.start_failed,
            seen_running: n.seen_running,
        }
    }

    pub(super) fn start_cycle(&mut self, i: usize) -> Result<(), String> {
        self.stats.cycles += 1;
        let pg = self.observe(i);
        self.nodes[i].start_failed = false;
        let (delay, outcome) = self.dcs_call(i);
        self.nodes[i].cycle = Some(InFlight {
            started: self.now,
            pg,
            cluster: Cluster::default(),
            facts: Facts::default(),
            queries: 0,
            pending: Pending::Read(outcome),
        });
        let epoch = self.nodes[i].epoch;
        self.schedule(self.now + delay, Ev::Resume { node: i, epoch });
        Ok(())
    }

    /// The call the cycle waited for completed: apply it, go on.
    pub(super) fn resume(&mut self, i: usize) -> Result<(), String> {
        let Some(mut cycle) = self.nodes[i].cycle.take() else {
            return Ok(());
        };
        let cut = self.nodes[i].dcs_cut;
        match cycle.pending.clone() {
            Pending::Read(outcome) => {
                if outcome != Outcome::Ok || cut {
                    return self.dcs_unreachable(i, cycle.started);
                }
                let cluster = self.dcs.snapshot(self.now);
                self.nodes[i].cached = Some(cluster.clone());
                if cluster.member(&self.nodes[i].name).is_none() {
                    self.touch_member(i);
                }
                cycle.cluster = cluster;
            }
            Pending::Query(q, outcome) => self.apply_query(i, q, outcome, &mut cycle),
            Pending::Sleep => cycle.facts.slept = true,
            Pending::Peers(peers) => cycle.facts.peers = Some(peers),
            Pending::Publish { leader } => {
                if !cut {
                    if leader {
                        self.housekeeping(i);
                    }
                    self.touch_member(i);
                }
                return self.next_cycle(i, cycle.started);
            }
        }
        self.converse(i, cycle)
    }

    /// A DCS query reached the DCS (or not): record its answer.
    fn apply_query(&mut self, i: usize, q: Query, outcome: Outcome, cycle: &mut InFlight) {
        let cut = self.nodes[i].dcs_cut;
        let applied = outcome != Outcome::Failed && !cut;
        let answered = outcome == Outcome::Ok && !cut;
        let name = self.nodes[i].name.clone();
        let now = self.now;
        if outcome == Outcome::LostReply && !cut {
            // The write lands later, maybe after the key expired.
            if let Query::RefreshLock | Query::AcquireLock = q {
                let acquire = q == Query::AcquireLock;
                let at = now + self.rng.range(0, self.plan.timing.ttl);
                self.schedule(at, Ev::LateWrite { node: i, acquire });
            }
        }
        match q {
            Query::RefreshLock => {
                let ok = answered && self.dcs.refresh(&name, now);
                self.nodes[i].is_leader = ok;
                cycle.facts.lock_refreshed = Some(ok);
                self.log(Some(i), format!("refresh leader key -> {ok} ({outcome:?})"));
            }
            Query::AcquireLock => {
                let ok = answered && self.dcs.acquire(&name, now);
                self.nodes[i].is_leader = ok;
                cycle.facts.lock_acquired = Some(ok);
                self.log(Some(i), format!("acquire leader key -> {ok} ({outcome:?})"));
            }
            Query::ReloadCluster(pending) => {
                if answered {
                    let c = self.dcs.snapshot(now);
                    self.nodes[i].cached = Some(c.clone());
                    cycle.cluster = c;
                }
                cycle.facts.pending_follow = Some(pending);
            }
            Query::AcquireInitializeKey => {
                let won = applied && self.dcs.create_initialize("", now) && answered;
                cycle.facts.initialize_won = Some(won);
                self.log(Some(i), format!("initialize race -> {won}"));
            }
            Query::WriteInitializeKey { sysid, create_new } => {
                let ok = applied && self.dcs.write_initialize(&sysid, create_new, now) && answered;
                cycle.facts.initialize_written = Some(ok);
            }
            // The simulated clusters run without synchronous mode.
            Query::ClaimSyncForPromote => cycle.facts.sync_claimed = Some(applied && answered),
            Query::WriteDynamicConfig => cycle.facts.config_written = true,
            Query::FetchPeerStatuses(_)
            | Query::CurrentTime
            | Query::SleepUntil(_)
            | Query::ActivateWatchdog => {}
            // Failsafe mode is not simulated: nobody accepts.
            Query::PostFailsafe(_) => cycle.facts.failsafe_accepted = Some(false),
        }
    }

    /// Ask `decide` until it needs the DCS or decides.
    fn converse(&mut self, i: usize, mut cycle: InFlight) -> Result<(), String> {
        let me = self.me(i);
        loop {
            if cycle.queries >= MAX_QUERIES {
                return Err(format!(
                    "{}: decide asked more than {MAX_QUERIES} questions in one cycle",
                    me.name
                ));
            }
            match decide(&cycle.cluster, &me, &cycle.pg, &self.settings, &cycle.facts) {
                Step::Query(q) => {
                    cycle.queries += 1;
                    match q {
                        Query::FetchPeerStatuses(names) => {
                            let (peers, timed_out) = self.peer_statuses(i, &cycle.cluster, &names);
                            let delay = if timed_out {
                                PEER_TIMEOUT
                            } else {
                                self.rng.range(1, 20)
                            };
                            cycle.pending = Pending::Peers(peers);
                            self.park(i, cycle, delay);
                            return Ok(());
                        }
                        Query::CurrentTime => cycle.facts.now = Some(self.clock(self.now)),
                        // The simulated nodes have no watchdog device
                        // (automatic mode without one: always armed).
                        Query::ActivateWatchdog => cycle.facts.watchdog_armed = Some(true),
                        Query::SleepUntil(at) => {
                            let wait = (at - self.clock(self.now)).num_milliseconds().max(0);
                            cycle.pending = Pending::Sleep;
                            self.park(i, cycle, wait);
                            return Ok(());
                        }
                        q => {
                            let (delay, outcome) = self.dcs_call(i);
                            cycle.pending = Pending::Query(q, outcome);
                            self.park(i, cycle, delay);
                            return Ok(());
                        }
                    }
                }
                Step::Done(decision) => {
                    self.execute(i, &decision, &cycle, false)?;
                    return self.end_cycle(i, cycle);
                }
                Step::Unsupported(what) => {
                    return Err(format!("{}: decide found {what} unsupported", me.name));
                }
            }
        }
    }

    fn park(&mut self, i: usize, cycle: InFlight, delay: i64) {
        self.nodes[i].cycle = Some(cycle);
        let epoch = self.nodes[i].epoch;
        self.schedule(self.now + delay, Ev::Resume { node: i, epoch });
    }

    /// `GET /patroni` on each named member, answered by the simulated
    /// node when its daemon runs and the network lets the call through;
    /// true when some call hit the network and waited for its timeout.
    fn peer_statuses(
        &self,
        i: usize,
        cluster: &Cluster,
        names: &[String],
    ) -> (Vec<PeerStatus>, bool) {
        let timed_out = names.iter().any(|name| {
            self.nodes
                .iter()
                .position(|n| &n.name == name)
                .is_some_and(|j| !self.linked(i, j))
        });
        let statuses = names
            .iter()
            .filter_map(|name| {
                let member = cluster.member(name)?;
                let j = self.nodes.iter().position(|n| &n.name == name);
                let body = j
                    .filter(|&j| self.nodes[j].alive && self.linked(i, j))
                    .map(|j| self.api_body(j));
                Some(match body {
                    Some(b) => PeerStatus::from_api_response(member, &b),
                    None => PeerStatus::unknown(member),
                })
            })
            .collect();
        (statuses, timed_out)
    }

    /// A node's `/patroni` answer (without a WAL object when PostgreSQL
    /// is down, which the race reads as "not reachable").
    fn api_body(&self, j: usize) -> Value {
        let n = &self.nodes[j];
        let mut body = json!({
            "state": if n.pg.running { "running" } else { "stopped" },
            "role": if n.pg.primary { "primary" } else { "replica" },
            "tags": Value::Object(n.tags.clone()),
        });
        if n.pg.running {
            body["timeline"] = n.pg.timeline.into();
            body["xlog"] = if n.pg.primary {
                json!({"location": n.pg.wal})
            } else {
                json!({"received_location": n.pg.wal, "replayed_location": n.pg.wal})
            };
        }
        body
    }

    /// Run the decision's actions in order; the first failure ends them.
    /// `stopping`: the daemon is shutting down (an offline demotion does
    /// not start PostgreSQL again).
    fn execute(
        &mut self,
        i: usize,
        d: &Decision,
        cycle: &InFlight,
        stopping: bool,
    ) -> Result<(), String> {
        self.log(Some(i), format!("{} {:?}", d.message, d.actions));
        let mut shape = d.message.clone();
        for n in &self.nodes {
            shape = shape.replace(&format!("({})", n.name), "(X)");
        }
        *self.stats.messages.entry(shape).or_default() += 1;
        for action in &d.actions {
            if let Action::Promote = action {
                self.check_promote(i, cycle, &d.message)?;
            }
            if let Err(e) = self.run_action(i, action, &cycle.cluster, stopping)? {
                self.log(Some(i), format!("{action:?} failed: {e}"));
                break;
            }
        }
        Ok(())
    }

    /// `Ok(Err(_))`: the action failed (the cycle goes on to its end);
    /// `Err(_)`: the simulation found something to report.
    fn run_action(
        &mut self,
        i: usize,
        action: &Action,
        cluster: &Cluster,
        stopping: bool,
    ) -> Result<Result<(), String>, String> {
        let name = self.nodes[i].name.clone();
        let now = self.now;
        Ok(match action {
            Action::ProcessSyncReplication | Action::DisableSyncReplication => Ok(()),
            // The simulated clusters are never standby clusters.
            Action::FollowRemote { .. } | Action::BootstrapStandbyLeader => {
                Err("standby clusters are not simulated".into())
            }
            Action::Promote => {
                if !self.nodes[i].pg.running {
                    return Ok(Err("PostgreSQL is not running".into()));
                }
                let (tl, wal) = (self.nodes[i].pg.timeline, self.nodes[i].pg.wal);
                self.forks.push((tl, wal, name.clone()));
                let pg = &mut self.nodes[i].pg;
                pg.timeline += 1;
                pg.primary = true;
                pg.standby_signal = false;
                pg.following = None;
                self.nodes[i].role = "primary".into();
                self.stats.promotions += 1;
                if cluster.failover.as_ref().is_some_and(|f| !f.is_empty()) {
                    return Ok(self.clear_failover(i, cluster));
                }
                Ok(())
            }
            Action::Demote(mode) => {
                let immediate = matches!(mode, DemoteMode::Immediate | DemoteMode::ImmediateNoLock);
                let release = matches!(mode, DemoteMode::Graceful | DemoteMode::Immediate);
                if *mode == DemoteMode::Graceful {
                    self.catch_up_replicas(i);
                }
                self.stop(i, immediate);
                if release {
                    self.release_leader_key(i);
                }
                self.nodes[i].is_leader = false;
                self.nodes[i].role = "demoted".into();
                if *mode == DemoteMode::Offline {
                    if stopping {
                        return Ok(Ok(()));
                    }
                    return Ok(self.start_as_replica(i, None));
                }
                let leader = if self.nodes[i].dcs_cut {
                    None
                } else {
                    self.dcs.leader_owner(now).map(str::to_owned)
                };
                let leader = leader.filter(|l| *l != name);
                self.start_as_replica(i, leader)
            }
            Action::Follow { member } => {
                if !self.nodes[i].pg.running {
                    return Ok(self.start_as_replica(i, member.clone()));
                }
                self.nodes[i].pg.following = member.clone();
                Ok(())
            }
            Action::StartAsReplica { member } => self.start_as_replica(i, member.clone()),
            Action::Bootstrap => {
                let n = &mut self.nodes[i];
                n.pg = super::Pg {
                    running: true,
                    primary: true,
                    timeline: 1,
                    wal: 1_000_000,
                    data: true,
                    cluster_state: "in production",
                    standby_signal: false,
                    following: None,
                };
                n.state = "running".into();
                n.role = "primary".into();
                if n.dcs_cut {
                    return Ok(Err("DCS unreachable after initdb".into()));
                }
                self.dcs.write_initialize(SYSID, false, now);
                let got = self.dcs.acquire(&name, now);
                self.nodes[i].is_leader = got;
                self.dcs.write_history("[]");
                Ok(())
            }
            Action::CreateReplica { from } => {
                let Some(j) = self.nodes.iter().position(|n| &n.name == from) else {
                    return Ok(Err(format!("no member {from}")));
                };
                let s = &self.nodes[j];
                if !s.alive || !s.pg.running || !self.linked(i, j) {
                    return Ok(Err(format!("cannot copy from {from}")));
                }
                let (tl, wal) = (s.pg.timeline, s.pg.wal);
                let leader = cluster.leader.as_ref().map(|l| l.name.clone());
                let n = &mut self.nodes[i];
                n.pg.data = true;
                n.pg.timeline = tl;
                n.pg.wal = wal;
                n.pg.primary = false;
                n.pg.cluster_state = "shut down in recovery";
                self.start_as_replica(i, leader.filter(|l| *l != name))
            }
            Action::CreateReplicaWithoutLeader => {
                return Err(format!("{name}: replica without leader is not configured"));
            }
            Action::StartAsPrimary => {
                let fails = self.rng.chance(START_FAILURE_PERCENT);
                let n = &mut self.nodes[i];
                if !n.pg.data || fails {
                    n.start_failed = true;
                    return Ok(Err("PostgreSQL did not start".into()));
                }
                n.pg.running = true;
                n.pg.primary = true;
                n.pg.standby_signal = false;
                n.pg.following = None;
                n.state = "running".into();
                n.crash_recovery_started = false;
                Ok(())
            }
            Action::CrashRecovery => {
                let n = &mut self.nodes[i];
                if n.pg.running {
                    return Ok(Err("PostgreSQL is running".into()));
                }
                n.pg.cluster_state = if n.pg.primary {
                    "shut down"
                } else {
                    "shut down in recovery"
                };
                n.crash_recovery_started = true;
                Ok(())
            }
            Action::StopImmediately => {
                self.stop(i, true);
                Ok(())
            }
            Action::StopFast => {
                self.stop(i, false);
                Ok(())
            }
            Action::ReleaseLeaderKey => {
                self.release_leader_key(i);
                self.touch_member(i);
                Ok(())
            }
            Action::ClearFailoverKey => self.clear_failover(i, cluster),
            Action::DropFailoverLeader => {
                return Err(format!("{name}: DropFailoverLeader outside pause mode"));
            }
            Action::Exit { reason } => {
                return Err(format!("{name} exits: {reason}"));
            }
            Action::HoldPrimaryInFailsafe => {
                return Err(format!("{name}: failsafe mode is not simulated"));
            }
        })
    }

    fn clear_failover(&mut self, i: usize, cluster: &Cluster) -> Result<(), String> {
        if self.nodes[i].dcs_cut {
            return Err("cannot clear the failover key: DCS unreachable".into());
        }
        let version = cluster.failover.as_ref().and_then(|f| f.version);
        self.dcs.set_failover("{}", version, self.now);
        Ok(())
    }

    /// Stop PostgreSQL: `immediate` leaves it needing crash recovery.
    fn stop(&mut self, i: usize, immediate: bool) {
        let n = &mut self.nodes[i];
        if n.pg.running {
            n.pg.running = false;
            n.pg.cluster_state = match (immediate, n.pg.primary) {
                (true, true) => "in production",
                (true, false) => "in archive recovery",
                (false, true) => "shut down",
                (false, false) => "shut down in recovery",
            };
        }
        n.state = "stopped".into();
    }

    fn start_as_replica(&mut self, i: usize, member: Option<String>) -> Result<(), String> {
        if self.nodes[i].pg.running {
            return Ok(());
        }
        let fails = self.rng.chance(START_FAILURE_PERCENT);
        let n = &mut self.nodes[i];
        if !n.pg.data || fails {
            n.start_failed = true;
            return Err("PostgreSQL did not start".into());
        }
        n.pg.running = true;
        n.pg.primary = false;
        n.pg.standby_signal = true;
        n.pg.following = member;
        n.state = "running".into();
        n.crash_recovery_started = false;
        self.stream(i);
        Ok(())
    }

    /// Before the leader key goes, replicas streaming from us receive
    /// everything (the shutdown checkpoint wait).
    fn catch_up_replicas(&mut self, i: usize) {
        let (name, tl, wal) = {
            let n = &self.nodes[i];
            (n.name.clone(), n.pg.timeline, n.pg.wal)
        };
        for j in 0..self.nodes.len() {
            let linked = self.linked(i, j);
            let r = &mut self.nodes[j];
            if j != i
                && linked
                && r.pg.running
                && !r.pg.primary
                && r.pg.following.as_deref() == Some(name.as_str())
                && r.pg.timeline == tl
            {
                r.pg.wal = r.pg.wal.max(wal);
            }
        }
    }

    /// Write our last position to `/status`, then compare-and-delete.
    fn release_leader_key(&mut self, i: usize) {
        self.nodes[i].is_leader = false;
        if self.nodes[i].dcs_cut {
            return;
        }
        let wal = self.nodes[i].pg.wal;
        self.dcs.write_status(&json!({ "optime": wal }).to_string());
        let name = self.nodes[i].name.clone();
        let released = self.dcs.delete_leader(&name, self.now);
        self.log(Some(i), format!("release leader key -> {released}"));
    }

    fn touch_member(&mut self, i: usize) {
        if self.nodes[i].dcs_cut {
            return;
        }
        let n = &self.nodes[i];
        let mut data = Map::new();
        data.insert(
            "conn_url".into(),
            format!("postgres://{}:5432/postgres", n.name).into(),
        );
        data.insert(
            "api_url".into(),
            format!("http://{}:8008/patroni", n.name).into(),
        );
        data.insert("state".into(), n.state.clone().into());
        data.insert("role".into(), n.role.clone().into());
        data.insert("version".into(), "4.1.5".into());
        if n.pg.running {
            data.insert("xlog_location".into(), n.pg.wal.into());
            data.insert("timeline".into(), n.pg.timeline.into());
        }
        if !n.tags.is_empty() {
            data.insert("tags".into(), Value::Object(n.tags.clone()));
        }
        let value = Value::Object(data).to_string();
        let name = n.name.clone();
        self.dcs.touch_member(&name, &value, self.now);
    }

    /// The leader's chores after its cycle: `/status` and `/history`.
    fn housekeeping(&mut self, i: usize) {
        let n = &self.nodes[i];
        if n.dcs_cut || !n.pg.running || !n.pg.primary {
            return;
        }
        let (wal, tl) = (n.pg.wal, n.pg.timeline);
        self.dcs.write_status(&json!({ "optime": wal }).to_string());
        let lines: Vec<Value> = self
            .forks
            .iter()
            .filter(|(t, _, _)| *t < tl)
            .map(|(t, lsn, who)| json!([t, lsn, "no recovery target specified", "", who]))
            .collect();
        self.dcs.write_history(&Value::Array(lines).to_string());
    }

    /// After the decision: the leader's `/status`, the member key, then
    /// the next cycle. The writes take DCS time like any call (they land
    /// together once the last returns): a leader cut from the DCS right
    /// after a refresh spends up to two `retry_timeout`s here before its
    /// next cycle even starts.
    fn end_cycle(&mut self, i: usize, mut cycle: InFlight) -> Result<(), String> {
        let leader = self.nodes[i].is_leader;
        let pg = self.observe(i);
        self.nodes[i].seen_running = pg.running;
        let mut delay = self.dcs_call(i).0;
        if leader {
            delay += self.dcs_call(i).0;
        }
        cycle.pending = Pending::Publish { leader };
        self.park(i, cycle, delay);
        Ok(())
    }

    fn next_cycle(&mut self, i: usize, started: i64) -> Result<(), String> {
        if self.nodes[i].stop_requested {
            return self.shutdown(i);
        }
        let at = (started + self.plan.timing.loop_wait).max(self.now)
            + self.rng.range(0, self.plan.timing.jitter);
        let epoch = self.nodes[i].epoch;
        self.schedule(at, Ev::Cycle { node: i, epoch });
        Ok(())
    }

    /// The cluster read failed (`Daemon::dcs_unreachable`).
    fn dcs_unreachable(&mut self, i: usize, started: i64) -> Result<(), String> {
        self.nodes[i].is_leader = false;
        let pg = self.observe(i);
        match decide_dcs_error(None, &self.me(i), &pg, &self.settings, &Facts::default()) {
            Step::Done(d) => {
                let cycle = InFlight {
                    started,
                    pg,
                    cluster: Cluster::default(),
                    facts: Facts::default(),
                    queries: 0,
                    pending: Pending::Sleep,
                };
                self.execute(i, &d, &cycle, false)?;
            }
            other => return Err(format!("decide_dcs_error gave {other:?}")),
        }
        self.next_cycle(i, started)
    }

    /// A clean stop: at once between cycles, else at the cycle's end.
    pub(super) fn request_stop(&mut self, i: usize) -> Result<(), String> {
        if self.nodes[i].cycle.is_some() {
            self.nodes[i].stop_requested = true;
            return Ok(());
        }
        self.shutdown(i)
    }

    /// `Daemon::shutdown`: decide on the last snapshot, run it, exit.
    fn shutdown(&mut self, i: usize) -> Result<(), String> {
        let pg = self.observe(i);
        let cluster = self.nodes[i].cached.clone().unwrap_or_default();
        let me = self.me(i);
        let d = decide_shutdown(&cluster, &me, &pg, &self.settings);
        if d.actions.contains(&Action::ReleaseLeaderKey) && pg.running {
            self.catch_up_replicas(i);
        }
        let cycle = InFlight {
            started: self.now,
            pg,
            cluster,
            facts: Facts::default(),
            queries: 0,
            pending: Pending::Sleep,
        };
        let d = Decision {
            message: format!("shutdown: {}", d.message),
            ..d
        };
        self.execute(i, &d, &cycle, true)?;
        self.kill(i);
        self.log(Some(i), "daemon stopped");
        Ok(())
    }
}
