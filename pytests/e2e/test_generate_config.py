"""`patroni --generate-config`: ours and Python Patroni 4.1.5 read the same
running PostgreSQL 15 and must write the same file, byte for byte (the
host's name and address come from the same machine), and refuse the same
way.

The instance is a plain `initdb` cluster (trust authentication on
loopback) with settings from its configuration file and command line,
a `pg_ident.conf` mapping and a non-superuser role.
"""
from __future__ import annotations

import os
import pathlib
import subprocess
from typing import Dict, Iterator, List, Tuple

import pytest

from conftest import patroni_binary

from . import harness

pytestmark = pytest.mark.e2e


def run_as(user: harness.RunAs, argv: List[str], **kw) -> subprocess.CompletedProcess:
    def demote() -> None:
        if user.uid is not None:
            os.setgid(user.gid)
            os.setuid(user.uid)
    return subprocess.run(argv, preexec_fn=demote, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Tuple[pathlib.Path, int]]:
    user = harness.node_user()
    root = tmp_path_factory.mktemp("generate-config")
    harness.make_reachable(root, stop_at=tmp_path_factory.getbasetemp().parent)
    data = root / "data"
    harness.chown_tree(root, user)
    pg = harness.PG_BIN_DIR
    out = run_as(user, [f"{pg}/initdb", "-D", str(data), "-U", "postgres", "--auth=trust", "--no-sync"])
    assert out.returncode == 0, out.stderr
    with open(data / "postgresql.conf", "a") as f:
        f.write("cluster_name = 'gen-demo'\nmax_connections = 42\n"
                "archive_command = 'cp %p /nonexistent/%f'\nwork_mem = '8MB'\n")
    with open(data / "pg_ident.conf", "a") as f:
        f.write("# a comment\nmymap  root  postgres\n")
    port = harness.free_port()
    out = run_as(user, [f"{pg}/pg_ctl", "-D", str(data), "-w", "-l", str(root / "pg.log"), "-o",
                        f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root}",
                        "start"])
    assert out.returncode == 0, out.stderr + (root / "pg.log").read_text()
    try:
        out = run_as(user, [f"{pg}/psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-d", "postgres",
                            "-c", "CREATE ROLE plain LOGIN"])
        assert out.returncode == 0, out.stderr
        yield root, port
    finally:
        run_as(user, [f"{pg}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"])


def clean_env() -> Dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(("PATRONI_", "PG"))}


def generate(argv0: str, args: List[str], env: Dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([argv0, "--generate-config", *args], capture_output=True, text=True, env=env,
                          timeout=120, stdin=subprocess.DEVNULL)


def both(args: List[str], env: Dict[str, str]) -> Tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    python = generate(str(harness.PYTHON_PATRONI), args, env)
    ours = generate(str(patroni_binary()), args, env)
    return python, ours


def test_same_file_from_a_dsn(instance: Tuple[pathlib.Path, int]) -> None:
    root, port = instance
    dsn = f"host=127.0.0.1 port={port} user=postgres password=secret dbname=postgres"
    python, ours = both(["--dsn", dsn], clean_env())
    assert python.returncode == 0, python.stderr
    assert ours.returncode == 0, ours.stderr
    assert "scope: gen-demo" in python.stdout and "mymap  root  postgres" in python.stdout, python.stdout
    assert ours.stdout == python.stdout


def test_same_file_from_libpq_variables_and_a_uri(instance: Tuple[pathlib.Path, int], tmp_path: pathlib.Path) -> None:
    root, port = instance
    env = clean_env()
    env.update(PGHOST="127.0.0.1", PGPORT=str(port), PGUSER="postgres", PGPASSWORD="secret",
               PGDATABASE="postgres")
    python, ours = both([], env)
    assert python.returncode == 0, python.stderr
    assert ours.stdout == python.stdout
    # A URI, and the output written to a file.
    uri = f"postgresql://postgres:secret@127.0.0.1:{port}/postgres?application_name=gen"
    files = []
    for name, argv0 in (("python", harness.PYTHON_PATRONI), ("ours", patroni_binary())):
        out = tmp_path / f"{name}.yml"
        done = subprocess.run([str(argv0), "--generate-config", "--dsn", uri, str(out)], capture_output=True,
                              text=True, env=clean_env(), timeout=120, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, done.stderr
        files.append(out.read_text())
    assert files[0] == files[1]


def test_same_refusals(instance: Tuple[pathlib.Path, int]) -> None:
    root, port = instance
    cases = [
        f"host=127.0.0.1 port={port} user=plain password=x dbname=postgres",  # not a superuser
        "host=a foo = '",  # not a DSN
    ]
    for dsn in cases:
        python, ours = both(["--dsn", dsn], clean_env())
        assert python.returncode == 1 and ours.returncode == 1, (dsn, python.stderr, ours.stderr)
        assert ours.stderr == python.stderr, dsn
    # Nothing listens there: both fail to connect (libpq's and our texts differ).
    python, ours = both(["--dsn", f"host=127.0.0.1 port={harness.free_port()} user=postgres password=x"],
                        clean_env())
    for done in (python, ours):
        assert done.returncode == 1
        assert done.stderr.startswith("Failed to establish PostgreSQL connection: "), done.stderr
