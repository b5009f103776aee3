"""End-to-end: quorum commit (`synchronous_mode: quorum`) on a 3-node
cluster, etcd v3, real PostgreSQL 15.

The leader lists both standbys in `synchronous_standby_names` as
`ANY n (...)` and in `/sync` with the matching `quorum`; raising
`synchronous_node_count` raises `n` before lowering the quorum; when the
primary's host is lost a standby wins the race with the other's vote,
keeps every acknowledged commit, and the new leader rewrites `/sync` with
the standby that is left. The scenarios run in order on one cluster.
Validated first against Python Patroni 4.1.5 (PATRONI_E2E_IMPL=python).
"""
from __future__ import annotations

import json
import time
from typing import List, Optional

import pytest

from . import harness
from .conftest import running_cluster
from .harness import LOOP_WAIT, TTL, Cluster, cluster_json, wait_for
from .test_sync import patch_config, quoted, say, ssn

pytestmark = pytest.mark.e2e

STREAMING_S = 150
SETTLE_S = 40
LOST_HOST_S = TTL + LOOP_WAIT + 20


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    with running_cluster(tmp_path_factory, "etcd3", daemon_argv, [{}, {}, {}], prefix="e2e-quorum",
                         dynamic={"synchronous_mode": "quorum"}) as c:
        yield c


def sync_key(cluster: Cluster) -> Optional[dict]:
    value = cluster_json(cluster, "sync")
    return value if isinstance(value, dict) else None


def any_value(num: int, names: List[str]) -> str:
    return f"ANY {num} ({','.join(quoted(n) for n in sorted(names))})"


def expect_key(cluster: Cluster, leader: str, quorum: int, standbys: List[str]) -> dict:
    want = {"leader": leader, "quorum": quorum, "sync_standby": ",".join(sorted(standbys)) or None}
    return wait_for(lambda: (lambda k: k if k == want else None)(sync_key(cluster)), SETTLE_S,
                    f"/sync = {want} (now {sync_key(cluster)})", check=cluster.check_running)


def insert(node, first: int, last: int) -> List[int]:
    node.psql(f"INSERT INTO e2e_quorum (id) SELECT generate_series({first}, {last})")
    return list(range(first, last + 1))


def test_leader_lists_both_standbys_with_a_quorum(cluster: Cluster) -> None:
    name = cluster.wait_healthy(STREAMING_S)
    primary = cluster.node(name)
    standbys = [n.name for n in cluster.nodes if n.name != name]
    key = expect_key(cluster, name, 1, standbys)
    say(cluster, f"/sync = {json.dumps(key, separators=(',', ':'))}")
    wait_for(lambda: ssn(primary) == any_value(1, standbys), 10, "ANY 1 of both standbys")
    # Both standbys answer /quorum 200 and say so in /patroni; the leader 503.
    def codes() -> Optional[dict]:
        got = {n.name: harness.http_status(n.api_url + "/quorum") for n in cluster.nodes}
        return got if all(c == (503 if m == name else 200) for m, c in got.items()) else None
    wait_for(codes, 10, "/quorum 200 on the standbys only", check=cluster.check_running)
    for s in standbys:
        assert harness.http_json(cluster.node(s).api_url + "/patroni").get("quorum_standby") is True
    primary.psql("CREATE TABLE e2e_quorum (id int PRIMARY KEY)")
    cluster.rows = insert(primary, 1, 100)


def test_raising_the_node_count_waits_for_both(cluster: Cluster) -> None:
    name = cluster.leader_key()
    primary = cluster.node(name)
    standbys = [n.name for n in cluster.nodes if n.name != name]
    patch_config(primary, {"synchronous_node_count": 2})
    expect_key(cluster, name, 0, standbys)
    assert ssn(primary) == any_value(2, standbys)
    cluster.rows += insert(primary, 101, 200)
    patch_config(primary, {"synchronous_node_count": 1})
    expect_key(cluster, name, 1, standbys)
    wait_for(lambda: ssn(primary) == any_value(1, standbys), 10, "back to ANY 1")


def test_lost_primary_is_replaced_without_losing_commits(cluster: Cluster) -> None:
    name = cluster.leader_key()
    primary = cluster.node(name)
    cluster.rows += insert(primary, 201, 300)
    expected = f"{len(cluster.rows)} {sum(cluster.rows)}"
    started = time.monotonic()
    primary.kill_host()
    new = wait_for(lambda: (lambda l: l if l and l != name else None)(cluster.leader_key()), LOST_HOST_S,
                   "a new leader after the lost host", check=cluster.check_running)
    say(cluster, f"lost host {name}: {new} leads after {time.monotonic() - started:.1f}s")
    wait_for(lambda: cluster.node(new).psql("SELECT pg_is_in_recovery()") == "f", 30, f"{new} writable")
    assert count_sum_q(cluster.node(new)) == expected, "an acknowledged commit is missing on the new primary"
    third = next(n.name for n in cluster.nodes if n.name not in (name, new))
    # The old leader is a voter at first; once it stays away only the third
    # node is left, with no quorum needed.
    expect_key(cluster, new, 0, [third])
    wait_for(lambda: ssn(cluster.node(new)) == any_value(1, [third]), 10, f"ANY 1 ({third})")
    primary.start()
    cluster.wait_healthy(STREAMING_S, leader=new)
    expect_key(cluster, new, 1, [name, third])


def count_sum_q(node) -> str:
    return node.psql("SELECT count(*) || ' ' || coalesce(sum(id), 0) FROM e2e_quorum")
