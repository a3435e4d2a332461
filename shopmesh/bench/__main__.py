"""`python -m shopmesh.bench` (scripts/bench): see the package's docstring."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc

import shopmesh.bench as package
from shopmesh.bench.measure import machine
from shopmesh.bench.phases import Ceiling, mesh_phases, postgres_phases, stack_phases, up_plain
from shopmesh.bench.report import render, targets
from shopmesh.launch.demo import DEMO_PRODUCT


def bench(args: argparse.Namespace, command: str) -> dict[str, Any]:
    facts = machine()
    with ExitStack() as cleanup:
        state = args.state or Path(
            cleanup.enter_context(tempfile.TemporaryDirectory(prefix="shopmesh-bench-"))
        )
        state = state.resolve()
        report: dict[str, Any] = {
            "command": command,
            "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        ceiling = cleanup.enter_context(Ceiling(args, state))
        ceiling.measure()
        report["up_plain_seconds"] = up_plain(state / "up-plain")
        report["sqlite"] = stack_phases(args, state / "sqlite")
        if args.postgres:
            report["postgresql"] = postgres_phases(args, state / "postgresql")
        if args.mesh:
            report["mesh"] = mesh_phases(args, state / "mesh")
        ceiling.measure()
        report["echo"] = ceiling.report()
    facts["load_average_at_end"] = [round(value, 2) for value in os.getloadavg()]
    report["machine"] = facts
    report["settings"] = {
        "orders": args.orders,
        "calls": args.calls,
        "concurrency": args.concurrency,
        "max_seconds": args.max_seconds,
        "product": args.product,
    }
    report["targets"] = targets(report)
    return report


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/bench", description=(package.__doc__ or "").split("\n\n")[0]
    )

    def bounded(low: int, high: int) -> Any:
        def check(text: str) -> int:
            value = int(text)
            if not low <= value <= high:
                raise argparse.ArgumentTypeError(f"must be within {low}..{high}")
            return value

        return check

    parser.add_argument(
        "--orders", type=bounded(1, 100_000), default=1500, help="CreateOrder calls per concurrency"
    )
    parser.add_argument(
        "--calls", type=bounded(1, 1_000_000), default=3000, help="echo, GetProduct, GetOrder calls"
    )
    parser.add_argument(
        "--concurrency", type=bounded(1, 1000), nargs="+", default=[16, 4], help="calls in flight"
    )
    parser.add_argument("--postgres", action="store_true", help="also on a PostgreSQL of its own")
    parser.add_argument(
        "--mesh", action="store_true", help="also the local mesh's proxies and orders through it"
    )
    parser.add_argument("--max-seconds", type=bounded(1, 86_400), default=120, help="bound of each phase")
    parser.add_argument("--product", default=DEMO_PRODUCT, help="a product of the demo catalog")
    parser.add_argument("--state", type=Path, help="databases and logs (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse(arguments)
    command = shlex.join(["scripts/bench", *arguments])
    # Ctrl-C and SIGTERM unwind through the cleanup that stops every process started. SIGINT is
    # set too, not inherited: a background job of a non-interactive shell starts with it ignored,
    # and Python then leaves it ignored (the project's other commands set their handlers alike).
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, signal.default_int_handler)
    try:
        report = bench(args, command)
    except KeyboardInterrupt:
        print("interrupted; every process stopped", file=sys.stderr)
        return 130
    except (RuntimeError, OSError) as error:  # a process did not start: its log's tail is in the message
        print(f"bench: {error}", file=sys.stderr)
        return 1
    except grpc.aio.AioRpcError as error:  # seeding failed, e.g. --product is not in the catalog
        print(f"bench: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
