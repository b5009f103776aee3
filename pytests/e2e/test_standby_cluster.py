"""End-to-end: a standby cluster (`standby_cluster` in bootstrap.dcs) of two
nodes replicating from a one-node primary cluster, each cluster on its own
etcd (v3 API), real PostgreSQL 15.

The standby cluster's first node bootstraps by copying the remote primary
and leads as `standby_leader` (read-only, /standby-leader 200, /primary
503); the other copies it and follows it; rows written on the primary
cluster reach both; when the standby leader's host is lost, the other node
takes the key and streams from the remote primary itself. Validated first
against Python Patroni 4.1.5 (PATRONI_E2E_IMPL=python).
"""
from __future__ import annotations

import time
from typing import List

import pytest

from . import harness
from .conftest import running_cluster
from .harness import LOOP_WAIT, TTL, Cluster, Node, cluster_json, wait_for

pytestmark = pytest.mark.e2e

STREAMING_S = 150
LOST_HOST_S = TTL + LOOP_WAIT + 30


@pytest.fixture(scope="module")
def clusters(tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    """(primary cluster of one node, standby cluster of two nodes)."""
    with running_cluster(tmp_path_factory, "etcd3", daemon_argv, [{}], prefix="e2e-main", scope="e2e-main") as main:
        leader = wait_for(main.leader_key, STREAMING_S, "the primary cluster's leader", check=main.check_running)
        primary = main.node(leader)
        wait_for(lambda: primary.psql("SELECT pg_is_in_recovery()") == "f", 60, "a writable primary")
        remote = {"standby_cluster": {"host": "127.0.0.1", "port": primary.pg_port}}
        with running_cluster(tmp_path_factory, "etcd3", daemon_argv, [{}, {}], prefix="e2e-standby",
                             dynamic=remote, scope="e2e-standby") as standby:
            yield main, standby


def member_role(cluster: Cluster, name: str) -> str:
    value = cluster_json(cluster, f"members/{name}")
    return value.get("role", "") if isinstance(value, dict) else ""


def rows_on(node: Node) -> str:
    try:
        return node.psql("SELECT count(*) FROM e2e_standby")
    except Exception:  # noqa: BLE001 - not there yet, or restarting
        return ""


def test_standby_leader_copies_the_remote_primary(clusters) -> None:
    main, standby = clusters
    name = wait_for(standby.leader_key, STREAMING_S, "a standby leader", check=standby.check_running)
    leader = standby.node(name)
    wait_for(lambda: member_role(standby, name) == "standby_leader", 60, f"{name} to be the standby_leader")
    assert leader.psql("SELECT pg_is_in_recovery()") == "t"
    assert harness.http_status(leader.api_url + "/standby-leader") == 200
    assert harness.http_status(leader.api_url + "/primary") == 503
    other = next(n for n in standby.nodes if n.name != name)
    wait_for(lambda: member_role(standby, other.name) == "replica"
             and (cluster_json(standby, f"members/{other.name}") or {}).get("state") == "running",
             STREAMING_S, f"{other.name} to run as a replica", check=standby.check_running)
    # The standby leader streams from the remote primary, the replica from it.
    primary = main.node(main.leader_key())
    apps = primary.psql("SELECT string_agg(application_name, ',') FROM pg_stat_replication")
    assert apps == name, apps
    wait_for(lambda: leader.psql("SELECT count(*) FROM pg_stat_replication") == "1", 60,
             f"{other.name} streaming from {name}")
    primary.psql("CREATE TABLE e2e_standby (id int)")
    primary.psql("INSERT INTO e2e_standby SELECT generate_series(1, 50)")
    for n in standby.nodes:
        wait_for(lambda: rows_on(n) == "50", 60, f"50 rows on {n.name}")


def test_lost_standby_leader_is_replaced(clusters) -> None:
    main, standby = clusters
    old = standby.node(standby.leader_key())
    new = next(n for n in standby.nodes if n is not old)
    started = time.monotonic()
    old.kill_host()
    wait_for(lambda: standby.leader_key() == new.name and member_role(standby, new.name) == "standby_leader",
             LOST_HOST_S, f"{new.name} to become the standby leader")
    print(f"standby leader {old.name} -> {new.name} in {time.monotonic() - started:.1f}s")
    assert new.psql("SELECT pg_is_in_recovery()") == "t", "a standby leader must never be promoted"
    primary = main.node(main.leader_key())
    primary.psql("INSERT INTO e2e_standby SELECT generate_series(51, 60)")
    wait_for(lambda: rows_on(new) == "60", 60, f"new rows on {new.name}")
    old.start()
    wait_for(lambda: rows_on(old) == "60", STREAMING_S, f"{old.name} back with the new rows")
    wait_for(lambda: member_role(standby, old.name) == "replica", 30, f"{old.name} to report itself a replica")
