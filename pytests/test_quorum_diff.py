"""Differential test: the quorum commit resolver.

Our `ha::quorum::resolve` (through `patroni_rs.quorum_resolve`) against
Python Patroni's `QuorumStateResolver` on the same state: the `/sync` key
(leader, quorum, voters), `synchronous_standby_names` (numsync, names), the
confirmed count, the streaming standbys, `synchronous_node_count` and the
node that runs the resolver. Every transition (kind, leader, number, names)
must match, and so must the failures (a `QuorumError` or a failed internal
assertion) and the number of warnings logged on the way. Besides single
states, hypothesis drives whole runs: transitions are applied one after the
other (as the daemon writes them) while standbys come and go, comparing at
every step. Names come from a fixed pool with one spelling each (the
resolver compares them without case; both keep the spelling they are given).
"""
import json
import logging

import pytest
from hypothesis import given, settings, strategies as st

import patroni_rs
from patroni.quorum import QuorumError, QuorumStateResolver

POOL = ["a", "b", "c", "D", "e", "f2"]


class Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.WARNING)
        self.records = []

    def emit(self, record):
        self.records.append(record.getMessage())


def python(leader, quorum, voters, numsync, sync, confirmed, active, wanted, leader_wanted):
    log = logging.getLogger("patroni.quorum")
    cap = Capture()
    log.addHandler(cap)
    try:
        got = [
            [kind, lead, num, sorted(names)]
            for kind, lead, num, names in QuorumStateResolver(
                leader=leader, quorum=quorum, voters=voters, numsync=numsync, sync=sync,
                numsync_confirmed=confirmed, active=active, sync_wanted=wanted,
                leader_wanted=leader_wanted)
        ]
        return {"transitions": got, "warnings": len(cap.records)}
    except QuorumError:
        return {"error": "quorum"}
    except AssertionError:
        return {"error": "assert"}
    finally:
        log.removeHandler(cap)


def ours(*args):
    got = json.loads(patroni_rs.quorum_resolve(*args))
    if "error" in got:
        return {"error": got["error"]}
    return {"transitions": got["transitions"], "warnings": len(got["warnings"])}


def compare(*args):
    expected = python(*args)
    assert ours(*args) == expected, args
    return expected


TABLE = [
    # steady states
    ("a", 0, [], 0, [], 0, [], 1, "a"),
    ("a", 1, ["b", "c"], 1, ["b", "c"], 1, ["b", "c"], 1, "a"),
    ("a", 0, ["b", "c"], 2, ["b", "c"], 2, ["b", "c"], 2, "a"),
    # first standbys, a new one, a gone one, all gone
    ("a", 0, [], 0, [], 0, ["b", "c"], 1, "a"),
    ("a", 0, [], 1, ["b", "c"], 1, ["b", "c"], 1, "a"),
    ("a", 1, ["b", "c"], 1, ["b", "c"], 1, ["b", "c", "D"], 1, "a"),
    ("a", 1, ["b", "c"], 1, ["b", "c"], 1, ["b"], 1, "a"),
    ("a", 1, ["b", "c"], 1, ["b", "c"], 1, [], 1, "a"),
    ("a", 0, ["b", "c"], 2, ["b", "c"], 2, ["b"], 2, "a"),
    # replication factor up and down
    ("a", 1, ["b", "c"], 1, ["b", "c"], 1, ["b", "c"], 2, "a"),
    ("a", 0, ["b", "c"], 2, ["b", "c"], 2, ["b", "c"], 1, "a"),
    ("a", 2, ["b", "c", "D"], 1, ["b", "c", "D"], 1, ["b", "c", "D"], 3, "a"),
    # interrupted runs
    ("a", 2, ["b", "c", "D"], 1, ["b", "c"], 1, ["b", "c", "D"], 1, "a"),
    ("a", 1, ["b", "c"], 1, ["b", "c", "D"], 1, ["b", "c", "D"], 1, "a"),
    ("a", 1, ["b", "c"], 1, ["b", "c", "D"], 1, ["b", "c"], 1, "a"),
    ("a", 2, ["b", "c", "D"], 1, ["b", "c"], 1, ["b", "c"], 1, "a"),
    # failover: the old leader becomes a voter
    ("b", 1, ["a", "c"], 1, ["b", "c"], 0, ["b", "c"], 1, "a"),
    ("b", 1, ["a", "c"], 1, ["b", "c"], 0, [], 1, "a"),
    ("b", 1, ["a", "c"], 0, [], 0, ["c"], 1, "a"),
    ("b", 0, ["c"], 1, ["c"], 0, ["c"], 1, "a"),
    # broken states
    ("a", 0, ["b", "c"], 1, ["b", "c"], 1, ["b", "c"], 1, "a"),
    ("a", 2, ["x", "y"], 0, ["b"], 0, [], 1, "a"),
    ("a", 0, ["b"], 1, ["c"], 1, ["b", "c"], 1, "a"),
]


@pytest.mark.parametrize("case", TABLE)
def test_table(case):
    compare(*case)


names = st.lists(st.sampled_from(POOL[1:]), unique=True, max_size=5)
small = st.integers(min_value=0, max_value=5)


@settings(max_examples=3000, deadline=None)
@given(leader=st.sampled_from(["a", "b", "c"]), quorum=small, voters=names, numsync=small,
       sync=names, confirmed=small, active=names, wanted=st.integers(min_value=1, max_value=4))
def test_any_state(leader, quorum, voters, numsync, sync, confirmed, active, wanted):
    compare(leader, quorum, voters, numsync, sync, confirmed, active, wanted, "a")


@settings(max_examples=400, deadline=None)
@given(steps=st.lists(st.tuples(names, st.integers(min_value=1, max_value=4)), min_size=1, max_size=8))
def test_runs(steps):
    """Start from an empty state; at each step a new set of standbys
    streams and the wanted count may change; apply the transitions as the
    daemon would (until a restart) and compare at every resolver call."""
    leader, quorum, voters, numsync, sync = "a", 0, [], 0, []
    for active, wanted in steps:
        active = [n for n in active if n != "a"]
        for _ in range(6):
            # A standby counts as confirmed when it is listed and streams.
            confirmed = len([n for n in sync if n in active])
            got = compare(leader, quorum, voters, numsync, sync, confirmed, active, wanted, "a")
            if "error" in got or not got["transitions"]:
                break
            for kind, lead, num, nodes in got["transitions"]:
                if kind == "quorum":
                    leader, quorum, voters = lead, num, nodes
                elif kind == "sync":
                    numsync, sync = num, nodes


@pytest.mark.parametrize("names,num,expected", [
    ([], 0, None),
    ([], 1, "ANY 1 (*)"),
    (["c", "b"], 1, "ANY 1 (b,c)"),
    (["b"], 1, "ANY 1 (b)"),
    (["any", "b-2", "x"], 2, 'ANY 2 ("any","b-2",x)'),
])
def test_ssn_value(names, num, expected):
    assert patroni_rs.quorum_ssn_value(names, num) == expected
