"""`shopmesh lint`: render k8s/ and istio/ (and their overlays), validate every object against
its strict schema, and analyse each stack like `istioctl analyze` and Kiali would.

One line per finding, `CODE severity Kind/namespace/name: message`; exit status 1 when any
finding is an error, 2 when the manifests cannot be rendered.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from shopmesh.manifests.findings import Finding


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("lint", help="validate and analyse the Kubernetes and Istio manifests")
    parser.add_argument(
        "paths",
        nargs="*",
        type=Path,
        help="project directories holding k8s/ and istio/ (default: the current directory)",
    )
    parser.add_argument(
        "--stack",
        nargs="+",
        type=Path,
        metavar="KUSTOMIZATION",
        help="instead: kustomize directories rendered and analysed together as one stack",
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from shopmesh.manifests.linter import has_errors, lint
    from shopmesh.manifests.render import RenderError, Stack, discover_stacks

    try:
        if args.stack:
            stacks = [Stack(" + ".join(map(str, args.stack)), tuple(args.stack))]
        else:
            stacks = [stack for root in args.paths or [Path.cwd()] for stack in discover_stacks(root)]
        reports = lint(stacks)
    except RenderError as error:
        print(f"shopmesh lint: {error}", file=sys.stderr)
        return 2
    # Objects shared by several stacks (istio/base in all) report once; a finding only some
    # stacks have names them.
    stacks_of: dict[Finding, list[str]] = {}
    for report in reports:
        for finding in report.findings:
            stacks_of.setdefault(finding, []).append(report.stack.name)
    findings = sorted(stacks_of)
    for finding in findings:
        names = stacks_of[finding]
        print(finding if len(names) == len(reports) else f"{finding} (stack {', '.join(names)})")
    for report in reports:
        directories = " + ".join(map(str, report.stack.directories))
        print(
            f"stack {report.stack.name} ({directories}): {len(report.findings)} finding(s)", file=sys.stderr
        )
    return 1 if has_errors(findings) else 0
