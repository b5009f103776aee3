"""End-to-end: a rolling swap of a live Python Patroni 4.1.5 cluster to our
daemon and back, under write load (issue #7, items 3 and 4).

A three-node Python Patroni cluster starts on etcd3 (then, as a second
module-scoped cluster, on etcd v2). A writer thread INSERTs a row every 20 ms
through whichever member is the primary, reconnecting on any error, and
records which ids PostgreSQL acknowledged and when. Then, one member at a
time, the Python daemon is stopped (SIGTERM, which stops its PostgreSQL) and
ours is started on the same data directory and config file: first the two
replicas, then the leader after a Python `patronictl switchover` hands the
leadership to one of our members. Then the same way back to Python, the
leader last through a switchover from our leader to a Python member. After
every step Python `patronictl list` must show one running leader and two
streaming replicas. At the end every acknowledged id must be on the final
primary, and the writer's longest gap (overall and during each switchover)
is printed.

With PATRONI_E2E_IMPL=python "ours" is Python Patroni too: a Python->Python
swap, the sanity check of the test itself. Run with a --basetemp of its own
(see test_patronictl.py):

    source .ci/env.sh; PATRONI_RS_BIN=$CARGO_TARGET_DIR/debug/patroni \\
        /opt/patroni-rs/venv/bin/python -m pytest pytests/e2e/test_rolling_swap.py -q -s --basetemp=/tmp/swap-bt
"""
from __future__ import annotations

import json
import threading
import time
from typing import Dict, List, Optional, Tuple

import psycopg
import pytest

from . import conftest as e2e_conftest
from . import harness
from .harness import SUPERUSER, Cluster, Node, cluster_key, patronictl_run, wait_for

pytestmark = pytest.mark.e2e

BOOTSTRAP_S = 150
HEALTHY_S = 90
WRITE_INTERVAL_S = 0.02
TABLE = "rolling_swap_writes"


def say(cluster: Cluster, text: str) -> None:
    print(f"[{cluster.dcs}] {text}", flush=True)


# --- the writer -------------------------------------------------------------------

class Writer(threading.Thread):
    """INSERTs one row every WRITE_INTERVAL_S through the current primary.

    Each attempt uses a fresh id, acknowledged or not: an INSERT whose
    connection broke mid-commit may or may not have been applied, so its id
    is neither reused nor counted as acknowledged."""

    def __init__(self, cluster: Cluster):
        super().__init__(name=f"{cluster.dcs}-writer", daemon=True)
        self.cluster = cluster
        self.acks: List[Tuple[float, int]] = []
        self.errors = 0
        self.last_error = ""
        self.started_at = 0.0
        self._stop_event = threading.Event()
        self._lock = threading.Lock()

    def _connect(self) -> Optional[psycopg.Connection]:
        leader = self.cluster.leader_key()
        if leader is None:
            return None
        node = self.cluster.node(leader)
        conn = psycopg.connect(host="127.0.0.1", port=node.pg_port, user=SUPERUSER[0], password=SUPERUSER[1],
                               dbname="postgres", connect_timeout=2, autocommit=True,
                               options="-c statement_timeout=5000")
        in_recovery = conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]
        if in_recovery:  # the leader key moved ahead of the promotion: not yet
            conn.close()
            return None
        return conn

    def run(self) -> None:
        self.started_at = time.monotonic()
        next_id = 1
        conn: Optional[psycopg.Connection] = None
        while not self._stop_event.is_set():
            try:
                if conn is None:
                    conn = self._connect()
                if conn is not None:
                    attempt, next_id = next_id, next_id + 1
                    conn.execute(f"INSERT INTO {TABLE} (id) VALUES (%s)", (attempt,))
                    with self._lock:
                        self.acks.append((time.monotonic(), attempt))
            except Exception as exc:  # noqa: BLE001 - any failure: reconnect and go on
                self.errors += 1
                self.last_error = f"{type(exc).__name__}: {exc}".strip()
                if conn is not None:
                    try:
                        conn.close()
                    except Exception:  # noqa: BLE001
                        pass
                conn = None
            self._stop_event.wait(WRITE_INTERVAL_S)
        if conn is not None:
            conn.close()

    def stop(self) -> None:
        self._stop_event.set()
        self.join(15)

    def snapshot(self) -> List[Tuple[float, int]]:
        with self._lock:
            return list(self.acks)

    def wait_ack_after(self, since: float, timeout: float = 60) -> float:
        """Wait for an acknowledgement later than `since`; its time."""
        def acked() -> Optional[float]:
            acks = self.snapshot()
            return acks[-1][0] if acks and acks[-1][0] > since else None
        return wait_for(acked, timeout, f"the writer to get a row acknowledged (last error: {self.last_error})",
                        interval=0.05)

    def longest_gap(self, start: float = 0.0, end: float = float("inf")) -> float:
        """The longest time between two consecutive acknowledgements, over
        the gaps that overlap [start, end]."""
        acks = self.snapshot()
        gaps = [b[0] - a[0] for a, b in zip(acks, acks[1:]) if b[0] >= start and a[0] <= end]
        return max(gaps, default=0.0)


# --- fixtures ---------------------------------------------------------------------

class Swap:
    """What the steps of one DCS share: the two daemons, the writer and the
    gaps measured so far."""

    def __init__(self, cluster: Cluster, ours: List[str]):
        self.cluster = cluster
        self.python = [str(harness.PYTHON_PATRONI)]
        self.ours = ours
        self.writer = Writer(cluster)
        self.gaps: Dict[str, float] = {}
        # Which daemon each member runs now ("python" or "ours"), kept by
        # replace(): with PATRONI_E2E_IMPL=python both are the same command.
        self.impl: Dict[str, str] = {n.name: "python" for n in cluster.nodes}

    def impl_of(self, node: Node) -> str:
        return self.impl[node.name]


@pytest.fixture(scope="module", params=["etcd3", "etcd"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    """A bootstrapped 3-node Python Patroni cluster (no nofailover tags: any
    member may take the lead). Named `cluster` so that the e2e conftest skips
    the later steps once one has failed."""
    if not harness.PYTHON_PATRONI.exists():
        pytest.fail(f"Python Patroni not found at {harness.PYTHON_PATRONI} (run .ci/setup)")
    dcs = request.param
    workdir = tmp_path_factory.mktemp(f"swap-{dcs}")
    harness.make_reachable(workdir, stop_at=tmp_path_factory.getbasetemp().parent)
    c = Cluster(workdir, dcs, [str(harness.PYTHON_PATRONI)], harness.node_user(), [{}, {}, {}])
    e2e_conftest._ACTIVE.append(c)
    print(f"\n[{dcs}] rolling swap cluster in {workdir}: Python Patroni <-> {' '.join(daemon_argv)}")
    try:
        c.start()
        yield c
    finally:
        c.cleanup()
        e2e_conftest._ACTIVE.remove(c)


@pytest.fixture(scope="module")
def swap(cluster: Cluster, daemon_argv: List[str]):
    s = Swap(cluster, list(daemon_argv))
    try:
        yield s
    finally:
        if s.writer.is_alive():
            s.writer.stop()


# --- helpers ----------------------------------------------------------------------

def ctl_list(cluster: Cluster) -> List[dict]:
    result = patronictl_run(cluster, "list", "-f", "json", timeout=30)
    assert result.returncode == 0, f"patronictl list: {result.stdout}{result.stderr}"
    return json.loads(result.stdout)


def ctl_consistent(cluster: Cluster, leader: str) -> Optional[List[dict]]:
    """Python `patronictl list` rows when they show `leader` running as the
    only leader and every other member a streaming replica; else None."""
    rows = ctl_list(cluster)
    by_name = {r.get("Member"): r for r in rows}
    if sorted(by_name) != sorted(n.name for n in cluster.nodes):
        return None
    for name, row in by_name.items():
        if name == leader:
            if row.get("Role") != "Leader" or row.get("State") != "running":
                return None
        elif row.get("Role") != "Replica" or row.get("State") != "streaming":
            return None
    return rows


def settled(swap: Swap, leader: str, what: str) -> None:
    """Wait until REST /cluster and Python patronictl both show `leader`
    with the two others streaming, and the writer writes again."""
    c = swap.cluster
    c.wait_healthy(HEALTHY_S, leader=leader)
    rows = wait_for(lambda: ctl_consistent(c, leader), HEALTHY_S, f"patronictl list consistent after {what}",
                    interval=0.5, check=c.check_running)
    swap.writer.wait_ack_after(time.monotonic())
    table = ", ".join(f"{r['Member']}={swap.impl_of(c.node(r['Member']))}/{r['Role']}/{r['State']}/TL{r.get('TL')}"
                      for r in rows)
    say(c, f"{what}: consistent ({table})")


def rejoined(node: Node, stale_key: Optional[str], since_wall: float) -> Optional[str]:
    """A description of `node` once its new daemon has rewritten its member
    key, says over REST that it runs and streams, and its PostgreSQL (started
    after `since_wall`) has a streaming WAL receiver; else None."""
    key = cluster_key(node.cluster, f"members/{node.name}")
    if key is None or key == stale_key:
        return None
    rest = node.patroni()
    if rest.get("state") != "running" or rest.get("role") != "replica" \
            or rest.get("replication_state") != "streaming":
        return None
    row = node.psql("SELECT extract(epoch FROM pg_postmaster_start_time()), "
                    "(SELECT status FROM pg_stat_wal_receiver)")
    started, status = row.split("|")
    if float(started) < since_wall or status != "streaming":
        return None
    return f"{node.name}: {rest.get('state')}/{rest.get('replication_state')}, postmaster from {started}"


def replace(swap: Swap, node: Node, daemon: List[str], leader: str) -> None:
    """Swap the daemon of `node` (not the leader) and wait for it to stream."""
    c = swap.cluster
    before = swap.impl_of(node)
    t0 = time.monotonic()
    node.stop()
    # The old daemon's member key outlives it (until its TTL): /cluster and
    # patronictl would show it "streaming" before the new daemon did anything.
    # So: the new daemon must change the key, answer REST itself, and run a
    # PostgreSQL started after the swap that streams from the leader.
    stale_key = cluster_key(c, f"members/{node.name}")
    started_wall = time.time()
    node.restart_with(daemon)
    swap.impl[node.name] = "python" if daemon is swap.python else "ours"
    wait_for(lambda: rejoined(node, stale_key, started_wall), HEALTHY_S,
             f"{node.name} under its new daemon to stream from a PostgreSQL started after the swap",
             interval=0.25, check=c.check_running)
    settled(swap, leader, f"{node.name} {before} -> {swap.impl_of(node)}")
    gap = swap.writer.longest_gap(t0, time.monotonic())
    swap.gaps[f"replace {node.name} -> {swap.impl_of(node)}"] = gap
    say(c, f"{node.name} replaced in {time.monotonic() - t0:.1f}s; longest write gap meanwhile {gap:.2f}s")


def switchover(swap: Swap, leader: str, candidate: str) -> None:
    c = swap.cluster
    label = f"switchover {leader}({swap.impl_of(c.node(leader))}) -> {candidate}({swap.impl_of(c.node(candidate))})"
    t0 = time.monotonic()
    result = patronictl_run(c, "switchover", "--leader", leader, "--candidate", candidate, "--force", timeout=120)
    assert result.returncode == 0, f"{label}: patronictl exited {result.returncode}:\n{result.stdout}{result.stderr}"
    said = [line for line in result.stdout.splitlines() if "switch" in line.lower()]
    say(c, f"{label}: patronictl said: {' / '.join(said) or result.stdout.strip()}")
    settled(swap, candidate, label)
    # The new leader consumes the request: no leader/candidate may stay in
    # /failover, or a later failover decision would still see it.
    raw = cluster_key(c, "failover")
    pending = json.loads(raw) if raw else None
    say(c, f"{label}: /failover afterwards: {raw!r}")
    assert not (isinstance(pending, dict) and (pending.get("leader") or pending.get("member")
                                               or pending.get("candidate"))), \
        f"{label}: the switchover request is still in /failover: {raw!r}"
    gap = swap.writer.longest_gap(t0, time.monotonic())
    swap.gaps[label] = gap
    say(c, f"{label}: took {time.monotonic() - t0:.1f}s; longest write gap {gap:.2f}s")


def current_leader(cluster: Cluster) -> str:
    leader = cluster.leader_key()
    assert leader is not None, "no leader key"
    return leader


# --- the steps ---------------------------------------------------------------------

def test_1_python_cluster_with_writer(cluster: Cluster, swap: Swap) -> None:
    leader = cluster.wait_healthy(BOOTSTRAP_S)
    say(cluster, f"Python cluster bootstrapped in {time.monotonic() - cluster.started_at:.1f}s, leader {leader}")
    cluster.node(leader).psql(f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, at timestamptz DEFAULT now())")
    swap.writer.start()
    swap.writer.wait_ack_after(0.0)
    settled(swap, leader, "Python cluster")


def test_2_replicas_to_ours(cluster: Cluster, swap: Swap) -> None:
    leader = current_leader(cluster)
    for node in cluster.nodes:
        if node.name != leader:
            replace(swap, node, swap.ours, leader)


def test_3_switchover_python_leader_to_ours(cluster: Cluster, swap: Swap) -> None:
    leader = current_leader(cluster)
    assert swap.impl_of(cluster.node(leader)) == "python"
    candidate = next(n.name for n in cluster.nodes if n.name != leader)
    switchover(swap, leader, candidate)
    replace(swap, cluster.node(leader), swap.ours, candidate)
    assert all(swap.impl_of(n) == "ours" for n in cluster.nodes)


def test_4_back_to_python(cluster: Cluster, swap: Swap) -> None:
    leader = current_leader(cluster)
    replicas = [n for n in cluster.nodes if n.name != leader]
    for node in replicas:
        replace(swap, node, swap.python, leader)
    switchover(swap, leader, replicas[0].name)
    replace(swap, cluster.node(leader), swap.python, replicas[0].name)
    assert all(swap.impl_of(n) == "python" for n in cluster.nodes)


def test_5_no_acknowledged_row_lost(cluster: Cluster, swap: Swap) -> None:
    swap.writer.stop()
    acks = swap.writer.snapshot()
    assert acks, "the writer never got a row acknowledged"
    leader = current_leader(cluster)
    present = {int(x) for x in cluster.node(leader).psql(f"SELECT id FROM {TABLE}").split()}
    acked = [i for _, i in acks]
    lost = sorted(set(acked) - present)
    duration = acks[-1][0] - swap.writer.started_at
    say(cluster, f"writer: {len(acked)} rows acknowledged over {duration:.0f}s, {swap.writer.errors} failed "
                 f"attempts (last: {swap.writer.last_error[:200]}), {len(present)} rows on {leader}")
    for label, gap in swap.gaps.items():
        say(cluster, f"longest write gap during {label}: {gap:.2f}s")
    say(cluster, f"longest write gap overall: {swap.writer.longest_gap():.2f}s")
    assert not lost, f"{len(lost)} acknowledged rows missing on the final primary {leader}: {lost[:20]}"
