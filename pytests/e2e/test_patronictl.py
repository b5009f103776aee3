"""End-to-end: every patronictl 4.1.5 command against a 3-node cluster.

Unchanged Python patronictl drives the cluster; each scenario checks what the
command printed (table columns and states), what it changed in the DCS (keys
and their JSON fields) and what the members did about it (psql, REST). Where
the golden captures from a real Python Patroni cluster hold the same command
(../shared/compat/golden/etcd3/transitions/), the shapes are compared with
them: member names, ports, LSNs and timestamps differ and are masked, the set
of keys, JSON fields and table columns must not.

The scenarios run in order on one module-scoped cluster per DCS; each starts
by waiting for a healthy cluster (one leader, two streaming replicas), so a
failure in one does not hide the others. node2 carries `nofailover: true`, as
in test_failover.py. `remove` runs last, on the stopped cluster.

Run them with a --basetemp of their own: another pytest run of the same
user resets /tmp/pytest-of-<user> to mode 0700, which locks the node user
out of its data directory in the middle of a scenario.

    PATRONI_E2E_IMPL=python /opt/patroni-rs/venv/bin/python -m pytest \
        pytests/e2e/test_patronictl.py -q -s --basetemp=/tmp/e2e-ctl
"""
from __future__ import annotations

import datetime
import json
import os
import pathlib
import re
import time
from typing import Dict, List, Optional

import pytest
import yaml

from . import harness
from .harness import SUPERUSER, Cluster, Node, cluster_json, patronictl_run, wait_for

pytestmark = pytest.mark.e2e

NOFAILOVER = "node2"
BOOTSTRAP_S = 150
HEALTHY_S = 90
GOLDEN_TRANSITIONS = pathlib.Path(harness.__file__).resolve().parents[2].parent / "shared" / "compat" / "golden" \
    / "etcd3" / "transitions"
if os.environ.get("PATRONI_RS_SHARED"):
    GOLDEN_TRANSITIONS = pathlib.Path(os.environ["PATRONI_RS_SHARED"]) / "compat" / "golden" / "etcd3" / "transitions"


# --- fixture ------------------------------------------------------------------

@pytest.fixture(scope="module", params=["etcd3", "etcd", "zookeeper"])
def ctl_cluster(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, daemon_argv: List[str]):
    """A bootstrapped 3-node cluster (node2 `nofailover`). Unlike the
    `cluster` fixture, a failed scenario does not skip the next ones: each
    waits for a healthy cluster first, so every command gets its verdict."""
    from . import conftest as e2e_conftest  # the failure hook prints the logs of _ACTIVE clusters

    dcs = request.param
    workdir = tmp_path_factory.mktemp(f"ctl-{dcs}")
    harness.make_reachable(workdir, stop_at=tmp_path_factory.getbasetemp().parent)
    c = Cluster(workdir, dcs, daemon_argv, harness.node_user(), [{}, {}, {"nofailover": True}])
    e2e_conftest._ACTIVE.append(c)
    print(f"\n[{dcs}] patronictl cluster in {workdir} with {' '.join(daemon_argv)}")
    try:
        c.start()
        c.wait_healthy(BOOTSTRAP_S)
        say(c, f"bootstrapped in {time.monotonic() - c.started_at:.1f}s")
        yield c
    finally:
        c.cleanup()
        e2e_conftest._ACTIVE.remove(c)


@pytest.fixture(autouse=True)
def _timed(request: pytest.FixtureRequest):
    started = time.monotonic()
    yield
    if "ctl_cluster" in request.fixturenames:
        c = request.getfixturevalue("ctl_cluster")
        say(c, f"{request.node.originalname}: {time.monotonic() - started:.1f}s")


# --- helpers ------------------------------------------------------------------

def say(cluster: Cluster, text: str) -> None:
    print(f"[{cluster.dcs}] {text}", flush=True)


def ctl(cluster: Cluster, *args: str, stdin: Optional[str] = None, timeout: float = 90,
        extra_env: Optional[Dict[str, str]] = None) -> str:
    """Run patronictl and return its stdout; fail with its output otherwise."""
    result = patronictl_run(cluster, *args, stdin=stdin, timeout=timeout, extra_env=extra_env)
    assert result.returncode == 0, (f"patronictl {' '.join(args)} exited with {result.returncode}:\n"
                                    f"{result.stdout}\n{result.stderr}")
    return result.stdout


def healthy(cluster: Cluster) -> str:
    """Wait for one leader and two streaming replicas; the leader's name."""
    return cluster.wait_healthy(HEALTHY_S)


def member_key(cluster: Cluster, name: str) -> dict:
    value = cluster_json(cluster, f"members/{name}")
    assert isinstance(value, dict), f"member key of {name}: {value!r}"
    return value


def candidate_for(cluster: Cluster, leader: str) -> str:
    (name,) = [n.name for n in cluster.nodes if n.name not in (leader, NOFAILOVER)]
    return name


def in_future(seconds: float) -> str:
    when = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(seconds=seconds)
    return when.replace(microsecond=0).isoformat()


def postmaster_start(node: Node) -> str:
    return node.psql("SELECT pg_postmaster_start_time()")


def table_header(text: str) -> List[str]:
    """The column names of the first member table patronictl printed."""
    for line in text.splitlines():
        if line.startswith("| Member") or line.startswith("| TL "):
            return [cell.strip() for cell in line.strip().strip("|").split("|")]
    raise AssertionError(f"no table header in:\n{text}")


def table_rows(text: str) -> Dict[str, Dict[str, str]]:
    """Rows of the last member table printed, by member name (continuation
    lines of multi-line tag cells are skipped)."""
    lines = text.splitlines()
    starts = [i for i, line in enumerate(lines) if line.startswith("| Member")]
    assert starts, f"no member table in:\n{text}"
    header = [cell.strip() for cell in lines[starts[-1]].strip().strip("|").split("|")]
    rows: Dict[str, Dict[str, str]] = {}
    for line in lines[starts[-1] + 1:]:
        if not line.startswith("|"):
            if rows and not line.startswith("+"):
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        name = cells[0].lstrip("+ ").strip()
        if name:
            rows[name] = dict(zip(header, cells))
    return rows


def golden_stdout(transition: str) -> str:
    path = GOLDEN_TRANSITIONS / transition / "ctl_stdout.txt"
    if not path.exists():
        pytest.fail(f"golden capture {path} missing (set PATRONI_RS_SHARED)")
    return path.read_text()


def golden_diff(transition: str) -> dict:
    return json.loads((GOLDEN_TRANSITIONS / transition / "dcs_diff.json").read_text())


def golden_changed(transition: str, key_suffix: str, side: str) -> object:
    """A changed key's JSON value before/after a golden transition; the key
    is matched by its suffix (`failover`, `members/node2`...)."""
    for key, change in golden_diff(transition)["changed"].items():
        if key.endswith("/" + key_suffix):
            return json.loads(change[side]) if change[side] else None
    raise AssertionError(f"{key_suffix} did not change in golden {transition}")


def golden_changed_suffixes(transition: str) -> set:
    """The kinds of keys a golden transition touched: `config`, `failover`,
    `members/*`, `history`..."""
    diff = golden_diff(transition)
    out = set()
    for section in ("added", "removed", "changed"):
        for key in diff[section]:
            tail = key.split("/demo/", 1)[1]
            out.add("members/*" if tail.startswith("members/") else f"{section}:{tail}")
    return out


# Fields that depend on the member and moment, not on the implementation:
# tags (node0 has none), WAL positions of a replica that is catching up.
VOLATILE_MEMBER_FIELDS = {"tags", "replay_lsn", "receive_lsn", "replication_state", "xlog_location", "lag"}


def member_shape(value: dict) -> set:
    return set(value) - VOLATILE_MEMBER_FIELDS


# --- scenarios ----------------------------------------------------------------

def test_list_columns_and_states(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    out = ctl(c, "list", c.scope)
    say(c, "patronictl list:\n" + out)
    assert out.splitlines()[0].startswith(f"+ Cluster: {c.scope} ("), out
    assert table_header(out) == table_header(golden_stdout("01-switchover")), out
    rows = table_rows(out)
    assert sorted(rows) == ["node0", "node1", "node2"], out
    # The TL column comes from the member keys: a streaming replica
    # publishes its timeline too (Python Patroni falls back to the
    # leader's timeline when pg_stat_wal_receiver has none yet).
    for name in rows:
        key = member_key(c, name)
        assert "timeline" in key, f"{name}'s member key has no timeline: {key}\n{out}"
    for name, row in rows.items():
        if name == leader:
            assert (row["Role"], row["State"]) == ("Leader", "running"), out
            assert row["Receive LSN"] == "" and row["Replay LSN"] == "", out
        else:
            assert (row["Role"], row["State"]) == ("Replica", "streaming"), out
            assert re.fullmatch(r"[0-9A-F]+/[0-9A-F]+", row["Receive LSN"]), out
        assert row["TL"] == rows[leader]["TL"] and row["Host"] == f"127.0.0.1:{c.node(name).pg_port}", out
    assert "nofailover: true" in out

    # The JSON format carries the same facts for scripts.
    listed = {m["Member"]: m for m in json.loads(ctl(c, "list", c.scope, "-f", "json"))}
    assert listed[leader]["Role"] == "Leader" and listed[leader]["State"] == "running", listed
    for name in listed:
        if name != leader:
            assert listed[name]["Role"] == "Replica" and listed[name]["State"] == "streaming", listed
    assert listed[NOFAILOVER]["Tags"] == {"nofailover": True}, listed

    # The member keys carry the fields Python Patroni writes for a primary
    # and a streaming replica (golden 01: node1 before, node2 before).
    assert member_shape(member_key(c, leader)) == member_shape(golden_changed("01-switchover", "members/node1",
                                                                              "before"))
    replica = candidate_for(c, leader)
    assert member_shape(member_key(c, replica)) == member_shape(golden_changed("01-switchover", "members/node2",
                                                                               "before"))


def test_topology(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    out = ctl(c, "topology", c.scope)
    say(c, "patronictl topology:\n" + out)
    assert table_header(out) == table_header(golden_stdout("01-switchover")), out
    members = [line.strip().strip("|").split("|")[0].strip() for line in out.splitlines()
               if line.startswith("| ") and not line.startswith("| Member") and line.split("|")[1].strip()]
    assert members[0] == leader, out
    assert sorted(members[1:]) == sorted(f"+ {n.name}" for n in c.nodes if n.name != leader), out


def test_version(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    healthy(c)
    out = ctl(c, "version", c.scope)
    say(c, "patronictl version:\n" + out)
    assert out.splitlines()[0] == "patronictl version 4.1.5", out
    for n in c.nodes:
        assert re.search(rf"^{n.name}: Patroni 4\.1\.5 PostgreSQL 15\.\d+$", out, re.M), out


def test_dsn(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    assert ctl(c, "dsn", c.scope).strip() == f"host=127.0.0.1 port={c.node(leader).pg_port}"
    assert ctl(c, "dsn", c.scope, "-m", NOFAILOVER).strip() == f"host=127.0.0.1 port={c.node(NOFAILOVER).pg_port}"
    replica_ports = {f"host=127.0.0.1 port={n.pg_port}" for n in c.nodes if n.name != leader}
    assert ctl(c, "dsn", c.scope, "-r", "replica").strip() in replica_ports


def test_query(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    env = {"PGPASSWORD": SUPERUSER[1]}
    out = ctl(c, "query", c.scope, "-U", SUPERUSER[0], "-r", "leader", "--format", "tsv",
              "-c", "SELECT pg_is_in_recovery(), current_setting('port')", extra_env=env)
    assert out.splitlines() == ["pg_is_in_recovery\tcurrent_setting", f"False\t{c.node(leader).pg_port}"], out
    out = ctl(c, "query", c.scope, "-U", SUPERUSER[0], "-m", NOFAILOVER, "--format", "tsv",
              "-c", "SELECT pg_is_in_recovery()", extra_env=env)
    assert out.splitlines() == ["pg_is_in_recovery", "True"], out


def test_show_config_matches_dcs(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    healthy(c)
    shown = yaml.safe_load(ctl(c, "show-config", c.scope))
    stored = cluster_json(c, "config")
    assert shown == stored, (shown, stored)
    assert shown["loop_wait"] == harness.LOOP_WAIT and shown["ttl"] == harness.TTL, shown
    assert shown["postgresql"]["use_slots"] is True, shown


def wait_setting(cluster: Cluster, name: str, value: str, timeout: float = 30) -> None:
    for n in cluster.nodes:
        wait_for(lambda: n.psql(f"SHOW {name}") == value, timeout, f"{name} = {value} on {n.name}",
                 check=cluster.check_running)


def test_edit_config_set_and_pg(ctl_cluster: Cluster) -> None:
    """`edit-config --force -s -p`: the DCS /config gets the values with the
    types Python Patroni writes (golden 05: ints stay ints, parameters are
    strings), a reload-able parameter reaches every PostgreSQL, and
    shared_buffers leaves every member with pending_restart."""
    c = ctl_cluster
    healthy(c)
    before = cluster_json(c, "config")
    out = ctl(c, "edit-config", c.scope, "--force", "-s", "maximum_lag_on_failover=2097152",
              "-p", "work_mem=8MB", "-p", "shared_buffers=64MB")
    say(c, "edit-config:\n" + out)
    assert "+    work_mem: 8MB" in out and "+    shared_buffers: 64MB" in out, out
    assert out.rstrip().endswith("Configuration changed"), out
    after = cluster_json(c, "config")
    assert after["maximum_lag_on_failover"] == 2097152, after
    assert after["postgresql"]["parameters"]["work_mem"] == "8MB", after
    assert after["postgresql"]["parameters"]["shared_buffers"] == "64MB", after
    golden_after = golden_changed("05-edit-config", "config", "after")
    assert isinstance(golden_after["postgresql"]["parameters"]["shared_buffers"], str)
    assert {k: v for k, v in after.items() if k not in ("maximum_lag_on_failover", "postgresql")} == \
        {k: v for k, v in before.items() if k not in ("maximum_lag_on_failover", "postgresql")}
    assert yaml.safe_load(ctl(c, "show-config", c.scope)) == after

    wait_setting(c, "work_mem", "8MB")
    golden_member = golden_changed("06-restart-pending", "members/node2", "before")
    for n in c.nodes:
        value = wait_for(lambda: (lambda m: m if m.get("pending_restart") else None)(member_key(c, n.name)), 30,
                         f"pending_restart in {n.name}'s member key", check=c.check_running)
        assert value["pending_restart"] is True, value
        reason = value.get("pending_restart_reason", {}).get("shared_buffers")
        assert reason == {"old_value": "128MB", "new_value": "64MB"}, value
        assert set(value["pending_restart_reason"]["shared_buffers"]) == \
            set(golden_member["pending_restart_reason"]["shared_buffers"])
    out = ctl(c, "list", c.scope)
    assert table_header(out) == table_header(golden_stdout("06-restart-pending")), out
    for row in table_rows(out).values():
        assert row["Pending restart"] == "*" and row["Pending restart reason"] == "shared_buffers: 128MB->64MB", out


def test_edit_config_apply_file(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    healthy(c)
    patch = c.dir / "ctl-apply.yml"
    patch.write_text("postgresql:\n  parameters:\n    work_mem: 12MB\n    log_min_duration_statement: 500\n")
    out = ctl(c, "edit-config", c.scope, "--force", "--apply", str(patch))
    assert "Configuration changed" in out, out
    params = cluster_json(c, "config")["postgresql"]["parameters"]
    assert params["work_mem"] == "12MB" and params["log_min_duration_statement"] == 500, params
    assert params["shared_buffers"] == "64MB", "--apply must merge, not replace"
    wait_setting(c, "work_mem", "12MB")
    wait_setting(c, "log_min_duration_statement", "500ms")
    # Applying the same file again changes nothing.
    again = ctl(c, "edit-config", c.scope, "--force", "--apply", str(patch))
    assert "Not changed" in again, again


def test_restart_pending(ctl_cluster: Cluster) -> None:
    """`restart --pending --force`: every member restarts (golden 06), takes
    shared_buffers and drops pending_restart from its key."""
    c = ctl_cluster
    healthy(c)
    started = {n.name: postmaster_start(n) for n in c.nodes}
    out = ctl(c, "restart", c.scope, "--pending", "--force")
    for n in c.nodes:
        assert f"Success: restart on member {n.name}" in out, out
    healthy(c)
    wait_setting(c, "shared_buffers", "64MB")
    for n in c.nodes:
        assert postmaster_start(n) != started[n.name], f"{n.name} was not restarted"
        wait_for(lambda: "pending_restart" not in member_key(c, n.name), 20,
                 f"pending_restart gone from {n.name}", check=c.check_running)
    # Nothing is pending any more: a second run restarts nobody.
    again = {n.name: postmaster_start(n) for n in c.nodes}
    out = ctl(c, "restart", c.scope, "--pending", "--force")
    assert "Success: restart" not in out, out
    assert {n.name: postmaster_start(n) for n in c.nodes} == again


def test_restart_role_replica(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    started = {n.name: postmaster_start(n) for n in c.nodes}
    out = ctl(c, "restart", c.scope, "--role", "replica", "--force")
    for n in c.nodes:
        assert (f"Success: restart on member {n.name}" in out) == (n.name != leader), out
    healthy(c)
    assert postmaster_start(c.node(leader)) == started[leader], "the leader was restarted"
    for n in c.nodes:
        if n.name != leader:
            assert postmaster_start(n) != started[n.name], f"{n.name} was not restarted"


def test_scheduled_restart_and_flush(ctl_cluster: Cluster) -> None:
    """A restart scheduled an hour ahead shows in the member key (golden 07)
    and the list (golden 08), and `flush ... restart` removes it."""
    c = ctl_cluster
    healthy(c)
    target = "node1"
    when = in_future(3600)
    out = ctl(c, "restart", c.scope, target, "--scheduled", when, "--force")
    assert f"Success: restart scheduled on member {target}" in out, out
    value = wait_for(lambda: member_key(c, target).get("scheduled_restart"), 10, "scheduled_restart in member key")
    golden = golden_changed("07-scheduled-restart", "members/node2", "after")["scheduled_restart"]
    assert set(value) == set(golden), value
    assert value["schedule"] == when, value
    listing = ctl(c, "list", c.scope)
    assert table_header(listing) == table_header(golden_stdout("08-flush-restart")), listing
    assert table_rows(listing)[target]["Scheduled restart"] == when, listing

    out = ctl(c, "flush", c.scope, target, "restart", "--force")
    assert f"Success: flush scheduled restart for member {target}" in out, out
    wait_for(lambda: "scheduled_restart" not in member_key(c, target), 10, "scheduled_restart gone")
    assert "Scheduled restart" not in table_header(ctl(c, "list", c.scope))


def test_scheduled_restart_executes(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    healthy(c)
    node = c.node("node1")
    before = postmaster_start(node)
    ctl(c, "restart", c.scope, node.name, "--scheduled", in_future(4), "--force")
    wait_for(lambda: postmaster_start(node) != before, 30, f"{node.name} restarted at the scheduled time",
             check=c.check_running)
    wait_for(lambda: "scheduled_restart" not in member_key(c, node.name), 20, "scheduled_restart consumed")
    healthy(c)


def test_reload(ctl_cluster: Cluster) -> None:
    """`reload`: each member re-reads its YAML file; a tag added to node1's
    file shows in its member key afterwards."""
    c = ctl_cluster
    healthy(c)
    node = c.node("node1")
    node.tags["e2e_reloaded"] = "yes"
    node.prepare()
    out = ctl(c, "reload", c.scope, "--force")
    for n in c.nodes:
        assert re.search(rf"^Reload request received for member {n.name} and will be processed within "
                         rf"{harness.LOOP_WAIT} seconds$", out, re.M), out
    wait_for(lambda: member_key(c, node.name).get("tags", {}).get("e2e_reloaded") == "yes", 20,
             "the reloaded tag in node1's member key", check=c.check_running)


def history_entries(cluster: Cluster) -> list:
    value = cluster_json(cluster, "history") or []
    for entry in value:
        # golden 01: [timeline, lsn, reason, timestamp, new leader]
        assert len(entry) == 5 and isinstance(entry[0], int) and isinstance(entry[1], int), value
        assert all(isinstance(x, str) for x in entry[2:]), value
    return value


def switched(cluster: Cluster, out: str, old: str, new: str, history_before: int) -> None:
    assert f'Successfully switched over to "{new}"' in out, out
    cluster.wait_healthy(HEALTHY_S, leader=new)
    assert cluster.node(new).psql("SELECT pg_is_in_recovery()") == "f"
    entries = wait_for(lambda: (lambda h: h if len(h) == history_before + 1 else None)(history_entries(cluster)),
                       20, "a new /history entry")
    assert entries[-1][4] == new, entries
    failover = cluster_json(cluster, "failover")
    assert not failover, f"/failover left behind: {failover!r}"


def test_switchover_with_leader_and_candidate(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    new = candidate_for(c, leader)
    count = len(history_entries(c))
    started = time.monotonic()
    out = ctl(c, "switchover", c.scope, "--leader", leader, "--candidate", new, "--force")
    say(c, f"switchover {leader} -> {new}: patronictl returned after {time.monotonic() - started:.1f}s")
    golden = golden_stdout("01-switchover")
    assert table_header(out) == table_header(golden), out
    switched(c, out, leader, new, count)
    assert golden_changed_suffixes("01-switchover") >= {"added:history", "changed:leader"}


def test_switchover_without_names(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    new = candidate_for(c, leader)
    count = len(history_entries(c))
    out = ctl(c, "switchover", c.scope, "--force")
    switched(c, out, leader, new, count)


def test_scheduled_switchover_executes(ctl_cluster: Cluster) -> None:
    """golden 09: /failover holds leader, member and scheduled_at; at that
    time the leader hands over and the new leader empties /failover."""
    c = ctl_cluster
    leader = healthy(c)
    new = candidate_for(c, leader)
    count = len(history_entries(c))
    when = in_future(8)
    out = ctl(c, "switchover", c.scope, "--leader", leader, "--candidate", new, "--scheduled", when, "--force")
    assert "Switchover scheduled" in out, out
    assert re.search(rf"Switchover scheduled at: {re.escape(when)}\s+from: {leader}\s+to: {new}", out), out
    value = cluster_json(c, "failover")
    golden = golden_changed("09-scheduled-switchover", "failover", "after")
    assert set(value) == set(golden), value
    assert value == {"leader": leader, "member": new, "scheduled_at": when}, value
    assert c.leader_key() == leader, "switched before the scheduled time"
    wait_for(lambda: c.leader_key() == new, 40, f"the scheduled switchover to {new}", check=c.check_running)
    switched(c, f'Successfully switched over to "{new}"', leader, new, count)


def test_flush_scheduled_switchover(ctl_cluster: Cluster) -> None:
    """golden 10b: `flush switchover` leaves `/failover` as `{}`."""
    c = ctl_cluster
    leader = healthy(c)
    new = candidate_for(c, leader)
    ctl(c, "switchover", c.scope, "--candidate", new, "--scheduled", in_future(3600), "--force")
    assert cluster_json(c, "failover").get("scheduled_at"), cluster_json(c, "failover")
    out = ctl(c, "flush", c.scope, "switchover", "--force")
    assert "Success: scheduled switchover deleted" in out, out
    golden = golden_changed("10b-flush-switchover", "failover", "after")
    assert harness.cluster_key(c, "failover") in ("{}", None) and golden == {}
    time.sleep(harness.LOOP_WAIT * 2)
    assert c.leader_key() == leader


def test_failover(ctl_cluster: Cluster) -> None:
    """golden 02: `failover --candidate` on a healthy cluster."""
    c = ctl_cluster
    leader = healthy(c)
    new = candidate_for(c, leader)
    count = len(history_entries(c))
    out = ctl(c, "failover", c.scope, "--candidate", new, "--force")
    assert table_header(out) == table_header(golden_stdout("02-failover")), out
    assert f'Successfully failed over to "{new}"' in out, out
    switched(c, f'Successfully switched over to "{new}"', leader, new, count)


def test_failover_to_nofailover_refused(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    leader = healthy(c)
    result = patronictl_run(c, "failover", c.scope, "--candidate", NOFAILOVER, "--force")
    assert result.returncode != 0 or "failed" in (result.stdout + result.stderr).lower(), result
    time.sleep(harness.LOOP_WAIT)
    assert c.leader_key() == leader


def test_pause_and_resume(ctl_cluster: Cluster) -> None:
    """golden 03/04: /config gets `pause: true` and every member key
    `pause: true`; resume removes both."""
    c = ctl_cluster
    healthy(c)
    out = ctl(c, "pause", c.scope, "--wait")
    assert out.splitlines() == [golden_stdout("03-pause").splitlines()[0],
                                "Success: cluster management is paused"], out
    assert cluster_json(c, "config").get("pause") is True
    for n in c.nodes:
        assert member_key(c, n.name).get("pause") is True, member_key(c, n.name)
    golden = golden_changed("03-pause", "members/node1", "after")
    assert golden.get("pause") is True
    assert "Maintenance mode: on" in ctl(c, "list", c.scope)

    out = ctl(c, "resume", c.scope, "--wait")
    assert out.splitlines()[-1] == "Success: cluster management is resumed", out
    assert "pause" not in cluster_json(c, "config")
    for n in c.nodes:
        assert "pause" not in member_key(c, n.name), member_key(c, n.name)
    assert "Maintenance mode" not in ctl(c, "list", c.scope)


def test_reinit(ctl_cluster: Cluster) -> None:
    """golden 11: `reinit --force --wait` of a replica."""
    c = ctl_cluster
    leader = healthy(c)
    target = c.node(NOFAILOVER)
    assert target.name != leader
    before = target.patroni().get("postmaster_start_time")
    assert before, target.patroni()
    out = ctl(c, "reinit", c.scope, target.name, "--force", "--wait", timeout=180)
    golden_tail = golden_stdout("11-reinit-node3").splitlines()[-3:]
    expected = [line.replace("node3", target.name) for line in golden_tail]
    assert out.splitlines()[-3:] == expected, out
    # patronictl polls GET /patroni every 2 s until the state is no longer
    # `creating replica` (golden 11: `creating replica` 2 s after the POST).
    # So when it returns, the replica must already have been rebuilt.
    status = target.patroni()
    assert status.get("state") != "creating replica" and status.get("postmaster_start_time") != before, \
        f"`reinit --wait` returned before {target.name} was reinitialized: {status}"
    c.wait_healthy(HEALTHY_S, leader=leader)
    wait_for(lambda: target.patroni().get("state") == "running", 30, f"{target.name} running",
             check=c.check_running)


def test_history(ctl_cluster: Cluster) -> None:
    c = ctl_cluster
    healthy(c)
    entries = history_entries(c)
    assert len(entries) >= 4, entries  # two switchovers, the scheduled one and the failover
    out = ctl(c, "history", c.scope)
    say(c, "patronictl history:\n" + out)
    header = next(line for line in out.splitlines() if line.startswith("|"))
    assert [x.strip() for x in header.strip("|").split("|")] == ["TL", "LSN", "Reason", "Timestamp", "New Leader"]
    rows = [[x.strip() for x in line.strip("|").split("|")] for line in out.splitlines()[3:] if line.startswith("|")]
    assert [int(r[0]) for r in rows] == [e[0] for e in entries], out
    assert [r[4] for r in rows] == [e[4] for e in entries], out


def test_remove(ctl_cluster: Cluster) -> None:
    """Last: stop every member, then `remove` wipes the cluster's keys."""
    c = ctl_cluster
    leader = healthy(c)
    for n in c.nodes:
        if n.name != leader:
            assert n.stop() == 0
    assert c.node(leader).stop() == 0
    prefix = f"{c.namespace}{c.scope}/"
    assert harness.etcd_keys(c.etcd, c.dcs, prefix), "no keys before remove"
    out = ctl(c, "remove", c.scope, stdin=f"{c.scope}\nYes I am aware\n")
    left = harness.etcd_keys(c.etcd, c.dcs, prefix)
    assert left == {}, f"keys left after remove: {sorted(left)}\n{out}"
