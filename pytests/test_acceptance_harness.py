"""The acceptance harness plumbing in compat/acceptance (not the suite itself)."""
import os
import pathlib
import socket
import subprocess
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ACCEPTANCE = HERE.parent / "compat" / "acceptance"


def _listener():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    s.listen(1)
    return s


def test_ports_free_waits_then_names_the_taken_port():
    busy = _listener()
    free = _listener()
    free_port = free.getsockname()[1]
    free.close()
    try:
        port = busy.getsockname()[1]
        r = subprocess.run([str(ACCEPTANCE / "ports_free.sh"), "1", str(free_port), str(port)],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 1
        assert "port(s) {0} still in use".format(port) in r.stderr
    finally:
        busy.close()
    r = subprocess.run([str(ACCEPTANCE / "ports_free.sh"), "1", str(free_port), str(port)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr


def test_launcher_execs_the_named_binary_and_says_so(tmp_path):
    fake = tmp_path / "fake-patroni"
    fake.write_text("#!/bin/sh\necho \"fake daemon got $*\"\nexit 7\n")
    fake.chmod(0o755)
    env = dict(os.environ, PATRONI_RS_BIN=str(fake), PATRONI_RS_ORACLE="0")
    r = subprocess.run([sys.executable, str(ACCEPTANCE / "patroni.py"), "node.yml"],
                       capture_output=True, text=True, env=env, timeout=30)
    # exec: the exit status and output are the binary's own.
    assert r.returncode == 7
    assert r.stdout == "fake daemon got node.yml\n"
    assert "patroni-rs launcher: serving ['node.yml'] with {0}".format(fake) in r.stderr


def test_launcher_refuses_without_a_binary(tmp_path):
    env = dict(os.environ, PATRONI_RS_BIN=str(tmp_path / "missing"), PATRONI_RS_ORACLE="0")
    r = subprocess.run([sys.executable, str(ACCEPTANCE / "patroni.py"), "node.yml"],
                       capture_output=True, text=True, env=env, timeout=30)
    assert r.returncode == 127
    assert "no patroni-rs binary" in r.stderr
