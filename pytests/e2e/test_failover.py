"""End-to-end: a 3-node cluster on a real etcd (v3 and v2 APIs) or ZooKeeper
and real PostgreSQL 15, driven only from outside (signals, SQL, REST, DCS).

The scenarios run in order on one cluster per DCS to keep the run short; each
starts from the state the previous one left (one leader, two streaming
replicas). node2 is tagged `nofailover: true` for the whole module, so every
failover has exactly one legitimate candidate and node2 must never lead.
Timings are printed: run with `-s` to see them.
"""
from __future__ import annotations

import os
import signal
import time
from typing import List

import pytest

from .harness import LOOP_WAIT, TTL, Cluster, Node, wait_for

pytestmark = pytest.mark.e2e

# Every DCS backend, ZooKeeper included (conftest's `cluster` fixture).
E2E_DCS = ("etcd3", "etcd", "zookeeper")

NOFAILOVER = "node2"

# Bounds, generous for a loaded 2-core CI machine; Python Patroni needs a
# fraction of each (see the printed timings).
BOOTSTRAP_LEADER_S = 90
ALL_STREAMING_S = 150
CLEAN_HANDOVER_S = 30
LOST_HOST_S = TTL + LOOP_WAIT + 10
REJOIN_S = 120


def say(cluster: Cluster, text: str) -> None:
    print(f"[{cluster.dcs}] {text}", flush=True)


def leader(cluster: Cluster) -> Node:
    name = cluster.leader_key()
    assert name, "no leader in the DCS"
    return cluster.node(name)


def failover_candidate(cluster: Cluster, old: Node) -> Node:
    """The only node that may take over from `old`."""
    (candidate,) = [n for n in cluster.nodes if n is not old and n.name != NOFAILOVER]
    return candidate


def is_primary(node: Node) -> bool:
    return node.psql("SELECT pg_is_in_recovery()") == "f"


def insert_rows(primary: Node, first: int, last: int) -> List[int]:
    primary.psql(f"INSERT INTO e2e_rows (id, note) SELECT g, 'row ' || g FROM generate_series({first}, {last}) g")
    return list(range(first, last + 1))


def rows_match(node: Node, expected: List[int]) -> bool:
    """True when `node` holds exactly the ids in `expected` (count and sum)."""
    got = node.psql("SELECT count(*) || ' ' || coalesce(sum(id), 0) FROM e2e_rows")
    return got == f"{len(expected)} {sum(expected)}"


def wait_rows(cluster: Cluster, nodes: List[Node], expected: List[int], timeout: float = 30) -> None:
    for n in nodes:
        wait_for(lambda: rows_match(n, expected), timeout, f"{len(expected)} rows on {n.name}",
                 check=cluster.check_running)


def assert_not_nofailover_leader(cluster: Cluster) -> None:
    assert NOFAILOVER not in cluster.leaders_seen, f"{NOFAILOVER} (nofailover) led: {cluster.leaders_seen}"


def test_bootstrap(cluster: Cluster) -> None:
    """One leader and two streaming replicas; patronictl list shows them."""
    name = wait_for(cluster.leader_key, BOOTSTRAP_LEADER_S, "a leader key in the DCS", check=cluster.check_running)
    say(cluster, f"time to leader ({name}): {time.monotonic() - cluster.started_at:.1f}s")
    wait_for(lambda: is_primary(cluster.node(name)), 30, f"{name} to accept writes", check=cluster.check_running)
    cluster.wait_healthy(ALL_STREAMING_S, leader=name)
    say(cluster, f"time to all streaming: {time.monotonic() - cluster.started_at:.1f}s")
    assert name != NOFAILOVER

    members = cluster.members()
    assert sorted(members) == ["node0", "node1", "node2"]
    assert members[NOFAILOVER].get("tags", {}).get("nofailover") is True, members[NOFAILOVER]
    status = cluster.node(NOFAILOVER).patroni()
    assert status.get("role") == "replica" and status.get("tags", {}).get("nofailover") is True, status

    # use_slots: the leader keeps one active physical slot per replica.
    others = sorted(n.name for n in cluster.nodes if n.name != name)
    wait_for(lambda: cluster.node(name).psql("SELECT string_agg(slot_name, ',' ORDER BY slot_name) "
                                             "FROM pg_replication_slots WHERE active") == ",".join(others),
             30, f"active replication slots {others} on {name}", check=cluster.check_running)

    listing = cluster.patronictl("list")
    say(cluster, "patronictl list:\n" + listing)
    lines = {n.name: next((line for line in listing.splitlines() if f" {n.name} " in line), "")
             for n in cluster.nodes}
    assert "Leader" in lines[name] and "running" in lines[name], listing
    for n in cluster.nodes:
        if n.name != name:
            assert "Replica" in lines[n.name] and "streaming" in lines[n.name], listing


def test_rows_replicate(cluster: Cluster) -> None:
    """Rows written on the primary appear on both replicas."""
    primary = leader(cluster)
    primary.psql("CREATE TABLE e2e_rows (id int PRIMARY KEY, note text NOT NULL)")
    cluster.rows = insert_rows(primary, 1, 100)
    started = time.monotonic()
    wait_rows(cluster, [n for n in cluster.nodes if n is not primary], cluster.rows)
    say(cluster, f"100 rows on both replicas after {time.monotonic() - started:.2f}s")


def test_clean_stop_hands_over(cluster: Cluster) -> None:
    """SIGTERM to the leader's daemon: the other failover candidate takes
    over quickly, and the old leader, restarted, rejoins as a replica."""
    old = leader(cluster)
    new = failover_candidate(cluster, old)
    cluster.rows += insert_rows(old, 101, 200)
    wait_rows(cluster, [n for n in cluster.nodes if n is not old], cluster.rows)

    started = time.monotonic()
    status = old.stop(timeout=CLEAN_HANDOVER_S)
    say(cluster, f"clean stop of {old.name}: daemon exited with {status} after {time.monotonic() - started:.1f}s")
    wait_for(lambda: cluster.leader_key() == new.name and is_primary(new), CLEAN_HANDOVER_S,
             f"{new.name} to lead after {old.name} stopped", check=cluster.check_running)
    say(cluster, f"clean handover {old.name} -> {new.name}: {time.monotonic() - started:.1f}s")
    assert status == 0, f"{old.name} exited with {status} on SIGTERM"
    # A daemon that exits must not leave its primary running beside the new one.
    assert old.postmaster_pid() is None, f"{old.name}'s PostgreSQL still runs after its daemon stopped"
    assert_not_nofailover_leader(cluster)

    cluster.rows += insert_rows(new, 201, 250)
    restarted = time.monotonic()
    old.start()
    cluster.wait_healthy(REJOIN_S, leader=new.name)
    say(cluster, f"{old.name} rejoined as a streaming replica in {time.monotonic() - restarted:.1f}s")
    wait_rows(cluster, [n for n in cluster.nodes if n is not new], cluster.rows)
    assert old.patroni().get("role") == "replica"


def test_lost_host_failover(cluster: Cluster) -> None:
    """SIGKILL the leader's daemon and PostgreSQL together: once the leader
    key expires the candidate is promoted (node2, just as up to date, is
    not), no acknowledged row is lost, and the old leader comes back as a
    streaming replica."""
    old = leader(cluster)
    new = failover_candidate(cluster, old)
    replicas = [n for n in cluster.nodes if n is not old]
    cluster.rows += insert_rows(old, 251, 400)
    wait_rows(cluster, replicas, cluster.rows)
    # Both replicas have replayed everything the primary wrote: node2 is as
    # good a candidate as `new` by WAL position, only its tag excludes it.
    target = old.psql("SELECT pg_current_wal_lsn()")
    for n in replicas:
        wait_for(lambda: n.psql(f"SELECT pg_last_wal_replay_lsn() >= '{target}'") == "t", 30,
                 f"{n.name} to replay up to {target}", check=cluster.check_running)

    started = time.monotonic()
    old.kill_host()
    wait_for(lambda: cluster.leader_key() == new.name and is_primary(new), LOST_HOST_S,
             f"{new.name} to be promoted after {old.name} was killed", check=cluster.check_running)
    say(cluster, f"lost host failover {old.name} -> {new.name}: {time.monotonic() - started:.1f}s "
                 f"(ttl {TTL}, loop_wait {LOOP_WAIT})")
    assert_not_nofailover_leader(cluster)
    assert rows_match(new, cluster.rows), "rows acknowledged and replicated before the kill are missing"

    cluster.rows += insert_rows(new, 401, 450)
    restarted = time.monotonic()
    old.start()
    cluster.wait_healthy(REJOIN_S, leader=new.name)
    say(cluster, f"{old.name} rejoined after the kill in {time.monotonic() - restarted:.1f}s")
    wait_rows(cluster, [n for n in cluster.nodes if n is not new], cluster.rows)
    timelines = {n.name: n.patroni().get("timeline") for n in cluster.nodes}
    assert len(set(timelines.values())) == 1, f"nodes on different timelines: {timelines}"


def receive_lsn(node: Node) -> str:
    return node.psql("SELECT pg_last_wal_receive_lsn()")


def test_failover_with_nofailover_ahead(cluster: Cluster) -> None:
    """The candidate stops receiving WAL while node2 keeps streaming, then
    the leader's host is lost: node2 is ahead of the candidate, yet the
    candidate is promoted, and node2 (rewound) and the old leader follow it.
    Only rows that reached the candidate survive, as with any asynchronous
    replication; every node must end up with exactly the new leader's rows."""
    old = leader(cluster)
    new = failover_candidate(cluster, old)
    ahead = cluster.node(NOFAILOVER)
    confirmed = cluster.rows + insert_rows(old, 451, 500)
    wait_rows(cluster, [new, ahead], confirmed)

    # Freeze the candidate's WAL receiver, then end its walsender on the
    # primary: the frozen receiver cannot reconnect, so nothing written from
    # now on reaches the candidate (not even through its socket buffer).
    receiver = int(wait_for(lambda: new.psql("SELECT pid FROM pg_stat_wal_receiver WHERE status = 'streaming'"),
                            15, f"a streaming WAL receiver on {new.name}", check=cluster.check_running))
    os.kill(receiver, signal.SIGSTOP)
    try:
        old.psql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_replication WHERE application_name = '{new.name}'")
        wait_for(lambda: old.psql(f"SELECT count(*) FROM pg_stat_replication WHERE application_name = '{new.name}'")
                 == "0", 15, f"{new.name}'s walsender on {old.name} to end", check=cluster.check_running)
        lost = insert_rows(old, 501, 600)
        wait_rows(cluster, [ahead], confirmed + lost)
        behind_at, ahead_at = receive_lsn(new), receive_lsn(ahead)
        assert ahead.psql(f"SELECT '{ahead_at}'::pg_lsn > '{behind_at}'::pg_lsn") == "t"
        say(cluster, f"{ahead.name} received up to {ahead_at}, the candidate {new.name} only {behind_at}")

        started = time.monotonic()
        old.kill_host()
    finally:
        os.kill(receiver, signal.SIGCONT)
    wait_for(lambda: cluster.leader_key() == new.name and is_primary(new), LOST_HOST_S,
             f"{new.name} to be promoted although {ahead.name} is ahead", check=cluster.check_running)
    say(cluster, f"failover {old.name} -> {new.name} with {ahead.name} ahead: {time.monotonic() - started:.1f}s")
    assert_not_nofailover_leader(cluster)
    assert rows_match(new, confirmed), "rows that reached the candidate before the kill are missing"

    cluster.rows = confirmed + insert_rows(new, 601, 650)
    restarted = time.monotonic()
    old.start()
    cluster.wait_healthy(REJOIN_S, leader=new.name)
    say(cluster, f"{old.name} and {ahead.name} follow {new.name} after {time.monotonic() - restarted:.1f}s")
    wait_rows(cluster, [n for n in cluster.nodes if n is not new], cluster.rows)


def test_nofailover_never_leads(cluster: Cluster) -> None:
    """node2 was never the leader in any scenario, and is still a replica."""
    say(cluster, f"leaders seen: {' -> '.join(cluster.leaders_seen)}")
    assert len(cluster.leaders_seen) >= 4, f"expected three changes of leader, saw {cluster.leaders_seen}"
    assert_not_nofailover_leader(cluster)
    node = cluster.node(NOFAILOVER)
    status = node.patroni()
    assert status.get("role") == "replica" and status.get("state") == "running", status
    assert node.psql("SELECT pg_is_in_recovery()") == "t"
