"""`scripts/fuzz`: malformed requests at the local mesh's ingress and straight at each service.

    python -m shopmesh.resilience.fuzz [--scale 1] [--seed 0] [--report var/reports/fuzz]
                                       [--target NAME=HOST:PORT ...]

Starts a local mesh of its own (shopmesh.resilience.mesh), then sends about 1000 cases times
--scale (shopmesh/resilience/fuzz/cases.py) to its ingress and to each service's own process
(its plaintext port, no sidecar); or, with --target, to what is already running (NAME is
`ingress`, or the service, e.g. `--target ingress=127.0.0.1:50051 --target order=...`). Writes
`<report>.json` and `<report>.txt`; exits 0 when no call ended INTERNAL or UNKNOWN, none hung,
every target stayed SERVING and no process died, 1 otherwise.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from shopmesh.bench import machine
from shopmesh.launch.service import ROOT
from shopmesh.resilience.fuzz.cases import FAMILIES, SIZES
from shopmesh.resilience.fuzz.causes import CAUSES
from shopmesh.resilience.fuzz.runner import FORBIDDEN, Target, fuzz, totals
from shopmesh.resilience.mesh import local_mesh
from shopmesh.resilience.reports import write_report

SERVICES = ("order", "inventory", "payment")


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/fuzz", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--scale", type=float, default=1.0, help=f"cases per target: {sum(SIZES.values())} x SCALE"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--report", type=Path, default=ROOT / "var" / "reports" / "fuzz")
    parser.add_argument("--target", action="append", default=[], metavar="NAME=HOST:PORT")
    args = parser.parse_args(argv)
    if not 0 < args.scale <= 20:
        parser.error("--scale must be more than 0 and at most 20")
    args.targets = []
    for given in args.target:
        name, _, address = given.partition("=")
        if name not in ("ingress", *SERVICES) or ":" not in address:
            parser.error(
                f"--target {given!r}: want NAME=HOST:PORT, NAME one of ingress, {', '.join(SERVICES)}"
            )
        args.targets.append(Target(name, address, SERVICES if name == "ingress" else (name,)))
    return args


def run(args: argparse.Namespace, command: str) -> dict[str, Any]:
    def progress(line: str) -> None:
        print(f"  {line}", file=sys.stderr, flush=True)

    began = time.monotonic()
    dead: list[str] = []
    if args.targets:
        reports = fuzz(args.targets, args.scale, args.seed, progress)
    else:
        with (
            tempfile.TemporaryDirectory(prefix="shopmesh-fuzz-") as state,
            local_mesh(Path(state)) as running,
        ):
            targets = [Target("ingress", running.ingress, SERVICES)]
            targets += [Target(app, address, (app,)) for app, address in sorted(running.apps().items())]
            reports = fuzz(targets, args.scale, args.seed, progress)
            dead = running.dead()
    summary = totals(reports)
    passed = summary["forbidden"] == 0 and summary["hangs"] == 0 and summary["unhealthy"] == 0 and not dead
    return {
        "passed": passed,
        "command": command,
        "machine": machine(),
        "seconds": round(time.monotonic() - began, 1),
        "rule": f"no call may end {' or '.join(sorted(FORBIDDEN))} or hang; every target stays SERVING; "
        "no process dies",
        "processes_died": dead,
        "totals": summary,
        "causes": {cause.key: {"where": cause.where, "what": cause.what} for cause in CAUSES},
        "targets": {report.target.name: report.to_json() for report in reports},
    }


def render(report: dict[str, Any]) -> str:
    totals_ = report["totals"]
    lines = [
        f"fuzz: {'PASSED' if report['passed'] else 'FAILED'}  ({report['command']}, {report['seconds']} s)",
        f"rule: {report['rule']}",
        f"{totals_['sent']} cases sent: {totals_['forbidden']} INTERNAL/UNKNOWN, {totals_['hangs']} hung, "
        f"{totals_['unhealthy']} times a target was not SERVING after a family; "
        f"processes died: {report['processes_died'] or 'none'}",
    ]
    for cause, count in totals_["failures_by_cause"].items():
        known = report["causes"].get(cause)
        lines.append(
            f"  {count:>5} x {cause}" + (f": {known['what']} [{known['where']}]" if known else ": NEW")
        )
    for name, target in report["targets"].items():
        lines.append(f"{name} ({target['address']}): {target['sent']} sent, slowest {target['slowest']}")
        for family in FAMILIES:
            outcomes = target["outcomes"].get(family, {})
            shown = ", ".join(f"{outcome} {count}" for outcome, count in outcomes.items())
            lines.append(f"  {family:<15} {sum(outcomes.values()):>5}: {shown}")
        for case in target["examples"]:
            lines.append(
                f"  {case['cause']}: {case['outcome']} {case['message']!r} "
                f"<- {case['family']}: {case['name']} "
                f"({case['transport']} {case['path'][:80]}, body {case['body_hex'][:60]})"
            )
        for family, seconds in target["seconds_until_serving_after"].items():
            lines.append(f"  not SERVING for {seconds} s after {family}")
        if target["unhealthy_after"]:
            lines.append(f"  NOT SERVING after: {', '.join(target['unhealthy_after'])}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    command = "scripts/fuzz " + shlex.join(argv if argv is not None else sys.argv[1:])
    report = run(args, command)
    write_report(args.report, report, render(report))
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
