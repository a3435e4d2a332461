"""`shopmesh check`: do the three services' books agree? (shopmesh/check)

Reads order's, inventory's and payment's databases (by default those of the last `scripts/up`,
SQLite or PostgreSQL), waits up to --wait seconds for orders in flight, prints what it found and exits 0
(consistent), 1 (inconsistent), 2 (a database or baseline could not be read) or 3 (orders still
in flight). `--json` prints the whole report as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopmesh.check.reading import DatabaseUrls


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "check",
        help="check that the services' books agree (nothing lost, nothing doubled)",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    where = parser.add_argument_group("databases (SQLAlchemy URLs, SQLite or PostgreSQL)")
    where.add_argument(
        "--databases",
        type=Path,
        metavar="DIR",
        help="the databases of the local run on DIR: those its databases.json names (SQLite or "
        "PostgreSQL), else SQLite files DIR/<service>.db (default: the local mesh's var/mesh/db; "
        "var for scripts/up --plain)",
    )
    for service in ("order", "inventory", "payment"):
        where.add_argument(
            f"--{service}-url", metavar="URL", help=f"{service}'s database (overrides --databases)"
        )
    parser.add_argument(
        "--stocked",
        default="demo",
        metavar="demo|none|FILE",
        help="what was stocked: the demo catalog (default), none (skip the stock rule), or a JSON "
        'file {"<product id>": units} (see --record-stock)',
    )
    parser.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait this long for orders in flight"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument(
        "--record-stock",
        type=Path,
        metavar="FILE",
        help="only write inventory's units per product (available + sold + reserved) to FILE, a "
        "baseline for a later --stocked FILE",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shopmesh.check.reading import Unreadable, read_stock_totals
    from shopmesh.check.report import ExitStatus, check
    from shopmesh.check.stocked import BaselineError, baseline, write_baseline

    if args.wait < 0:
        return _fail(f"--wait must be 0 or more seconds, not {args.wait:g}")
    try:
        urls = _urls(args)
        if args.record_stock is not None:
            totals = asyncio.run(read_stock_totals(urls.inventory))
            write_baseline(args.record_stock, totals)
            print(f"recorded {sum(totals.values())} units of {len(totals)} products in {args.record_stock}")
            return ExitStatus.CONSISTENT
        report = asyncio.run(check(urls, stocked=baseline(args.stocked), wait=args.wait))
    except (Unreadable, BaselineError) as error:
        return _fail(str(error))
    print(json.dumps(report.to_json(), indent=2) if args.json else report.to_text())
    return int(report.exit_status)


def _urls(args: argparse.Namespace) -> DatabaseUrls:
    from shopmesh.check.reading import DatabaseUrls

    if args.databases is not None:
        directory = args.databases.resolve()
    else:
        from shopmesh.launch.service import ROOT
        from shopmesh.localmesh.settings import MeshSettings

        directory = MeshSettings.for_project(ROOT).state / "db"
    given = (args.order_url, args.inventory_url, args.payment_url)
    # URLs given for all three: no run's databases are looked up (nor their record read).
    found = DatabaseUrls(*given) if all(given) else DatabaseUrls.of_run(directory)
    return DatabaseUrls(
        order=args.order_url or found.order,
        inventory=args.inventory_url or found.inventory,
        payment=args.payment_url or found.payment,
    )


def _fail(message: str) -> int:
    print(f"shopmesh check: {message}", file=sys.stderr)
    return 2
