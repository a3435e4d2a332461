"""`shopmesh topology`: draw the workloads and the calls the AuthorizationPolicies allow
(docs/topology.svg, embedded in the README); with `--live`, the calls Istio's metrics observed,
from Kiali's queries against a Prometheus (shopmesh.telemetry.livegraph)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from shopmesh.telemetry.query import DEFAULT_URL

if TYPE_CHECKING:
    from shopmesh.manifests.model import MeshObjects

LIVE_SVG = Path("var") / "topology-live.svg"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("topology", help="draw the allowed (or, --live, observed) calls as SVG")
    parser.add_argument(
        "path", nargs="?", type=Path, default=Path.cwd(), help="project directory (default: .)"
    )
    parser.add_argument("--stack", default="default", help="which stack: default, or an overlay's name")
    parser.add_argument(
        "-o", "--output", type=Path, help=f"write here instead of standard output (--live: {LIVE_SVG})"
    )
    live = parser.add_argument_group("--live: Kiali's graph from Istio's metrics")
    live.add_argument(
        "--live", action="store_true", help="print the observed graph as a table, write its SVG"
    )
    live.add_argument("--prometheus", default=DEFAULT_URL, help=f"Prometheus' URL (default {DEFAULT_URL})")
    live.add_argument("--namespace", default="shop", help="whose graph (default shop)")
    live.add_argument(
        "--duration", type=int, default=600, help="seconds of traffic to look at (Kiali's default 600)"
    )
    live.add_argument(
        "--at", type=float, help="the window's end, unix seconds (Kiali's queryTime; default now)"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shopmesh.manifests.model import MeshObjects
    from shopmesh.manifests.policy import PolicyError
    from shopmesh.manifests.render import RenderError, project_stack

    try:
        objects = MeshObjects(project_stack(args.path, args.stack).render())
    except (RenderError, LookupError, PolicyError) as error:
        print(f"shopmesh topology: {error}", file=sys.stderr)
        return 2
    if args.live:
        return _live(args, objects)
    from shopmesh.manifests.topology import render_svg

    try:
        svg = render_svg(objects)
    except (LookupError, PolicyError) as error:
        print(f"shopmesh topology: {error}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(svg, encoding="utf-8")
    else:
        sys.stdout.write(svg)
    return 0


def _live(args: argparse.Namespace, objects: MeshObjects) -> int:
    from shopmesh.telemetry import livegraph
    from shopmesh.telemetry.kiali import observed_graph
    from shopmesh.telemetry.query import PrometheusClient, PrometheusUnavailable, QueryError

    if not 1 <= args.duration <= 30 * 24 * 3600:
        print("shopmesh topology: --duration must be 1 s to 30 days", file=sys.stderr)
        return 2
    try:
        observed = observed_graph(PrometheusClient(args.prometheus), args.namespace, args.duration, args.at)
    except (PrometheusUnavailable, QueryError, ValueError) as error:
        print(f"shopmesh topology --live: {error}", file=sys.stderr)
        return 1
    check = livegraph.check_policies(observed, objects)
    sys.stdout.write(livegraph.render_table(observed, check))
    output = args.output or args.path / LIVE_SVG
    output.parent.mkdir(parents=True, exist_ok=True)
    svg = livegraph.render_svg(observed, check, namespace=args.namespace, window=f"{args.duration} s")
    output.write_text(svg, encoding="utf-8")
    print(f"SVG: {output}")
    return 0
