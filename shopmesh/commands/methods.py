"""`shopmesh methods`: every gRPC method of the three services, by workload.

The paths printed are the ones AuthorizationPolicies and grpcurl name.
"""

from __future__ import annotations

import argparse

from shopmesh.contracts import all_methods


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("methods", help="list every gRPC method path, by workload")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    for workload, method in all_methods():
        print(f"{workload:<10} {method.grpc_type:<14} {method.path}")
    return 0
