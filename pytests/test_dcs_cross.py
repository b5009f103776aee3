"""Cross-implementation DCS tests: Python Patroni 4.1.5 and patroni-rs on one etcd.

Each test runs real processes only: one etcd 3.4 server (v3 and v2 APIs),
Python Patroni's own DCS objects built with `patroni.dcs.get_dcs` from a
config dict as Patroni builds them, and our backends through the
`patroni_rs.Dcs` bridge. Every test is parametrized over the etcd3 and the
etcd (v2) backends, and works in its own cluster scope.

What is checked:
- what we write, Python Patroni reads back unchanged, and the stored bytes
  are the bytes Python would have written for the same values;
- what Python Patroni writes, we read as an equal view;
- compare-and-set versions are interchangeable between the two;
- leader contention: exactly one side ever believes it holds the key;
- expiry: a Python leader that stops refreshing loses the key to us.
"""
import base64
import copy
import datetime
import json
import os
import random
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid

import pytest

import patroni_rs
from patroni.dcs import AbstractDCS, get_dcs

KINDS = ["etcd3", "etcd"]
ETCD_BINARY = os.environ.get("ETCD_BINARY", "/usr/bin/etcd")


def compact(value):
    """What Patroni stores for a value: `json.dumps` with compact separators."""
    return json.dumps(value, separators=(",", ":"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class EtcdServer:
    """A throwaway single-node etcd on free loopback ports."""

    def __init__(self):
        if not os.path.exists(ETCD_BINARY):
            pytest.fail(f"etcd not installed at {ETCD_BINARY} (apt-get install etcd-server)")
        self.dir = tempfile.mkdtemp(prefix="dcs-cross-")
        self.port = free_port()
        peer = f"http://127.0.0.1:{free_port()}"
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            ETCD_BINARY, "--name", "cross", "--data-dir", os.path.join(self.dir, "data"),
            "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"cross={peer}", "--enable-v2=true",
        ]
        self.log = open(os.path.join(self.dir, "etcd.log"), "wb")
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT)
        self._wait_ready()

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.port}"

    def _wait_ready(self):
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                    if json.load(r).get("health") == "true":
                        return
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"etcd did not become healthy on {self.url}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # Raw access, bypassing both implementations.

    def raw(self, kind, key):
        """The stored value of `key` through the API `kind` uses, or None."""
        if kind == "etcd3":
            body = json.dumps({"key": base64.b64encode(key.encode()).decode()}).encode()
            req = urllib.request.Request(self.url + "/v3/kv/range", data=body, method="POST")
            with urllib.request.urlopen(req, timeout=5) as r:
                kvs = json.load(r).get("kvs") or []
            return base64.b64decode(kvs[0]["value"]).decode() if kvs else None
        try:
            with urllib.request.urlopen(f"{self.url}/v2/keys{key}", timeout=5) as r:
                return json.load(r)["node"]["value"]
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None
            raise


@pytest.fixture(scope="module")
def etcd():
    server = EtcdServer()
    yield server
    server.stop()


@pytest.fixture(params=KINDS)
def kind(request):
    return request.param


@pytest.fixture
def scope():
    return "cross-" + uuid.uuid4().hex[:10]


@pytest.fixture
def nodes(etcd, kind, scope):
    """Factories for a Python Patroni DCS and one of ours on this scope."""
    ours, theirs = [], []

    class Nodes:
        def python(self, name, ttl=30, loop_wait=10, retry_timeout=10, namespace="/service/"):
            config = {
                "scope": scope, "name": name, "namespace": namespace,
                "ttl": ttl, "loop_wait": loop_wait, "retry_timeout": retry_timeout,
                kind: {"hosts": [etcd.endpoint]},
            }
            dcs = get_dcs(config)
            assert type(dcs).__name__ == {"etcd3": "Etcd3", "etcd": "Etcd"}[kind]
            theirs.append(dcs)
            return dcs

        def rust(self, name, ttl=30, loop_wait=10, retry_timeout=10, namespace="/service/"):
            dcs = patroni_rs.Dcs(kind, [etcd.endpoint], scope, name, namespace=namespace,
                                 ttl=ttl, retry_timeout=retry_timeout, loop_wait=loop_wait)
            ours.append(dcs)
            return dcs

        def raw(self, relative):
            return etcd.raw(kind, f"/service/{scope}/{relative}")

    yield Nodes()
    for dcs in ours:
        dcs.close()
    for dcs in theirs:
        park_python_watcher(dcs)


def park_python_watcher(dcs):
    """Stop a Python Etcd3 object's watch thread from reconnecting forever.

    Patroni's KVCache thread has no stop method (Patroni never needs one);
    left alone it would log connection errors into other tests once etcd is
    gone. Its loop calls `_build_cache` again after the stream ends, so we
    make that call sleep and end the current stream.
    """
    cache = getattr(getattr(dcs, "_client", None), "_kv_cache", None)
    if cache is not None:
        cache._build_cache = lambda: time.sleep(3600)
        cache.kill_stream()


def eventually(read, check, timeout=5.0):
    """Re-read until `check(value)` holds (watch caches lag a little)."""
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if check(value):
            return value
        if time.monotonic() > deadline:
            return value
        time.sleep(0.05)


def version(v):
    """A version as an int: Python's etcd3 backend keeps them as strings."""
    return None if v is None else int(v)


def py_version(kind, v):
    """Our int version in the type Python's backend keeps for `kind`."""
    return str(v) if kind == "etcd3" else v


def python_view(cluster, kind):
    """Python Patroni's Cluster in the shape of `patroni_rs.Dcs.get_cluster()`.

    Sessions are compared only on etcd3, where both sides report the lease
    id; on etcd v2 it is the remaining TTL at read time. The v2 leader
    version is the cluster index at read time, so it is left out there too.
    """
    v3 = kind == "etcd3"
    leader = cluster.leader and {
        "name": cluster.leader.name,
        "version": version(cluster.leader.version) if v3 else None,
        "session": cluster.leader.session if v3 else None,
    }
    failover = cluster.failover and {
        "leader": cluster.failover.leader,
        "member": cluster.failover.candidate,
        "scheduled_at": cluster.failover.scheduled_at and cluster.failover.scheduled_at.isoformat(),
        "version": version(cluster.failover.version),
    }
    return {
        "initialize": cluster.initialize,
        "config": cluster.config and {
            "data": cluster.config.data,
            "version": version(cluster.config.version),
            "modify_version": version(cluster.config.modify_version),
        },
        "leader": leader,
        "members": {m.name: {"data": m.data, "version": version(m.version),
                             "session": m.session if v3 else None} for m in cluster.members},
        "failover": failover,
        "sync": {
            "leader": cluster.sync.leader,
            "sync_standby": cluster.sync.sync_standby,
            "voters": cluster.sync.voters,
            "quorum": cluster.sync.quorum,
            "version": version(cluster.sync.version),
        },
        "status": {"optime": cluster.status.last_lsn, "slots": cluster.status.slots,
                   "retain_slots": cluster.status.retain_slots},
        "history": cluster.history and {"lines": cluster.history.lines,
                                        "version": version(cluster.history.version)},
        "failsafe": cluster.failsafe,
    }


def comparable(view, kind):
    """Our view with the fields `python_view` cannot compare on this kind dropped."""
    view = copy.deepcopy(view)
    if kind != "etcd3":
        if view["leader"]:
            view["leader"]["version"] = view["leader"]["session"] = None
        for m in view["members"].values():
            m["session"] = None
    if view["failover"] and view["failover"]["scheduled_at"]:
        # Python parses the timestamp; compare in its isoformat().
        view["failover"]["scheduled_at"] = datetime.datetime.fromisoformat(
            view["failover"]["scheduled_at"]).isoformat()
    return view


# A cluster state with every key, in the shapes Patroni 4.1.5 writes.
SYSID = "7710799292757857557"
CONFIG = {
    "ttl": 30, "loop_wait": 10, "retry_timeout": 10, "maximum_lag_on_failover": 1048576,
    "postgresql": {"use_pg_rewind": True,
                   "parameters": {"max_connections": 100, "wal_level": "logical",
                                  "archive_command": "cp %p /arch/\u00e9t\u00e9/%f"}},
    "slots": {"perm": {"type": "physical"}, "logical_1": {"type": "logical",
                                                          "database": "db", "plugin": "pgoutput"}},
    "synchronous_mode": False, "failsafe_mode": None, "ratio": 0.5, "list": [1, 2.25, None, "x"],
}


def member_data(name, role, tags, lsn, timeline):
    """A member value in the field order of Patroni's touch_member."""
    return {
        "conn_url": f"postgres://127.0.0.1:5432/postgres?n={name}",
        "api_url": f"http://127.0.0.1:8008/patroni?n={name}",
        "state": "running", "role": role, "version": "4.1.5", "tags": tags,
        "xlog_location": lsn, "timeline": timeline,
    }


STATUS = {"optime": 67109640, "slots": {"node_a": 67109640, "perm": 33554472},
          "retain_slots": ["node_a", "node_b"]}
HISTORY = [
    [1, 67420064, "no recovery target specified", "2026-11-22T01:21:26.702833+00:00", "node_b"],
    [2, 67420896, "no recovery target specified", "2026-11-22T01:22:00.100000+00:00", "node_a"],
]
SCHEDULED = datetime.datetime(2026, 11, 22, 5, 0, 0, 123000, tzinfo=datetime.timezone.utc)


def test_ours_writes_python_reads(nodes, kind):
    names = ["node_a", "node_b", "node_c"]
    tags = {
        "node_a": {},
        "node_b": {"zone": "z\u00fcrich-\u20ac \U0001f418", "nofailover": False},
        "node_c": {"nosync": True, "replicatefrom": "node_b"},
    }
    ours = {n: nodes.rust(n) for n in names}
    leader = ours["node_a"]
    leader.initialize(True, SYSID)
    leader.set_config_value(CONFIG)
    assert leader.attempt_to_acquire_leader() is True
    members = {}
    for i, n in enumerate(names):
        members[n] = member_data(n, "primary" if n == "node_a" else "replica", tags[n],
                                 67109640 - i, 2)
        if not tags[n]:
            del members[n]["tags"]
        ours[n].touch_member(members[n])
    leader.manual_failover("node_a", "node_b", SCHEDULED.isoformat())
    sync_version = leader.write_sync_state("node_a", ["node_c", "node_b"], 1)
    leader.write_status(STATUS)
    leader.set_history_value(HISTORY)
    failsafe = {n: members[n]["api_url"] for n in names}
    leader.write_failsafe(failsafe)

    # The bytes stored are what Python Patroni writes for the same values.
    assert nodes.raw("initialize") == SYSID
    assert nodes.raw("config") == compact(CONFIG)
    assert nodes.raw("leader") == "node_a"
    for n in names:
        assert nodes.raw(f"members/{n}") == compact(members[n])
    assert nodes.raw("members/node_b").isascii()  # non-ASCII escaped like json.dumps
    assert nodes.raw("failover") == compact(
        {"leader": "node_a", "member": "node_b", "scheduled_at": SCHEDULED.isoformat()})
    assert nodes.raw("sync") == compact(AbstractDCS.sync_state("node_a", ["node_c", "node_b"], 1))
    assert nodes.raw("status") == compact(STATUS)
    assert nodes.raw("history") == compact(HISTORY)
    assert nodes.raw("failsafe") == compact(failsafe)

    # Python Patroni reads exactly what we wrote.
    py = nodes.python("observer")
    cluster = eventually(py.get_cluster, lambda c: c.failsafe is not None and len(c.members) == 3)
    assert cluster.initialize == SYSID
    assert cluster.config.data == CONFIG
    assert cluster.leader.name == "node_a"
    assert {m.name: m.data for m in cluster.members} == members
    assert cluster.leader.member.data == members["node_a"]
    assert cluster.get_member("node_b").tags["zone"] == "z\u00fcrich-\u20ac \U0001f418"
    assert (cluster.failover.leader, cluster.failover.candidate) == ("node_a", "node_b")
    assert cluster.failover.scheduled_at == SCHEDULED
    assert (cluster.sync.leader, cluster.sync.voters, cluster.sync.quorum) == (
        "node_a", ["node_b", "node_c"], 1)
    assert cluster.sync.members == ["node_a", "node_b", "node_c"]
    assert version(cluster.sync.version) == sync_version
    assert cluster.status.last_lsn == STATUS["optime"]
    assert cluster.status.slots == STATUS["slots"]
    assert cluster.status.retain_slots == STATUS["retain_slots"]
    assert cluster.history.lines == HISTORY
    assert cluster.failsafe == failsafe

    # And our own view equals Python's, versions and sessions included.
    view = eventually(leader.get_cluster, lambda v: v["failsafe"] is not None)
    assert comparable(view, kind) == python_view(cluster, kind)
    assert view["config"]["data"] == CONFIG
    if kind == "etcd3":
        assert view["leader"]["session"] == view["members"]["node_a"]["session"]


def test_python_writes_ours_reads(nodes, kind):
    py_a = nodes.python("py_a")
    py_b = nodes.python("py_b")
    a = member_data("py_a", "primary", {"zone": "K\u00f8benhavn", "nofailover": False}, 67109640, 2)
    b = member_data("py_b", "replica", {"clonefrom": True}, 67109000, 2)
    assert py_a.initialize(create_new=True, sysid=SYSID)
    assert not py_a.initialize(create_new=True, sysid="other")  # etcd3 answers {}
    assert py_a.set_config_value(compact(CONFIG))
    assert py_a.touch_member(a)
    assert py_b.touch_member(b)
    assert py_a.attempt_to_acquire_leader()
    assert py_a.manual_failover("py_a", "py_b", scheduled_at=SCHEDULED)
    assert py_a.write_sync_state("py_a", ["py_b"], 0) is not None
    py_a.write_status(dict(STATUS))
    assert py_a.set_history_value(compact(HISTORY))
    failsafe = {"py_a": a["api_url"], "py_b": b["api_url"]}
    py_a.write_failsafe(failsafe)

    ours = nodes.rust("observer")
    view = eventually(ours.get_cluster, lambda v: v["failsafe"] is not None and len(v["members"]) == 2)
    assert view["initialize"] == SYSID
    assert view["config"]["data"] == CONFIG
    assert view["leader"]["name"] == "py_a"
    assert view["members"]["py_a"]["data"] == a
    assert view["members"]["py_a"]["data"]["tags"]["zone"] == "K\u00f8benhavn"
    assert view["members"]["py_b"]["data"] == b
    assert view["failover"]["leader"] == "py_a" and view["failover"]["member"] == "py_b"
    assert view["failover"]["scheduled_at"] == SCHEDULED.isoformat()
    assert (view["sync"]["leader"], view["sync"]["voters"], view["sync"]["quorum"]) == ("py_a", ["py_b"], 0)
    assert view["status"] == STATUS
    assert view["history"]["lines"] == HISTORY
    assert view["failsafe"] == failsafe

    cluster = eventually(py_a.get_cluster, lambda c: c.failsafe is not None and len(c.members) == 2)
    assert comparable(view, kind) == python_view(cluster, kind)
    if kind == "etcd3":
        assert view["leader"]["session"] == str(py_a._lease)

    # A Python leader's update_leader refreshes status and failsafe; we see it.
    slots = {"py_b": 67109700}
    assert py_a.update_leader(cluster, 67109999, slots=slots, failsafe={"py_a": a["api_url"]})
    view = eventually(ours.get_cluster, lambda v: v["status"]["optime"] == 67109999
                      and v["failsafe"] == {"py_a": a["api_url"]})
    assert view["status"]["optime"] == 67109999
    assert view["status"]["slots"] == slots
    assert view["failsafe"] == {"py_a": a["api_url"]}
    assert nodes.raw("status") == compact({"optime": 67109999, "slots": slots,
                                           "retain_slots": view["status"]["retain_slots"]})
    assert view["status"]["retain_slots"] == ["py_b"]

    # write_leader_optime keeps the last slots and retain_slots.
    py_a.write_leader_optime(67110001)
    view = eventually(ours.get_cluster, lambda v: v["status"]["optime"] == 67110001)
    assert view["status"] == {"optime": 67110001, "slots": slots, "retain_slots": ["py_b"]}


def test_config_cas_interplay(nodes, kind):
    # Both normalize the namespace the same way: all three spell /service/.
    ours = nodes.rust("rs", namespace="//service")
    py = nodes.python("py", namespace="service")

    ours.set_config_value({"step": 1})
    cfg = eventually(py.get_cluster, lambda c: c.config is not None).config
    assert cfg.data == {"step": 1}
    stale = cfg.version
    # Python updates on the version it read from our write.
    assert py.set_config_value(compact({"step": 2}), version=stale) is True
    # Our update on the now-stale version loses.
    with pytest.raises(patroni_rs.DcsCasFailed) as e:
        ours.set_config_value({"step": "stale-rs"}, version=int(stale))
    assert e.value.kind == "cas_failed"
    assert nodes.raw("config") == compact({"step": 2})
    # We update on the version of Python's write.
    view = eventually(ours.get_cluster, lambda v: v["config"]["data"] == {"step": 2})
    assert view["config"]["data"] == {"step": 2}
    assert view["config"]["version"] > int(stale)
    ours.set_config_value({"step": 3}, version=view["config"]["version"])
    assert nodes.raw("config") == compact({"step": 3})
    # Python's update on the version of its own, now overwritten, write loses.
    assert py.set_config_value(compact({"step": "stale-py"}),
                               version=py_version(kind, view["config"]["version"])) is False
    assert nodes.raw("config") == compact({"step": 3})
    # Python sees our write with the version we would use.
    cluster = eventually(py.get_cluster, lambda c: c.config.data == {"step": 3})
    assert cluster.config.data == {"step": 3}
    final = eventually(ours.get_cluster, lambda v: v["config"]["data"] == {"step": 3})
    assert version(cluster.config.version) == final["config"]["version"]

    # The same interplay on the sync key, which returns its new version.
    v1 = ours.write_sync_state("rs", ["py"], 0)
    state = py.write_sync_state("py", ["rs"], 1, version=py_version(kind, v1))
    assert state is not None and version(state.version) > v1
    with pytest.raises(patroni_rs.DcsCasFailed):
        ours.write_sync_state("rs", [], 0, version=v1)
    assert py.write_sync_state("py", [], 0, version=py_version(kind, v1)) is None
    assert nodes.raw("sync") == compact(AbstractDCS.sync_state("py", ["rs"], 1))


def test_deletions_interplay(nodes, kind):
    ours = nodes.rust("rs")
    py = nodes.python("py")
    ours.initialize(True, SYSID)
    assert eventually(py.get_cluster, lambda c: c.initialize == SYSID).initialize == SYSID
    # The bootstrap race: we give up, Python takes it, we lose to Python.
    ours.cancel_initialization()
    assert nodes.raw("initialize") is None
    assert py.initialize(create_new=True, sysid="py-sysid")
    with pytest.raises(patroni_rs.DcsCasFailed):
        ours.initialize(True, SYSID)
    assert nodes.raw("initialize") == "py-sysid"

    # sync: compare-and-delete on the version, across implementations.
    state = py.write_sync_state("py", ["rs"], 0)
    stale = version(state.version)
    state = py.write_sync_state("py", ["rs"], 1, version=state.version)
    with pytest.raises(patroni_rs.DcsCasFailed):
        ours.delete_sync_state(stale)
    assert nodes.raw("sync") == compact(AbstractDCS.sync_state("py", ["rs"], 1))
    ours.delete_sync_state(version(state.version))
    assert nodes.raw("sync") is None
    v = ours.write_sync_state("rs", ["py"], 0)
    assert not py.delete_sync_state(version=py_version(kind, v - 1))
    assert py.delete_sync_state(version=py_version(kind, v))
    assert nodes.raw("sync") is None

    # delete_cluster from either side removes everything the other sees.
    ours.touch_member(member_data("rs", "replica", {}, 1, 1))
    assert py.touch_member(member_data("py", "replica", {}, 1, 1))
    assert py.attempt_to_acquire_leader()
    ours.delete_cluster()
    for key in ("initialize", "leader", "members/rs", "members/py"):
        assert nodes.raw(key) is None, key
    cluster = eventually(py.get_cluster, lambda c: not c.members and c.leader is None)
    assert (cluster.initialize, cluster.leader, cluster.members) == (None, None, [])
    ours.initialize(True, SYSID)
    ours.touch_member(member_data("rs", "replica", {}, 1, 1), use_cluster=False)
    assert eventually(py.get_cluster, lambda c: len(c.members) == 1).members[0].name == "rs"
    assert py.delete_cluster()
    view = eventually(ours.get_cluster, lambda v: not v["members"] and v["initialize"] is None)
    assert (view["initialize"], view["leader"], view["members"]) == (None, None, {})


def test_leader_contention(nodes, kind):
    py = nodes.python("py")
    ours = nodes.rust("rs")
    assert py.touch_member(member_data("py", "replica", {}, 1, 1))
    ours.touch_member(member_data("rs", "replica", {}, 1, 1))
    sides = {"py": py, "rs": ours}

    # Python's etcd3 client needs ~45 ms per write here (ours ~3 ms), so
    # without a handicap we would win every race. A seeded random delay for
    # our side (up to 100 ms on etcd3, Python's up to 20 ms) keeps both
    # requests in flight together and lets either side win. On etcd v2 both
    # clients are about as fast, and the delays are even.
    rng = random.Random(4105)
    handicap = 0.1 if kind == "etcd3" else 0.02

    def attempt(name, barrier, results, delay):
        barrier.wait()
        time.sleep(delay)
        results[name] = sides[name].attempt_to_acquire_leader()

    def py_leader_name():
        c = py.get_cluster()
        return c, c.leader and c.leader.name

    wins = {"py": 0, "rs": 0}
    rounds = 20
    for rnd in range(rounds):
        barrier = threading.Barrier(2)
        results = {}
        delays = {"py": rng.uniform(0, 0.02), "rs": rng.uniform(0, handicap)}
        threads = [threading.Thread(target=attempt, args=(n, barrier, results, delays[n]))
                   for n in sides]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        assert sorted(results) == ["py", "rs"], f"round {rnd}: an attempt did not finish"
        holders = [n for n, won in results.items() if won]
        assert len(holders) == 1, f"round {rnd}: {results}"
        holder = holders[0]
        other = "rs" if holder == "py" else "py"
        wins[holder] += 1
        assert nodes.raw("leader") == holder

        # Both sides' views catch up with the stored key first: both
        # implementations trust a snapshot that shows them holding the key
        # with their own lease (no round trip), as the HA loop does, so a
        # refresh from a stale snapshot is not what this test is about.
        cluster, name = eventually(py_leader_name, lambda r: r[1] == holder)
        assert name == holder, f"round {rnd}: Python sees {name}"
        view = eventually(ours.get_cluster, lambda v: v["leader"] and v["leader"]["name"] == holder)
        assert view["leader"]["name"] == holder, f"round {rnd}: we see {view['leader']}"

        # The holder refreshes; the other side's refresh and release fail.
        for _ in range(2):
            if holder == "py":
                assert py.update_leader(py.get_cluster(), None) is True
                assert ours.update_leader() is False
                assert ours.delete_leader() is False
            else:
                ours.get_cluster()
                assert ours.update_leader() is True
                assert py.update_leader(cluster, None) is False
                assert py.delete_leader(cluster.leader) is False
            assert nodes.raw("leader") == holder, f"round {rnd}: {other} took the key"

        # The holder releases.
        if holder == "py":
            assert py.delete_leader(py.get_cluster().leader) is True
        else:
            assert ours.delete_leader() is True
        assert nodes.raw("leader") is None
    assert wins["py"] + wins["rs"] == rounds
    # Both code paths (Python holds / we hold) were exercised.
    assert wins["py"] > 0 and wins["rs"] > 0, wins


def test_python_leader_expires(nodes, kind):
    ttl = 4
    py = nodes.python("py", ttl=ttl, loop_wait=1, retry_timeout=2)
    ours = nodes.rust("rs", ttl=30, loop_wait=1, retry_timeout=2)
    assert py.attempt_to_acquire_leader()
    acquired = time.monotonic()
    assert ours.attempt_to_acquire_leader() is False
    view = eventually(ours.get_cluster, lambda v: v["leader"] is not None)
    assert view["leader"]["name"] == "py"
    # Python stops refreshing; our watch wakes when the key goes away.
    woke = ours.watch(view["leader"]["version"], ttl + 4.0)
    assert woke is True
    taken = None
    while time.monotonic() - acquired < ttl + 6:
        if ours.attempt_to_acquire_leader():
            taken = time.monotonic() - acquired
            break
        time.sleep(0.1)
    assert taken is not None, "the expired key was never taken"
    # Not before the TTL could have run out (the lease may predate the key).
    assert taken >= ttl - 2.5, taken
    assert nodes.raw("leader") == "rs"
    cluster = eventually(py.get_cluster, lambda c: c.leader and c.leader.name == "rs")
    assert cluster.leader.name == "rs"
    assert py.update_leader(cluster, None) is False


def test_our_watch_wakes_when_python_releases(nodes, kind):
    py = nodes.python("py")
    ours = nodes.rust("rs")
    assert py.attempt_to_acquire_leader()
    view = eventually(ours.get_cluster, lambda v: v["leader"] is not None)
    assert view["leader"]["name"] == "py"
    # Nothing changes: the watch times out.
    started = time.monotonic()
    assert ours.watch(view["leader"]["version"], 1.0) is False
    assert time.monotonic() - started >= 1.0
    # Python releases the key 0.5 s into a 10 s watch: we wake at once.
    timer = threading.Timer(0.5, lambda: py.delete_leader(py.get_cluster().leader))
    timer.start()
    started = time.monotonic()
    woke = ours.watch(view["leader"]["version"], 10.0)
    elapsed = time.monotonic() - started
    timer.join()
    assert woke is True
    assert 0.4 <= elapsed < 3.0, elapsed
    assert nodes.raw("leader") is None
    assert ours.attempt_to_acquire_leader() is True


def test_our_leader_keeps_the_key_while_refreshing(nodes, kind):
    ttl = 3
    ours = nodes.rust("rs", ttl=ttl, loop_wait=1, retry_timeout=1)
    py = nodes.python("py")
    assert ours.attempt_to_acquire_leader() is True
    # Refresh once a second for longer than the TTL: the key never lapses.
    started = time.monotonic()
    while time.monotonic() - started < ttl + 2:
        ours.get_cluster()
        assert ours.update_leader() is True
        assert not py.attempt_to_acquire_leader()  # etcd3 answers {}
        assert nodes.raw("leader") == "rs"
        time.sleep(1)
    # We stop refreshing: Python takes the key once the TTL has run out.
    stopped = time.monotonic()
    while not py.attempt_to_acquire_leader():
        assert time.monotonic() - stopped < ttl + 4, "our key never expired"
        time.sleep(0.1)
    assert time.monotonic() - stopped >= ttl - 1.5
    assert nodes.raw("leader") == "py"
    view = eventually(ours.get_cluster, lambda v: v["leader"] and v["leader"]["name"] == "py")
    assert view["leader"]["name"] == "py"
    assert ours.update_leader() is False
    assert nodes.raw("leader") == "py"


def test_del_character_is_escaped_like_python(nodes, kind):
    ours = nodes.rust("rs")
    value = {"archive_command": "a\x7fb"}
    ours.set_config_value(value)
    assert nodes.raw("config") == compact(value)


def test_legacy_leader_optime_is_read(nodes, kind):
    py = nodes.python("py")
    assert py._write_leader_optime("67109640")  # what a Patroni < 2.1.0 leader writes
    assert py.get_cluster().status.last_lsn == 67109640
    ours = nodes.rust("rs")
    view = eventually(ours.get_cluster, lambda v: v["status"]["optime"] == 67109640, timeout=1)
    assert view["status"]["optime"] == 67109640


def test_unreachable_is_reported(kind):
    port = free_port()  # nothing listens there
    dcs = patroni_rs.Dcs(kind, [f"127.0.0.1:{port}"], "nowhere", "rs", retry_timeout=1, ttl=10)
    started = time.monotonic()
    with pytest.raises(patroni_rs.DcsUnreachable) as e:
        dcs.get_cluster()
    assert e.value.kind == "unreachable"
    assert isinstance(e.value, patroni_rs.DcsError)
    assert time.monotonic() - started < 8
    dcs.close()
    with pytest.raises(RuntimeError):
        dcs.get_cluster()


def test_bridge_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown DCS kind"):
        patroni_rs.Dcs("zookeeper", ["127.0.0.1:2181"], "s", "n")
    with pytest.raises(ValueError, match="hosts"):
        patroni_rs.Dcs("etcd", [], "s", "n")
    with pytest.raises(ValueError, match="ttl"):
        patroni_rs.Dcs("etcd3", ["127.0.0.1:1"], "s", "n", ttl=0)
    dcs = patroni_rs.Dcs("etcd3", ["127.0.0.1:1"], "s", "n")
    # Values are checked before any network call.
    with pytest.raises(ValueError, match="timeline and LSN"):
        dcs.set_history_value([[1]])
    with pytest.raises(TypeError, match="keys must be str"):
        dcs.set_config_value({1: 2})
    with pytest.raises(ValueError, match="NaN"):
        dcs.write_failsafe({"a": float("nan")})
    dcs.close()
