"""One benchmark run: start a cluster, measure each scenario, tear it down.

The scenarios run in this order on one cluster, each starting from the
healthy state the previous one left:

1. bootstrap: start -> leader key, start -> both replicas streaming;
2. idle: 30 s settle, then RSS/threads of each daemon and its CPU over 30 s;
3. switchover: a writer every 20 ms while `patronictl switchover --force` runs;
4. lost host: SIGKILL the primary's daemon and postmaster, then from the
   leader key disappearing to the first INSERT committed on a survivor.

A scenario that fails records `Failure` for its metrics; the run goes on
with the next scenario when the cluster is still usable.
"""
from __future__ import annotations

import dataclasses
import statistics
import subprocess
import sys
import threading
import time
from typing import Callable, Dict, List, Optional, Tuple, Union

import psycopg

from pytests.e2e import harness

from .cluster import (LOOP_WAIT, TTL, BenchCluster, BenchNode, LeaderKeyWatch, cpu_seconds, leader_lease, query,
                      rss_mb, streaming_replicas, threads)

START_LEADER = "start -> leader (s)"
START_STREAMING = "start -> all replicas streaming (s)"
SWITCHOVER_GAP = "switchover longest write gap (s)"
SWITCHOVER_ROWS = "switchover acknowledged rows lost"
# Informative: how long the lease outlived the killed leader. It depends on
# where in its loop the leader was when killed (the key is refreshed every
# loop_wait with a ttl lease), not on the implementation's speed.
KILL_GONE = "kill -> leader key gone (s)"
GONE_WRITABLE = "key gone -> writable new primary (s)"
IDLE_RSS = "idle RSS per daemon (MB)"
IDLE_THREADS = "threads per daemon"
IDLE_CPU = "idle CPU per daemon (% over 30 s)"

METRICS = [START_LEADER, START_STREAMING, GONE_WRITABLE, KILL_GONE, SWITCHOVER_GAP, SWITCHOVER_ROWS,
           IDLE_RSS, IDLE_THREADS, IDLE_CPU]

BOOTSTRAP_TIMEOUT = 120
SWITCHOVER_TIMEOUT = 60
WRITE_INTERVAL = 0.020


@dataclasses.dataclass
class Failure:
    """A scenario that did not complete; `reason` goes into the table cell
    and `details` (log lines) into the report below it."""
    reason: str
    details: str = ""


Sample = Union[float, Failure]


class ScenarioFailed(Exception):
    def __init__(self, reason: str, details: str = ""):
        super().__init__(reason)
        self.failure = Failure(reason, details)


def say(text: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def wait(predicate: Callable[[], object], timeout: float, what: str, cluster: BenchCluster,
         interval: float = 0.05) -> object:
    """harness.wait_for, but a timeout or a dead daemon becomes a
    ScenarioFailed carrying the daemons' recent log lines."""
    try:
        return harness.wait_for(predicate, timeout, what, interval=interval, check=cluster.check_running)
    except AssertionError as exc:
        raise ScenarioFailed(str(exc).splitlines()[0], cluster.log_tails(25)) from None


class Run:
    """Measurements of one implementation on one fresh cluster."""

    def __init__(self, cluster: BenchCluster, idle_seconds: float):
        self.cluster = cluster
        self.idle_seconds = idle_seconds
        self.samples: Dict[str, List[Sample]] = {m: [] for m in METRICS}

    def record(self, metric: str, value: Sample) -> None:
        self.samples[metric].append(value)

    def fail(self, metrics: List[str], failure: Failure) -> None:
        say(f"FAILED: {failure.reason}")
        for m in metrics:
            self.record(m, failure)

    def execute(self) -> None:
        scenarios: List[Tuple[List[str], Callable[[], None]]] = [
            ([START_LEADER, START_STREAMING], self.bootstrap),
            ([IDLE_RSS, IDLE_THREADS, IDLE_CPU], self.idle),
            ([SWITCHOVER_GAP, SWITCHOVER_ROWS], self.switchover),
            ([KILL_GONE, GONE_WRITABLE], self.lost_host),
        ]
        broken: Optional[str] = None
        for metrics, scenario in scenarios:
            if broken is not None:
                self.fail(metrics, Failure(f"not run: {broken}"))
                continue
            try:
                scenario()
            except Exception as exc:  # noqa: BLE001 - one scenario's failure is a table cell
                failure = exc.failure if isinstance(exc, ScenarioFailed) else \
                    Failure(f"{type(exc).__name__}: {exc}", self.cluster.log_tails(25))
                self.fail(metrics, failure)
                # The idle figures do not need a healthy cluster afterwards;
                # everything else leaves it in an unknown state.
                if scenario != self.idle and not self.recover():
                    broken = f"cluster unhealthy after {scenario.__name__}"

    def recover(self) -> bool:
        """After a failed scenario: is there still one leader with both
        replicas streaming (give it a couple of loops)?"""
        try:
            self.wait_all_streaming(2 * LOOP_WAIT + 10)
            return True
        except ScenarioFailed:
            return False

    # --- helpers -----------------------------------------------------------

    def leader(self) -> BenchNode:
        name = self.cluster.leader_key()
        if not name:
            raise ScenarioFailed("no leader key in the DCS")
        return self.cluster.bench_node(name)

    def wait_all_streaming(self, timeout: float) -> BenchNode:
        """Wait until the leader-key holder is a primary streaming WAL to
        both other members, as PostgreSQL itself reports it."""
        c = self.cluster

        def ready() -> Optional[BenchNode]:
            primary = self.leader()
            others = sorted(n.name for n in c.nodes if n is not primary)
            return primary if streaming_replicas(primary) == others else None
        return wait(ready, timeout, "a primary with both replicas streaming", c)  # type: ignore[return-value]

    def ensure_table(self, primary: BenchNode) -> None:
        query(primary, "CREATE TABLE IF NOT EXISTS bench_writes (id bigint PRIMARY KEY, "
                       "at timestamptz NOT NULL DEFAULT now())")

    def wait_caught_up(self, primary: BenchNode, timeout: float = 30) -> None:
        """Both replicas replayed everything the primary has written, so
        that each is a legitimate candidate (maximum_lag_on_failover)."""
        target = query(primary, "SELECT pg_current_wal_lsn()::text")[0][0]
        for n in self.cluster.nodes:
            if n is not primary:
                node = self.cluster.bench_node(n.name)
                wait(lambda: query(node, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,))[0][0],
                     timeout, f"{n.name} to replay up to {target}", self.cluster, interval=0.2)

    # --- scenarios ---------------------------------------------------------

    def bootstrap(self) -> None:
        c = self.cluster
        name = wait(c.leader_key, BOOTSTRAP_TIMEOUT, "a leader key", c, interval=0.05)
        t = time.monotonic() - c.started_at
        self.record(START_LEADER, t)
        say(f"leader {name} after {t:.2f}s")
        self.wait_all_streaming(BOOTSTRAP_TIMEOUT)
        t = time.monotonic() - c.started_at
        self.record(START_STREAMING, t)
        say(f"both replicas streaming after {t:.2f}s")

    def idle(self) -> None:
        say(f"idle: settling {self.idle_seconds:.0f}s, then CPU over {self.idle_seconds:.0f}s")
        time.sleep(self.idle_seconds)
        self.cluster.check_running()
        pids = [n.proc.pid for n in self.cluster.nodes if n.proc is not None]
        rss = [rss_mb(p) for p in pids]
        nthreads = [threads(p) for p in pids]
        before = [cpu_seconds(p) for p in pids]
        started = time.monotonic()
        time.sleep(self.idle_seconds)
        elapsed = time.monotonic() - started
        self.cluster.check_running()
        cpu = [100 * (cpu_seconds(p) - b) / elapsed for p, b in zip(pids, before)]
        for m, values in ((IDLE_RSS, rss), (IDLE_THREADS, nthreads), (IDLE_CPU, cpu)):
            for v in values:
                self.record(m, float(v))
        say(f"idle: RSS {', '.join(f'{v:.1f}' for v in rss)} MB; threads {nthreads}; "
            f"CPU {', '.join(f'{v:.2f}' for v in cpu)} %")

    def switchover(self) -> None:
        c = self.cluster
        old = self.wait_all_streaming(BOOTSTRAP_TIMEOUT)
        self.ensure_table(old)
        self.wait_caught_up(old)
        writer = Writer(c)
        writer.start()
        try:
            wait(lambda: writer.acked_on(old.name) >= 10, 10, f"the writer to commit on {old.name}", c)
            say(f"switchover from {old.name}: patronictl switchover --force")
            started = time.monotonic()
            try:
                out = c.patronictl("switchover", "--force", timeout=SWITCHOVER_TIMEOUT)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                raise ScenarioFailed(f"patronictl switchover: {str(exc).strip().splitlines()[-1]}",
                                     c.log_tails(25)) from None
            say(f"patronictl returned after {time.monotonic() - started:.2f}s "
                f"({'Successfully' in out and 'success' or 'no success message'})")

            def moved() -> bool:
                new = c.leader_key()
                # One full second of writes acknowledged by the new leader.
                return bool(new and new != old.name and writer.acked_on(new) >= 1 / WRITE_INTERVAL)
            wait(moved, SWITCHOVER_TIMEOUT, f"the leader key to leave {old.name} and writes to resume there", c)
        finally:
            writer.stop()
        if writer.error:
            raise ScenarioFailed(f"writer: {writer.error}")
        gap, gap_at = writer.longest_gap()
        new = c.bench_node(c.leader_key() or "")
        self.record(SWITCHOVER_GAP, gap)
        say(f"switchover {old.name} -> {new.name}: longest write gap {gap:.3f}s "
            f"at +{gap_at - started:.2f}s; {len(writer.acked)} writes acknowledged")
        ids = [i for i, _, _ in writer.acked]
        present = query(new, "SELECT count(*) FROM bench_writes WHERE id = ANY(%s)", (ids,))[0][0]
        lost = len(ids) - present
        self.record(SWITCHOVER_ROWS, float(lost))
        if lost:
            say(f"{lost} of {len(ids)} acknowledged rows are missing on {new.name}")

    def lost_host(self) -> None:
        c = self.cluster
        old = self.wait_all_streaming(BOOTSTRAP_TIMEOUT)
        self.ensure_table(old)
        self.wait_caught_up(old)
        survivors = [c.bench_node(n.name) for n in c.nodes if n is not old]
        watch = LeaderKeyWatch(c.etcd, c.leader_path, old.name)
        watch.start()
        prober = Prober(survivors, watch)
        prober.start()
        try:
            lease = leader_lease(c.etcd, c.leader_path)
            say(f"lost host: SIGKILL {old.name}'s daemon and postmaster (leader key lease: "
                + ("none" if lease is None else f"granted {lease[0]}s, {lease[1]}s left") + ")")
            killed = time.monotonic()
            old.kill_host()
            wait(lambda: watch.gone_at is not None or watch.error, TTL + LOOP_WAIT + 30,
                 f"the leader key of {old.name} to disappear", c)
            if watch.error:
                raise ScenarioFailed(watch.error)
            assert watch.gone_at is not None
            say(f"leader key gone {watch.gone_at - killed:.2f}s after the kill")
            wait(lambda: prober.first is not None, TTL + LOOP_WAIT + 30,
                 "an INSERT to commit on a survivor", c, interval=0.02)
        finally:
            prober.stop()
            watch.stop()
        assert prober.first is not None
        at, name = prober.first
        self.record(KILL_GONE, watch.gone_at - killed)
        self.record(GONE_WRITABLE, at - watch.gone_at)
        say(f"{name} writable {at - watch.gone_at:.3f}s after the key disappeared")


class Writer(threading.Thread):
    """INSERTs one row every 20 ms through a connection to whichever node
    is primary, re-opened (trying each node) after any error. Records the
    id, time and node of every acknowledged (committed) write."""

    def __init__(self, cluster: BenchCluster):
        super().__init__(name="writer", daemon=True)
        self.cluster = cluster
        self.acked: List[Tuple[int, float, str]] = []
        self.error: Optional[str] = None
        self._halt = threading.Event()
        self._lock = threading.Lock()
        # Ids never repeat, acknowledged or not: a write whose answer was
        # lost may still have committed.
        self._next_id = int(time.time() * 1000) * 1000

    def acked_on(self, name: str) -> int:
        with self._lock:
            return sum(1 for _, _, n in self.acked if n == name)

    def _find_primary(self) -> Optional[Tuple[psycopg.Connection, str]]:
        for n in self.cluster.nodes:
            if not n.running:
                continue
            node = self.cluster.bench_node(n.name)
            try:
                conn = node.connect(timeout=1)
            except psycopg.Error:
                continue
            try:
                if not conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
                    return conn, node.name
            except psycopg.Error:
                pass
            conn.close()
        return None

    def run(self) -> None:
        conn: Optional[psycopg.Connection] = None
        name = ""
        tick = time.monotonic()
        try:
            while not self._halt.is_set():
                if conn is None:
                    found = self._find_primary()
                    if found:
                        conn, name = found
                if conn is not None:
                    self._next_id += 1
                    try:
                        conn.execute("INSERT INTO bench_writes (id) VALUES (%s)", (self._next_id,))
                        with self._lock:
                            self.acked.append((self._next_id, time.monotonic(), name))
                    except psycopg.Error:
                        conn.close()
                        conn = None
                        continue  # look for the primary at once
                tick += WRITE_INTERVAL
                delay = tick - time.monotonic()
                if delay > 0:
                    self._halt.wait(delay)
                else:
                    tick = time.monotonic()
        except Exception as exc:  # noqa: BLE001 - reported by the scenario
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            if conn is not None:
                conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def longest_gap(self) -> Tuple[float, float]:
        """The longest time between two consecutive acknowledged writes,
        and when it started."""
        times = [t for _, t, _ in self.acked]
        if len(times) < 2:
            return float("nan"), 0.0
        return max((b - a, a) for a, b in zip(times, times[1:]))


class Prober(threading.Thread):
    """Tries an INSERT on each survivor of a lost host, slowly (every 50 ms)
    while the old leader key lives and as fast as it can once it is gone,
    and records when and where the first one commits."""

    def __init__(self, nodes: List[BenchNode], watch: LeaderKeyWatch):
        super().__init__(name="prober", daemon=True)
        self.nodes = nodes
        self.watch = watch
        self.first: Optional[Tuple[float, str]] = None
        self._halt = threading.Event()
        self._next_id = int(time.time() * 1000) * 1000 + 500_000

    def run(self) -> None:
        conns: Dict[str, Optional[psycopg.Connection]] = {n.name: None for n in self.nodes}
        try:
            while not self._halt.is_set() and self.first is None:
                for node in self.nodes:
                    conn = conns[node.name]
                    try:
                        if conn is None:
                            conn = conns[node.name] = node.connect(timeout=1)
                        self._next_id += 1
                        conn.execute("INSERT INTO bench_writes (id) VALUES (%s)", (self._next_id,))
                        self.first = (time.monotonic(), node.name)
                        break
                    except psycopg.Error as exc:
                        # A read-only error keeps the connection; a broken
                        # one is re-opened on the next round.
                        if conn is not None and (conn.closed or conn.broken
                                                 or not isinstance(exc, psycopg.errors.ReadOnlySqlTransaction)):
                            conn.close()
                            conns[node.name] = None
                if self.watch.gone.is_set():
                    self._halt.wait(0.002)
                else:
                    self.watch.gone.wait(0.05)
        finally:
            for conn in conns.values():
                if conn is not None:
                    conn.close()

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def summarize(values: List[float]) -> Optional[Tuple[float, float, float]]:
    if not values:
        return None
    return min(values), statistics.median(values), max(values)
