"""The HA benchmark (issue #4 item 6): the same three-node scenario with
Python Patroni 4.1.5 and with patroni-rs, printed side by side.

Not a test: run `.ci/bench` or `python -m pytests.bench.ha_bench` from the
repository root (as root, so that the nodes run as the unprivileged user the
end-to-end harness uses).
"""
