"""`shopmesh migrate <service>`: bring the service's database to its newest schema (alembic upgrade head).

Kubernetes runs it as an initContainer; it reads SHOPMESH_DATABASE_URL like the service does.
"""

from __future__ import annotations

import argparse
import sys

from services.runtime.registry import declarations


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("migrate", help="apply a service's database migrations")
    parser.add_argument("service", choices=sorted(declarations()))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.runtime.database import Database, translate_error
    from services.runtime.server import load_definition, settings_or_exit

    settings = settings_or_exit(args.service)
    definition = load_definition(args.service)
    try:
        Database(settings.database_url, service=args.service).upgrade(definition.migrations)
    except Exception as error:
        # An unreachable database is an operational state (the initContainer is retried), not a
        # bug: one line, not a traceback. Anything else is a bug and keeps its traceback.
        if translate_error(error) is None:
            raise
        print(
            f"shopmesh migrate {args.service}: the database is unreachable: {error.__class__.__name__}",
            file=sys.stderr,
        )
        return 1
    print(f"{args.service}: database at the newest migration")
    return 0
