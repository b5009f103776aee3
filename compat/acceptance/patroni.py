#!/usr/bin/env python
"""Stand-in for upstream's top-level ``patroni.py`` in its acceptance suite.

The behave harness starts every node as ``python -m coverage run ...
patroni.py CONFIG``; this file replaces upstream's so that the node is served
by patroni-rs instead of Python Patroni. It says which binary serves the
node on stderr (the harness keeps each node's output in its log), then
replaces itself with that binary, so signals and exit codes are the
daemon's own.

PATRONI_RS_BIN names the binary (default: ``patroni-rs`` on PATH). With
PATRONI_RS_ORACLE=1 the original Python Patroni runs instead, which is only
for checking the harness itself; the run log then says so on every node.
"""
import os
import shutil
import sys


def main():
    if os.environ.get("PATRONI_RS_ORACLE") == "1":
        sys.stderr.write("patroni-rs launcher: ORACLE MODE, serving with Python Patroni {0}\n".format(sys.argv[1:]))
        sys.stderr.flush()
        from patroni.__main__ import main as python_main
        sys.argv[0] = "patroni"
        return python_main()
    binary = os.environ.get("PATRONI_RS_BIN") or shutil.which("patroni-rs")
    if not binary or not os.access(binary, os.X_OK):
        sys.stderr.write("patroni-rs launcher: no patroni-rs binary (set PATRONI_RS_BIN)\n")
        return 127
    sys.stderr.write("patroni-rs launcher: serving {0} with {1}\n".format(sys.argv[1:], binary))
    sys.stderr.flush()
    os.execv(binary, [binary] + sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
