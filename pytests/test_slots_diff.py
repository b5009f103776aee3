"""Differential test: the replication slots a node should have.

Our `daemon::slots::plan::wanted_slots` (through `patroni_rs.wanted_slots`)
against Python Patroni's `Cluster.get_replication_slots` on the same DCS
content, node name, tags, role and PostgreSQL version. Table rows cover the
cases the acceptance suite and the daemon depend on; hypothesis explores
the rest (cascading chains, nostream, nofailover, retained slots, permanent
slots of every shape, member_slots_ttl, standby clusters, slot-name
collisions, leaders older than Patroni 4).
"""
import json
import logging
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st

import patroni_rs
from patroni import global_config
from patroni.dcs import Cluster, ClusterConfig, Leader, Member, Status, SyncState
from patroni.postgresql.misc import PostgresqlRole
from patroni.tags import Tags

KEEP = ("type", "lsn", "expected_active", "database", "plugin")


class Node(Tags):
    """This node, as Patroni's daemon object presents its tags."""

    def __init__(self, tags):
        self._tags = tags

    @property
    def tags(self):
        return self._tags


def python_cluster(nodes):
    values = dict(nodes)
    config = ClusterConfig.from_node(1, values["config"], 1) if "config" in values else None
    members = [Member.from_node(1, k[len("members/"):], None, v)
               for k, v in sorted(nodes) if k.startswith("members/")]
    leader = None
    if values.get("leader"):
        name = values["leader"]
        member = next((m for m in members if m.name == name), Member(-1, name, None, {}))
        leader = Leader(1, None, member)
    status = Status.from_node(values["status"]) if "status" in values else Status.empty()
    return Cluster(None, config, leader, status, members, None, SyncState.empty(), None, None)


def python_slots(nodes, me, tags, role, server_version):
    cluster = python_cluster(nodes)
    global_config.update(cluster, {})
    pg = SimpleNamespace(name=me, role=PostgresqlRole(role), major_version=server_version,
                         can_advance_slots=server_version >= 110000)
    got = cluster.get_replication_slots(pg, Node(tags), role=PostgresqlRole(role), show_error=True)
    # A physical slot carries whatever else its configuration had
    # (`database`, `cluster_type`, ...); only the logical ones use them.
    return {name: {k: v[k] for k in KEEP if k in v and (v["type"] == "logical" or k not in ("database", "plugin"))}
            for name, v in got.items()}


def rust_slots(nodes, me, tags, role, server_version):
    out = json.loads(patroni_rs.wanted_slots(list(nodes), me, json.dumps(tags), role, server_version))
    return out["slots"], out["errors"]


def compare(nodes, me, tags, role, server_version=150000, caplog=None):
    expected = python_slots(nodes, me, tags, role, server_version)
    got, errors = rust_slots(nodes, me, tags, role, server_version)
    assert got == expected
    # Same order as Python's dict: the daemon creates them in this order.
    assert list(got) == list(expected)
    return got, errors


def member(name, tags=None, lsn=None, version="4.1.5"):
    data = {"conn_url": f"postgres://{name}:5432/postgres", "api_url": f"http://{name}:8008/patroni",
            "state": "running", "role": "replica", "version": version}
    if tags:
        data["tags"] = tags
    if lsn is not None:
        data["xlog_location"] = lsn
    return (f"members/{name}", json.dumps(data))


def config(**kw):
    return ("config", json.dumps(kw))


LOGICAL = {"test_logical": {"type": "logical", "database": "postgres", "plugin": "test_decoding"}}

# The nostream_node acceptance feature: postgres-0 leads, postgres-1 is
# nostream, postgres-2 replicates from postgres-1.
NOSTREAM = [
    config(slots=LOGICAL, postgresql={"parameters": {"wal_level": "logical"}}),
    ("leader", "postgres-0"),
    member("postgres-0", lsn=100),
    member("postgres-1", {"nostream": True}, lsn=90),
    member("postgres-2", {"replicatefrom": "postgres-1"}, lsn=80),
    ("status", json.dumps({"optime": 100, "slots": {"postgres_0": 100, "postgres_2": 70, "test_logical": 60}})),
]


def test_nostream_feature_leader():
    got, _ = compare(NOSTREAM, "postgres-0", {}, "primary")
    assert set(got) == {"postgres_2", "test_logical"}
    # postgres-2 cascades: its slot on the leader is not expected active
    # and follows the member's own position.
    assert got["postgres_2"] == {"type": "physical", "lsn": 80, "expected_active": False}


def test_nostream_feature_nostream_replica_keeps_slot_for_its_cascade():
    got, _ = compare(NOSTREAM, "postgres-1", {"nostream": True}, "replica")
    assert got["postgres_2"]["expected_active"] is True
    assert got["postgres_0"]["expected_active"] is False
    assert "test_logical" not in got


def test_nostream_feature_cascaded_replica_gets_no_logical_slot():
    got, _ = compare(NOSTREAM, "postgres-2", {"replicatefrom": "postgres-1"}, "replica")
    assert "test_logical" not in got
    assert set(got) == {"postgres_0"}


@pytest.mark.parametrize("row", [
    # (description, nodes, me, tags, role, server_version)
    ("replica keeps slots for all members with retention", [
        config(), ("leader", "a"), member("a"), member("b"), member("c")], "b", {}, "replica", 150000),
    ("ttl 0: replica keeps only its cascade", [
        config(member_slots_ttl=0), ("leader", "a"), member("a"), member("b"),
        member("c", {"replicatefrom": "b"}), member("d")], "b", {}, "replica", 150000),
    ("ttl 0: leader skips members cascading from existing members", [
        config(member_slots_ttl="0s"), ("leader", "a"), member("a"), member("b"),
        member("c", {"replicatefrom": "b"}), member("d", {"replicatefrom": "gone"})], "a", {}, "primary", 150000),
    ("nofailover replica keeps only members replicating from it", [
        config(), ("leader", "a"), member("a"), member("b", {"nofailover": True}),
        member("c", {"replicatefrom": "b"})], "b", {"nofailover": True}, "replica", 150000),
    ("use_slots off", [config(postgresql={"use_slots": "off"}, slots=LOGICAL), ("leader", "a"),
                       member("a"), member("b")], "a", {}, "primary", 150000),
    ("retained slots, not for self", [
        config(), ("leader", "a"), member("a"),
        ("status", json.dumps({"optime": 5, "retain_slots": ["a", "gone", "b"]})), member("b")],
     "a", {}, "primary", 150000),
    ("old leader: member positions count", [
        config(), ("leader", "a"), member("a", version="3.3.0"), member("b", lsn=500),
        ("status", json.dumps({"optime": 5, "slots": {"b": 300}}))], "c", {}, "replica", 150000),
    ("slot name collision", [
        config(), ("leader", "a"), member("a"), member("node-1"), member("node_1")], "a", {}, "primary", 150000),
    ("permanent slots of every shape", [
        config(slots={"p1": None, "p2": {"type": "physical"}, "l1": {"database": "d", "plugin": "p"},
                      "bad1": {"type": "logical"}, "bad2": "text", "Bad-Name": {}, "a": {},
                      "b": LOGICAL["test_logical"], "st": {"type": "physical", "cluster_type": "standby"},
                      "pr": {"cluster_type": "primary"}}),
        ("leader", "a"), member("a"), member("b"), member("c", {"replicatefrom": "b"}, lsn=77),
        ("status", json.dumps({"optime": 5, "slots": {"p1": 40, "l1": "41", "c": 50}}))],
     "a", {}, "primary", 150000),
    ("permanent slots on a pre-11 replica", [
        config(permanent_slots={"p1": {}, "l1": {"database": "d", "plugin": "p"}}),
        ("leader", "a"), member("a"), member("b")], "b", {}, "replica", 100000),
    ("standby cluster keeps physical permanent slots", [
        config(standby_cluster={"host": "x"}, slots={"p1": {}, "st": {"cluster_type": "standby"},
                                                     "pr": {"cluster_type": "primary"}, **LOGICAL}),
        ("leader", "a"), member("a"), member("b")], "a", {}, "standby_leader", 150000),
    ("replicatefrom loop", [
        config(slots=LOGICAL), ("leader", "a"), member("a"), member("b", {"replicatefrom": "c"}),
        member("c", {"replicatefrom": "b"})], "b", {"replicatefrom": "c"}, "replica", 150000),
])
def test_table(row):
    _, nodes, me, tags, role, version = row
    compare(nodes, me, tags, role, version)


NAMES = ["a", "b", "c", "node-1", "node_1", "Node1"]
slot_values = st.sampled_from([
    None, {}, {"type": "physical"}, {"type": "logical", "database": "postgres", "plugin": "test_decoding"},
    {"database": "x", "plugin": "y"}, {"type": "logical"}, "abc", {"type": "physical", "cluster_type": "standby"},
    {"cluster_type": "primary"}, {"type": "other"}, {"type": "physical", "database": "d", "plugin": "p"},
])
slot_names = st.sampled_from(["a", "b", "node_1", "perm", "logi", "Bad-Name", "node1"])


@st.composite
def scenarios(draw):
    names = draw(st.lists(st.sampled_from(NAMES), unique=True, max_size=5))
    nodes = []
    for name in names:
        tags = {}
        if draw(st.booleans()):
            tags["replicatefrom"] = draw(st.sampled_from(NAMES + ["gone", ""]))
        if draw(st.integers(0, 3)) == 0:
            tags["nostream"] = draw(st.sampled_from([True, "on", False]))
        if draw(st.integers(0, 3)) == 0:
            tags["nofailover"] = True
        lsn = draw(st.one_of(st.none(), st.integers(0, 1000)))
        nodes.append(member(name, tags, lsn, draw(st.sampled_from(["4.1.5", "3.3.0", "x"]))))
    cfg = {}
    if draw(st.booleans()):
        key = draw(st.sampled_from(["slots", "permanent_slots", "permanent_replication_slots"]))
        cfg[key] = draw(st.dictionaries(slot_names, slot_values, max_size=4))
    if draw(st.integers(0, 4)) == 0:
        cfg["member_slots_ttl"] = draw(st.sampled_from([0, "0", 1800, "30min", "bad"]))
    if draw(st.integers(0, 5)) == 0:
        cfg["postgresql"] = {"use_slots": draw(st.sampled_from([False, "off", True, "junk"]))}
    if draw(st.integers(0, 5)) == 0:
        cfg["standby_cluster"] = {"host": "10.0.0.1"}
    nodes.append(("config", json.dumps(cfg)))
    if draw(st.booleans()):
        nodes.append(("leader", draw(st.sampled_from(NAMES))))
    if draw(st.booleans()):
        status = {"optime": 10}
        status["slots"] = draw(st.dictionaries(slot_names, st.one_of(st.integers(0, 1000), st.just("55")),
                                               max_size=4))
        status["retain_slots"] = draw(st.lists(slot_names, max_size=3))
        nodes.append(("status", json.dumps(status)))
    me = draw(st.sampled_from(NAMES))
    my_tags = {}
    if draw(st.booleans()):
        my_tags["replicatefrom"] = draw(st.sampled_from(NAMES))
    if draw(st.integers(0, 3)) == 0:
        my_tags["nostream"] = True
    if draw(st.integers(0, 3)) == 0:
        my_tags["nofailover"] = True
    role = draw(st.sampled_from(["primary", "standby_leader", "replica"]))
    version = draw(st.sampled_from([150000, 100000]))
    return nodes, me, my_tags, role, version


@settings(max_examples=400, deadline=None)
@given(scenarios())
def test_random(scenario):
    nodes, me, tags, role, version = scenario
    logging.disable(logging.CRITICAL)
    try:
        compare(nodes, me, tags, role, version)
    finally:
        logging.disable(logging.NOTSET)
