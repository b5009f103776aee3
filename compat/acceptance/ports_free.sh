#!/usr/bin/env bash
# Wait until the fixed TCP ports the acceptance suite needs are free.
#
#   compat/acceptance/ports_free.sh TIMEOUT_SECONDS PORT...
#
# Upstream's harness hard-codes its ports (etcd on 2379, REST APIs on
# 8008..8012, PostgreSQL from 5361), so it cannot share the machine with
# anything else listening there (another run, the demo cluster): behave
# would silently talk to a foreign etcd or a node would fail to bind.
# Exits 0 when every port is free, else 1 after TIMEOUT_SECONDS, naming
# the ports still taken and their holders.
set -euo pipefail
timeout="${1:?usage: ports_free.sh TIMEOUT_SECONDS PORT...}"
shift

taken() {
    local busy=()
    for port in "$@"; do
        # A successful connect means someone listens there.
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
            busy+=("$port")
        fi
    done
    echo "${busy[*]}"
}

deadline=$((SECONDS + timeout))
while :; do
    busy="$(taken "$@")"
    [[ -z "$busy" ]] && exit 0
    ((SECONDS >= deadline)) && break
    sleep 2
done
echo "ports_free.sh: port(s) $busy still in use after ${timeout}s:" >&2
for port in $busy; do
    ss -ltnpH "sport = :$port" 2>/dev/null | sed 's/^/  /' >&2 || true
done
exit 1
