"""`shopmesh canary <name>`: rehearse Flagger's analysis of a Canary on the running local mesh.

Reads the Canary and its MetricTemplates from the rendered overlay (k8s/overlays/flagger +
istio/overlays/flagger), then runs Flagger's scheduler against the local mesh that
`shopmesh mesh up --overlay flagger` runs: each interval its metric queries, verbatim, against
the local Prometheus; the weights into the routes the control plane pushes live; Flagger's
events as they happen. Exits 0 when promoted, 1 when rolled back, 2 when stopped without an
outcome (--timeout, Ctrl-C), 3 when it cannot run (no mesh, no Prometheus, no such Canary).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

CANNOT_RUN = 3


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "canary",
        help="rehearse a Flagger Canary's rollout on the running local mesh",
        description=__doc__.split("\n\n")[1].replace("\n", " ") if __doc__ else None,
    )
    parser.add_argument("name", help="the Canary's name (order)")
    parser.add_argument("--namespace", help="the Canary's namespace (default: the only Canary of that name)")
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project (default: here)")
    parser.add_argument("--overlay", default="flagger", help="k8s/ and istio/ overlay (default flagger)")
    parser.add_argument("--state", type=Path, help="the running mesh's state directory (default var/mesh)")
    parser.add_argument(
        "--prometheus", default="http://127.0.0.1:9090", help="the local Prometheus (default %(default)s)"
    )
    parser.add_argument(
        "--load",
        type=float,
        metavar="RATE",
        help="also drive RATE customers a second through the ingress (catalog, order, cancel) "
        "from before the first tick to after the last, and report every failed call",
    )
    parser.add_argument(
        "--ingress", default="127.0.0.1:50051", help="the ingress, for --load (default %(default)s)"
    )
    parser.add_argument(
        "--interval",
        metavar="DURATION",
        help="a rehearsal's analysis interval (e.g. 5s; at least 1s) in place of the manifest's; "
        "everything else, the metrics' windows included, follows the manifest",
    )
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="stop a rollout without an outcome after this long"
    )
    parser.add_argument(
        "--report", type=Path, metavar="FILE", help="write every tick, value and event as JSON"
    )
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from shopmesh.canary import CanaryError
    from shopmesh.canary.localworld import RehearsalError, connect
    from shopmesh.canary.objects import running
    from shopmesh.canary.rehearsal import Rehearsal
    from shopmesh.canary.spec import canaries, go_duration_seconds, metric_templates
    from shopmesh.localmesh.settings import MeshSettings
    from shopmesh.localmesh.state import MeshState
    from shopmesh.manifests.render import RenderError, render

    def cannot(message: str) -> int:
        print(f"shopmesh canary: {message}", file=sys.stderr, flush=True)
        return CANNOT_RUN

    if args.load is not None and not 0 < args.load <= 200:
        return cannot(f"--load {args.load:g}: give more than 0 and at most 200 customers a second")
    root = args.root.resolve()
    settings = MeshSettings.for_project(root, overlay=args.overlay)
    try:
        stack = running(render(settings.sources))
        found = [c for c in canaries(stack) if c.name == args.name and args.namespace in (None, c.namespace)]
        templates = metric_templates(stack)
    except (RenderError, CanaryError) as error:
        return cannot(str(error))
    where = " + ".join(str(source.relative_to(root)) for source in settings.sources)
    if len(found) != 1:
        named = ", ".join(f"{c.namespace}/{c.name}" for c in canaries(stack)) or "none"
        problem = "no Canary" if not found else "several Canaries (give --namespace)"
        return cannot(f"{problem} named {args.name!r} in {where} (its Canaries: {named})")
    canary = found[0]
    if args.interval is not None:
        seconds = go_duration_seconds(args.interval)
        if seconds is None or seconds < 1:
            return cannot(f"--interval {args.interval!r}: give a duration of at least 1s, such as 5s or 1m")
        canary = replace(canary, interval_seconds=seconds)
    state = MeshState((args.state or root / "var" / "mesh").resolve())
    try:
        world = connect(stack, canary, state, args.prometheus)
    except RehearsalError as error:
        return cannot(str(error))
    steps = -(-canary.max_weight() // max(canary.next_step_weight(0), 1))
    timeout = args.timeout or canary.interval_seconds * (steps + canary.threshold + 8)
    manifest_interval = canary.resource.spec["analysis"].get("interval")
    rehearsing = f" (a rehearsal; the manifest says {manifest_interval})" if args.interval else ""
    print(
        f"Canary {canary.namespace}/{canary.name} from {where}: analysis every "
        f"{canary.interval_seconds:g} s{rehearsing}, {canary.threshold} failed checks roll back, "
        f"weight up to {canary.max_weight()} %; metrics from {args.prometheus}, routes pushed "
        f"through {world.routes_path}",
        flush=True,
    )
    rehearsal = Rehearsal(
        canary, templates, world, load_rate=args.load, ingress=args.ingress, timeout=timeout,
        say=lambda line: print(line, flush=True),
    )  # fmt: skip
    try:
        result = rehearsal.run()
    except RehearsalError as error:
        return cannot(str(error))
    except KeyboardInterrupt:
        return 2
    print(f"{result.outcome.value}", flush=True)
    if args.report is not None:
        args.report.write_text(json.dumps(result.as_json(), indent=2))
    return result.exit_code
