"""`scripts/soak`: steady load through the local mesh's ingress for a long while; does anything
grow without bound, does anything fail?

    python -m shopmesh.resilience.soak [--duration 600] [--rate 5] [--interval 2] [--report var/reports/soak]

Starts a local mesh of its own (shopmesh.resilience.mesh: the canary stack, every pod behind
its sidecar, the ingress), runs the steady order load through the ingress
(shopmesh.resilience.load) while sampling every process's resident memory, open files and CPU
time, then checks the books (shopmesh check, demo catalog as the stock baseline: the load puts
back every unit it buys). It writes `<report>.json` and `<report>.txt` and exits 0 when every
process is bounded (shopmesh.resilience.sampling states the rule), no process died, no call
failed and the books agree; 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shopmesh.bench import machine
from shopmesh.check.report import check
from shopmesh.check.stocked import demo_catalog
from shopmesh.launch.service import ROOT
from shopmesh.resilience.load import LoadSettings, OrderLoad, wait_answering
from shopmesh.resilience.mesh import RunningMesh, local_mesh
from shopmesh.resilience.reports import write_report
from shopmesh.resilience.sampling import RULE, Sampler, growth

#: How long the books may take to come to rest after the load stops.
SETTLE_SECONDS = 60.0


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/soak", description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds of load (default 600)")
    parser.add_argument("--rate", type=float, default=5.0, help="orders per second (default 5)")
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between samples (default 2)")
    parser.add_argument(
        "--report",
        type=Path,
        default=ROOT / "var" / "reports" / "soak",
        help="writes REPORT.json and REPORT.txt",
    )
    args = parser.parse_args(argv)
    if args.duration <= 0 or not 0 < args.rate <= 100 or not 0.1 <= args.interval <= args.duration:
        parser.error("want --duration > 0, 0 < --rate <= 100 and 0.1 <= --interval <= --duration")
    return args


def soak(running: RunningMesh, duration: float, rate: float, interval: float) -> dict[str, Any]:
    """The load through `running`'s ingress for `duration` seconds, every process sampled;
    then the books. The report's figures (see `render`)."""
    refused_at_start = asyncio.run(wait_answering(running.ingress, SETTLE_SECONDS))
    load = OrderLoad(LoadSettings(running.ingress, rate))
    with Sampler(running.pids(), interval) as sampler:
        asyncio.run(load.run(duration))
    dead = running.dead()
    books = asyncio.run(check(running.databases(), stocked=demo_catalog(), wait=SETTLE_SECONDS))
    roles = running.roles()
    processes = {
        name: {"role": roles.get(name, "?"), **growth(series)}
        for name, series in sorted(sampler.series.items())
    }
    growing = sorted(name for name, figures in processes.items() if figures["verdict"] != "bounded")
    passed = not growing and not dead and load.error_count == 0 and books.consistent
    return {
        "passed": passed,
        "verdict": {
            "processes_not_bounded": growing,
            "processes_died": dead,
            "errors": load.error_count,
            "books_agree": books.consistent,
        },
        "rule": RULE,
        # Calls the ingress failed after the mesh said it was up and before the load began.
        "calls_refused_before_the_load": refused_at_start,
        "load": load.summary(),
        "processes": processes,
        "books": {
            key: books.to_json()[key] for key in ("consistent", "counts", "orders", "not_at_rest", "notes")
        },
    }


def render(report: dict[str, Any]) -> str:
    load = report["load"]
    verdict = report["verdict"]
    lines = [
        f"soak: {'PASSED' if report['passed'] else 'FAILED'}  ({report['command']})",
        f"mesh: up in {report['mesh_startup_seconds']} s; "
        f"{report['calls_refused_before_the_load']} catalog calls refused before it answered",
        f"machine: {report['machine']['nproc']} CPUs, {report['machine']['cpu_model']}, "
        f"load average at start {report['machine']['load_average_at_start']}",
        f"load: {load['customers_sent']} customers in {load['seconds']} s at {load['rate_per_second']}/s "
        f"through {load['target']}; orders {load['order_outcomes']}; {load['errors']} errors",
    ]
    for method, calls in load["calls"].items():
        latency = calls["latency_ms"]
        lines.append(
            f"  {method:<13} {calls['ok']:>6} ok  p50 {latency['p50']} ms  p99 {latency['p99']} ms  "
            f"max {latency['max']} ms  errors {calls['errors'] or 'none'}"
        )
    lines.append(f"processes ({report['rule']}):")
    lines.append(
        f"  {'process':<26} {'RSS MiB first/last/max':>24} {'growth':>8} "
        f"{'fds first/last/max':>20} {'growth':>7}  verdict"
    )
    for name, figures in report["processes"].items():
        if figures["samples"] == 0:
            lines.append(f"  {name:<26} no samples")
            continue
        rss, fds = figures["rss_mib"], figures["fds"]
        lines.append(
            f"  {name:<26} {rss['first']:>8.1f} {rss['last']:>7.1f} {rss['max']:>7.1f} "
            f"{figures['rss_growth_mib_over_second_half']:>+8.2f} "
            f"{fds['first']:>6.0f} {fds['last']:>6.0f} {fds['max']:>6.0f} "
            f"{figures['fd_growth_over_second_half']:>+7.2f}"
            f"  {figures['verdict']} (cpu {figures['cpu_seconds']} s)"
        )
    lines.append(
        f"books: {'agree' if report['books']['consistent'] else 'DISAGREE'} {report['books']['orders']}; "
        f"died: {verdict['processes_died'] or 'none'}; "
        f"not bounded: {verdict['processes_not_bounded'] or 'none'}"
    )
    lines += [f"  error: {error}" for error in load["first_errors"][:20]]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    command = "scripts/soak " + shlex.join(argv if argv is not None else sys.argv[1:])
    with tempfile.TemporaryDirectory(prefix="shopmesh-soak-") as state:
        started = time.monotonic()
        with local_mesh(Path(state)) as running:
            startup = time.monotonic() - started
            report = soak(running, args.duration, args.rate, args.interval)
    report.update(command=command, machine=machine(), mesh_startup_seconds=round(startup, 1))
    write_report(args.report, report, render(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
