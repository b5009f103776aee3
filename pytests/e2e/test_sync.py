"""End-to-end: synchronous replication (`synchronous_mode: true`) on a
3-node cluster, etcd v3 and v2, real PostgreSQL 15.

The leader names one synchronous standby in `/sync` and in
`synchronous_standby_names`; when that standby goes away the other one
takes its place; when the primary's host is lost, the standby listed in
`/sync` is the one promoted and every acknowledged commit is on it. The
scenarios run in order on one cluster per DCS. Validated first against
Python Patroni 4.1.5 (PATRONI_E2E_IMPL=python).
"""
from __future__ import annotations

import json
import re
import time
import urllib.request
from typing import List, Optional

import pytest

from . import harness
from .conftest import running_cluster
from .harness import LOOP_WAIT, TTL, Cluster, Node, cluster_json, wait_for

pytestmark = pytest.mark.e2e

STREAMING_S = 150
SYNC_SWAP_S = 40
LOST_HOST_S = TTL + LOOP_WAIT + 20


@pytest.fixture(scope="module", params=["etcd3", "etcd"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    """Three nodes, no tags, synchronous mode on from the start."""
    with running_cluster(tmp_path_factory, request.param, daemon_argv, [{}, {}, {}], prefix="e2e-sync",
                         dynamic={"synchronous_mode": True}) as c:
        yield c


def patch_config(node: Node, change: dict) -> None:
    req = urllib.request.Request(node.api_url + "/config", data=json.dumps(change).encode(), method="PATCH",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200, resp.status


def say(cluster: Cluster, text: str) -> None:
    print(f"[{cluster.dcs}] {text}", flush=True)


def sync_key(cluster: Cluster) -> Optional[dict]:
    value = cluster_json(cluster, "sync")
    return value if isinstance(value, dict) else None


def sync_standby(cluster: Cluster, leader: str) -> Optional[str]:
    """The one standby `/sync` names for `leader`, once it names one."""
    key = sync_key(cluster)
    if not key or key.get("leader") != leader or not key.get("sync_standby"):
        return None
    return key["sync_standby"]


def quoted(name: str) -> str:
    """A standby name as synchronous_standby_names holds it."""
    if re.fullmatch(r"[A-Za-z_][A-Za-z_0-9$]*", name) and name.lower() not in ("first", "any"):
        return name
    return '"' + name.replace('"', '""') + '"'


def ssn(node: Node) -> str:
    return node.psql("SHOW synchronous_standby_names")


def sync_rows(node: Node) -> str:
    return node.psql("SELECT string_agg(application_name || ':' || sync_state, ',' ORDER BY application_name) "
                     "FROM pg_stat_replication")


def insert(node: Node, first: int, last: int) -> List[int]:
    node.psql(f"INSERT INTO e2e_sync (id) SELECT generate_series({first}, {last})")
    return list(range(first, last + 1))


def count_sum(node: Node) -> str:
    return node.psql("SELECT count(*) || ' ' || coalesce(sum(id), 0) FROM e2e_sync")


def test_leader_names_one_sync_standby(cluster: Cluster) -> None:
    name = cluster.wait_healthy(STREAMING_S)
    primary = cluster.node(name)
    standby = wait_for(lambda: sync_standby(cluster, name), 60, "/sync to name a standby",
                       check=cluster.check_running)
    key = sync_key(cluster)
    say(cluster, f"/sync = {json.dumps(key, separators=(',', ':'))}")
    assert key == {"leader": name, "quorum": 0, "sync_standby": standby}, key
    assert standby in [n.name for n in cluster.nodes if n.name != name]
    # PostgreSQL waits for exactly that standby.
    assert ssn(primary) == quoted(standby)
    wait_for(lambda: f"{standby}:sync" in sync_rows(primary), 30, f"{standby} reported sync by PostgreSQL")
    # The REST API agrees: /sync answers 200 on the standby, 503 elsewhere.
    # (Python Patroni's view of /sync may trail the key by a watch event.)
    def sync_codes() -> Optional[dict]:
        codes = {n.name: harness.http_status(n.api_url + "/sync") for n in cluster.nodes}
        return codes if all(c == (200 if m == standby else 503) for m, c in codes.items()) else None
    wait_for(sync_codes, 10, f"/sync to answer 200 on {standby} only", check=cluster.check_running)
    # GET /patroni on the primary lists one row per WAL sender, as
    # PostgreSQL's pg_stat_replication reports it.
    def replication() -> Optional[dict]:
        rows = harness.http_json(primary.api_url + "/patroni").get("replication", [])
        by_name = {r["application_name"]: r for r in rows}
        return by_name if len(by_name) == len(cluster.nodes) - 1 else None
    rows = wait_for(replication, 30, "/patroni to list both WAL senders", check=cluster.check_running)
    for n in cluster.nodes:
        if n.name == name:
            continue
        row = rows[n.name]
        assert list(row) == ["usename", "application_name", "client_addr", "state", "sync_state",
                             "sync_priority"], row
        assert row["usename"] == harness.REPLICATION[0] and row["state"] == "streaming", row
        assert (row["sync_state"], row["sync_priority"]) == (("sync", 1) if n.name == standby else ("async", 0)), row
    assert harness.http_json(cluster.node(standby).api_url + "/patroni").get("sync_standby") is True
    primary.psql("CREATE TABLE e2e_sync (id int PRIMARY KEY)")
    cluster.rows = insert(primary, 1, 100)


def test_stopped_sync_standby_is_replaced(cluster: Cluster) -> None:
    name = cluster.leader_key()
    primary = cluster.node(name)
    old = cluster.node(sync_standby(cluster, name))
    other = next(n for n in cluster.nodes if n.name not in (name, old.name))
    started = time.monotonic()
    old.stop()
    wait_for(lambda: sync_standby(cluster, name) == other.name, SYNC_SWAP_S,
             f"/sync to name {other.name} after {old.name} stopped", check=cluster.check_running)
    say(cluster, f"sync standby {old.name} -> {other.name} in {time.monotonic() - started:.1f}s")
    assert ssn(primary) == quoted(other.name)
    # Commits go on (they wait for the new standby, which is there).
    cluster.rows += insert(primary, 101, 200)
    old.start()
    cluster.wait_healthy(STREAMING_S, leader=name)
    assert sync_standby(cluster, name) == other.name, "a returning standby does not take the place back"


def test_lost_primary_promotes_the_sync_standby(cluster: Cluster) -> None:
    name = cluster.leader_key()
    primary = cluster.node(name)
    standby = sync_standby(cluster, name)
    assert standby
    cluster.rows += insert(primary, 201, 300)
    expected = f"{len(cluster.rows)} {sum(cluster.rows)}"
    started = time.monotonic()
    primary.kill_host()
    new = wait_for(lambda: (lambda l: l if l and l != name else None)(cluster.leader_key()), LOST_HOST_S,
                   "a new leader after the lost host", check=cluster.check_running)
    say(cluster, f"lost host {name}: {new} leads after {time.monotonic() - started:.1f}s")
    assert new == standby, f"{new} was promoted, but /sync named {standby}"
    wait_for(lambda: cluster.node(new).psql("SELECT pg_is_in_recovery()") == "f", 30, f"{new} writable")
    assert count_sum(cluster.node(new)) == expected, "an acknowledged commit is missing on the new primary"
    # The new leader claims /sync and picks the remaining replica.
    third = next(n.name for n in cluster.nodes if n.name not in (name, new))
    wait_for(lambda: sync_standby(cluster, new) == third, SYNC_SWAP_S, f"/sync to name {third} under {new}")
    primary.start()
    cluster.wait_healthy(STREAMING_S, leader=new)


def test_turning_sync_mode_off_drops_the_key(cluster: Cluster) -> None:
    name = cluster.leader_key()
    patch_config(cluster.node(name), {"synchronous_mode": False})
    wait_for(lambda: cluster_json(cluster, "sync") is None, 30, "/sync to disappear")
    wait_for(lambda: ssn(cluster.node(name)) == "", 30, "synchronous_standby_names to be empty")
