"""Fixtures for the end-to-end tests: a real 3-node cluster per DCS.

PATRONI_E2E_IMPL selects the daemon under test: unset or `rs` for ours (the
`patroni` binary, PATRONI_RS_BIN overriding the build path), `python` for
Python Patroni 4.1.5 from the project venv, which is how these tests were
validated. Select or skip them with the `e2e` marker (`-m e2e`, `-m "not e2e"`).

    PATRONI_E2E_IMPL=python /opt/patroni-rs/venv/bin/python -m pytest pytests/e2e -q -x -s

runs them against Python Patroni and prints the timings (as root, the nodes
run as `patroni-rs-test`). On a failure the last lines of every node's logs
are part of the report.
"""
from __future__ import annotations

import contextlib
import os
import pathlib
from typing import Iterator, List, Optional

import pytest

from conftest import patroni_binary

from . import harness

# Clusters alive right now, so that a failure report can include their logs.
_ACTIVE: List[harness.Cluster] = []


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "e2e: end-to-end tests with real etcd, PostgreSQL and Patroni processes")


def pytest_collection_modifyitems(config: pytest.Config, items: List[pytest.Item]) -> None:
    here = pathlib.Path(__file__).parent
    for item in items:
        if here in pathlib.Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.e2e)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    outcome = yield
    report = outcome.get_result()
    if not report.failed:
        return
    for cluster in _ACTIVE:
        report.sections.append((f"e2e logs ({cluster.dcs}, {report.when})", cluster.log_tails()))
    cluster = getattr(item, "funcargs", {}).get("cluster")
    if isinstance(cluster, harness.Cluster) and cluster.failed_scenario is None:
        cluster.failed_scenario = item.name


@pytest.fixture(autouse=True)
def _previous_scenarios_passed(request: pytest.FixtureRequest) -> None:
    """The scenarios share one cluster and run in order: after a failure the
    rest would only time out on a broken cluster, so skip them."""
    if "cluster" not in request.fixturenames:
        return
    cluster = request.getfixturevalue("cluster")
    if cluster.failed_scenario is not None:
        pytest.skip(f"{cluster.failed_scenario} failed on this cluster")


def impl() -> str:
    value = os.environ.get("PATRONI_E2E_IMPL", "rs").strip().lower()
    if value in ("", "rs", "ours", "rust"):
        return "rs"
    if value == "python":
        return "python"
    raise pytest.UsageError(f"PATRONI_E2E_IMPL={value!r}: expected 'python' or 'rs'")


@pytest.fixture(scope="session")
def daemon_argv() -> List[str]:
    """The command that starts a node, without the config file argument."""
    if impl() == "python":
        if not harness.PYTHON_PATRONI.exists():
            pytest.fail(f"Python Patroni not found at {harness.PYTHON_PATRONI} (run .ci/setup)")
        return [str(harness.PYTHON_PATRONI)]
    try:
        path = patroni_binary()
    except RuntimeError as exc:
        pytest.fail(f"our daemon is not built: {exc} (or set PATRONI_E2E_IMPL=python)")
    if not path.exists():
        pytest.fail(f"our daemon not found at {path} (PATRONI_RS_BIN)")
    return [str(path)]


@contextlib.contextmanager
def running_cluster(tmp_path_factory: pytest.TempPathFactory, dcs: str, daemon_argv: List[str],
                    tags: List[dict], prefix: str = "e2e", dynamic: Optional[dict] = None,
                    scope: Optional[str] = None) -> Iterator[harness.Cluster]:
    """A started cluster (one node per entry of `tags`) in a fresh directory,
    its logs attached to failure reports, cleaned up on exit."""
    server = harness.ZOOKEEPER_JAR if dcs == "zookeeper" else harness.ETCD_BIN
    for binary in (server, f"{harness.PG_BIN_DIR}/postgres"):
        if not os.path.exists(binary):
            pytest.fail(f"{binary} is missing (run .ci/setup)")
    workdir = tmp_path_factory.mktemp(f"{prefix}-{dcs}")
    # Only pytest's own directories are opened up to the node user.
    harness.make_reachable(workdir, stop_at=tmp_path_factory.getbasetemp().parent)
    c = harness.Cluster(workdir, dcs, daemon_argv, harness.node_user(), tags, dynamic=dynamic)
    if scope:
        c.scope = scope
    _ACTIVE.append(c)
    print(f"\n[{dcs}] cluster {c.scope} in {workdir} with {' '.join(daemon_argv)}")
    try:
        c.start()
        yield c
    finally:
        c.cleanup()
        _ACTIVE.remove(c)


# The DCS a module runs on unless it lists its own in `E2E_DCS`: ZooKeeper
# runs only where a module asks for it, to keep the CI run short.
DEFAULT_DCS = ("etcd3", "etcd")


@pytest.fixture(scope="module", params=["etcd3", "etcd", "zookeeper"])
def cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    """A started (not yet necessarily bootstrapped) 3-node cluster; node2
    carries `nofailover: true` for the whole module."""
    if request.param not in getattr(request.module, "E2E_DCS", DEFAULT_DCS):
        pytest.skip(f"{request.module.__name__} does not run on {request.param}")
    with running_cluster(tmp_path_factory, request.param, daemon_argv, [{}, {}, {"nofailover": True}]) as c:
        yield c
