"""`shopmesh methods`: every gRPC method of the declared services, by workload.

The paths printed are the ones AuthorizationPolicies and grpcurl name.
"""

from __future__ import annotations

import argparse

from services.runtime.registry import declarations


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("methods", help="list every gRPC method path, by workload")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for service in declarations().values():
        for method in service.methods:
            print(f"{service.name:<10} {method.grpc_type:<14} {method.path}")
    return 0
