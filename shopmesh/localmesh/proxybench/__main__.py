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
    lines.append(f"a no-op call observer adds {report['observer_us_per_call']} µs of CPU per relayed call")
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
    parser.add_argument("--profile", type=Path, help="py-spy recordings of the proxies, here")
    parser.add_argument("--state", type=Path, help="keep certificates and logs here (default: temporary)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1_000_000 or not 0 <= args.warmup <= 100_000:
        parser.error("--calls must be 1..1000000 and --warmup 0..100000")
    if not all(1 <= c <= 256 for c in args.concurrency) or not 0 <= args.size <= 4 * 1024 * 1024:
        parser.error("--concurrency must be 1..256 and --size 0..4194304")
    if args.rate is not None and not 0.1 <= args.rate <= 100_000:
        parser.error("--rate must be 0.1..100000 calls per second")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse(arguments)
    facts = machine()
    with ExitStack() as cleanup:
        root = args.state or Path(
            cleanup.enter_context(tempfile.TemporaryDirectory(prefix="shopmesh-proxybench-"))
        )
        bench = cleanup.enter_context(rig(root))
        runs = [
            measure(
                bench,
                path,
                concurrency,
                calls=args.calls,
                warmup=args.warmup,
                size=args.size,
                rate=args.rate,
                profile=args.profile,
            )
            for concurrency in args.concurrency
            for path in PATHS
        ]
    report = {
        "command": shlex.join(["python", "-m", "shopmesh.localmesh.proxybench", *arguments]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": facts,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "settings": {"calls": args.calls, "warmup": args.warmup, "size": args.size, "rate": args.rate},
        "runs": runs,
        "summary": summarise(runs),
        "observer_us_per_call": observer_cost(),
    }
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
