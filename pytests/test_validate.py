"""`patroni --validate-config`: our validator against Python Patroni 4.1.5's.

Both validators look at this machine (files, binaries, name resolution,
open ports), so each case runs them back to back on the same input and
compares the full list of printed lines, order included.

Python Patroni's validator mutates its input (it writes the default
`postgresql.bin_dir`) and keeps the "ignore listen port" option in a
module global, so every call gets a deep copy and sets the option first.
"""
import copy
import datetime
import os
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, given, settings, strategies as st

import patroni_rs
from conftest import GOLDEN
from patroni import validator


def python_lines(config, ignore_listen_port=False):
    validator.populate_validate_params(ignore_listen_port=ignore_listen_port)
    return validator.schema(copy.deepcopy(config))


def has_dates(node):
    if isinstance(node, (datetime.date, datetime.datetime)):
        return True
    if isinstance(node, dict):
        return any(has_dates(k) or has_dates(v) for k, v in node.items())
    if isinstance(node, list):
        return any(has_dates(v) for v in node)
    return False


def rust_lines(config, ignore_listen_port=False):
    if has_dates(config):
        # Dates only reach us through YAML (as in a config file).
        text = yaml.safe_dump(config, default_flow_style=False, sort_keys=False)
        assert yaml.safe_load(text) == config
        return patroni_rs.validate_config_yaml(text, ignore_listen_port)
    return patroni_rs.validate_config(copy.deepcopy(config), ignore_listen_port)


def compare(config, ignore_listen_port=False):
    """Assert both validators print the same lines; return them."""
    try:
        want = python_lines(config, ignore_listen_port)
    except Exception as e:  # Python Patroni crashes on some shapes
        got = rust_lines(config, ignore_listen_port)
        # We report something instead of a traceback.
        assert got, f"Python raised {e!r}; we found nothing wrong"
        return got
    got = rust_lines(config, ignore_listen_port)
    assert got == want
    return got


# ---------------------------------------------------------------- golden

GOLDEN_CONFIGS = sorted(p.name for p in (GOLDEN / "configs").glob("*.yml"))


@pytest.mark.parametrize("name", GOLDEN_CONFIGS)
@pytest.mark.parametrize("ignore", [False, True])
def test_golden_configs(golden, name, ignore):
    text = (golden / "configs" / name).read_text()
    config = yaml.safe_load(text)
    lines = compare(config, ignore)
    # Same through our own YAML loader, as the CLI reads the file.
    assert patroni_rs.validate_config_yaml(text, ignore) == lines
    # The captures reference placeholders like <pg_bindir>: never valid here.
    assert lines


# ---------------------------------------------------------------- a valid base

def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


@pytest.fixture(scope="module")
def workdir():
    d = tempfile.mkdtemp(prefix="validate-")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def bin_dir():
    """A directory with real PostgreSQL binaries, when there is one."""
    postgres = shutil.which("postgres")
    return os.path.dirname(os.path.realpath(postgres)) if postgres else "/usr/lib/postgresql/15/bin"


def base_config(workdir):
    port = free_port()
    return {
        "scope": "demo",
        "name": "node1",
        "log": {"level": "INFO", "format": "%(message)s", "dir": workdir},
        "restapi": {
            "listen": f"127.0.0.1:{port}",
            "connect_address": "10.0.0.1:8008",
            "authentication": {"username": "u", "password": "p"},
        },
        "kubernetes": {"labels": {"application": "patroni"}, "namespace": "default"},
        "bootstrap": {
            "dcs": {
                "ttl": 30, "loop_wait": 10, "retry_timeout": 10,
                "maximum_lag_on_failover": 1048576,
                "synchronous_mode": False,
                "postgresql": {"use_pg_rewind": True, "parameters": {"max_connections": 100}},
            },
            "initdb": [{"encoding": "UTF8"}, "data-checksums"],
        },
        "postgresql": {
            "listen": f"127.0.0.1:{port}",
            "connect_address": "10.0.0.1:5432",
            "data_dir": os.path.join(workdir, "data"),
            "bin_dir": bin_dir(),
            "authentication": {
                "replication": {"username": "rep", "password": "x"},
                "superuser": {"username": "su", "password": "y"},
            },
            "parameters": {"unix_socket_directories": workdir},
            "pg_hba": ["local all all trust"],
        },
        "watchdog": {"mode": "off"},
        "tags": {"nofailover": False, "clonefrom": True},
    }


def test_base_config_is_valid(workdir):
    assert compare(base_config(workdir)) == []


def patched(config, path, value=None, delete=False):
    c = copy.deepcopy(config)
    keys = path.split(".")
    cur = c
    for k in keys[:-1]:
        cur = cur.setdefault(k, {})
    if delete:
        cur.pop(keys[-1], None)
    else:
        cur[keys[-1]] = value
    return c


BROKEN = [
    ("name", None, True),
    ("scope", 5, False),
    ("restapi", None, True),
    ("restapi", "x", False),
    ("restapi.listen", 8008, False),
    ("restapi.listen", "127.0.0.1:notaport", False),
    ("restapi.listen", "127.0.0.1:70000", False),
    ("restapi.listen", "no-such-host.invalid:8008", False),
    ("restapi.listen", "a..b:8008", False),
    ("restapi.connect_address", "localhost:8008", False),
    ("restapi.connect_address", "*:8008", False),
    ("restapi.authentication", {"username": "u"}, False),
    ("restapi.verify_client", "sometimes", False),
    ("restapi.request_queue_size", 5000, False),
    ("restapi.server_tokens", "MINIMAL", False),
    ("restapi.server_tokens", "verbose", False),
    ("restapi.allowlist", [], False),
    ("restapi.allowlist", ["10.0.0.0/8", 7], False),
    ("thread_pool_size", 4, False),
    ("thread_pool_size", "10", False),
    ("thread_stack_size", 65537, False),
    ("thread_stack_size", 131072, False),
    ("log", "verbose", False),
    ("log.type", "xml", False),
    ("log.level", "info", False),
    ("log.traceback_level", "debug", False),
    ("log.format", [], False),
    ("log.format", ["message", {"levelname": "level", "x": "y"}], False),
    ("log.format", 5, False),
    ("log.mode", 0o777 + 1, False),
    ("log.mode", "0600", False),
    ("log.file_num", "4", False),
    ("log.static_fields", ["a"], False),
    ("log.deduplicate_heartbeat_logs", "yes", False),
    ("ctl.insecure", "true", False),
    ("kubernetes", None, True),
    ("etcd", {"hosts": "127.0.0.1:1"}, False),
    ("etcd3", {"hosts": ["127.0.0.1:1", 5]}, False),
    ("etcd3", {"protocol": "http"}, False),
    ("consul", {"url": "http://x", "port": 70000, "consistency": "eventual"}, False),
    ("exhibitor", {"hosts": "a", "port": "8181"}, False),
    ("raft", {"self_addr": "10.0.0.1:2222", "partner_addrs": "x"}, False),
    ("raft", {"self_addr": "127.0.0.1:2222", "partner_addrs": ["127.0.0.1:1"]}, False),
    ("zookeeper", {"hosts": 3}, False),
    ("zookeeper", {"hosts": ["127.0.0.1:1"]}, False),
    ("kubernetes.labels", [], False),
    ("kubernetes.pod_ip", "10.1", False),
    ("kubernetes.pod_ip", "fe80::1", False),
    ("kubernetes.pod_ip", "10.0.0.256", False),
    *[("kubernetes.pod_ip", ip, False) for ip in (
        "1.2.3", "0x7f.1", "0X7F.0.0.1", "01.02.03.04", "1.2.3.08", "1.2.3.4 junk", "1.2.3.4x", "4294967295",
        "4294967296", "1.16777215", "1.16777216", "", " 1.2.3.4", "::ffff:1.2.3.4", "fe80::1%eth0", "1::2::3",
        "::", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "0x", "1.0x", "00", "1..2")],
    ("kubernetes.ports", [{"name": 1, "port": 99999}], False),
    ("kubernetes.retriable_http_codes", "500", False),
    ("kubernetes.retriable_http_codes", [500, "x"], False),
    ("citus", {"database": 1}, False),
    ("citus", {"database": "db", "group": -1}, False),
    ("bootstrap", [], False),
    ("bootstrap.dcs", None, True),
    ("bootstrap.dcs.ttl", 5, False),
    ("bootstrap.dcs.ttl", "30", False),
    ("bootstrap.dcs.ttl", "1min", False),
    ("bootstrap.dcs.loop_wait", 0, False),
    ("bootstrap.dcs.ttl", 10 ** 19, False),
    ("bootstrap.dcs.ttl", 1e19, False),
    ("bootstrap.dcs.loop_wait", -10 ** 20, False),
    ("bootstrap.dcs.postgresql.parameters.max_connections", 10 ** 20, False),
    ("thread_stack_size", "1e25B", False),
    ("bootstrap.dcs.retry_timeout", 2.5, False),
    ("bootstrap.dcs.maximum_lag_on_syncnode", -2, False),
    ("bootstrap.dcs.member_slots_ttl", "10min", False),
    ("bootstrap.dcs.member_slots_ttl", "10 parsecs", False),
    ("bootstrap.dcs.synchronous_mode", "quorum", False),
    ("bootstrap.dcs.synchronous_mode", "QUORUM", False),
    ("bootstrap.dcs.synchronous_mode", "on", False),
    ("bootstrap.dcs.synchronous_mode", "sometimes", False),
    ("bootstrap.dcs.synchronous_mode", 1, False),
    ("bootstrap.dcs.synchronous_mode", 2, False),
    ("bootstrap.dcs.synchronous_node_count", 0, False),
    ("bootstrap.dcs.postgresql.parameters.max_connections", 0, False),
    ("bootstrap.dcs.postgresql.parameters.max_connections", "100", False),
    ("bootstrap.dcs.postgresql.parameters.max_wal_senders", True, False),
    ("bootstrap.dcs.postgresql.pg_hba", "host all all 0.0.0.0/0 md5", False),
    ("bootstrap.dcs.standby_cluster", {}, False),
    ("bootstrap.dcs.standby_cluster", {"port": "5432"}, False),
    ("bootstrap.dcs.standby_cluster", {"host": "h", "create_replica_methods": []}, False),
    ("bootstrap.initdb", ["ok", 5, ["x"]], False),
    ("bootstrap.initdb", {"encoding": "UTF8"}, False),
    ("postgresql", None, True),
    ("postgresql.listen", "*:5432", False),
    ("postgresql.listen", "127.0.0.1,*:5432", False),
    ("postgresql.listen", "127.0.0.1,::1:5432", False),
    ("postgresql.connect_address", "127.0.0.1:5432", False),
    ("postgresql.connect_address", "[::1]:5432", False),
    ("postgresql.proxy_address", "0.0.0.0:5433", False),
    ("postgresql.authentication", None, True),
    ("postgresql.authentication.superuser", {"password": "x"}, False),
    ("postgresql.authentication.replication.username", 1, False),
    ("postgresql.authentication.rewind", "rewind", False),
    ("postgresql.data_dir", "", False),
    ("postgresql.data_dir", 5, False),
    ("postgresql.data_dir", "/etc/hostname", False),
    ("postgresql.data_dir", "/etc", False),
    ("postgresql.bin_dir", "/nonexistent/bin", False),
    ("postgresql.bin_dir", "/etc/hostname", False),
    ("postgresql.bin_dir", "/etc", False),
    ("postgresql.bin_dir", "", False),
    ("postgresql.bin_dir", None, True),
    ("postgresql.bin_dir", 5, False),
    ("postgresql.bin_name", {"postgres": "postgres-not-here", "pg_ctl": ""}, False),
    ("postgresql.bin_name", {"pg_rewind": 5}, False),
    ("postgresql.parameters.unix_socket_directories", ["/tmp"], False),
    ("postgresql.pg_ctl_timeout", -1, False),
    ("watchdog", "off", False),
    ("watchdog.mode", "on", False),
    ("watchdog.mode", True, False),
    ("watchdog.mode", False, False),
    ("watchdog.mode", 0, False),
    ("watchdog.safety_margin", -2, False),
    ("watchdog.safety_margin", "5", False),
    ("tags", ["nofailover"], False),
    ("tags.failover_priority", 1, False),
    ("tags.nofailover", "false", False),
    ("tags.sync_priority", -1, False),
    ("tags.nosync", 1, False),
    ("tags", {"nosync": True, "sync_priority": 1, "nofailover": True, "failover_priority": 2}, False),
    # Values are printed the way Python prints them.
    ("scope", datetime.date(2024, 1, 2), False),
    ("name", datetime.datetime(2024, 1, 2, 3, 4, 5, 6, tzinfo=datetime.timezone.utc), False),
    ("bootstrap.initdb", [datetime.datetime(2024, 1, 2, 3, 4)], False),
    ("postgresql.pg_hba", {"a": datetime.date(2024, 1, 2), "b": datetime.datetime(2001, 2, 3, 4, 5, 6)}, False),
    ("postgresql.pg_hba", {"d": datetime.datetime(2001, 2, 3, tzinfo=datetime.timezone(datetime.timedelta(hours=-5)))},
     False),
    ("postgresql.pg_ident", {"it's": "a\tb\x01\u00e9\u2028\\", 1.5: None, None: True, 2: 1e-7, 3: 1e22}, False),
    ("restapi.allowlist", "quote\"and'", False),
    ("tags", {"nofailover": float("inf"), "nosync": float("nan")}, False),
]


@pytest.mark.parametrize("path,value,delete", BROKEN, ids=[f"{p}={v!r}{'-del' if d else ''}" for p, v, d in BROKEN])
def test_edge_configs(workdir, path, value, delete):
    """Mostly broken values, plus a few valid edge cases (`MINIMAL`, `quorum`)."""
    compare(patched(base_config(workdir), path, value, delete))


def test_no_dcs_and_two_dcs(workdir):
    config = patched(base_config(workdir), "kubernetes", delete=True)
    assert len(compare(config)) == 7
    both = patched(patched(config, "etcd", {"host": "127.0.0.1:1"}), "etcd3", {"url": "http://x"})
    compare(both)


def test_listen_port_in_use(workdir):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(128)  # room for every probe: nobody accepts them
    try:
        port = busy.getsockname()[1]
        config = patched(base_config(workdir), "restapi.listen", f"127.0.0.1:{port}")
        assert compare(config) == [
            f"restapi.listen 127.0.0.1:{port} didn't pass validation: Port {port} is already in use."]
        assert compare(config, ignore_listen_port=True) == []
        for listen in (f"*:{port}", f"localhost:{port}", f"127.0.0.1,localhost:{port}", f"::1,127.0.0.1:{port}"):
            compare(patched(config, "postgresql.listen", listen))
        # A DCS endpoint that accepts connections is reachable.
        dcs = patched(patched(config, "kubernetes", delete=True), "etcd", {"hosts": [f"127.0.0.1:{port}"]})
        assert not any(line.startswith("etcd") for line in compare(dcs))
    finally:
        busy.close()


def test_bin_dir_contents(workdir):
    bindir = os.path.join(workdir, "fakebin")
    os.makedirs(bindir, exist_ok=True)
    for name in ("initdb", "postgres"):
        path = os.path.join(bindir, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\necho 'postgres (PostgreSQL) 13.4'\n")
        os.chmod(path, 0o755)
    open(os.path.join(bindir, "pg_ctl"), "w").close()  # not executable
    os.makedirs(os.path.join(bindir, "pg_isready"), exist_ok=True)  # a directory
    config = patched(base_config(workdir), "postgresql.bin_dir", bindir)
    lines = compare(config)
    assert len(lines) == 4
    renamed = patched(config, "postgresql.bin_name", {"pg_ctl": "postgres", "pg_isready": "initdb",
                                                      "pg_rewind": "missing"})
    compare(renamed)
    # The data directory's version is checked with the configured binaries.
    data = os.path.join(workdir, "pgdata13")
    os.makedirs(os.path.join(data, "pg_wal"), exist_ok=True)
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("13\n")
    assert not any("data_dir" in line for line in compare(patched(renamed, "postgresql.data_dir", data)))
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("14\n")
    assert any("data_dir" in line for line in compare(patched(renamed, "postgresql.data_dir", data)))
    broken = patched(patched(renamed, "postgresql.data_dir", data), "postgresql.bin_name.postgres", "nothere")
    compare(broken)  # postgres --version cannot run
    failing = os.path.join(bindir, "failing")
    with open(failing, "w") as f:
        f.write("#!/bin/sh\nexit 3\n")
    os.chmod(failing, 0o755)
    compare(patched(broken, "postgresql.bin_name.postgres", "failing"))
    garbled = os.path.join(bindir, "garbled")
    with open(garbled, "w") as f:
        f.write("#!/bin/sh\necho nonsense\n")
    os.chmod(garbled, 0o755)
    compare(patched(broken, "postgresql.bin_name.postgres", "garbled"))
    # Python reports these through the data_dir check, then stops with a
    # traceback in the bin_dir check; `compare` accepts our report.
    for odd in (5, None, True):
        compare(patched(broken, "postgresql.bin_name.postgres", odd))
        compare(patched(patched(broken, "postgresql.bin_name.postgres", odd), "postgresql.bin_dir", ""))
    shutil.rmtree(data)


def test_data_dir_states(workdir):
    data = os.path.join(workdir, "pgdata")
    os.makedirs(data, exist_ok=True)
    config = patched(base_config(workdir), "postgresql.data_dir", data)
    assert compare(config) == []  # empty
    open(os.path.join(data, ".hidden"), "w").close()
    os.makedirs(os.path.join(data, "lost+found"), exist_ok=True)
    assert compare(config) == []  # still empty
    open(os.path.join(data, "postmaster.opts"), "w").close()
    compare(config)  # not a data directory
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("9.6\n")
    compare(config)  # no pg_xlog
    os.makedirs(os.path.join(data, "pg_xlog"))
    compare(config)  # version mismatch with postgres --version
    with open(os.path.join(data, "PG_VERSION"), "w") as f:
        f.write("banana\n")
    compare(config)
    shutil.rmtree(data)


def test_not_a_mapping():
    for c in (None, 1, "x", [], [1]):
        compare(c)


# ---------------------------------------------------------------- mutations

def leaf_paths(node, prefix=()):
    """Every key path of the tree (inner nodes too)."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield prefix + (k,)
            yield from leaf_paths(v, prefix + (k,))


# Text printed inside containers goes through Python's `repr`, which escapes
# non-printable characters according to Python 3.11's Unicode 14 tables; our
# tables are newer, so code points unassigned in Unicode 14 (but assigned
# since) are left out, except U+0378, unassigned in every version. Lone
# surrogates cannot come from a YAML file and are left out too.
PRINTED_TEXT = st.text(alphabet=st.one_of(st.characters(blacklist_categories=("Cn", "Cs")), st.just("\u0378")),
                       max_size=3)

SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2 ** 63), max_value=2 ** 63 - 1),
    st.floats(allow_nan=False),
    # ASCII: non-ASCII host names go through IDNA in Python (not reproduced).
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7e), max_size=12),
    st.just([]),
    st.just({}),
    st.lists(st.integers(min_value=0, max_value=9), min_size=1, max_size=2),
    st.dictionaries(st.sampled_from(["a", "it's", "b\tc"]),
                    st.one_of(st.none(), st.integers(-5, 5), PRINTED_TEXT), max_size=2),
    st.dates(),
    st.datetimes(timezones=st.sampled_from([None, datetime.timezone.utc,
                                            datetime.timezone(datetime.timedelta(hours=-5, minutes=-30))])),
)


# Strings that exercise address parsing without ever reaching a routable
# address (a connect to one could hang for minutes in both validators).
HOSTISH = st.one_of(
    st.text(alphabet="ab.:,*[] -", max_size=10),
    st.sampled_from([
        "localhost:1", "127.0.0.1:1", "[::1]:1", "::1:1", "*:1", "*", "127.0.0.1,localhost:1",
        "127.0.0.1,*:1", "127.0.0.1:-1", "127.0.0.1:70000", "127.0.0.1: 1_0", "a..b:1", "0.0.0.0:1",
        "name.invalid:1", "127.0.0.1", "", ":1", "localhost:99999999999999999999",
    ]),
)

# One base per DCS, so every DCS section gets mutated.
DCS_SECTIONS = {
    "kubernetes": {"labels": {"application": "patroni"}, "namespace": "default", "pod_ip": "10.0.0.5",
                   "ports": [{"name": "postgresql", "port": 5432}], "retriable_http_codes": [500, 503]},
    "etcd": {"host": "127.0.0.1:1", "protocol": "http"},
    "etcd3": {"hosts": ["127.0.0.1:1", "localhost:1"], "username": "u"},
    "zookeeper": {"hosts": "127.0.0.1:1,localhost:1", "use_ssl": False},
    "consul": {"url": "http://127.0.0.1:8500", "port": 8500, "checks": ["a"], "consistency": "stale"},
    "raft": {"self_addr": "10.0.0.1:2222", "partner_addrs": ["127.0.0.1:1"], "data_dir": "/tmp"},
    "exhibitor": {"hosts": ["h1"], "port": 8181, "poll_interval": 300},
}


@st.composite
def mutated(draw, base):
    config = copy.deepcopy(base)
    dcs = draw(st.sampled_from(sorted(DCS_SECTIONS)))
    del config["kubernetes"]
    config[dcs] = copy.deepcopy(DCS_SECTIONS[dcs])
    if draw(st.booleans()):
        config["citus"] = {"database": "citus", "group": 0}
        config["tags"]["sync_priority"] = 1
    paths = sorted(leaf_paths(config), key=repr)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths))
        cur = config
        for k in path[:-1]:
            cur = cur.get(k) if isinstance(cur, dict) else None
        if not isinstance(cur, dict) or path[-1] not in cur:
            continue
        old = cur[path[-1]]
        action = draw(st.sampled_from(["delete", "retype", "restring"] if isinstance(old, str)
                                      else ["delete", "retype"]))
        if action == "delete":
            del cur[path[-1]]
        elif action == "restring":
            cur[path[-1]] = draw(HOSTISH)
        else:
            cur[path[-1]] = draw(SCALARS.filter(lambda v: type(v) is not type(old)))
    return config


BASE_FOR_MUTATION = None


def mutation_base():
    global BASE_FOR_MUTATION
    if BASE_FOR_MUTATION is None:
        d = tempfile.mkdtemp(prefix="validate-mut-")
        BASE_FOR_MUTATION = base_config(d)
    return BASE_FOR_MUTATION


@settings(max_examples=int(os.environ.get("VALIDATE_EXAMPLES", "400")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutations_agree(data):
    config = data.draw(mutated(mutation_base()))
    compare(config)


@st.composite
def mutated_golden(draw):
    name = draw(st.sampled_from(GOLDEN_CONFIGS))
    config = yaml.safe_load((GOLDEN / "configs" / name).read_text())
    paths = sorted(leaf_paths(config), key=repr)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        path = draw(st.sampled_from(paths))
        cur = config
        for k in path[:-1]:
            cur = cur.get(k) if isinstance(cur, dict) else None
        if not isinstance(cur, dict) or path[-1] not in cur:
            continue
        if draw(st.booleans()):
            del cur[path[-1]]
        else:
            old = cur[path[-1]]
            cur[path[-1]] = draw(SCALARS.filter(lambda v: type(v) is not type(old)))
    return config


@settings(max_examples=int(os.environ.get("VALIDATE_EXAMPLES", "300")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(mutated_golden())
def test_golden_mutations_agree(config):
    compare(config)


# ---------------------------------------------------------------- the CLI

PY_PATRONI = os.path.join(sys.prefix, "bin", "patroni")


def run_cli(cmd, path, *flags):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")}
    p = subprocess.run([str(cmd), "--validate-config", *flags, str(path)], capture_output=True, text=True,
                       env=env, timeout=120)
    return p.returncode, p.stderr


@pytest.mark.parametrize("ignore", [False, True])
def test_cli_matches_python(binary, golden, workdir, ignore):
    flags = ["--ignore-listen-port"] if ignore else []
    probe = os.path.join(workdir, "probe.yml")
    with open(probe, "w") as f:
        f.write("scope: x\n")
    if run_cli(binary, probe) == (0, ""):
        pytest.skip("our patroni binary does not run the validator yet")
    files = [golden / "configs" / name for name in GOLDEN_CONFIGS] + [probe]
    for i, (path, value, delete) in enumerate(BROKEN[::12]):  # a sample: each run starts Python
        if has_dates(value):
            continue
        p = os.path.join(workdir, f"broken{i}.yml")
        with open(p, "w") as f:
            yaml.safe_dump(patched(base_config(workdir), path, value, delete), f, sort_keys=False)
        files.append(p)
    for path in files:
        assert run_cli(binary, path, *flags) == run_cli(PY_PATRONI, path, *flags), path
