"""`shopmesh serve <service>`: run one service until SIGTERM (same as `python -m services.<name>`)."""

from __future__ import annotations

import argparse

from services.runtime.registry import declarations


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("serve", help="run a service (configured by SHOPMESH_* variables)")
    parser.add_argument("service", choices=sorted(declarations()))
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from services.runtime.server import load_definition, run, settings_or_exit

    # Configuration first: a bad variable is reported before any service code is imported.
    settings = settings_or_exit(args.service)
    run(load_definition(args.service), settings)
    return 0
