#!/usr/bin/env bash
# Run upstream Patroni's behave acceptance suite against patroni-rs.
#
#   compat/acceptance/run.sh [--dcs etcd3|etcd|zookeeper] [--oracle] [FEATURE ...]
#
# FEATURE is a feature name (basic_replication) or file; default: all.
# Fetches and verifies upstream's source (fetch_upstream.sh), unpacks it in
# a fresh directory, replaces only its top-level patroni.py with our
# launcher, starts the DCS and runs behave as an unprivileged user (it runs
# PostgreSQL). Prints one line per feature and a final
# "N passed, N failed, N skipped" line for the scenarios.
# --oracle runs Python Patroni instead (to check the harness only).
# Run as root, after .ci/setup.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
source "$here/../../.ci/env.sh"

dcs=etcd3
oracle=0
features=()
while (($#)); do
    case "$1" in
        --dcs) dcs="$2"; shift 2 ;;
        --oracle) oracle=1; shift ;;
        -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
        *) features+=("$1"); shift ;;
    esac
done
case "$dcs" in etcd3|etcd|zookeeper) ;; *) echo "run.sh: unsupported DCS $dcs (etcd3, etcd, zookeeper)" >&2; exit 2 ;; esac

user=patroni-rs-test
id "$user" >/dev/null 2>&1 || useradd --create-home --shell /bin/bash "$user"
# The harness pauses DCS processes with `sudo kill -SIGSTOP`.
echo "$user ALL=(root) NOPASSWD: /bin/kill, /usr/bin/kill" > /etc/sudoers.d/patroni-rs-test
chmod 0440 /etc/sudoers.d/patroni-rs-test

tarball="$("$here/fetch_upstream.sh")"
if [[ $oracle == 0 ]]; then
    (cd "$ROOT" && cargo build --release --quiet)
    bin="$CARGO_TARGET_DIR/release/patroni"
    chmod a+rx "$bin"
else
    bin=""
fi

work="$(mktemp -d /tmp/patroni-acceptance.XXXXXX)"
tar -xzf "$tarball" -C "$work" --strip-components=1
cp "$here/patroni.py" "$work/patroni.py"
chown -R "$user:" "$work"
chmod 755 "$work"
log="$work/behave.log"
echo "acceptance: upstream $(basename "$tarball") in $work, DCS $dcs, $( [[ $oracle == 1 ]] && echo 'ORACLE (Python Patroni)' || echo "patroni-rs $bin")"

# The harness's ports are fixed: wait for anything else using them (another
# run, the demo cluster) to finish rather than talk to a foreign etcd.
dcs_ports=(2379 2380)
[[ $dcs == zookeeper ]] && dcs_ports=(2181)
"$here/ports_free.sh" "${PORT_WAIT:-600}" "${dcs_ports[@]}" 8008 8009 8010 8011 8012 ||
    { echo "run.sh: the acceptance suite's ports are taken, not starting" >&2; exit 1; }

# ZooKeeper runs for the whole suite, as the unprivileged user; etcd is
# started by the harness.
dcs_pid=""
cleanup() {
    [[ -n "$dcs_pid" ]] && kill "$dcs_pid" 2>/dev/null || true
    pkill -u "$user" -f "$work" 2>/dev/null || true
}
trap cleanup EXIT
if [[ $dcs == zookeeper ]]; then
    # Upstream's ZooKeeperController expects an external ZooKeeper on
    # localhost:2181 that `pgrep -nf 'java .*zookeeper'` finds (it pauses it
    # with SIGSTOP for the outage scenarios). Short tick: session timeouts
    # from 1 s to 120 s are accepted.
    mkdir -p "$work/zookeeper-data"
    printf '%s\n' "tickTime=500" "dataDir=$work/zookeeper-data" "clientPort=2181" \
        "minSessionTimeout=1000" "maxSessionTimeout=120000" "admin.enableServer=false" \
        "4lw.commands.whitelist=ruok" >"$work/zoo.cfg"
    chown -R "$user:" "$work/zookeeper-data" "$work/zoo.cfg"
    su -s /bin/bash "$user" -c "cd '$work' && exec java -cp /etc/zookeeper/conf:/usr/share/java/zookeeper.jar \
        -Dzookeeper.log.dir='$work' -Dzookeeper.root.logger=INFO,CONSOLE \
        org.apache.zookeeper.server.ZooKeeperServerMain '$work/zoo.cfg' >'$work/zookeeper.log' 2>&1" &
    dcs_pid=$!
    for _ in $(seq 1 300); do
        [[ "$( (exec 3<>/dev/tcp/127.0.0.1/2181 && printf ruok >&3 && timeout 1 cat <&3) 2>/dev/null)" == imok ]] && break
        sleep 0.1
    done
    kill -0 "$dcs_pid" 2>/dev/null || { echo "run.sh: ZooKeeper did not start, see $work/zookeeper.log" >&2; exit 1; }
else
    # etcd is left to upstream's harness (EtcdController starts it with the
    # v2 API on 2379 as this same unprivileged user): only a DCS it started
    # itself can be SIGSTOPped, which the @dcs-failsafe scenarios need.
    :
fi

targets=()
for f in "${features[@]}"; do
    f="${f%.feature}"; f="${f#features/}"
    targets+=("features/$f.feature")
done

set +e
su -s /bin/bash "$user" -c "cd '$work' && export PATH='$VENV/bin:/usr/lib/postgresql/15/bin:/usr/sbin:/usr/bin:/bin' \
    DCS='$dcs' PATRONI_RS_BIN='$bin' PATRONI_RS_ORACLE='$oracle' && \
    exec behave --no-capture --format plain --no-color --junit --junit-directory '$work/junit' ${targets[*]}" >"$log" 2>&1
rc=$?
set -e

# Per-feature verdicts (behave's JUnit reports) and the scenario totals.
python3 - "$work/junit" <<'PY' || true
import pathlib, sys, xml.etree.ElementTree as ET
for f in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
    s = ET.parse(f).getroot()
    total, failed = int(s.get("tests", 0)), int(s.get("failures", 0)) + int(s.get("errors", 0))
    skipped = int(s.get("skipped", 0))
    print(f"  {s.get('name', f.stem).split('.')[-1]}: {total - failed - skipped} passed, {failed} failed, {skipped} skipped")
PY
grep -E '^[0-9]+ (features?|scenarios?|steps?) passed' "$log" || true
read -r passed failed skipped < <(grep -E '^[0-9]+ scenarios? passed' "$log" | tail -1 |
    sed -E 's/^([0-9]+) scenarios? passed, ([0-9]+) failed, ([0-9]+) skipped.*/\1 \2 \3/' || echo "0 0 0")
echo "served by (nodes started, binary):"
grep -ho 'patroni-rs launcher: .*' "$work"/features/output/*/patroni_*.log 2>/dev/null |
    sed -E 's/\[[^]]*\] ?//' | sort | uniq -c | sed 's/^/  /' || true
echo "log: $log"
echo "acceptance: ${passed:-0} passed, ${failed:-0} failed, ${skipped:-0} skipped"
exit $rc
