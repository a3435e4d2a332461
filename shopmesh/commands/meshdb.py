"""`shopmesh mesh stop-db SERVICE` / `start-db SERVICE`: one service's database lost, then back,
on a local run on PostgreSQL (`scripts/up --postgres`), from any shell while it runs.

The outage is PostgreSQL's own: the service's role is refused and its sessions are ended
(shopmesh.launch.localpostgres says how and why); the other services' databases keep working.
The service is not touched: it answers UNAVAILABLE and reports NOT_SERVING while its database is
gone, and serves again, the same process, once it is back.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

#: The local mesh's databases: its state directory's db/ (shopmesh.localmesh.supervisor).
DEFAULT_DATABASES = Path("var") / "mesh" / "db"


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, verb, handler in (
        ("stop-db", "make SERVICE's database unavailable (a real outage), on a --postgres run", run_stop),
        ("start-db", "bring SERVICE's database back after stop-db", run_start),
    ):
        parser = commands.add_parser(name, help=verb)
        parser.add_argument("service", help="the service whose database it is (order, inventory, payment)")
        where = parser.add_mutually_exclusive_group()
        where.add_argument(
            "--state",
            type=Path,
            metavar="DIR",
            help="the mesh's state directory, as given to `mesh up --state` (its databases: DIR/db)",
        )
        where.add_argument(
            "--databases",
            type=Path,
            metavar="DIR",
            help="the run's databases directory (default var/mesh/db; var for scripts/up --plain --postgres)",
        )
        parser.set_defaults(handler=handler)


def run_stop(args: argparse.Namespace) -> int:
    return _set(args, available=False)


def run_start(args: argparse.Namespace) -> int:
    return _set(args, available=True)


def _set(args: argparse.Namespace, *, available: bool) -> int:
    from shopmesh.launch.localdatabases import NoRunningDatabases, running_postgres
    from shopmesh.launch.service import ROOT

    command = "start-db" if available else "stop-db"
    if args.state is not None:
        directory = (args.state / "db").resolve()
    else:
        directory = (args.databases or ROOT / DEFAULT_DATABASES).resolve()
    try:
        record, server = running_postgres(directory)
    except NoRunningDatabases as error:
        return _fail(command, str(error))
    if args.service not in record.urls:
        known = ", ".join(record.urls)
        return _fail(command, f"unknown service {args.service!r}: the run's databases are {known}")
    try:
        ended = server.set_available(args.service, available)
    except subprocess.CalledProcessError as error:
        reason = (error.stderr or "").strip().splitlines()
        return _fail(command, f"the run's PostgreSQL did not answer: {reason[0] if reason else error}")
    if available:
        print(f"{args.service}'s database is available again")
    else:
        print(
            f"{args.service}'s database is unavailable: its connections are refused "
            f"({ended} session{'s' if ended != 1 else ''} ended); "
            f"`shopmesh mesh start-db {args.service}` brings it back"
        )
    return 0


def _fail(command: str, message: str) -> int:
    print(f"shopmesh mesh {command}: {message}", file=sys.stderr)
    return 1
