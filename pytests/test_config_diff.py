"""Differential tests: our `Config` (patroni_rs) against Python Patroni 4.1.5's `patroni.config.Config`.

Both sides get the same configuration file (or directory), the same environment and, through
`<data_dir>/patroni.dynamic.json`, the same cached dynamic configuration. Python's `Config` reads
`os.environ` and pops the variables it uses, so each Python call runs with `os.environ` replaced by
exactly the generated environment and restored afterwards; both sides run in an empty scratch
working directory, because with no `data_dir` Patroni looks for `patroni.dynamic.json` there.

Compared, strictly (types, key sets and key order, `postgresql.parameters` included):
- `Config.copy()` (the effective configuration), `local_configuration`, `dynamic_configuration`;
- the set of environment variables Python removed vs. our `consumed` list;
- the WARNING messages of the `patroni.config` logger vs. our warning events;
- failure: when Python raises, we must raise too; for `ConfigParseError` the text must match.

Known, explained differences (not generated here):
- Messages of non-`ConfigParseError` failures differ: Python stops with a `TypeError`/`AttributeError`
  traceback, we report "invalid configuration: <section> must be a mapping, not <type>" (or the YAML /
  I/O error). ERROR-level log texts (logged exceptions) are not compared for the same reason.
- `int()` of timeouts beyond 64 bits: Python accepts them, we report an error (and ignore that dynamic
  configuration). Unicode digits in `int()` strings (e.g. Arabic-Indic) are accepted only by Python.
- YAML loader (`crate::config::yaml`, not this module) differences found by this test, so excluded from the
  random text: in flow sequences PyYAML rejects `[>]`, `[|]`, `[!]`, `[- a]` and `[:]` and reads `[?]` as
  `[{None: None}]`, while our loader accepts them (giving `['>']`, `['|']`, `[None]`, `['a']`,
  `[{None: None}]`, `['?']`).
- `patroni.dynamic.json` holding `NaN`/`Infinity` or integers beyond 64 bits: Python's `json` reads them,
  serde_json does not (the cache is then ignored with an error event) or reads them as floats.
"""
import atexit
import contextlib
import copy
import json
import logging
import os
import pathlib
import shutil
import tempfile

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings, strategies as st

patroni_rs = pytest.importorskip("patroni_rs")
from patroni.collections import CaseInsensitiveDict  # noqa: E402
from patroni.config import Config  # noqa: E402
from patroni.exceptions import ConfigParseError  # noqa: E402

SCRATCH = pathlib.Path(tempfile.mkdtemp(prefix="cfgdiff-cwd-"))
atexit.register(shutil.rmtree, SCRATCH, True)


def strict(v):
    """A structure that compares equal only for equal types, values and key order."""
    if isinstance(v, (dict, CaseInsensitiveDict)):
        return ("dict", [(strict(k), strict(x)) for k, x in v.items()])
    if isinstance(v, (list, tuple)):
        return ("list", [strict(x) for x in v])
    if isinstance(v, float) and v != v:
        return ("float", "nan")
    return (type(v).__name__, v)


class _Capture(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records = []

    def emit(self, record):
        self.records.append(record)


@contextlib.contextmanager
def _environment(env):
    saved = dict(os.environ)
    cwd = os.getcwd()
    os.environ.clear()
    os.environ.update(env)
    os.chdir(SCRATCH)
    try:
        yield
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(saved)


def python_side(configfile, env, dynamic=None):
    """Run Python Patroni's Config; returns a dict like `patroni_rs.config_state` or an error tuple."""
    logger = logging.getLogger("patroni.config")
    handler = _Capture()
    logger.addHandler(handler)
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    try:
        with _environment(env):
            try:
                c = Config(configfile)
                changed = None
                if dynamic is not None:
                    changed = c.set_dynamic_configuration(copy.deepcopy(dynamic))
            except ConfigParseError as e:
                return ("parse-error", str(e))
            except Exception as e:  # Python crashes with a traceback here
                return ("crash", repr(e))
            remaining = set(os.environ)
        return {
            "effective": c.copy(),
            "local": c.local_configuration,
            "dynamic": c.dynamic_configuration,
            "consumed": {k for k in env if k not in remaining},
            "dynamic_changed": changed,
            "warnings": [r.getMessage() for r in handler.records if r.levelno == logging.WARNING],
        }
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def rust_side(configfile, env, dynamic=None):
    cwd = os.getcwd()
    os.chdir(SCRATCH)
    try:
        state = patroni_rs.config_state(configfile, env, dynamic)
    except ValueError as e:
        return ("error", str(e))
    finally:
        os.chdir(cwd)
    state["consumed"] = set(state["consumed"])
    state["warnings"] = [m for level, m in state.pop("events") if level == "WARNING"]
    return state


def assert_same(configfile, env, dynamic=None):
    py = python_side(configfile, env, dynamic)
    rs = rust_side(configfile, env, dynamic)
    if isinstance(py, tuple):
        assert isinstance(rs, tuple), f"Python failed with {py}, we did not:\n{rs}"
        if py[0] == "parse-error":
            assert rs[1] == py[1]
        return py
    assert not isinstance(rs, tuple), f"we failed with {rs}, Python did not"
    for key in ("effective", "local", "dynamic"):
        assert strict(rs[key]) == strict(py[key]), f"{key} differs:\n rust:   {rs[key]}\n python: {py[key]}"
    assert rs["consumed"] == py["consumed"]
    assert rs["dynamic_changed"] == py["dynamic_changed"]
    assert rs["warnings"] == py["warnings"]
    return py


# --------------------------------------------------------------------------------------------------
# 1) golden environment sets


GOLDEN_ENV_SETS = ("basic", "lists_dicts_bools", "legacy_and_unknown")


@pytest.mark.parametrize("name", GOLDEN_ENV_SETS)
def test_golden_environment_sets(golden, name):
    data = json.loads((golden / "config_env" / "env_and_yaml_parsing.json").read_text())[name]
    ours = patroni_rs.environment_config(data["env"])
    assert json.dumps(ours, sort_keys=True) == json.dumps(data["parsed_local_config"], sort_keys=True)
    # The recording was sorted; Python's own output also fixes the key order and the types.
    with _environment(data["env"]):
        theirs = Config._build_environment_configuration()
    assert strict(ours) == strict(json.loads(json.dumps(theirs)))
    assert_same(None, data["env"])


# --------------------------------------------------------------------------------------------------
# 2) golden node configurations

ENV_OVERRIDES = {
    "PATRONI_NAME": "override",
    "PATRONI_RESTAPI_LISTEN": "127.0.0.1:9999",
    "PATRONI_POSTGRESQL_LISTEN": "127.0.0.1:6543",
    "PATRONI_SUPERUSER_PASSWORD": "other",
    "PATRONI_REPLICATION_SSLMODE": "verify-full",
    "PATRONI_ETCD3_HOSTS": "'h1:2379','h2:2379'",
    "PATRONI_ETCD3_USERNAME": "eu",
    "PATRONI_LOG_LEVEL": "DEBUG",
    "PATRONI_CTL_INSECURE": "off",
}


def _golden_configs():
    from conftest import GOLDEN

    return sorted((GOLDEN / "configs").glob("*.yml"))


@pytest.mark.parametrize("path", _golden_configs(), ids=lambda p: p.name)
@pytest.mark.parametrize("with_env", [False, True], ids=["file", "file+env"])
def test_golden_configs(path, with_env):
    env = dict(ENV_OVERRIDES) if with_env else {}
    py = assert_same(str(path), env)
    assert isinstance(py, dict), py


def test_golden_config_directory_and_dynamic(tmp_path):
    configs = _golden_configs()
    for i, p in enumerate(configs[:3]):
        (tmp_path / f"{i:02d}.yml").write_text(p.read_text())
    (tmp_path / "zz.yaml").write_text("tags:\n  nofailover: true\n  failover_priority: 2\n")
    (tmp_path / "ignored.txt").write_text("- not yaml mapping\n")
    dynamic = {"ttl": 10, "loop_wait": 0, "retry_timeout": 30,
               "postgresql": {"parameters": {"Max_Connections": "300", "max_wal_senders": 1}}}
    assert isinstance(assert_same(str(tmp_path), {}, dynamic), dict)


def test_dynamic_cache_file_format(golden, tmp_path):
    """save_cache writes what Python's json.dump writes."""
    for node in ("etcd3-node2-primary", "etcd3-node1-replica"):
        src = golden / "datadir_files" / node / "patroni.dynamic.json"
        dynamic = json.loads(src.read_text())
        env = {"PATRONI_NAME": "n", "PATRONI_POSTGRESQL_DATA_DIR": str(tmp_path)}
        state = patroni_rs.config_state(None, env, dynamic, save_cache=True)
        assert state["dynamic_changed"] is True
        assert (tmp_path / "patroni.dynamic.json").read_bytes() == src.read_bytes()
        assert sorted(p.name for p in tmp_path.iterdir()) == ["patroni.dynamic.json"]
        (tmp_path / "patroni.dynamic.json").unlink()


@pytest.mark.parametrize("before,after", [
    ("name: a\nscope: s\n", "name: a\nscope: s\n"),
    ("name: a\nscope: s\n", "name: b\nscope: s\ntags: {nosync: true, sync_priority: 1}\n"),
    ("name: a\nport: 5432\n", "name: a\nport: '5432'\n"),
    ("name: a\n", "postgresql: {parameters: {Work_Mem: 4MB, max_connections: 5}}\nname: a\n"),
])
def test_reload_local_configuration(tmp_path, before, after):
    path = tmp_path / "patroni.yml"
    env = {"PATRONI_SCOPE": "env-scope", "PATRONI_RESTAPI_LISTEN": ":1"}

    def rewrite():
        path.write_text(after)

    path.write_text(before)
    ours = patroni_rs.config_reload(str(path), env, rewrite)
    path.write_text(before)
    with _environment(env):
        c = Config(str(path))
        rewrite()
        result = c.reload_local_configuration()
    assert ours["result"] == result
    assert strict(ours["effective"]) == strict(c.copy())


# Hand-picked corners: non-string keys, str()-equality in patch_config, dynamic parameter validation
# and int conversion, old-style authentication, exhibitor inside zookeeper, Citus bootstrap, auth
# formatting of non-strings, tag contradictions, dates, false-y sections, empty env values.
EDGE_CASES = [
 ("postgresql:\n  parameters: {1: x}\nname: n\n", {}, None),
 ("name: n\ntrue: x\n1.0: y\n", {}, None),
 ("name: null\n", {"PATRONI_NAME": "x"}, None),
 ("restapi: str\nname: n\n", {"PATRONI_RESTAPI_LISTEN": ":1"}, None),
 ("name: n\n", {}, {"postgresql": {"parameters": {"max_connections": 30.5, "max_wal_senders": "5.7", "wal_keep_size": 100, "hot_standby": True, "wal_level": "LOGICAL", "track_commit_timestamp": 1}}}),
 ("name: n\n", {}, {"ttl": "25", "loop_wait": "9", "retry_timeout": 8.9}),
 ("name: n\n", {}, {"ttl": 21, "loop_wait": 10, "retry_timeout": 10}),
 ("name: n\n", {}, {"standby_cluster": {"host": None}, "postgresql": {"use_slots": None, "parameters": None}}),
 ("name: n\npostgresql:\n  authentication:\n    superuser: {username: a, 1: b, sslmode: c}\n  pg_rewind: {username: r}\n", {}, None),
 ("name: n\npostgresql:\n  superuser: {username: a}\n  replication: {password: p}\n", {}, None),
 ("name: n\nzookeeper: {exhibitor: null}\nexhibitor: old\n", {}, None),
 ("name: n\ncitus: {group: 1, database: d}\nbootstrap: {dcs: {synchronous_mode: on}}\n", {}, None),
 ("name: n\ncitus: {group: 1, database: d}\nbootstrap: {}\n", {}, None),
 ("name: n\nctl:\n  authentication: {username: [1, 'a'], password: {x: 1}}\n", {}, None),
 ("name: n\ntags: {nofailover: 'false', failover_priority: '1'}\n", {}, None),
 ("name: n\ntags: {nosync: [], sync_priority: '-3'}\n", {}, None),
 ("name: 2024-01-02\nscope: 2024-01-02 10:00:00+01:00\n", {"PATRONI_NAME": "2024-01-02"}, None),
 ("name: n\nwatchdog: 0\nlog: 0\n", {}, None),
 ("name: n\n", {"PATRONI_CONFIGURATION": "x"}, None),
 ("name: n\n", {"PATRONI_ETCD3_HOSTS": "", "PATRONI_KUBERNETES_LABELS": "", "PATRONI_CITUS_DATABASE": ""}, None),
 ("name: n\n", {"PATRONI_LOG_FORMAT": "a, b", "PATRONI_LOG_LOGGERS": "a", "PATRONI_RESTAPI_ALLOWLIST": "''"}, None),
 ("name: n\n", {"PATRONI_RESTAPI_ALLOWLIST": "[]", "PATRONI_RAFT_PARTNER_ADDRS": "x", "PATRONI_LOG_STATIC_FIELDS": "{}"}, None),
 ("name: n\n", {}, {"loop_wait": None}),
]


@pytest.mark.parametrize("text,env,dynamic", EDGE_CASES)
def test_edge_cases(tmp_path, text, env, dynamic):
    path = tmp_path / "patroni.yml"
    path.write_text(text)
    assert_same(str(path), env, dynamic)


JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2 ** 63), 2 ** 63 - 1), st.floats(), st.text(max_size=8)),
    lambda children: st.one_of(st.lists(children, max_size=3),
                               st.dictionaries(st.text(max_size=5), children, max_size=3)),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.dictionaries(st.text(max_size=6).filter(lambda k: k not in ("ttl", "loop_wait", "retry_timeout",
                                                                      "postgresql", "standby_cluster")),
                       JSON_VALUES, min_size=1, max_size=5))
def test_save_cache_matches_json_dump(dynamic):
    """`patroni.dynamic.json` is byte-identical to Python's `json.dump` of the dynamic configuration."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {"PATRONI_NAME": "n", "PATRONI_POSTGRESQL_DATA_DIR": tmp}
        state = patroni_rs.config_state(None, env, dynamic, save_cache=True)
        assert state["dynamic_changed"] is True
        written = (pathlib.Path(tmp) / "patroni.dynamic.json").read_text()
        assert written == json.dumps(dynamic)


# --------------------------------------------------------------------------------------------------
# 3) generated cases

SECTION_VARS = {
    "RESTAPI": ["LISTEN", "CONNECT_ADDRESS", "CERTFILE", "KEYFILE", "KEYFILE_PASSWORD", "CAFILE", "CIPHERS",
                "VERIFY_CLIENT", "HTTP_EXTRA_HEADERS", "HTTPS_EXTRA_HEADERS", "ALLOWLIST",
                "ALLOWLIST_INCLUDE_MEMBERS", "REQUEST_QUEUE_SIZE", "SERVER_TOKENS", "THREAD_POOL_SIZE",
                "USERNAME", "PASSWORD"],
    "CTL": ["INSECURE", "CACERT", "CERTFILE", "KEYFILE", "KEYFILE_PASSWORD", "USERNAME", "PASSWORD"],
    "POSTGRESQL": ["LISTEN", "CONNECT_ADDRESS", "PROXY_ADDRESS", "CONFIG_DIR", "DATA_DIR", "PGPASS", "BIN_DIR",
                   "BIN_PG_CTL", "BIN_INITDB", "BIN_PG_REWIND", "PORT", "NAME"],
    "LOG": ["TYPE", "LEVEL", "TRACEBACK_LEVEL", "FORMAT", "DATEFORMAT", "STATIC_FIELDS", "MAX_QUEUE_SIZE", "DIR",
            "MODE", "FILE_SIZE", "FILE_NUM", "LOGGERS", "DEDUPLICATE_HEARTBEAT_LOGS", "HOST"],
    "RAFT": ["DATA_DIR", "SELF_ADDR", "PARTNER_ADDRS", "PASSWORD", "BIND_ADDR", "PORT"],
}
AUTH_SUFFIXES = ["USERNAME", "PASSWORD", "SSLMODE", "SSLCERT", "SSLKEY", "SSLPASSWORD", "SSLROOTCERT", "SSLCRL",
                 "SSLCRLDIR", "GSSENCMODE", "CHANNEL_BINDING", "SSLNEGOTIATION", "OPTIONS", "HOST"]
DCS_SUFFIXES = ["HOST", "HOSTS", "PORT", "USE_PROXIES", "PROTOCOL", "SRV", "SRV_SUFFIX", "URL", "PROXY", "CACERT",
                "CERT", "KEY", "VERIFY", "TOKEN", "CHECKS", "DC", "CONSISTENCY", "REGISTER_SERVICE",
                "SERVICE_CHECK_INTERVAL", "SERVICE_CHECK_TLS_SERVER_NAME", "SERVICE_TAGS", "NAMESPACE", "CONTEXT",
                "USE_ENDPOINTS", "SCOPE_LABEL", "ROLE_LABEL", "POD_IP", "PORTS", "LABELS", "BYPASS_API_SERVICE",
                "RETRIABLE_HTTP_CODES", "KEY_PASSWORD", "USE_SSL", "SET_ACLS", "GROUP", "DATABASE",
                "LEADER_LABEL_VALUE", "FOLLOWER_LABEL_VALUE", "STANDBY_LEADER_LABEL_VALUE", "TMP_ROLE_LABEL",
                "AUTH_DATA", "BOOTSTRAP_LABELS",
                # not in Patroni's list: must be left alone
                "USERNAME", "PASSWORD", "HOSTNAME", "BAR", "", "host"]
DCS_NAMES = ["ETCD", "ETCD3", "CONSUL", "ZOOKEEPER", "EXHIBITOR", "KUBERNETES", "RAFT", "CITUS", "FOO", "Etcd",
             "TAGS", "BOOTSTRAP", "USER1", ""]

ENV_NAMES = (
    [f"PATRONI_{n}" for n in ("NAME", "NAMESPACE", "SCOPE", "THREAD_POOL_SIZE", "THREAD_STACK_SIZE",
                              "LOGLEVEL", "LOGFORMAT", "LOG_DATEFMT", "CONFIGURATION", "X")]
    + [f"PATRONI_{s}_{p}" for s, ps in SECTION_VARS.items() for p in ps]
    + [f"PATRONI_{u}_{p}" for u in ("SUPERUSER", "REPLICATION", "REWIND") for p in AUTH_SUFFIXES]
    + [f"PATRONI_{d}_{s}" if s else f"PATRONI_{d}" for d in DCS_NAMES for s in DCS_SUFFIXES]
    + ["patroni_name", "OTHER_VAR"]
)

ENV_VALUES = st.one_of(
    st.sampled_from([
        "", "on", "off", "Yes", "no", "TRUE", "maybe", "0", "1", "10", "8500", "0640", "0x1F", "-1", "1.5", "1MB",
        "abc", "h1:2379, h2:2379", "'a','b'", "[a, b]", "- a\n- b", "[unclosed", "x: [1", "k: v, k2: v2",
        "{a: 1}", "{bad", "a: b: c", "%(message)s", "%(asctime)s %(levelname)s", "['message', {'levelname': 'level'}]",
        "message, levelname", "2024-01-02", "null", "~", "1:20", " spaced ", "[]", "{}", "[1, 2", "[1, 2]",
        "X-Frame-Options: SAMEORIGIN, X-Foo: bar", "[{\"name\": \"postgresql\", \"port\": 5432}]",
    ]),
    # `>|!?:` are left out of random text: see the YAML note in the module docstring.
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126, exclude_characters=">|!?:"), max_size=10),
)


def mostly(valid, unusual, one_in=8):
    """`valid`, and once in `one_in` draws `unusual` (so that most generated cases get all the way through)."""
    return st.integers(0, one_in - 1).flatmap(lambda i: unusual if i == 0 else valid)


def _yaml_doc(obj):
    return yaml.safe_dump(obj, default_flow_style=False, sort_keys=False)


SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(-3, 100), st.sampled_from(["", "x", "1", "on", "True", "5432", "a b"]),
    st.floats(-2, 50, allow_nan=False).map(lambda f: round(f, 2)),
)
PG_PARAM_NAMES = st.sampled_from([
    "max_connections", "Max_Connections", "MAX_CONNECTIONS", "max_wal_senders", "wal_level", "WAL_Level",
    "hot_standby", "wal_keep_size", "wal_keep_segments", "port", "listen_addresses", "cluster_name",
    "track_commit_timestamp", "wal_log_hints", "max_worker_processes", "max_replication_slots",
    "max_locks_per_transaction", "max_prepared_transactions", "shared_buffers", "Shared_Buffers", "work_mem",
])
PG_PARAM_VALUES = st.one_of(SCALARS, st.sampled_from(["200", "25", "3", "1GB", "16MB", "8MB", "logical", "Replica",
                                                      "minimal", "off", "on", "yes", "maybe", "128MB", "-1"]))
PG_PARAMS = mostly(st.dictionaries(PG_PARAM_NAMES, PG_PARAM_VALUES, max_size=6),
                   st.sampled_from([None, "not a dict", ["a"]]))
AUTH_ENTRY = st.dictionaries(
    st.sampled_from(["username", "password", "sslmode", "sslkey", "options", "channel_binding", "host"]),
    st.sampled_from(["u", "p", "require", "x"]), max_size=4)
TAG_VALUES = st.sampled_from([True, False, 0, 1, -1, 2, "1", "0", "x", None, "yes"])
TAGS = mostly(
    st.dictionaries(st.sampled_from(["nofailover", "failover_priority", "nosync", "sync_priority", "clonefrom"]),
                    TAG_VALUES, max_size=5),
    st.sampled_from([None, 5, "nofailover", "abc", ["nofailover"], ["x"], 0, True, ""]),
)
TIMEOUT = mostly(st.integers(-5, 70), st.sampled_from(["30", "abc", " 15 ", "2_0", None, 12.7, True, "-4"]), 4)


def _postgresql(data_dir):
    return st.fixed_dictionaries({}, optional={
        "data_dir": st.just(data_dir),
        "listen": st.sampled_from(["0.0.0.0:5432", "", None]),
        "connect_address": st.just("10.0.0.1:5432"),
        "parameters": PG_PARAMS,
        "use_slots": st.booleans(),
        "name": st.sampled_from(["pgname", ""]),
        "authentication": mostly(
            st.dictionaries(st.sampled_from(["superuser", "replication", "rewind"]), AUTH_ENTRY, max_size=3),
            st.sampled_from([None, "x", {"superuser": "notdict"}])),
        "replication": AUTH_ENTRY,
        "superuser": AUTH_ENTRY,
        "pg_rewind": AUTH_ENTRY,
        "pg_hba": st.just(["host all all 0.0.0.0/0 md5"]),
        "port": st.sampled_from([5432, "5432"]),
    })


def _config(data_dir):
    restapi = mostly(
        st.fixed_dictionaries({}, optional={
            "listen": st.just(":8008"), "connect_address": st.just("h:8008"),
            "authentication": mostly(st.fixed_dictionaries({"username": st.just("u"), "password": SCALARS}),
                                     st.one_of(AUTH_ENTRY, st.sampled_from([None, "x"]))),
        }),
        st.sampled_from([None, "authentication", "plain", ["authentication"]]),
    )
    return st.fixed_dictionaries({}, optional={
        "name": SCALARS,
        "scope": st.sampled_from(["demo", "", 1]),
        "namespace": st.just("/service/"),
        "ttl": TIMEOUT, "loop_wait": TIMEOUT, "retry_timeout": TIMEOUT,
        "restapi": restapi,
        "ctl": restapi,
        "postgresql": mostly(_postgresql(data_dir), st.sampled_from([None, "x"])),
        "tags": TAGS,
        "citus": mostly(st.fixed_dictionaries({}, optional={
            "group": st.sampled_from([0, 1, "1", True, None]), "database": st.sampled_from(["citus", 1])}),
            st.just("citus")),
        "bootstrap": mostly(
            st.fixed_dictionaries({}, optional={"dcs": st.sampled_from([None, {}, {"synchronous_mode": True},
                                                                        "x"])}),
            st.sampled_from([None, "x"])),
        "zookeeper": mostly(st.sampled_from([{"hosts": ["zk:2181"]}, {"exhibitor": {"hosts": ["e"], "port": 8181}},
                                             None]), st.just("exhibitor")),
        "exhibitor": st.just({"hosts": ["old"]}),
        "etcd3": st.sampled_from([{"hosts": ["e:2379"]}, {"host": "e:2379", "username": "x"}]),
        "watchdog": st.sampled_from([None, {"mode": "off"}, "", "automatic"]),
        "standby_cluster": st.just({"host": "h"}),
        "log": st.sampled_from([{"level": "INFO"}, {"format": ["message"]}]),
        "thread_pool_size": st.sampled_from([5, "7"]),
        1: st.just("int key"),
    })


DYNAMIC = st.fixed_dictionaries({}, optional={
    "ttl": TIMEOUT, "loop_wait": TIMEOUT, "retry_timeout": TIMEOUT,
    "maximum_lag_on_failover": st.integers(0, 10 ** 6),
    "postgresql": mostly(
        st.fixed_dictionaries({}, optional={
            "parameters": PG_PARAMS, "use_slots": st.booleans(), "use_pg_rewind": st.booleans(),
            "data_dir": st.just("/elsewhere"), "listen": st.just("x:1"), "authentication": st.just({})}),
        st.sampled_from([None, "x"])),
    "standby_cluster": mostly(
        st.fixed_dictionaries({}, optional={"host": st.just("h"), "port": st.sampled_from([5432, "5432"]),
                                            "unknown": st.just("u"), "primary_slot_name": st.just("s")}),
        st.sampled_from([None, "x"])),
    "synchronous_mode": st.sampled_from([True, "quorum"]),
})

CASES = st.fixed_dictionaries({
    "source": st.sampled_from(["file"] * 4 + ["dir", "missing", "none"]),
    "config": mostly(_config("@DATA_DIR@"), st.sampled_from([None, ["a", "b"], "scalar", {}]), one_in=20),
    "env": st.dictionaries(st.sampled_from(ENV_NAMES), ENV_VALUES, max_size=12),
    "env_doc": mostly(st.sampled_from([None, None, "@CONFIG@"]),
                      st.sampled_from(["", "- a", "scalar", "name: doc\nscope: s", "{", "~"])),
    "env_data_dir": st.booleans(),
    "cache": st.one_of(st.none(), mostly(DYNAMIC, st.sampled_from(["[1, 2]", "not json", "{}"]))),
    "dynamic": st.one_of(st.none(), DYNAMIC),
})


def _substitute(obj, data_dir):
    if isinstance(obj, dict):
        return {k: _substitute(v, data_dir) for k, v in obj.items()}
    return data_dir if obj == "@DATA_DIR@" else obj


@settings(max_examples=int(os.environ.get("CONFIG_DIFF_EXAMPLES", 1200)), deadline=None, suppress_health_check=list(HealthCheck))
@given(CASES)
def test_generated_configurations(case):
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        data_dir = tmp / "data"
        data_dir.mkdir()
        config = _substitute(case["config"], str(data_dir))
        env = dict(case["env"])
        if case["env_doc"] == "@CONFIG@":
            env["PATRONI_CONFIGURATION"] = _yaml_doc(config)
        elif case["env_doc"] is not None:
            env["PATRONI_CONFIGURATION"] = case["env_doc"]
        if case["env_data_dir"]:
            env["PATRONI_POSTGRESQL_DATA_DIR"] = str(data_dir)
        if case["cache"] is not None:
            body = case["cache"] if isinstance(case["cache"], str) else json.dumps(case["cache"])
            (data_dir / "patroni.dynamic.json").write_text(body)

        configfile = None
        if case["source"] == "file":
            configfile = tmp / "patroni.yml"
            configfile.write_text(_yaml_doc(config))
        elif case["source"] == "dir":
            configfile = tmp / "conf.d"
            configfile.mkdir()
            items = list(config.items()) if isinstance(config, dict) else []
            half = len(items) // 2
            (configfile / "a.yml").write_text(_yaml_doc(dict(items[:half])) if half else "x: 1\n")
            (configfile / "b.yaml").write_text(_yaml_doc(dict(items[half:])) if items else _yaml_doc(config))
        elif case["source"] == "missing":
            configfile = tmp / "missing.yml"
        py = assert_same(str(configfile) if configfile else None, env, case["dynamic"])
        event(f"python: {py[0]}: {py[1][:40]}".replace(str(tmp), "<tmp>") if isinstance(py, tuple) else
              f"python: ok, dynamic_changed={py['dynamic_changed']}, warnings={bool(py['warnings'])}")
