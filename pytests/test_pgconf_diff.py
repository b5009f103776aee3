"""The files written into PGDATA: ours against Python Patroni 4.1.5's ConfigHandler.

For each generated configuration we drive the real `patroni.postgresql.Postgresql`
(nothing is started: the major version is patched in, `postgres --describe-config`
is run once for the list of GUCs) through the steps `Postgresql.start` takes
(recovery settings, effective configuration, postgresql.conf, pg_hba.conf,
pg_ident.conf, the command line) and compare the bytes it wrote with what
`patroni_rs.render_pg_files` renders.

GUC value validation (Patroni's `available_parameters` table) is not part of
patroni-rs yet: our side is handed a catalog object that calls Patroni's own
validators, so the comparison covers everything around the table (which
parameters go where, sorting, quoting, renames, recovery parameters, which are
validated by our own code, primary_conninfo, .pgpass, signal files).
"""
import datetime
import os
import shutil
import tempfile
from unittest import mock

import patroni_rs
import pytest
from hypothesis import HealthCheck, event, given, settings, strategies as st
from patroni import global_config
from patroni.collections import CaseInsensitiveDict
from patroni.dcs import Member, RemoteMember
from patroni.postgresql import Postgresql
from patroni.postgresql import validator
from patroni.postgresql.misc import PostgresqlRole

BIN_DIR = "/usr/lib/postgresql/15/bin"
pytestmark = pytest.mark.skipif(not os.path.exists(os.path.join(BIN_DIR, "postgres")),
                                reason="PostgreSQL 15 binaries are needed for the GUC list")

_GUCS = []


def available_gucs():
    """`postgres --describe-config`, once (as Patroni's Postgresql gets it)."""
    if not _GUCS:
        tmp = tempfile.mkdtemp()
        try:
            p = Postgresql(base_config(tmp), mock.Mock())
            _GUCS.append(p.available_gucs)
        finally:
            shutil.rmtree(tmp)
    return _GUCS[0]


class Catalog:
    """Patroni's validators, for our side."""

    def __init__(self, gucs):
        self.gucs = gucs

    def transform(self, version, name, value):
        return validator._transform_parameter_value(validator.parameters, version, name, value, self.gucs)

    def has_validator(self, name):
        return name in validator.parameters

    def is_available(self, name):
        return name in self.gucs


@pytest.fixture(autouse=True)
def restore_global_config():
    saved = global_config._GlobalConfig__config
    yield
    global_config._GlobalConfig__config = saved


def base_config(tmp):
    return {
        "name": "node1", "scope": "demo", "retry_timeout": 10,
        "listen": "127.0.0.1:5432", "connect_address": "127.0.0.1:5432",
        "data_dir": os.path.join(tmp, "data"), "bin_dir": BIN_DIR, "pgpass": os.path.join(tmp, "pgpass"),
        "authentication": {"replication": {"username": "replicator", "password": "rep"},
                           "superuser": {"username": "postgres"}},
        "parameters": CaseInsensitiveDict({"max_connections": 100, "max_prepared_transactions": 0,
                                           "max_locks_per_transaction": 64, "max_worker_processes": 8,
                                           "max_wal_senders": 10}),
    }


ROLES = {"primary": PostgresqlRole.PRIMARY, "replica": PostgresqlRole.REPLICA,
         "standby_leader": PostgresqlRole.STANDBY_LEADER}


def run_python(cfg, major, role, source, remote, enforce, controldata=None, sync=None):
    """What Python Patroni writes; paths are those in `cfg`."""
    data = cfg["data_dir"]
    os.makedirs(data)
    open(os.path.join(cfg.get("config_dir") or data, cfg.get("config_base_name", "postgresql") + ".conf"), "w").close()
    gucs = available_gucs()
    with mock.patch.object(Postgresql, "get_major_version", return_value=major), \
            mock.patch.object(Postgresql, "_get_gucs", return_value=gucs), \
            mock.patch.object(Postgresql, "controldata", return_value=dict(controldata or {})), \
            mock.patch("patroni.postgresql.config.ConfigHandler.pg_version",
                       new_callable=mock.PropertyMock, return_value=major + 5):
        p = Postgresql(cfg, mock.Mock())
        p._enforce_hot_standby_feedback = enforce
        p.set_role(ROLES[role])
        # Cluster-wide settings come from the global configuration
        # (restored by the `restore_global_config` fixture).
        global_config.update(None, {"synchronous_mode": sync is not None, "synchronous_mode_strict": bool(sync),
                                    "postgresql": {"use_slots": cfg.get("use_slots", True)}})
        # Recompute with the role set (the constructor saw no role yet).
        p.config._server_parameters = CaseInsensitiveDict()
        p.config.setup_server_parameters()
        if role != "primary":
            member = None
            if source:
                name, mdata = source
                member = RemoteMember(name, dict(mdata)) if remote else Member(0, name, None, dict(mdata))
            p.config.write_recovery_conf(p.config.build_recovery_params(member))
        configuration = p.config.effective_configuration
        p.config.write_postgresql_conf(configuration)
        p.config.replace_pg_hba()
        p.config.replace_pg_ident()
        options = ["--{0}={1}".format(k, configuration[k]) for k in p.config.CMDLINE_OPTIONS
                   if k in configuration and k not in ("wal_keep_segments", "wal_keep_size")]
        argv = [p.pgcommand("postgres"), "-D", p.data_dir, "--config-file=" + p.config.postgresql_conf] + options

    def read(path):
        if os.path.exists(path):
            with open(path) as f:
                return f.read()

    config_dir = os.path.abspath(cfg.get("config_dir") or data)
    signals = [s for s in ("standby.signal", "recovery.signal") if os.path.exists(os.path.join(data, s))]
    hba = read(os.path.join(config_dir, "pg_hba.conf"))
    ident = read(os.path.join(config_dir, "pg_ident.conf"))
    return {
        "postgresql_conf": read(p.config.postgresql_conf),
        "pg_hba_conf": hba,
        "pg_ident_conf": ident,
        "recovery_conf": read(os.path.join(data, "recovery.conf")),
        "signal": signals[0] if signals else None,
        "pgpass": read(cfg["pgpass"]),
        "argv": argv,
    }


def run_ours(cfg, major, role, source, remote, enforce, controldata=None, sync=None):
    cfg = {**cfg, "parameters": dict(cfg["parameters"])}
    effective = {"scope": cfg["scope"], "name": cfg["name"], "postgresql": cfg}
    out = patroni_rs.render_pg_files(effective, major, major + 5, role, source=source, remote=remote,
                                     enforce_hot_standby_feedback=enforce,
                                     # PostgreSQL 15: our own catalog; other versions: Patroni's table.
                                     catalog="pg15" if major == 150000 else Catalog(available_gucs()),
                                     cwd=os.getcwd(), home=os.path.expanduser("~"), controldata=controldata,
                                     synchronous_mode_strict=sync)
    out.pop("pgpass_path")
    return out


def compare(cfg_builder, major, role, source, remote, enforce, controldata=None, sync=None):
    tmp = tempfile.mkdtemp()
    try:
        cfg = cfg_builder(tmp)
        try:
            theirs = run_python(cfg, major, role, source, remote, enforce, controldata, sync)
        except Exception as e:  # Patroni refuses this configuration
            with pytest.raises(ValueError):
                run_ours(cfg_builder(tmp), major, role, source, remote, enforce, controldata, sync)
            return type(e).__name__
        ours = run_ours(cfg_builder(tmp), major, role, source, remote, enforce, controldata, sync)
        # Python leaves an untouched file; ours says "do not write" (None).
        for key in ("pg_hba_conf", "pg_ident_conf"):
            if ours[key] is None and theirs[key] is not None:
                assert not theirs[key].startswith("# Do not edit"), (key, theirs[key])
                theirs[key] = None
        differing = {k: (ours[k], theirs[k]) for k in ours if ours[k] != theirs.get(k)}
        if differing:
            print("CFG", cfg, "\nDIFF", differing)
        assert not differing
        return ours
    finally:
        shutil.rmtree(tmp)


# ---------------------------------------------------------------- strategies

TRICKY = st.sampled_from(["", "a b", "it's", "back\\slash", "x\\'y", "colon:here", "tab\there", "é", " lead"])
VALUES = st.one_of(
    # Floats: a fixed few (see the module notes on float repr).
    st.integers(-5, 10**6), st.booleans(), st.sampled_from([0.5, 0.9, 1.5, 2.0, 0.001, 1e20]), TRICKY,
    # What YAML can also give: lists, maps, dates (written with Python's str()).
    st.lists(st.sampled_from(["a", "it's", 'q"\\', 1]), max_size=2),
    st.sampled_from([{"k": "v"}, datetime.date(2024, 2, 9), datetime.datetime(2024, 2, 9, 1, 2, 3)]),
    st.sampled_from(["4MB", "on", "off", "logical", "hot_standby", "replica", "0.9", "scram-sha-256",
                     "md5", "always", "1min", "10", "-1", "100000000000"]))
NAMES = st.sampled_from([
    "work_mem", "shared_buffers", "max_connections", "Max_Connections", "wal_level", "hot_standby",
    "max_wal_senders", "wal_keep_size", "max_prepared_transactions", "track_commit_timestamp",
    "wal_log_hints", "archive_mode", "archive_command", "log_line_prefix", "synchronous_commit",
    "restore_command", "recovery_min_apply_delay", "promote_trigger_file",
    "trigger_file", "pg_stat_statements.max", "my.setting", "password_encryption",
    "checkpoint_completion_target", "random_page_cost", "not_a_guc", "search_path", "listen_addresses",
    "port", "cluster_name", "hot_standby_feedback", "primary_conninfo", "standby_mode", "Work_Mem",
    "Max_Wal_Senders", "synchronous_standby_names",
    "recovery_target_action", "archive_cleanup_command", "wal_keep_segments"])
PARAMS = st.dictionaries(NAMES, VALUES, max_size=8)
PATH_PARAMS = st.fixed_dictionaries({}, optional={
    "hba_file": st.sampled_from(["pg_hba.conf", "my_hba.conf", "/etc/hba's.conf"]),
    "ident_file": st.sampled_from(["pg_ident.conf", "/etc/ident.conf"]),
    "wal_keep_segments": st.sampled_from([4, "16", 0]),
})
LINES = st.lists(st.one_of(st.sampled_from(["local all all trust", "host all all 0.0.0.0/0 md5",
                                            "host replication replicator 127.0.0.1/32 scram-sha-256"]),
                           TRICKY, st.integers(0, 3)), max_size=4)
AUTH = st.fixed_dictionaries({"username": st.sampled_from(["replicator", "rep user", "r'q"])}, optional={
    "password": st.one_of(TRICKY, st.sampled_from(["p:w", "pw\\", "s3cret"])),
    "sslmode": st.sampled_from(["require", "verify-full"]),
    "sslrootcert": st.sampled_from(["/etc/ca file.pem", "/ca.pem"]),
    "channel_binding": st.just("require"),
    "options": st.just("-c x=1"),
    "connect_timeout": st.just(3),
    "target_session_attrs": st.just("any"),
})
RECOVERY_CONF = st.dictionaries(st.sampled_from([
    "restore_command", "archive_cleanup_command", "recovery_min_apply_delay", "recovery_target_time",
    "pause_at_recovery_target", "recovery_target_action", "trigger_file", "promote_trigger_file",
    "primary_slot_name", "recovery_end_command", "recovery_target_inclusive"]),
    st.one_of(TRICKY, st.sampled_from(["cp %p %f", "5min", "-3", "pause", "promote", "true", "false",
                                       "/tmp/trigger"]), st.booleans()), max_size=4)
CONN_URL = st.builds(lambda host, port, db: "postgres://{0}{1}/{2}".format(host, port, db),
                     st.sampled_from(["127.0.0.1", "Host.Example", "[::1]", "h"]),
                     st.sampled_from(["", ":5433", ":15432"]), st.sampled_from(["", "postgres", "db"]))
MEMBER_DATA = st.one_of(
    st.builds(lambda url: {"conn_url": url}, CONN_URL),
    st.builds(lambda host, port, extra: {"conn_kwargs": {"host": host, "port": port, **extra}},
              st.sampled_from(["a,b", "10.0.0.1", "/var/run/postgresql"]), st.sampled_from([5432, "6432"]),
              st.fixed_dictionaries({}, optional={"dbname": st.just("x"), "sslmode": st.just("disable")})),
)
MEMBER_EXTRA = st.fixed_dictionaries({}, optional={
    "restore_command": st.sampled_from(["cp /a/%f %p", ""]),
    "archive_cleanup_command": st.just("pg_archivecleanup /a %r"),
    "recovery_min_apply_delay": st.sampled_from(["1h", 10]),
    "primary_slot_name": st.sampled_from(["Standby-Slot", "s.1"]),
})
CMDLINE_DEFAULTS = {k: v for k, v in __import__("patroni.postgresql.config", fromlist=["x"])
                    .ConfigHandler.CMDLINE_OPTIONS.items() if v[0] is not None}
SOURCE = st.one_of(st.none(), st.builds(lambda name, data, extra: (name, {**data, **extra}),
                                        st.sampled_from(["node2", "Node-2.dc", "node1"]), MEMBER_DATA,
                                        MEMBER_EXTRA))


@st.composite
def scenarios(draw):
    params = CaseInsensitiveDict({**draw(PARAMS), **draw(PATH_PARAMS)})
    params.update(draw(st.fixed_dictionaries({}, optional={
        "unix_socket_directories": st.sampled_from(["/tmp", "/var/run/pg, /tmp", "@abstract"])})))
    # patroni.config always provides the command-line options' defaults.
    for name, (default, _, _) in CMDLINE_DEFAULTS.items():
        if name not in params and not name.startswith("wal_keep"):
            params[name] = default
    extra = draw(st.fixed_dictionaries({}, optional={
        "pg_hba": LINES, "pg_ident": LINES, "recovery_conf": RECOVERY_CONF,
        "custom_conf": st.sampled_from(["custom.conf", "/etc/it's.conf", ""]),
        "database": st.sampled_from(["db", ""]),
        "config_base_name": st.just("pgconf"),
        "listen": st.sampled_from(["0.0.0.0,::1:5433", "*", "[::1]:6000", "127.0.0.1:0"]),
    }))
    auth = draw(AUTH)
    major = draw(st.sampled_from([110000, 120000, 130000, 150000, 170000]))
    role = draw(st.sampled_from(["primary", "replica", "replica", "standby_leader"]))
    source = draw(SOURCE)
    remote = role == "standby_leader" and draw(st.booleans())
    if remote and source:
        # Patroni's get_remote_member: no slot unless one is configured.
        source = (source[0], {**source[1], "no_replication_slot": "primary_slot_name" not in source[1]})
    enforce = draw(st.booleans())
    # A replica starts with pg_control's values where they are higher.
    controldata = draw(st.dictionaries(st.sampled_from([
        "max_connections setting", "max_prepared_xacts setting", "max_locks_per_xact setting",
        "max_worker_processes setting", "max_wal_senders setting"]),
        st.sampled_from(["0", "5", "200", "1000", "x"]), max_size=5))
    config_dir = draw(st.sampled_from([None, "conf"]))
    krbsrvname = draw(st.sampled_from([None, None, "postgres"]))
    sync = draw(st.sampled_from([None, None, False, True]))  # None: synchronous_mode off
    use_slots = draw(st.sampled_from([None, None, False, "off", "on"]))

    def build(tmp):
        cfg = base_config(tmp)
        cfg["parameters"] = CaseInsensitiveDict(params)
        cfg["authentication"] = {"replication": dict(auth), "superuser": {"username": "postgres"}}
        cfg.update({k: (list(v) if isinstance(v, list) else dict(v) if isinstance(v, dict) else v)
                    for k, v in extra.items()})
        if config_dir:
            cfg["config_dir"] = os.path.join(tmp, config_dir)
            os.makedirs(cfg["config_dir"], exist_ok=True)
        if krbsrvname:
            cfg["krbsrvname"] = krbsrvname
        if use_slots is not None:
            cfg["use_slots"] = use_slots
        return cfg
    return build, major, role, source, remote, enforce, controldata, sync


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_generated_configurations(scenario):
    event("role={0[2]} major={0[1]}".format(scenario))
    result = compare(*scenario)
    event("python refused: " + result if isinstance(result, str) else "compared")


def test_golden_like_replica():
    def build(tmp):
        cfg = base_config(tmp)
        cfg["parameters"].update({"wal_level": "logical", "hot_standby": "on", "unix_socket_directories": tmp})
        cfg["pg_hba"] = ["local all all trust", "host replication replicator 127.0.0.1/32 md5"]
        return cfg
    ours = compare(build, 150000, "replica", ("node2", {"conn_url": "postgres://127.0.0.1:15433/postgres"}),
                   False, True)
    assert "primary_conninfo = 'dbname=postgres user=replicator passfile=" in ours["postgresql_conf"]
    assert ours["signal"] == "standby.signal"
    assert ours["pgpass"] == "127.0.0.1:15433:*:replicator:rep\n"


def test_pre12_recovery_conf():
    def build(tmp):
        cfg = base_config(tmp)
        cfg["recovery_conf"] = {"restore_command": "cp %f", "recovery_target_action": "promote"}
        return cfg
    ours = compare(build, 110000, "replica", ("node2", {"conn_url": "postgres://h:1/postgres"}), False, False)
    assert "standby_mode = 'on'" in ours["recovery_conf"]
    assert "recovery.conf" not in ours["postgresql_conf"]


def test_format_dsn_and_pgpass_helpers():
    params = {"dbname": "d b", "user": "u'x", "password": "p\\w", "host": "h", "port": 5432,
              "sslmode": "prefer", "gssencmode": "prefer", "channel_binding": "prefer", "sslnegotiation": "direct",
              "target_session_attrs": "read-write"}
    for major in (90600, 100000, 120000, 130000, 170000):
        handler = mock.Mock()
        handler._postgresql.major_version = major
        from patroni.postgresql.config import ConfigHandler
        assert patroni_rs.format_dsn(params, major) == ConfigHandler.format_dsn(handler, params)
    from patroni.postgresql.config import ConfigHandler
    for record in ({"host": "/tmp, a:b", "port": 5, "user": None, "password": "x"}, {"host": "h"},
                   {"password": ""}, {"host": ",", "password": "p"}):
        assert patroni_rs.pgpass_content(record) == ConfigHandler._pgpass_content(record)


CONTROLDATA_FIXTURE = os.path.join(os.path.dirname(__file__), "..", "src", "postgres", "testdata",
                                   "pg_controldata_15.txt")


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(["Current wal_level setting: logical", "Database cluster state:  in production ",
                     "no colon here", "a: b: c", "Current Current x: 1", ":", "", "  lead: x"]),
    st.text(alphabet="ab: \r\x0b\x1cCurent", max_size=12)), max_size=8))
def test_controldata_parsing(lines):
    text = "\n".join(lines)
    with open(CONTROLDATA_FIXTURE) as f:
        real = f.read()
    for output in (text, real, real + text):
        p = mock.Mock()
        p._version_file_exists.return_value = True
        p.state = "running"
        p.pgcommand.return_value = "pg_controldata"
        p._data_dir = "/d"
        with mock.patch("subprocess.check_output", return_value=output.encode()):
            theirs = Postgresql.controldata(p)
        assert patroni_rs.parse_controldata(output) == theirs


@settings(max_examples=100, deadline=None)
@given(st.lists(st.one_of(
    st.sampled_from(["primary_conninfo = 'host=x'\n", "work_mem = '1MB'\n", "# restore_command = 'x'\n",
                     "  recovery_target_time='now'\n", "Restore_Command = 'y'\n", "standby_mode\n",
                     "promote_trigger_file='/t'", "\n", "primary_slot_name= 's'\r\n"]),
    st.text(alphabet="ab_= '#\n", max_size=10)), max_size=8))
def test_sanitize_auto_conf(chunks):
    from patroni.postgresql.config import ConfigHandler
    text = "".join(chunks)
    tmp = tempfile.mkdtemp()
    try:
        path = os.path.join(tmp, "postgresql.auto.conf")
        with open(path, "w", newline="") as f:
            f.write(text)
        handler = mock.Mock()
        handler._auto_conf = path
        handler._RECOVERY_PARAMETERS = ConfigHandler._RECOVERY_PARAMETERS
        ConfigHandler._sanitize_auto_conf(handler)
        with open(path, newline="") as f:
            after = f.read()
        ours = patroni_rs.sanitize_auto_conf(text)
        if "\r" in text:
            # Python reads the file with universal newlines; ours keeps bytes.
            return
        assert (ours if ours is not None else text) == after
    finally:
        shutil.rmtree(tmp)


@pytest.mark.parametrize("superuser,host,resolved", [
    ({"username": "postgres"}, "127.0.0.1", ["127.0.0.1"]),
    ({}, "db.example", ["10.0.0.1", "10.0.0.2", "10.0.0.1"]),
    ({"username": "su"}, "/var/run/postgresql", []),
])
def test_custom_bootstrap_pg_hba(superuser, host, resolved):
    from patroni.postgresql.config import ConfigHandler
    tmp = tempfile.mkdtemp()
    try:
        handler = mock.Mock()
        handler._postgresql.bootstrap.running_custom_bootstrap = True
        handler.local_replication_address = {"host": host, "port": "5432"}
        handler.replication = {"username": "rep"}
        handler._superuser = superuser
        handler._pg_hba_conf = os.path.join(tmp, "pg_hba.conf")
        handler.config_writer = lambda f: ConfigHandler.config_writer(handler, f)
        infos = [(2, 1, 6, "", (ip, 5432)) for ip in resolved]
        with mock.patch("socket.getaddrinfo", return_value=infos):
            ConfigHandler.replace_pg_hba(handler)
        with open(handler._pg_hba_conf) as f:
            theirs = f.read()
        addresses = [ip + "/32" for ip in resolved] if not host.startswith("/") else []
        assert patroni_rs.custom_bootstrap_pg_hba("rep", superuser.get("username"), True, addresses) == theirs
    finally:
        shutil.rmtree(tmp)


# ------------------------------------------- our PostgreSQL 15 GUC catalog

def _pg15_names():
    path = os.path.join(os.path.dirname(__file__), "..", "src", "postgres", "data", "pg15_settings.tsv")
    with open(path) as f:
        names = [line.split("\t")[0] for line in f if line.strip() and not line.startswith("#")]
    return names + [n.upper() for n in names[:20]] + ["no_such_guc", "x.y", "trigger_file"]


CATALOG_VALUES = st.one_of(
    st.integers(-10**6, 10**12), st.booleans(), st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False).map(
        lambda f: round(f, 3)),
    st.sampled_from(["on", "off", "yes", "0", "1", "true", "maybe", "", "4MB", "1GB", "10min", "-1", "1e3",
                     "always", "logical", "replica", "LOGICAL", "TLSv1.2", "try", "local", "remote_apply",
                     "scram-sha-256", "md5", "8kB", "0.5", "100000000000000000000", "1.79769e+308", "  5 "]),
)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(_pg15_names()), CATALOG_VALUES)
def test_pg15_catalog_matches_patroni(name, value):
    gucs = available_gucs()
    theirs = validator.transform_postgresql_parameter_value(150020, name, value, gucs)
    kept, ours = patroni_rs.pg15_transform(150020, name, value)
    assert (ours if kept else None) == theirs and type(ours if kept else None) is type(theirs), (name, value)


def test_pg15_catalog_every_name():
    gucs = available_gucs()
    for name in _pg15_names():
        for value in ("on", "1", 1, "0", "abc", 10**9, "1TB", -5):
            theirs = validator.transform_postgresql_parameter_value(150020, name, value, gucs)
            kept, ours = patroni_rs.pg15_transform(150020, name, value)
            assert (ours if kept else None) == theirs, (name, value, ours, theirs)
