"""`shopmesh topology`: draw the workloads and the calls the AuthorizationPolicies allow
(docs/topology.svg, embedded in the README)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("topology", help="draw the allowed calls between workloads as SVG")
    parser.add_argument(
        "path", nargs="?", type=Path, default=Path.cwd(), help="project directory (default: .)"
    )
    parser.add_argument("--stack", default="default", help="which stack: default, or an overlay's name")
    parser.add_argument("-o", "--output", type=Path, help="write here instead of standard output")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shopmesh.manifests.model import MeshObjects
    from shopmesh.manifests.policy import PolicyError
    from shopmesh.manifests.render import RenderError, project_stack
    from shopmesh.manifests.topology import render_svg

    try:
        svg = render_svg(MeshObjects(project_stack(args.path, args.stack).render()))
    except (RenderError, LookupError, PolicyError) as error:
        print(f"shopmesh topology: {error}", file=sys.stderr)
        return 2
    if args.output:
        args.output.write_text(svg, encoding="utf-8")
    else:
        sys.stdout.write(svg)
    return 0
