"""`shopmesh`: the project's one command line.

Each subcommand lives in its own module and registers itself here through `COMMANDS`, so this
file stays an index: `shopmesh --help` lists them all. Registering is cheap: a subcommand imports
what it runs with (the manifest tooling, the local mesh, a service's code) in its handler, so
`shopmesh methods` does not pay for `shopmesh lint`'s imports (tests/cli/test_methods.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib import import_module

#: subcommand -> "module:function" that adds its parser.
COMMANDS: dict[str, str] = {
    "methods": "shopmesh.commands.methods:register",
    "serve": "shopmesh.commands.serve:register",
    "migrate": "shopmesh.commands.migrate:register",
    "lint": "shopmesh.commands.lint:register",
    "authz": "shopmesh.commands.authz:register",
    "topology": "shopmesh.commands.topology:register",
    "mesh": "shopmesh.commands.mesh:register",
    "check": "shopmesh.commands.check:register",
    "canary": "shopmesh.commands.canary:register",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="shopmesh", description="shopmesh: a gRPC service mesh on Istio.")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for target in COMMANDS.values():
        module_name, function_name = target.split(":")
        register: Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None] = getattr(
            import_module(module_name), function_name
        )
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.handler(args)
    return result


if __name__ == "__main__":
    sys.exit(main())
