"""The top-level demo files agree with each other.

`.ci/demo` starts one node per `postgres<N>.yml` from one work directory and
puts HAProxy (`haproxy.cfg`) in front of them. These checks catch the edits
that would break that silently: two nodes sharing a port or a data
directory, a file path that escapes the work directory (the demo runs as an
unprivileged user who cannot write to fixed places of root's), or an HAProxy
backend that points at the wrong PostgreSQL or REST API port.
"""
import pathlib
import re
import shutil
import subprocess

import pytest
import yaml

from conftest import ROOT

CONFIGS = sorted(ROOT.glob("postgres[0-9].yml"))
HAPROXY_CFG = ROOT / "haproxy.cfg"


def load(path: pathlib.Path) -> dict:
    return yaml.safe_load(path.read_text())


def port(address: str) -> int:
    return int(address.rsplit(":", 1)[1])


def haproxy_servers(section: str) -> dict:
    """{server name: (pg port, check port)} of one `listen` section."""
    text = HAPROXY_CFG.read_text()
    match = re.search(rf"^listen {section}\n(.*?)(?=^\S|\Z)", text, re.M | re.S)
    assert match, f"no 'listen {section}' section in haproxy.cfg"
    servers = {}
    for name, pg, check in re.findall(r"^\s+server (\S+) 127\.0\.0\.1:(\d+) .*\bcheck port (\d+)", match.group(1), re.M):
        servers[name] = (int(pg), int(check))
    return servers


def test_there_are_demo_configs():
    assert len(CONFIGS) >= 2, CONFIGS


def test_nodes_share_the_cluster_and_differ_in_identity():
    configs = [load(p) for p in CONFIGS]
    assert len({c["scope"] for c in configs}) == 1
    assert len({c["namespace"] for c in configs}) == 1
    assert len({yaml.safe_dump(c["bootstrap"]) for c in configs}) == 1, "bootstrap sections differ"
    for key in ("name",):
        assert len({c[key] for c in configs}) == len(configs), f"duplicate {key}"
    for section, field in (("restapi", "listen"), ("postgresql", "listen"), ("postgresql", "data_dir"),
                           ("postgresql", "pgpass")):
        values = [c[section][field] for c in configs]
        assert len(set(values)) == len(values), f"{section}.{field} shared: {values}"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_files_stay_in_the_work_directory(path):
    pg = load(path)["postgresql"]
    for field in ("data_dir", "pgpass"):
        value = pg[field]
        assert not value.startswith("/") and ".." not in pathlib.PurePosixPath(value).parts, \
            f"{path.name}: postgresql.{field} = {value!r} must be relative to the demo work directory"


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_everything_listens_on_loopback(path):
    c = load(path)
    for section in ("restapi", "postgresql"):
        for field in ("listen", "connect_address"):
            assert c[section][field].startswith("127.0.0.1:"), f"{section}.{field}"
    assert c["etcd3"]["hosts"] == "127.0.0.1:2379"


@pytest.mark.parametrize("section", ["primary", "replicas"])
def test_haproxy_backends_match_the_nodes(section):
    expected = {}
    for path in CONFIGS:
        c = load(path)
        expected[c["name"]] = (port(c["postgresql"]["listen"]), port(c["restapi"]["listen"]))
    assert haproxy_servers(section) == expected


@pytest.mark.skipif(shutil.which("haproxy") is None and not pathlib.Path("/usr/sbin/haproxy").exists(),
                    reason="haproxy not installed")
def test_haproxy_accepts_the_config():
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    result = subprocess.run([binary, "-c", "-f", str(HAPROXY_CFG)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_demo_script_parses():
    result = subprocess.run(["bash", "-n", str(ROOT / ".ci" / "demo")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
