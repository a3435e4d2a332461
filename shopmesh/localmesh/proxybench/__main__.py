"""`python -m shopmesh.localmesh.proxybench`: see the package's docstring."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import shopmesh.localmesh.proxybench as package
from shopmesh.bench import machine
from shopmesh.localmesh.proxybench.measure import PATHS, measure, observer_cost, summarise
from shopmesh.localmesh.proxybench.rig import rig
from shopmesh.localmesh.proxybench.telemetry import compare, scrape_cost, summarise_comparison

_DESCRIPTION = (package.__doc__ or "").split("\n\n")[0]


def render(report: dict[str, Any]) -> str:
    facts = report["machine"]
    lines = [
        f"proxy bench, {report['date']}: {facts['nproc']} CPUs ({facts['cpu_model']}), load average "
        f"{facts['load_average_at_start']} at start, {report['load_average_at_end']} at end",
        f"{report['settings']['calls']} unary calls per run, {report['settings']['size']} B requests, "
        f"{report['settings']['rate'] or 'unpaced'} calls/s",
        "",
        f"{'path':<8} {'conc':>4} {'calls/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}  CPU ms/call",
    ]
    for run in report["runs"]:
        latency = run["latency_ms"]
        cpu = "  ".join(f"{name} {value}" for name, value in run["cpu_ms_per_call"].items())
        failed = f"  FAILED {run['failures']}" if run["failures"] else ""
        lines.append(
            f"{run['path']:<8} {run['concurrency']:>4} {run['calls_per_second']:>8} {latency['p50']:>8} "
            f"{latency['p90']:>8} {latency['p99']:>8}  {cpu}{failed}"
        )
    lines += [
        "",
        "CPU ms per relayed call, and what a hop adds to the latency (ms, p50/p90); the floor is one",
        "grpc.aio server call plus one client call (the echo's and the direct load's CPU per call)",
        f"{'conc':>4}  {'floor':>6}  {'sidecar':>7} {'hop p50/p90':>16}  {'ingress':>7} {'hop p50/p90':>16}",
    ]
    for row in report["summary"]:
        side, edge = row["sidecar_hop_ms"], row["ingress_hop_ms"]
        lines.append(
            f"{row['concurrency']:>4}  {row['server_plus_client_cpu_ms']:>6}  {row['sidecar_cpu_ms']:>7} "
            f"{side['p50']:>8}/{side['p90']:<7}  {row['ingress_cpu_ms']:>7} {edge['p50']:>8}/{edge['p90']:<7}"
        )
    lines += _observer_lines(report)
    lines.append(f"rerun: {report['command']}")
    return "\n".join(lines)


def _observer_lines(report: dict[str, Any]) -> list[str]:
    cost, scrape = report["observer_us_per_call"], report["scrape"]
    return [
        f"per relayed call, in-process CPU: handing it to a no-op observer {cost['no-op']} µs; recording "
        f"Istio's metrics {cost['sidecar']} µs (sidecar), {cost['ingress']} µs (ingress)",
        f"one scrape of a sidecar's /stats/prometheus ({scrape['series']} series, {scrape['page_bytes']} B): "
        f"{scrape['render_ms']} ms of CPU",
    ]


def render_comparison(report: dict[str, Any]) -> str:
    facts = report["machine"]
    lines = [
        f"proxy bench, Istio metrics off and on, {report['date']}: {facts['nproc']} CPUs "
        f"({facts['cpu_model']}), load average {facts['load_average_at_start']} at start, "
        f"{report['load_average_at_end']} at end",
        f"{report['settings']['calls']} unary calls per run, {report['settings']['rounds']} runs per mode, "
        f"{report['settings']['rate'] or 'unpaced'} calls/s",
        "",
        f"{'conc':>4}  {'proxy':<8} {'off ms':>7} {'on ms':>7} {'metrics ms':>10}  (CPU per relayed call)",
    ]
    for row in report["comparison"]:
        lines.append(
            f"{row['concurrency']:>4}  {row['proxy']:<8} {row['off_cpu_ms']:>7} {row['on_cpu_ms']:>7} "
            f"{row['metrics_cpu_ms']:>10}"
        )
    lines += _observer_lines(report)
    lines.append(f"rerun: {report['command']}")
    return "\n".join(lines)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m shopmesh.localmesh.proxybench", description=_DESCRIPTION)
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per run")
    parser.add_argument("--warmup", type=int, default=300, help="calls before measuring")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--size", type=int, default=64, help="request bytes")
    parser.add_argument(
        "--rate", type=float, help="calls per second (default: as fast as they go); real traffic is slower"
    )
    parser.add_argument(
        "--telemetry",
        choices=("on", "off", "compare"),
        default="on",
        help="the proxies record Istio's metrics (on, as in the mesh), or not, or compare both",
    )
    parser.add_argument("--rounds", type=int, default=3, help="with --telemetry compare: runs per mode")
    parser.add_argument("--profile", type=Path, help="py-spy recordings of the proxies, here")
    parser.add_argument("--state", type=Path, help="keep certificates and logs here (default: temporary)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1_000_000 or not 0 <= args.warmup <= 100_000:
        parser.error("--calls must be 1..1000000 and --warmup 0..100000")
    if not all(1 <= c <= 256 for c in args.concurrency) or not 0 <= args.size <= 4 * 1024 * 1024:
        parser.error("--concurrency must be 1..256 and --size 0..4194304")
    if not 1 <= args.rounds <= 100:
        parser.error("--rounds must be 1..100")
    if args.rate is not None and not 0.1 <= args.rate <= 100_000:
        parser.error("--rate must be 0.1..100000 calls per second")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse(arguments)
    facts = machine()
    settings: dict[str, Any] = {
        "calls": args.calls,
        "warmup": args.warmup,
        "size": args.size,
        "rate": args.rate,
    }
    with ExitStack() as cleanup:
        root = args.state or Path(
            cleanup.enter_context(tempfile.TemporaryDirectory(prefix="shopmesh-proxybench-"))
        )
        if args.telemetry == "compare":
            runs = compare(root, args.concurrency, args.rounds, **settings)
            results: dict[str, Any] = {"comparison": summarise_comparison(runs)}
        else:
            bench = cleanup.enter_context(rig(root, telemetry=args.telemetry == "on"))
            runs = [
                measure(bench, path, concurrency, profile=args.profile, **settings)
                for concurrency in args.concurrency
                for path in PATHS
            ]
            results = {"summary": summarise(runs)}
    report = {
        "command": shlex.join(["python", "-m", "shopmesh.localmesh.proxybench", *arguments]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": facts,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "settings": {**settings, "telemetry": args.telemetry, "rounds": args.rounds},
        "runs": runs,
        **results,
        "observer_us_per_call": observer_cost(),
        "scrape": scrape_cost(),
    }
    if args.json:
        print(json.dumps(report, indent=2), flush=True)
    else:
        print(render_comparison(report) if "comparison" in report else render(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
