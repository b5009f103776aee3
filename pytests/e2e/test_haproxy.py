"""End-to-end: HAProxy, configured like the repository's top-level
haproxy.cfg, in front of a 3-node cluster.

HAProxy knows nothing about Patroni: it asks each member's REST API
`OPTIONS /primary` (primary port) or `OPTIONS /replica` (replica port) and
expects 200. The config used here is generated from ../../haproxy.cfg by
changing only the listening ports and the server lines, so the check
options, `inter`, `fall` and `rise` are the ones users copy. The scenarios:
both ports route correctly on a healthy cluster, and after a switchover and
after a lost host (daemon and postmaster SIGKILLed) the primary port reaches
the new primary within HAProxy's fall x inter (plus a little slack) of the
new leader taking the DCS leader key.

Run with a --basetemp of its own (see test_patronictl.py).
"""
from __future__ import annotations

import os
import pathlib
import re
import subprocess
import time
import urllib.request
from typing import Dict, List, Optional, Tuple

import pytest

from . import harness
from .harness import PG_BIN_DIR, SUPERUSER, Cluster, free_port, patronictl_run, wait_for

pytestmark = pytest.mark.e2e

HAPROXY = "/usr/sbin/haproxy"
REPO_CFG = pathlib.Path(__file__).resolve().parents[2] / "haproxy.cfg"
NOFAILOVER = "node2"
BOOTSTRAP_S = 150
# Slack on top of fall x inter for our polling (0.2 s), psql start-up and a
# loaded 2-core machine.
SLACK_S = 4.0


def say(cluster: Cluster, text: str) -> None:
    print(f"[{cluster.dcs}] {text}", flush=True)


def check_timings(cfg: str) -> Tuple[float, int, int]:
    """inter (seconds), fall and rise of the `default-server` line of the
    primary listener, as written in the repository's haproxy.cfg."""
    m = re.search(r"listen primary.*?default-server\s+inter\s+(\d+)(ms|s)\s+fall\s+(\d+)\s+rise\s+(\d+)", cfg, re.S)
    assert m, "haproxy.cfg: no `default-server inter .. fall .. rise ..` in `listen primary`"
    inter = float(m.group(1)) / (1000 if m.group(2) == "ms" else 1)
    return inter, int(m.group(3)), int(m.group(4))


def render_config(cluster: Cluster, ports: Dict[str, int]) -> str:
    """The repository's haproxy.cfg with our ports and our members."""
    cfg = REPO_CFG.read_text()
    for needle in ("option httpchk OPTIONS /primary", "option httpchk OPTIONS /replica", "http-check expect status 200",
                   "on-marked-down shutdown-sessions"):
        assert needle in cfg, f"haproxy.cfg lost `{needle}`"
    cfg = cfg.replace("bind 127.0.0.1:7000", f"bind 127.0.0.1:{ports['stats']}")
    cfg = cfg.replace("bind 127.0.0.1:5000", f"bind 127.0.0.1:{ports['primary']}")
    cfg = cfg.replace("bind 127.0.0.1:5001", f"bind 127.0.0.1:{ports['replicas']}")
    templates = re.findall(r"^(\s*)server \S+ 127\.0\.0\.1:\d+ (.*?)check port \d+(.*)$", cfg, re.M)
    assert templates, "haproxy.cfg has no `server ... check port` lines"
    indent, options, tail = templates[0]
    servers = "\n".join(f"{indent}server {n.name} 127.0.0.1:{n.pg_port} {options}check port {n.rest_port}{tail}"
                        for n in cluster.nodes)
    out: List[str] = []
    for block in re.split(r"(?m)^(?=listen )", cfg):
        lines = [line for line in block.splitlines() if not re.match(r"\s*server ", line)]
        if block.startswith("listen primary") or block.startswith("listen replicas"):
            lines.append(servers)
        out.append("\n".join(lines).rstrip() + "\n")
    return "\n".join(out)


class HAProxy:
    def __init__(self, cluster: Cluster):
        self.dir = cluster.dir / "haproxy"
        self.dir.mkdir(exist_ok=True)
        self.ports = {"primary": free_port(), "replicas": free_port(), "stats": free_port()}
        self.text = render_config(cluster, self.ports)
        self.config = self.dir / "haproxy.cfg"
        self.config.write_text(self.text)
        self.log = self.dir / "haproxy.log"
        self.proc: Optional[subprocess.Popen] = None

    def start(self) -> None:
        check = subprocess.run([HAPROXY, "-c", "-f", str(self.config)], capture_output=True, text=True)
        assert check.returncode == 0, f"haproxy -c rejected the config:\n{check.stdout}{check.stderr}\n{self.text}"
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([HAPROXY, "-db", "-f", str(self.config)], stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def states(self) -> Dict[str, str]:
        """`listener/server` -> UP/DOWN from the stats page's CSV."""
        url = f"http://127.0.0.1:{self.ports['stats']}/;csv"
        with urllib.request.urlopen(url, timeout=3) as resp:
            rows = resp.read().decode().splitlines()
        header = rows[0].lstrip("# ").split(",")
        out = {}
        for row in rows[1:]:
            cells = dict(zip(header, row.split(",")))
            if cells.get("svname") not in ("FRONTEND", "BACKEND", None) and cells.get("pxname") != "stats":
                out[f"{cells['pxname']}/{cells['svname']}"] = cells.get("status", "")
        return out


def through(port: int) -> Tuple[str, int]:
    """(`t`/`f` for pg_is_in_recovery, server port) of a fresh connection
    through `port`."""
    env = dict(os.environ, PGPASSWORD=SUPERUSER[1], PGCONNECT_TIMEOUT="3")
    dsn = f"host=127.0.0.1 port={port} user={SUPERUSER[0]} dbname=postgres"
    result = subprocess.run([f"{PG_BIN_DIR}/psql", dsn, "-X", "-At", "-F", " ", "-c",
                             "SELECT pg_is_in_recovery(), current_setting('port')"],
                            capture_output=True, text=True, timeout=10, env=env)
    if result.returncode != 0:
        raise RuntimeError(result.stderr.strip())
    recovery, server_port = result.stdout.split()
    return recovery, int(server_port)


@pytest.fixture(scope="module")
def haproxy(cluster: Cluster):
    if not os.path.exists(HAPROXY):
        pytest.fail(f"{HAPROXY} is missing (run .ci/setup)")
    proxy = HAProxy(cluster)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
        say(cluster, f"haproxy log:\n{harness.tail(proxy.log, 30)}")


def reaches_primary(proxy: HAProxy, cluster: Cluster, name: str) -> bool:
    return through(proxy.ports["primary"]) == ("f", cluster.node(name).pg_port)


def wait_primary_port(proxy: HAProxy, cluster: Cluster, name: str, since: float, budget: float, what: str) -> float:
    """Wait until the primary port reaches `name`'s primary; the seconds
    since `since`, which must stay within `budget`."""
    # Three fresh connections in a row: with round robin, a stale server
    # still marked UP would take one of them.
    wait_for(lambda: all(reaches_primary(proxy, cluster, name) for _ in range(3)), budget + 30,
             f"the primary port to reach {name} only", interval=0.2, check=cluster.check_running)
    took = time.monotonic() - since
    say(cluster, f"{what}: primary port reaches {name} {took:.1f}s after it took the leader key "
                 f"(budget {budget:.0f}s); HAProxy sees {proxy.states()}")
    assert took <= budget, f"{what}: the primary port reached {name} only after {took:.1f}s (budget {budget:.0f}s)"
    return took


def test_ports_route_by_role(cluster: Cluster, haproxy: HAProxy) -> None:
    leader = wait_for(cluster.leader_key, BOOTSTRAP_S, "a leader", check=cluster.check_running)
    leader = cluster.wait_healthy(BOOTSTRAP_S, leader=leader)
    inter, fall, rise = check_timings(haproxy.text)
    wait_for(lambda: reaches_primary(haproxy, cluster, leader), (rise + 1) * inter + 10,
             "the primary port to reach the leader", interval=0.2, check=cluster.check_running)
    replica_ports = {n.pg_port for n in cluster.nodes if n.name != leader}

    def both_replicas() -> bool:
        seen = set()
        for _ in range(6):
            recovery, port = through(haproxy.ports["replicas"])
            assert recovery == "t" and port in replica_ports, (recovery, port)
            seen.add(port)
        return seen == replica_ports
    wait_for(both_replicas, (rise + 1) * inter + 10, "the replica port to balance over both replicas",
             interval=0.5, check=cluster.check_running)
    states = haproxy.states()
    say(cluster, f"HAProxy sees {states}")
    for n in cluster.nodes:
        assert states[f"primary/{n.name}"] == ("UP" if n.name == leader else "DOWN"), states
        assert states[f"replicas/{n.name}"] == ("DOWN" if n.name == leader else "UP"), states


def leader_taken(cluster: Cluster, name: str, timeout: float) -> float:
    wait_for(lambda: cluster.leader_key() == name, timeout, f"{name} to take the leader key", interval=0.1,
             check=cluster.check_running)
    return time.monotonic()


def candidate(cluster: Cluster, leader: str) -> str:
    (name,) = [n.name for n in cluster.nodes if n.name not in (leader, NOFAILOVER)]
    return name


def test_switchover(cluster: Cluster, haproxy: HAProxy) -> None:
    leader = cluster.wait_healthy(90)
    new = candidate(cluster, leader)
    inter, fall, _ = check_timings(haproxy.text)
    started = time.monotonic()
    result = patronictl_run(cluster, "switchover", cluster.scope, "--leader", leader, "--candidate", new, "--force")
    assert result.returncode == 0, result.stdout + result.stderr
    taken = leader_taken(cluster, new, 60)
    say(cluster, f"switchover {leader} -> {new}: leader key after {taken - started:.1f}s")
    wait_primary_port(haproxy, cluster, new, taken, fall * inter + SLACK_S, "switchover")
    cluster.wait_healthy(90, leader=new)
    wait_for(lambda: through(haproxy.ports["replicas"])[0] == "t", 30, "the replica port to reach a replica")


def test_lost_host_failover(cluster: Cluster, haproxy: HAProxy) -> None:
    leader = cluster.wait_healthy(90)
    new = candidate(cluster, leader)
    inter, fall, _ = check_timings(haproxy.text)
    old = cluster.node(leader)
    started = time.monotonic()
    old.kill_host()
    taken = leader_taken(cluster, new, harness.TTL + harness.LOOP_WAIT + 30)
    say(cluster, f"lost host {leader}: {new} took the leader key after {taken - started:.1f}s")
    took = wait_primary_port(haproxy, cluster, new, taken, fall * inter + SLACK_S, "lost host failover")
    say(cluster, f"lost host {leader}: primary port back {taken - started + took:.1f}s after the kill")
    states = haproxy.states()
    assert states[f"primary/{leader}"] == "DOWN", states
    old.start()
    cluster.wait_healthy(120, leader=new)
