"""`scripts/up --plain`: every declared service on 127.0.0.1, each on its embedded SQLite file,
or with `--postgres` on its own database of one local PostgreSQL (shopmesh.launch.localdatabases).

    python -m shopmesh.localrun [--order-port 50051] [--inventory-port 50052] [--payment-port 50053]
                                [--<service>-metrics-port PORT] [--state var] [--postgres]

Starts the services (each loads its declared seed, e.g. inventory's demo catalog, into an empty
database), waits until each one's health says SERVING, prints grpcurl examples, and on Ctrl-C
(or SIGTERM) stops them all — callers first, so nothing is left calling a stopped dependency —
leaving no process behind (each child also dies with this process: see
shopmesh.launch.processes). A child that exits on its own stops the rest, with its log's tail.
The mesh mode lives in shopmesh.localmesh; this module is the plain, mesh-less run.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.runtime.registry import start_order
from shopmesh.launch.demo import grpcurl_examples
from shopmesh.launch.localdatabases import LocalDatabases, PostgresMode
from shopmesh.launch.service import ROOT
from shopmesh.launch.stack import Stack

#: Nothing balances load across a laptop's single replica: no reason to linger after SIGTERM.
SETTINGS = {"SHOPMESH_DRAIN_SECONDS": "0"}


def parse(
    argv: Sequence[str] | None, environ: Mapping[str, str] | None = None
) -> tuple[Stack, Path, LocalDatabases]:
    """The stack the options describe, its state directory and its databases (opened: the
    caller closes them)."""
    parser = argparse.ArgumentParser(prog="scripts/up", description=__doc__.split("\n\n")[0])
    services = start_order()
    for declared in services:
        parser.add_argument(f"--{declared.name}-port", type=int, default=declared.grpc_port, metavar="PORT")
        parser.add_argument(
            f"--{declared.name}-metrics-port", type=int, default=declared.metrics_port, metavar="PORT"
        )
    parser.add_argument("--state", type=Path, default=ROOT / "var", help="databases and logs (default: var/)")
    parser.add_argument(
        "--postgres",
        action="store_true",
        help="one local PostgreSQL in STATE/postgresql, a database per service (default: SQLite files)",
    )
    args = parser.parse_args(argv)
    option = {declared.name: declared.name.replace("-", "_") for declared in services}
    state: Path = args.state.resolve()
    databases = LocalDatabases(
        state, PostgresMode() if args.postgres else None, log_file=state / "logs" / "postgresql.log"
    )
    urls = databases.open([declared.name for declared in services])
    stack = Stack.on_loopback(
        state,
        database_urls=urls,
        ports={name: getattr(args, f"{key}_port") for name, key in option.items()},
        metrics_ports={name: getattr(args, f"{key}_metrics_port") for name, key in option.items()},
        base=environ,
        settings={**SETTINGS, **databases.service_settings},
    )
    return stack, state, databases


def examples(stack: Stack) -> str:
    lines = grpcurl_examples(stack.address("order"), stack.address("inventory"))
    return "\n".join(f"  {line}" for line in lines)


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    try:
        stack, state, databases = parse(argv, environ)
    except RuntimeError as error:  # PostgreSQL missing, or its cluster unusable: one line
        print(f"scripts/up: {error}", file=sys.stderr)
        return 1
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stack.spawn()
        for process in stack.processes.values():
            print(f"started {process.name} (pid {process.pid}) on {process.address}", flush=True)
        stack.wait_serving()
        print(f"databases: {databases.describe()}", flush=True)
        print(f"shopmesh is up (logs in {state / 'logs'}). Try:\n{examples(stack)}", flush=True)
        print("Ctrl-C stops it.", flush=True)
        while not stop.wait(0.5):
            dead = stack.exited()
            if dead:
                print(f"{dead[0].name} exited ({dead[0].returncode()}):\n{dead[0].logs()}", file=sys.stderr)
                return 1
        return 0
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        stack.stop()
        databases.close()
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
