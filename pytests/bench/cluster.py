"""The benchmark's cluster and the instruments that watch it.

The end-to-end harness (`pytests/e2e/harness.py`) starts etcd and the nodes;
this module only changes what a benchmark needs to be different:

* Patroni's DEFAULT timings (ttl 30, loop_wait 10, retry_timeout 10) instead
  of the harness's short test timings, because the issue compares both
  implementations as an operator would run them;
* three equal members (no `nofailover` tag), so that either replica may win;

and adds what the harness does not have: a watch on the leader key, direct
PostgreSQL connections (psycopg, fast enough for a writer every 20 ms) and
/proc sampling of the daemon processes.
"""
from __future__ import annotations

import base64
import http.client
import json
import os
import pathlib
import threading
import time
from typing import Dict, List, Optional, Tuple

import psycopg

from pytests.e2e import harness

# Patroni's own defaults, written to the DCS at bootstrap.
TTL = 30
LOOP_WAIT = 10
RETRY_TIMEOUT = 10

DCS = "etcd3"
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchNode(harness.Node):
    """A harness node whose bootstrap configuration carries the default
    timings; everything else (authentication, slots, pg_rewind, logging)
    stays exactly as the end-to-end tests run it."""

    def config(self) -> dict:
        c = super().config()
        c["bootstrap"]["dcs"].update(ttl=TTL, loop_wait=LOOP_WAIT, retry_timeout=RETRY_TIMEOUT)
        return c

    def connect(self, timeout: float = 1.0) -> psycopg.Connection:
        """An autocommit superuser connection over TCP."""
        return psycopg.connect(host="127.0.0.1", port=self.pg_port, user=harness.SUPERUSER[0],
                               password=harness.SUPERUSER[1], dbname="postgres",
                               connect_timeout=max(1, int(timeout)), autocommit=True,
                               options="-c statement_timeout=3000")


class BenchCluster(harness.Cluster):
    """Three equal BenchNodes on etcd3."""

    def __init__(self, workdir: pathlib.Path, daemon: List[str], run_as: harness.RunAs):
        super().__init__(workdir, DCS, daemon, run_as, [{}, {}, {}])
        self.nodes = [BenchNode(self, i, {}) for i in range(3)]

    @property
    def leader_path(self) -> str:
        return f"{self.namespace}{self.scope}/leader"

    def bench_node(self, name: str) -> BenchNode:
        node = self.node(name)
        assert isinstance(node, BenchNode)
        return node


def query(node: BenchNode, sql: str, params: Tuple = ()) -> list:
    """One short-lived connection, one statement, all rows (none for a
    statement that returns no rows, such as CREATE TABLE)."""
    with node.connect(timeout=3) as conn:
        cur = conn.execute(sql, params)
        return cur.fetchall() if cur.description is not None else []


def streaming_replicas(primary: BenchNode) -> List[str]:
    """application_name of every standby streaming from `primary`."""
    rows = query(primary, "SELECT application_name FROM pg_stat_replication WHERE state = 'streaming'")
    return sorted(r[0] for r in rows)


# --- the leader key ------------------------------------------------------------

class LeaderKeyWatch:
    """An etcd v3 watch on the leader key (through etcd's JSON gateway), in a
    background thread. Records the monotonic time at which the key is first
    deleted (lease expiry) or overwritten by another member, which is the
    moment the old leader is "gone" as far as the other members can know."""

    def __init__(self, etcd: harness.Etcd, key: str, holder: str):
        self.etcd = etcd
        self.key = key
        self.holder = holder
        self.gone_at: Optional[float] = None
        # Set together with gone_at, for threads that wait on it.
        self.gone = threading.Event()
        self.next_holder: Optional[str] = None
        self.error: Optional[str] = None
        self._ready = threading.Event()
        self._done = threading.Event()
        self._conn: Optional[http.client.HTTPConnection] = None
        self._thread = threading.Thread(target=self._run, name="leader-watch", daemon=True)

    def start(self, timeout: float = 10) -> None:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"etcd watch on {self.key} was not created: {self.error}")
        if self.error:
            raise RuntimeError(self.error)

    def _run(self) -> None:
        try:
            self._conn = http.client.HTTPConnection("127.0.0.1", self.etcd.client_port, timeout=None)
            body = json.dumps({"create_request": {"key": base64.b64encode(self.key.encode()).decode()}})
            self._conn.request("POST", "/v3/watch", body=body, headers={"Content-Type": "application/json"})
            resp = self._conn.getresponse()
            if resp.status != 200:
                self.error = f"etcd watch answered {resp.status}: {resp.read(500)!r}"
                self._ready.set()
                return
            while not self._done.is_set():
                line = resp.readline()
                if not line:
                    break
                now = time.monotonic()
                result = json.loads(line).get("result", {})
                if result.get("created"):
                    self._ready.set()
                for event in result.get("events", []):
                    kv = event.get("kv", {})
                    value = base64.b64decode(kv["value"]).decode() if kv.get("value") else None
                    if event.get("type") == "DELETE" or value != self.holder:
                        if self.gone_at is None:
                            self.gone_at = now
                            self.gone.set()
                        if event.get("type") != "DELETE":
                            self.next_holder = value
                            return
        except Exception as exc:  # noqa: BLE001 - reported through .error
            if not self._done.is_set():
                self.error = f"etcd watch failed: {type(exc).__name__}: {exc}"
        finally:
            self._ready.set()

    def stop(self) -> None:
        self._done.set()
        if self._conn is not None:
            try:
                if self._conn.sock is not None:
                    self._conn.sock.shutdown(2)
            except OSError:
                pass
            self._conn.close()
        self._thread.join(5)


def leader_lease(etcd: harness.Etcd, key: str) -> Optional[Tuple[int, int]]:
    """(granted TTL, seconds left) of the lease the leader key is attached
    to, or None without one: it tells how long after a lost host the key
    can outlive its owner, which frames the "kill -> key gone" figure."""
    body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
    kvs = harness.http_json(etcd.url + "/v3/kv/range", data=body).get("kvs") or []
    lease = int(kvs[0].get("lease", 0)) if kvs else 0
    if not lease:
        return None
    answer = harness.http_json(etcd.url + "/v3/lease/timetolive", data=json.dumps({"ID": lease}).encode())
    return int(answer.get("grantedTTL", 0)), int(answer.get("TTL", 0))


# --- daemon processes ------------------------------------------------------------

def proc_status(pid: int) -> Dict[str, str]:
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def rss_mb(pid: int) -> float:
    """VmRSS in MB (MiB, as `ps` and Patroni's own figures count)."""
    return int(proc_status(pid)["VmRSS"].split()[0]) / 1024


def threads(pid: int) -> int:
    return int(proc_status(pid)["Threads"])


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of the process itself (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime 14 and stime 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK
