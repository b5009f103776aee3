"""End-to-end: DCS failsafe mode (`failsafe_mode: true`) through an etcd
outage.

Without failsafe mode a primary that cannot read the DCS demotes itself at
once. With it, the leader publishes the members in the `/failsafe` key while
etcd is up; when etcd stops answering, the leader asks every member listed
there (`POST /failsafe`) and keeps running as primary as long as all of them
accept. The scenario, on a 3-node etcd3 cluster with failsafe mode on from
bootstrap:

1. healthy; `/failsafe` in etcd and GET /failsafe on a node list all three
   members with their REST addresses;
2. etcd is frozen with SIGSTOP (it answers nothing, like a hung server) for
   longer than ttl: the primary stays a writable primary and its /patroni
   shows `failsafe_mode_is_active: true`;
3. one replica's host dies (daemon and PostgreSQL killed): it can no longer
   accept, so the primary demotes (read-only, in recovery);
4. SIGCONT etcd, the dead node is started again: the cluster recovers with
   one leader and every replica streaming.

Validated against Python Patroni 4.1.5 with PATRONI_E2E_IMPL=python.
"""
from __future__ import annotations

import json
import os
import signal
import time
from typing import List, Optional

import pytest

from . import harness
from .conftest import running_cluster
from .harness import Cluster, wait_for

pytestmark = pytest.mark.e2e

BOOTSTRAP_S = 120
# Longer than ttl (20 s): the leader key is gone by then, only failsafe
# mode keeps the primary.
OUTAGE_BEYOND_TTL_S = harness.TTL + 10
DEMOTE_S = 40
RECOVER_S = 150


def say(text: str) -> None:
    print(f"[failsafe] {text}", flush=True)


def patroni_or_none(node: harness.Node) -> Optional[dict]:
    try:
        body = harness.http_json(node.api_url + "/patroni", timeout=3)
    except Exception:  # noqa: BLE001 - a busy node: ask again
        return None
    return body if isinstance(body, dict) else None


def in_recovery(node: harness.Node) -> Optional[bool]:
    try:
        return node.psql("SELECT pg_catalog.pg_is_in_recovery()", timeout=5) == "t"
    except Exception:  # noqa: BLE001 - PostgreSQL restarting
        return None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    with running_cluster(tmp_path_factory, "etcd3", daemon_argv, [{}, {}, {}], prefix="failsafe",
                         dynamic={"failsafe_mode": True}) as c:
        yield c


def test_primary_survives_dcs_outage_only_with_every_member(cluster: Cluster) -> None:
    leader = cluster.wait_healthy(BOOTSTRAP_S)
    primary = cluster.node(leader)
    replicas = [n for n in cluster.nodes if n.name != leader]
    say(f"leader {leader}")

    # 1. The topology in the DCS and on the REST API.
    expected = {n.name: n.api_url + "/patroni" for n in cluster.nodes}
    key = f"{cluster.namespace}{cluster.scope}/failsafe"

    def topology() -> Optional[dict]:
        value = cluster.etcd.get("etcd3", key)
        return json.loads(value) if value and json.loads(value) == expected else None

    wait_for(topology, 30, f"{key} listing every member", check=cluster.check_running)
    raw = cluster.etcd.get("etcd3", key)
    assert raw == json.dumps(json.loads(raw), separators=(",", ":")), f"compact JSON expected: {raw!r}"
    assert harness.http_json(replicas[0].api_url + "/failsafe") == expected

    # 2. etcd hangs for longer than ttl: the primary holds.
    assert cluster.etcd.proc is not None
    etcd_pid = cluster.etcd.proc.pid
    os.kill(etcd_pid, signal.SIGSTOP)
    stopped_at = time.monotonic()
    say("etcd stopped (SIGSTOP)")
    try:
        def failsafe_active() -> Optional[dict]:
            body = patroni_or_none(primary)
            return body if body and body.get("failsafe_mode_is_active") is True else None

        body = wait_for(failsafe_active, OUTAGE_BEYOND_TTL_S, f"{leader}: failsafe_mode_is_active in /patroni")
        say(f"failsafe active after {time.monotonic() - stopped_at:.1f}s")
        time.sleep(max(0.0, OUTAGE_BEYOND_TTL_S - (time.monotonic() - stopped_at)))
        body = patroni_or_none(primary)
        assert body is not None and body.get("role") == "primary", body
        assert body.get("failsafe_mode_is_active") is True, body
        primary.psql("CREATE TABLE IF NOT EXISTS failsafe_e2e (at timestamptz); "
                     "INSERT INTO failsafe_e2e VALUES (now())")
        assert in_recovery(primary) is False
        say(f"{leader} still a writable primary {time.monotonic() - stopped_at:.1f}s into the outage")

        # 3. A member that cannot accept: the primary must give up.
        lost = replicas[0]
        lost.kill_host()
        killed_at = time.monotonic()
        say(f"{lost.name} killed")
        wait_for(lambda: in_recovery(primary) is True or None, DEMOTE_S,
                 f"{leader} to demote once {lost.name} cannot accept")
        say(f"{leader} demoted {time.monotonic() - killed_at:.1f}s after {lost.name} died")
    finally:
        os.kill(etcd_pid, signal.SIGCONT)
        say("etcd resumed (SIGCONT)")

    # 4. The cluster recovers.
    lost.start()
    new_leader = cluster.wait_healthy(RECOVER_S)
    say(f"recovered with leader {new_leader}")
    assert cluster.node(new_leader).psql("SELECT count(*) FROM failsafe_e2e") == "1"
