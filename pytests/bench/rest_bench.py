"""The REST benchmark command: `GET /primary` on Python Patroni 4.1.5 and on
patroni-rs, side by side.

    python -m pytests.bench.rest_bench [--only python|rs] [--duration S] [--stopped-duration S]

run from the repository root, as root (the node runs as `patroni-rs-test`,
as in the end-to-end tests); `.ci/bench rest` builds the release binary and
runs it. For each implementation in turn a fresh etcd and one fresh node
(the HA benchmark's node: Patroni's default timings, the end-to-end
harness's configuration) are started; once `/primary` answers 200 and the
node has idled, its resident memory is read, then:

* `/primary` under load from 1, 16 and 256 concurrent keep-alive clients,
  `--duration` seconds each;
* the same while the node's PostgreSQL (postmaster and every backend) is
  SIGSTOPped, `--stopped-duration` seconds each (4 s by default: past our 3 s
  staleness bound, and short of the HA loop's own 5 s query timeout, so that
  the figures show the API and not the HA loop's reaction). PostgreSQL is
  resumed after each level and the node must answer 200 again before the
  next one.

The load generator is wrk (Debian's 4.1.0, an epoll client in C) with
rest_latency.lua for exact percentiles; it runs on the same 2 cores as the
daemon, so the figures are a floor for both. Requests that get no answer
within 2 s count as timeouts and are not in the latencies (wrk's rule).
Python Patroni answers HTTP/1.0 and closes each connection, so wrk
reconnects for every request there; ours keeps connections alive. Both
listen with Patroni's default backlog (`request_queue_size` 5).
Progress goes to stderr, the table to stdout.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from typing import Dict, List, Optional, Tuple

from pytests.e2e import harness

from .cluster import DCS, BenchNode, rss_mb
from .ha_bench import IMPLS, daemon_argv
from .scenarios import say

LUA = pathlib.Path(__file__).with_name("rest_latency.lua")
LEVELS = (1, 16, 256)
WRK_TIMEOUT_S = 2
# wrk threads (--wrk-threads): one leaves the other core to the daemon.
WRK_THREADS = 1
IDLE_S = 10
READY_S = 120
RECOVER_S = 60


class OneNodeCluster(harness.Cluster):
    """etcd and a single BenchNode."""

    def __init__(self, workdir: pathlib.Path, daemon: List[str], run_as: harness.RunAs):
        super().__init__(workdir, DCS, daemon, run_as, [{}])
        self.nodes = [BenchNode(self, 0, {})]


@dataclasses.dataclass
class Load:
    """What one wrk run measured."""

    clients: int
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    timeouts: int
    socket_errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def wrk(url: str, clients: int, seconds: float) -> Load:
    cmd = ["wrk", f"-t{min(clients, WRK_THREADS)}", f"-c{clients}", f"-d{seconds:g}s", "--timeout", f"{WRK_TIMEOUT_S}s",
           "-s", str(LUA), url]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("WRK-RESULT ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result (exit {out.returncode}): {out.stdout[-500:]} {out.stderr[-500:]}")
    r = json.loads(line.split(" ", 1)[1])
    done = r["requests"] > 0
    return Load(clients=clients, requests=r["requests"], seconds=r["duration_us"] / 1e6,
                p50_ms=r["p50_us"] / 1000 if done else float("nan"),
                p99_ms=r["p99_us"] / 1000 if done else float("nan"),
                non_2xx=r["non_2xx"], timeouts=r["timeouts"],
                socket_errors=r["connect_errors"] + r["read_errors"] + r["write_errors"])


def status(url: str) -> Optional[int]:
    try:
        with urllib.request.urlopen(url, timeout=3) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, OSError):
        return None


@dataclasses.dataclass
class Result:
    idle_rss_mb: float
    loaded_rss_mb: float
    running: Dict[int, Load]
    stopped: Dict[int, Load]
    # One GET /primary right after SIGSTOP: (status or None, seconds).
    stopped_get: Tuple[Optional[int], float]


def timed_get(url: str, timeout: float) -> Tuple[Optional[int], float]:
    started = time.monotonic()
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            code: Optional[int] = resp.status
    except urllib.error.HTTPError as exc:
        code = exc.code
    except (urllib.error.URLError, OSError):
        code = None
    return code, time.monotonic() - started


def bench(impl: str, duration: float, stopped_duration: float) -> Result:
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"patroni-rest-bench-{impl}-", dir="/tmp"))
    harness.make_reachable(workdir, stop_at=workdir.parent)
    cluster = OneNodeCluster(workdir, daemon_argv(impl), harness.node_user())
    node = cluster.nodes[0]
    url = node.api_url + "/primary"
    say(f"{IMPLS[impl]}: node in {workdir}")
    ok = False
    try:
        cluster.start()

        def healthy() -> Optional[bool]:
            return True if status(url) == 200 and status(node.api_url + "/health") == 200 else None

        harness.wait_for(healthy, READY_S, "/primary and /health = 200", check=cluster.check_running)
        time.sleep(IDLE_S)
        assert node.proc is not None
        idle_rss = rss_mb(node.proc.pid)
        running: Dict[int, Load] = {}
        for clients in LEVELS:
            say(f"{IMPLS[impl]}: {clients} client(s), PostgreSQL running")
            running[clients] = wrk(url, clients, duration)
        loaded_rss = rss_mb(node.proc.pid)
        stopped: Dict[int, Load] = {}
        stopped_get: Tuple[Optional[int], float] = (None, 0.0)
        for clients in LEVELS:
            pm = node.postmaster_pid()
            assert pm, "no postmaster"
            say(f"{IMPLS[impl]}: {clients} client(s), PostgreSQL SIGSTOPped")
            frozen = harness.freeze_tree(pm)
            try:
                if clients == LEVELS[0]:
                    stopped_get = timed_get(url, WRK_TIMEOUT_S)
                stopped[clients] = wrk(url, clients, stopped_duration)
            finally:
                harness.thaw(frozen)
            harness.wait_for(healthy, RECOVER_S, "200 again after SIGCONT", check=cluster.check_running)
        ok = True
        return Result(idle_rss, loaded_rss, running, stopped, stopped_get)
    finally:
        cluster.cleanup()
        if ok:
            shutil.rmtree(workdir, ignore_errors=True)
        else:
            say(f"logs kept in {workdir}")


def ms(value: float) -> str:
    return "-" if value != value else f"{value:.2f}"  # NaN: nothing completed


def rows(results: Dict[str, Result]) -> List[List[str]]:
    impls = list(results)
    out: List[List[str]] = []

    def add(metric: str, values: List[str]) -> None:
        out.append([metric] + values)

    for phase, pick in (("running", lambda r: r.running), ("SIGSTOPped", lambda r: r.stopped)):
        for clients in LEVELS:
            loads = [pick(results[i])[clients] for i in impls]
            label = f"/primary, {clients} client{'s' if clients > 1 else ''}, PostgreSQL {phase}"
            add(f"{label}: requests/s", [f"{x.rps:,.0f}" for x in loads])
            add(f"{label}: p50 / p99 ms", [f"{ms(x.p50_ms)} / {ms(x.p99_ms)}" for x in loads])
            add(f"{label}: non-200 / timeouts / socket errors",
                [f"{x.non_2xx} / {x.timeouts} / {x.socket_errors}" for x in loads])
    def single(r: Result) -> str:
        code, took = r.stopped_get
        return f"no answer, gave up after {took:.1f} s" if code is None else f"{code} in {took * 1000:.1f} ms"
    add("one GET /primary right after SIGSTOP", [single(results[i]) for i in impls])
    add("idle RSS (MB)", [f"{results[i].idle_rss_mb:.1f}" for i in impls])
    add("RSS after the running loads (MB)", [f"{results[i].loaded_rss_mb:.1f}" for i in impls])
    return out


def ratios(results: Dict[str, Result]) -> List[str]:
    if set(results) != {"python", "rs"}:
        return []
    lines = []
    for clients in LEVELS:
        py, rs = results["python"].running[clients], results["rs"].running[clients]
        if py.rps:
            lines.append(f"  {clients:>3} client(s), running: patroni-rs / Python = {rs.rps / py.rps:.1f}x requests/s")
    return lines


def table(results: Dict[str, Result], duration: float, stopped_duration: float) -> str:
    header = ["metric"] + [IMPLS[i] for i in results]
    body = rows(results)
    widths = [max(len(r[k]) for r in [header] + body) for k in range(len(header))]

    def line(r: List[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    title = (f"REST benchmark: one node on {DCS}, GET /primary; load generator "
             f"{(wrk_version or ['wrk'])[0].split(' Copyright')[0]} with rest_latency.lua, "
             f"{duration:g} s per level running, {stopped_duration:g} s SIGSTOPped, {WRK_TIMEOUT_S} s request timeout")
    out = [title, line(header), "-+-".join("-" * w for w in widths)] + [line(r) for r in body]
    extra = ratios(results)
    if extra:
        out += ["", "Ratios:"] + extra
    silent = [IMPLS[i] for i, r in results.items() if all(x.requests == 0 for x in r.stopped.values())]
    if silent:
        out += ["", f"{', '.join(silent)}: no request was answered while PostgreSQL was SIGSTOPped (each request "
                "waits on the status query). wrk 4.1 counts a timeout only for a late answer or at its 2 s sweep, "
                "so its timeout count understates this: every connection had a request hanging the whole time."]
    if "python" in results:
        out += ["Python Patroni's socket errors while running are wrk seeing the connection close that ends "
                "each of its HTTP/1.0 replies; wrk reconnects and the answer counts."]
    return "\n".join(out)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="rest_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(IMPLS), help="benchmark one implementation only")
    parser.add_argument("--duration", type=float, default=10, help="seconds per level, PostgreSQL running")
    parser.add_argument("--stopped-duration", type=float, default=4,
                        help="seconds per level, PostgreSQL SIGSTOPped (default 4)")
    parser.add_argument("--wrk-threads", type=int, default=1,
                        help="wrk threads (default 1: the other core is left to the daemon)")
    args = parser.parse_args(argv)
    global WRK_THREADS
    WRK_THREADS = max(1, args.wrk_threads)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk not found (run .ci/setup)")
    impls = [args.only] if args.only else ["python", "rs"]
    for impl in impls:
        daemon_argv(impl)  # fail before starting anything

    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, terminate)

    results: Dict[str, Result] = {}
    failures: List[Tuple[str, str]] = []
    for impl in impls:
        try:
            results[impl] = bench(impl, args.duration, args.stopped_duration)
        except KeyboardInterrupt:
            say("interrupted")
            break
        except Exception as exc:  # noqa: BLE001 - reported below, the other column still runs
            failures.append((impl, f"{type(exc).__name__}: {exc}"))
    if results:
        print(table(results, args.duration, args.stopped_duration))
    for impl, reason in failures:
        print(f"\n{IMPLS[impl]}: FAILED: {reason}")
    return 1 if failures or not results else 0


if __name__ == "__main__":
    sys.exit(main())
