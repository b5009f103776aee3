"""End-to-end: the REST API of a one-node cluster while its PostgreSQL is
frozen with SIGSTOP.

Python Patroni runs its status query inside every health request, on a
connection of its own (`Patroni restapi`). With the postmaster and its
backends stopped, that query blocks, and so does the request: load
balancers see a node that does not answer at all. Stopping the postmaster
alone would change nothing for Patroni (its API backend keeps answering),
so the whole PostgreSQL process tree is stopped, as a frozen VM or an I/O
stall of the whole server would.

Ours answers from a snapshot that a probe refreshes about once a second on
its own connection; once the PostgreSQL part is older than the staleness
bound (3 s, `PG_STALE_AFTER` in src/api/status.rs) requests answer what
Patroni answers when its status query fails: `state: unknown`, no `xlog`,
503 on /health and /replica, 200 on /patroni. /primary stays 200: Patroni
answers it from the leader lock alone (`ha.is_leader()`), whatever the
query gave, and the node still holds the lock. The scenario:

1. healthy: GET /primary, /health, /patroni are 200;
2. SIGSTOP the postmaster and all its children;
3. (ours) every request answers within LATENCY_S, and /health turns 503
   within the bound plus one probe interval plus slack, not before the
   bound; then /patroni is 200 with `state: unknown` and no `xlog`,
   HEAD/OPTIONS /health and GET /replica 503, /primary still 200;
4. SIGCONT: /health is 200 again and /patroni shows a running primary with
   `xlog`, on the same postmaster.

With PATRONI_E2E_IMPL=python (the oracle), step 3 cannot be observed: the
requests hang until SIGCONT. The run then checks that a request does time
out while PostgreSQL is stopped (the behaviour this test exists to beat), and
steps 1 and 4; the latency and 503 assertions are skipped with that reason
printed. The codes of a failed status query themselves are compared with
Python's handlers in tests/api_golden (diff_health).
"""
from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import List, Optional, Tuple

import pytest

from . import harness
from .conftest import impl
from .harness import Cluster, wait_for

pytestmark = pytest.mark.e2e

BOOTSTRAP_S = 90
# A GET must come back this fast while PostgreSQL is frozen (ours).
LATENCY_S = 0.5
# Staleness bound (src/api/status.rs PG_STALE_AFTER) + probe interval +
# slack for a loaded 2-core machine.
STALE_BOUND_S = 3.0
TURNS_503_WITHIN_S = STALE_BOUND_S + 1.0 + 2.0
RECOVER_S = 30
# How long ours stays frozen in total (below the HA loop's 5 s query timeout,
# after which the HA loop, not the API, reacts to the failed query).
HOLD_S = 4.5


def say(text: str) -> None:
    print(f"[sigstop] {text}", flush=True)


def get(url: str, method: str = "GET", timeout: float = 3.0) -> Tuple[Optional[int], bytes, float]:
    """(status or None on timeout/connection error, body, seconds taken)."""
    started = time.monotonic()
    req = urllib.request.Request(url, method=method)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.read(), time.monotonic() - started
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read(), time.monotonic() - started
    except (urllib.error.URLError, OSError):
        return None, b"", time.monotonic() - started


@pytest.fixture(scope="module")
def one_node(tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    from . import conftest as e2e_conftest  # the failure hook prints the logs of _ACTIVE clusters

    workdir = tmp_path_factory.mktemp("sigstop-etcd3")
    harness.make_reachable(workdir, stop_at=tmp_path_factory.getbasetemp().parent)
    c = Cluster(workdir, "etcd3", daemon_argv, harness.node_user(), [{}])
    e2e_conftest._ACTIVE.append(c)
    say(f"one-node cluster in {workdir} with {' '.join(daemon_argv)}")
    try:
        c.start()
        yield c
    finally:
        c.cleanup()
        e2e_conftest._ACTIVE.remove(c)


def test_api_answers_while_postgres_is_stopped(one_node: Cluster) -> None:
    node = one_node.nodes[0]
    url = node.api_url

    def primary_ok() -> Optional[bool]:
        return True if get(url + "/primary")[0] == 200 else None

    wait_for(primary_ok, BOOTSTRAP_S, "GET /primary = 200 on the bootstrapped node", check=one_node.check_running)
    for path in ("/primary", "/health", "/patroni"):
        code, _, _ = get(url + path)
        assert code == 200, f"healthy: GET {path} -> {code}"
    pm = node.postmaster_pid()
    assert pm, "no postmaster"

    python = impl() == "python"
    stopped = harness.freeze_tree(pm)
    frozen_at = time.monotonic()
    say(f"SIGSTOP to {len(stopped)} PostgreSQL processes")
    try:
        if python:
            code, _, took = get(url + "/health", timeout=2.0)
            say(f"python: GET /health while stopped -> {code} after {took:.2f}s "
                "(latency and 503 checks skipped: Python Patroni's request waits on its status query)")
            assert code is None, "Python Patroni answered while PostgreSQL was stopped: the premise changed"
        else:
            slowest = 0.0
            turned: Optional[float] = None
            while time.monotonic() - frozen_at < TURNS_503_WITHIN_S:
                for path in ("/primary", "/health", "/patroni"):
                    code, _, took = get(url + path, timeout=3.0)
                    assert code is not None, f"GET {path} got no answer while PostgreSQL is stopped"
                    slowest = max(slowest, took)
                    if path == "/health" and code == 503 and turned is None:
                        turned = time.monotonic() - frozen_at
                if turned is not None:
                    break
                time.sleep(0.1)
            say(f"ours: /health 503 after {turned}s; slowest answer {slowest * 1000:.1f} ms")
            assert turned is not None, f"/health still 200 {TURNS_503_WITHIN_S}s after SIGSTOP"
            assert turned >= STALE_BOUND_S - 0.5, f"/health turned 503 after {turned:.2f}s, before the bound"
            assert slowest < LATENCY_S, f"a GET took {slowest:.3f}s while PostgreSQL was stopped"

            code, body, took = get(url + "/patroni")
            status = json.loads(body)
            assert code == 200 and took < LATENCY_S, (code, took)
            assert status["state"] == "unknown" and "xlog" not in status, status
            for method, path, want in (("HEAD", "/health", 503), ("OPTIONS", "/health", 503),
                                       ("GET", "/replica", 503), ("GET", "/primary", 200)):
                code, _, took = get(url + path, method=method)
                assert (code, took < LATENCY_S) == (want, True), (method, path, code, took)
            # Stay frozen a little longer (still inside the HA loop's own
            # 5 s query timeout, so that only the API is under test): the
            # answers stay fast and the same.
            while time.monotonic() - frozen_at < HOLD_S:
                code, _, took = get(url + "/health")
                assert (code, took < LATENCY_S) == (503, True), (code, took)
                time.sleep(0.2)
    finally:
        harness.thaw(stopped)
        say(f"SIGCONT after {time.monotonic() - frozen_at:.1f}s")

    thawed_at = time.monotonic()

    def health_ok() -> Optional[bool]:
        return True if get(url + "/health")[0] == 200 else None

    wait_for(health_ok, RECOVER_S, "GET /health = 200 after SIGCONT", check=one_node.check_running)
    say(f"/health 200 again {time.monotonic() - thawed_at:.2f}s after SIGCONT")
    code, body, _ = get(url + "/patroni")
    status = json.loads(body)
    assert code == 200 and status["state"] == "running" and status["role"] == "primary", status
    assert "location" in status.get("xlog", {}), status
    assert get(url + "/primary")[0] == 200
    # The daemon kept its PostgreSQL: same postmaster.
    assert node.postmaster_pid() == pm
