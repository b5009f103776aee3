"""The HA benchmark command: Python Patroni 4.1.5 and patroni-rs, side by side.

    python -m pytests.bench.ha_bench [--only python|rs] [--runs N]

run from the repository root, as root (the nodes run as `patroni-rs-test`,
as in the end-to-end tests). Each run starts a fresh etcd and three fresh
nodes per implementation with Patroni's default timings; see scenarios.py
for what is measured and how. Progress goes to stderr, the table to stdout.
With N > 1 a cell shows `median (min-max)`; the per-daemon idle figures
pool the three daemons of every run.
"""
from __future__ import annotations

import argparse
import math
import os
import pathlib
import shutil
import signal
import sys
import tempfile
from typing import Dict, List, Optional

from pytests.e2e import harness

from . import scenarios
from .cluster import DCS, LOOP_WAIT, RETRY_TIMEOUT, TTL, BenchCluster
from .scenarios import METRICS, Failure, Run, Sample, say

ROOT = pathlib.Path(__file__).resolve().parents[2]
IMPLS = {"python": "Python Patroni 4.1.5", "rs": "patroni-rs"}

# Metrics whose cells show fewer decimals.
INTEGER_METRICS = {scenarios.IDLE_THREADS, scenarios.SWITCHOVER_ROWS}


def our_binary() -> pathlib.Path:
    """PATRONI_RS_BIN, else the release build (what .ci/bench builds)."""
    env = os.environ.get("PATRONI_RS_BIN")
    if env:
        return pathlib.Path(env)
    target = pathlib.Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
    return target / "release" / "patroni"


def daemon_argv(impl: str) -> List[str]:
    path = harness.PYTHON_PATRONI if impl == "python" else our_binary()
    if not path.exists():
        hint = "run .ci/setup" if impl == "python" else "run cargo build --release or set PATRONI_RS_BIN"
        raise SystemExit(f"{IMPLS[impl]} not found at {path} ({hint})")
    return [str(path)]


def run_once(impl: str, idle_seconds: float, keep: bool) -> Dict[str, List[Sample]]:
    """One fresh cluster of `impl` through every scenario. The cluster is
    torn down whatever happens; its directory is kept on failure."""
    workdir = pathlib.Path(tempfile.mkdtemp(prefix=f"patroni-bench-{impl}-", dir="/tmp"))
    harness.make_reachable(workdir, stop_at=workdir.parent)
    cluster = BenchCluster(workdir, daemon_argv(impl), harness.node_user())
    run = Run(cluster, idle_seconds)
    say(f"{IMPLS[impl]}: cluster in {workdir}")
    try:
        cluster.start()
        run.execute()
    except Exception as exc:  # noqa: BLE001 - the cluster could not even start
        failure = Failure(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
                          cluster.log_tails(25))
        for m in METRICS:
            if len(run.samples[m]) == 0:
                run.record(m, failure)
    finally:
        cluster.cleanup()
    failed = any(isinstance(s, Failure) for values in run.samples.values() for s in values)
    if failed or keep:
        say(f"logs kept in {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return run.samples


def fmt_number(metric: str, value: float) -> str:
    if math.isnan(value):
        return "n/a"
    if metric in INTEGER_METRICS:
        return f"{value:.0f}"
    # Sub-second figures are compared against targets like 0.2 s.
    return f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}"


def cell(metric: str, samples: List[Sample]) -> str:
    if not samples:
        return "-"
    values = [s for s in samples if not isinstance(s, Failure)]
    failures = [s for s in samples if isinstance(s, Failure)]
    text = ""
    stats = scenarios.summarize(values)
    if stats is not None:
        low, mid, high = stats
        text = fmt_number(metric, mid)
        if len(values) > 1 and high != low:
            text += f" ({fmt_number(metric, low)}-{fmt_number(metric, high)})"
    if failures:
        reasons = sorted({f.reason for f in failures})
        failed = f"FAILED ({'; '.join(reasons)})"
        if values:
            failed = f"{len(failures)}/{len(samples)} {failed}"
        text = f"{text} {failed}".strip()
    return text


def label(metric: str, idle_seconds: float) -> str:
    if metric == scenarios.IDLE_CPU:
        return metric.replace("30 s", f"{idle_seconds:g} s")
    return metric


def table(results: Dict[str, Dict[str, List[Sample]]], runs: int, idle_seconds: float) -> str:
    impls = list(results)
    header = ["metric"] + [IMPLS[i] for i in impls]
    rows = [[label(m, idle_seconds)] + [cell(m, results[i][m]) for i in impls] for m in METRICS]
    widths = [max(len(r[k]) for r in [header] + rows) for k in range(len(header))]
    # A FAILED reason can be long: cap the width, the full text is below.
    widths = [min(w, 60) for w in widths]

    def line(r: List[str]) -> str:
        return " | ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip()
    title = (f"HA benchmark: 3 nodes on {DCS}, timings ttl {TTL}, loop_wait {LOOP_WAIT}, "
             f"retry_timeout {RETRY_TIMEOUT} (defaults); {runs} run{'s' if runs > 1 else ''}"
             + ("; median (min-max)" if runs > 1 else ""))
    out = [title, line(header), "-+-".join("-" * w for w in widths)]
    out += [line(r) for r in rows]
    return "\n".join(out)


def failure_report(results: Dict[str, Dict[str, List[Sample]]]) -> str:
    seen = set()
    parts = []
    for impl, samples in results.items():
        for metric, values in samples.items():
            for s in values:
                if isinstance(s, Failure) and (impl, s.reason) not in seen:
                    seen.add((impl, s.reason))
                    parts.append(f"== {IMPLS[impl]}: {metric}: FAILED ({s.reason})")
                    if s.details:
                        parts.append(s.details)
    return "\n".join(parts)


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(prog="ha_bench", description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=sorted(IMPLS), help="benchmark one implementation only")
    parser.add_argument("--runs", type=int, default=1, help="fresh clusters per implementation (default 1)")
    parser.add_argument("--idle-seconds", type=float, default=30,
                        help="idle settle time, and the CPU window after it (default 30)")
    parser.add_argument("--keep", action="store_true", help="keep cluster directories even after success")
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be at least 1")
    impls = [args.only] if args.only else ["python", "rs"]
    for impl in impls:
        daemon_argv(impl)  # fail before starting anything

    # SIGTERM (a CI timeout, kill) must unwind through the cleanups too.
    def terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")
    signal.signal(signal.SIGTERM, terminate)

    results: Dict[str, Dict[str, List[Sample]]] = {i: {m: [] for m in METRICS} for i in impls}
    try:
        for n in range(args.runs):
            for impl in impls:
                say(f"run {n + 1}/{args.runs}: {IMPLS[impl]}")
                for metric, values in run_once(impl, args.idle_seconds, args.keep).items():
                    results[impl][metric].extend(values)
    except KeyboardInterrupt:
        say("interrupted: partial results")
    print(table(results, args.runs, args.idle_seconds))
    report = failure_report(results)
    if report:
        print("\nFailures:\n" + report)
    return 1 if report else 0


if __name__ == "__main__":
    sys.exit(main())
