"""The `patroni` command line, ours against Python Patroni 4.1.5's, end to end.

Both executables run with the same arguments and environment; exit status,
stdout and stderr must match. Python prints a traceback where it crashes on
input; for those cases we only require a non-zero exit, one clear line and no
Rust panic.
"""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

PY_PATRONI = pathlib.Path(sys.executable).with_name("patroni")
BROKEN = {
    "missing_name": "scope: s\nrestapi: {listen: 127.0.0.1:8008, connect_address: 10.0.0.1:8008}\n"
                    "etcd3: {hosts: 127.0.0.1:2379}\npostgresql: {listen: 127.0.0.1:5432, data_dir: DATA_DIR}\n",
    "ttl_too_small": "name: n\nscope: s\nrestapi: {listen: 127.0.0.1:8008, connect_address: 10.0.0.1:8008}\n"
                     "etcd3: {hosts: 127.0.0.1:2379}\nbootstrap: {dcs: {ttl: 5, loop_wait: 0}}\n"
                     "postgresql: {listen: 127.0.0.1:5432, connect_address: 10.0.0.1:5432, data_dir: DATA_DIR,\n"
                     "  authentication: {replication: {username: r}, superuser: {username: s}}}\n",
    "two_dcs_and_bad_types": "name: n\nscope: s\nrestapi: {listen: 127.0.0.1:8008, connect_address: 10.0.0.1:8008}\n"
                             "etcd: {host: 127.0.0.1:2379}\netcd3: {hosts: [127.0.0.1:2379]}\n"
                             "postgresql: {listen: 5432, data_dir: 7, parameters: [1]}\nwatchdog: {mode: sometimes}\n"
                             "tags: {nofailover: maybe}\nlog: {level: LOUD}\n",
    "yaml_11_booleans": "name: n\nscope: s\nrestapi: {listen: 127.0.0.1:8008, connect_address: 10.0.0.1:8008}\n"
                        "etcd3: {hosts: 127.0.0.1:2379}\nctl: {insecure: on}\n"
                        "postgresql: {listen: 127.0.0.1:5432, connect_address: 10.0.0.1:5432, data_dir: DATA_DIR,\n"
                        "  use_unix_socket: yes, authentication: {replication: {username: r}, superuser: {username: s}}}\n",
}


def broken(name, tmp_path):
    """A broken config whose data directory is a path of this test's own that
    does not exist (the validator inspects an existing one)."""
    return BROKEN[name].replace("DATA_DIR", str(tmp_path / "no-such-pgdata"))


def run(cmd, env=None, cwd=None):
    return subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                          timeout=60)


def both(binary, args, env=None, cwd=None):
    ours = run([str(binary), *args], env=env, cwd=cwd)
    theirs = run([str(PY_PATRONI), *args], env=env, cwd=cwd)
    assert "panicked" not in ours.stderr, ours.stderr
    return ours, theirs


def clean_env(**extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("PATRONI_")}
    env["PATH"] = "/usr/lib/postgresql/15/bin:" + env.get("PATH", "")
    env.update(extra)
    return env


def assert_same(ours, theirs):
    assert (ours.returncode, ours.stdout, ours.stderr) == (theirs.returncode, theirs.stdout, theirs.stderr)


@pytest.mark.parametrize("args", [["--version"], ["--help"], ["-h"], ["a", "b"], ["--bogus"],
                                  ["--validate-config", "--generate-sample-config"], ["--dsn"]])
def test_argument_handling(binary, args):
    ours, theirs = both(binary, args, env=clean_env())
    assert_same(ours, theirs)


def test_missing_file_and_no_environment_is_empty_config(binary, tmp_path):
    ours, theirs = both(binary, ["--validate-config", str(tmp_path / "nope.yml")], env=clean_env())
    assert_same(ours, theirs)
    assert ours.returncode == 1


def golden_configs():
    from conftest import GOLDEN
    return sorted((GOLDEN / "configs").glob("*.yml"))


@pytest.mark.parametrize("path", golden_configs(), ids=lambda p: p.name)
@pytest.mark.parametrize("flags", [[], ["-i"]], ids=["ports", "ignore-ports"])
def test_validate_golden_configs(binary, path, flags):
    ours, theirs = both(binary, ["--validate-config", *flags, str(path)], env=clean_env())
    assert_same(ours, theirs)


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_validate_broken_configs(binary, tmp_path, name):
    path = tmp_path / f"{name}.yml"
    path.write_text(broken(name, tmp_path))
    ours, theirs = both(binary, ["--validate-config", "-i", str(path)], env=clean_env())
    assert_same(ours, theirs)


@pytest.mark.parametrize("name", ["postgres0.yml", "postgres1.yml"])
def test_validate_and_print_top_level_configs(binary, name):
    from conftest import ROOT
    ours, theirs = both(binary, ["--validate-config", "-i", "--print", str(ROOT / name)], env=clean_env())
    assert_same(ours, theirs)


@pytest.fixture
def listening_port():
    """A loopback port something listens on: the validator only checks that
    the DCS address is reachable."""
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_print_applies_environment(binary, tmp_path, listening_port):
    path = tmp_path / "c.yml"
    path.write_text(broken("yaml_11_booleans", tmp_path).replace("127.0.0.1:2379", f"127.0.0.1:{listening_port}"))
    env = clean_env(PATRONI_NAME="from-env", PATRONI_RESTAPI_ALLOWLIST="127.0.0.1, 10.0.0.0/8",
                    PATRONI_LOG_LOGGERS="patroni.postmaster: WARNING", PATRONI_CTL_INSECURE="off")
    ours, theirs = both(binary, ["--validate-config", "-i", "-p", str(path)], env=env)
    assert_same(ours, theirs)
    assert "name: from-env" in ours.stdout


def test_configuration_from_environment_document(binary, tmp_path):
    doc = broken("ttl_too_small", tmp_path)
    ours, theirs = both(binary, ["--validate-config", "-i"], env=clean_env(PATRONI_CONFIGURATION=doc))
    assert_same(ours, theirs)


@pytest.mark.parametrize("env", [{}, {"PATRONI_SCOPE": "batman", "PATRONI_NAME": "robin",
                                      "PATRONI_ETCD3_HOSTS": "'10.0.0.1:2379','10.0.0.2:2379'",
                                      "PATRONI_REPLICATION_USERNAME": "repl"}], ids=["plain", "env"])
def test_generate_sample_config(binary, tmp_path, env):
    ours, theirs = both(binary, ["--generate-sample-config"], env=clean_env(**env))
    assert_same(ours, theirs)
    ours_file, theirs_file = tmp_path / "a" / "ours.yml", tmp_path / "b" / "theirs.yml"
    assert run([str(binary), "--generate-sample-config", str(ours_file)], env=clean_env(**env)).returncode == 0
    assert run([str(PY_PATRONI), "--generate-sample-config", str(theirs_file)], env=clean_env(**env)).returncode == 0
    assert ours_file.read_text() == theirs_file.read_text()


@pytest.mark.parametrize("content", ["name: [unclosed\n", "- a list\n- not a map\n", "\x00\x01binary"],
                         ids=["bad-yaml", "list", "binary"])
def test_unreadable_configs_fail_cleanly(binary, tmp_path, content):
    path = tmp_path / "bad.yml"
    path.write_text(content)
    ours = run([str(binary), "--validate-config", str(path)], env=clean_env())
    theirs = run([str(PY_PATRONI), "--validate-config", str(path)], env=clean_env())
    assert theirs.returncode != 0
    assert ours.returncode != 0
    assert "panicked" not in ours.stderr and "Traceback" not in ours.stderr
    assert ours.stderr.strip(), "a message must say what is wrong"
    assert len(ours.stderr.strip().splitlines()) <= 3, ours.stderr


def test_daemon_refuses_to_run_without_config(binary, tmp_path):
    ours, theirs = both(binary, [str(tmp_path / "nope.yml")], env=clean_env())
    assert (ours.returncode, ours.stderr) == (theirs.returncode, theirs.stderr)
