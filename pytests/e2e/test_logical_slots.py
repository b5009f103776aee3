"""End-to-end: a permanent logical slot (`slots` in /config) on a two-node
cluster, etcd3, real PostgreSQL 15.

The primary creates the slot; the replica keeps a copy of it (PostgreSQL 11+)
and runs with `hot_standby_feedback` forced on, so that the primary keeps
the catalog rows the copy still needs; the copy follows the primary's slot.
Removing the slot from /config drops the copies and turns the feedback
back to the configured value. Validated first against Python Patroni 4.1.5
(PATRONI_E2E_IMPL=python).
"""
from __future__ import annotations

from typing import List

import pytest

from .conftest import running_cluster
from .harness import Cluster, wait_for

pytestmark = pytest.mark.e2e

STREAMING_S = 150
SLOT = "e2e_logical"
DYNAMIC = {
    "postgresql": {"parameters": {"wal_level": "logical"}},
    "slots": {SLOT: {"type": "logical", "database": "postgres", "plugin": "test_decoding"}},
}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    with running_cluster(tmp_path_factory, "etcd3", daemon_argv, [{}, {}], prefix="e2e-logical",
                         dynamic=DYNAMIC) as c:
        yield c


def slots(node) -> List[str]:
    return node.psql("SELECT slot_name || ':' || slot_type FROM pg_replication_slots ORDER BY 1").split()


def test_replica_copies_the_slot_with_feedback_on(cluster: Cluster) -> None:
    leader = cluster.wait_healthy(STREAMING_S)
    primary = cluster.node(leader)
    replica = next(n for n in cluster.nodes if n.name != leader)
    wait_for(lambda: f"{SLOT}:logical" in slots(primary), 60, "the slot on the primary",
             check=cluster.check_running)
    wait_for(lambda: f"{SLOT}:logical" in slots(replica), 90, "the slot's copy on the replica",
             check=cluster.check_running)
    assert replica.psql("SHOW hot_standby_feedback") == "on"
    # The copy follows the primary's slot once it moves.
    primary.psql("CREATE TABLE e2e_logical (id int)")
    primary.psql("INSERT INTO e2e_logical VALUES (1)")
    primary.psql(f"SELECT count(*) FROM pg_logical_slot_get_changes('{SLOT}', NULL, NULL)")
    moved = primary.psql(f"SELECT confirmed_flush_lsn FROM pg_replication_slots WHERE slot_name = '{SLOT}'")
    wait_for(lambda: replica.psql(f"SELECT confirmed_flush_lsn >= '{moved}' FROM pg_replication_slots "
                                  f"WHERE slot_name = '{SLOT}'") == "t",
             60, "the copy to advance", check=cluster.check_running)


def test_dropping_the_slot_turns_feedback_back_off(cluster: Cluster) -> None:
    leader = cluster.leader_key()
    replica = next(n for n in cluster.nodes if n.name != leader)
    cluster.patronictl("edit-config", "--force", "-s", f"slots.{SLOT}=null")
    wait_for(lambda: f"{SLOT}:logical" not in slots(replica), 90, "the copy to be dropped",
             check=cluster.check_running)
    wait_for(lambda: replica.psql("SHOW hot_standby_feedback") == "off", 60, "hot_standby_feedback off",
             check=cluster.check_running)
