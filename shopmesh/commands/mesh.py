"""`shopmesh mesh`: the local mesh — istio/ and k8s/ enforced on this machine.

shopmesh mesh up     control plane, every pod (service + sidecar), ingress, Prometheus; Ctrl-C
                     stops all
shopmesh mesh xds    the xDS resources the control plane would serve now, as JSON
shopmesh mesh stop-db SERVICE / start-db SERVICE
                     a --postgres run's database outage, and its end (shopmesh/commands/meshdb.py)
shopmesh mesh apply / delete / rotate-certificates   change a running mesh (mesh_changes)

While `mesh up` runs, from any shell (through its control socket, shopmesh.localmesh.control):
shopmesh mesh ps [--json]             the pods, like `kubectl get pods`
shopmesh mesh kill POD                SIGKILL the pod's app; the local kubelet restarts it
shopmesh mesh stop-control-plane      istiod down: the data plane keeps its last configuration
shopmesh mesh start-control-plane     and back
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from shopmesh.commands import mesh_changes, meshdb

# shopmesh.localmesh is imported in the handlers only: it needs the `mesh` extra (xds-protos),
# which the service image leaves out, and every `shopmesh` command builds this parser.


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("mesh", help="run or inspect the local mesh (proxyless gRPC xDS)")
    commands = parser.add_subparsers(dest="mesh_command", required=True, metavar="MESH_COMMAND")

    up = commands.add_parser("up", help="start the whole local mesh; Ctrl-C stops it")
    _common(up)
    up.add_argument("--state", type=Path, default=None, help="state directory (default var/mesh)")
    up.add_argument("--subnet", type=int, default=10, help="pods get 127.<subnet>.x.y (default 10)")
    up.add_argument("--control-plane", default="127.0.0.1:15010", help="ADS address")
    up.add_argument("--ingress", default="127.0.0.1:50051", help="the ingress gateway's address")
    up.add_argument(
        "--ingress-stats", default="127.0.0.1:15090", help="where the ingress serves its Istio metrics"
    )
    up.add_argument("--prometheus", default="127.0.0.1:9090", help="the local Prometheus' address")
    up.add_argument("--no-prometheus", action="store_true", help="run the mesh without Prometheus")
    up.add_argument(
        "--postgres",
        action="store_true",
        help="the services on one local PostgreSQL, a database per service (default: SQLite files)",
    )
    up.add_argument(
        "--autoscaler-floor",
        action="store_true",
        help="run each Deployment a HorizontalPodAutoscaler scales at its minReplicas, as a cluster "
        "does at least (two order v1, inventory and payment pods; default: one, payment two)",
    )
    up.set_defaults(handler=run_up)

    xds = commands.add_parser("xds", help="print the xDS resources translated from the manifests")
    _common(xds)
    xds.add_argument("--dump", action="store_true", help="whole resources, not just their names")
    xds.add_argument("--name", help="only the resource with this name")
    xds.set_defaults(handler=run_xds)
    meshdb.register(commands)

    mesh_changes.register(commands)

    ps = commands.add_parser("ps", help="the running mesh's pods: ready, status, restarts, age")
    _running_mesh(ps)
    ps.add_argument("--json", action="store_true", help="every field, as JSON")
    ps.set_defaults(handler=run_ps)
    kill = commands.add_parser("kill", help="SIGKILL a pod's app process (the kubelet restarts it)")
    _running_mesh(kill)
    kill.add_argument("pod", help="the pod's name, as `shopmesh mesh ps` shows it")
    kill.set_defaults(handler=run_kill)
    for name, verb in (("stop-control-plane", "stop"), ("start-control-plane", "start")):
        command = commands.add_parser(name, help=f"{verb} the running mesh's control plane (xDS, CA)")
        _running_mesh(command)
        command.set_defaults(handler=run_control_plane, control_command=name)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project (default: here)")
    parser.add_argument("--overlay", default="canary", help="k8s/ and istio/ overlay (default canary)")


def _running_mesh(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--root", type=Path, default=Path.cwd(), help="the project (default: here)")
    parser.add_argument("--state", type=Path, default=None, help="its state directory (default var/mesh)")


def _command(args: argparse.Namespace, command: str, **arguments: str) -> tuple[int, Any]:
    """Send a command to the running mesh; (0, result), or (1, None) after a one-line error."""
    from shopmesh.localmesh.control import ControlError, request
    from shopmesh.localmesh.settings import MeshSettings
    from shopmesh.localmesh.state import MeshState

    state = args.state if args.state is not None else MeshSettings.for_project(args.root.resolve()).state
    try:
        return 0, request(MeshState(state.resolve()).control_socket, command, arguments)
    except ControlError as error:
        print(f"shopmesh mesh {command}: {error}", file=sys.stderr)
        return 1, None
    except OSError as error:  # a socket we may not use, a mesh gone mid-reply
        print(f"shopmesh mesh {command}: {error}", file=sys.stderr)
        return 1, None


def run_ps(args: argparse.Namespace) -> int:
    from shopmesh.localmesh.report import pod_table

    code, result = _command(args, "ps")
    if code == 0:
        print(json.dumps(result, indent=2) if args.json else pod_table(result))
    return code


def run_kill(args: argparse.Namespace) -> int:
    code, result = _command(args, "kill", pod=args.pod)
    if code == 0 and isinstance(result, dict):
        print(f"{result['pod']}: app (pid {result['pid']}) killed with SIGKILL")
    return code


def run_control_plane(args: argparse.Namespace) -> int:
    code, result = _command(args, args.control_command)
    if code == 0 and isinstance(result, dict):
        print(f"control plane: {result['control_plane']}")
    return code


def run_up(args: argparse.Namespace) -> int:
    from shopmesh.launch.localdatabases import PostgresMode
    from shopmesh.launch.postgres import PostgresMissing
    from shopmesh.localmesh.report import describe
    from shopmesh.localmesh.settings import MeshSettings
    from shopmesh.localmesh.supervisor import LocalMesh
    from shopmesh.telemetry.prometheus import PrometheusError

    settings = MeshSettings.for_project(args.root.resolve(), overlay=args.overlay)
    settings.subnet = args.subnet
    settings.control_plane = args.control_plane
    settings.ingress = args.ingress
    settings.ingress_stats = args.ingress_stats
    settings.prometheus = None if args.no_prometheus else args.prometheus
    settings.postgresql = PostgresMode() if args.postgres else None
    settings.autoscaler_floor = args.autoscaler_floor
    if args.state is not None:
        settings.state = args.state.resolve()
    # The local kubelet's events (restarts, failed probes), as `kubectl get events` shows them.
    kubelet_log = logging.getLogger("shopmesh.localmesh.kubelet")
    kubelet_log.setLevel(logging.INFO)
    events = logging.StreamHandler(sys.stdout)
    events.setFormatter(logging.Formatter("%(asctime)s kubelet %(message)s"))
    kubelet_log.addHandler(events)
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    mesh = LocalMesh(settings)
    print(f"starting the local mesh from {', '.join(str(s) for s in settings.sources)} ...", flush=True)
    try:
        try:
            mesh.start()
        except (RuntimeError, OSError, ValueError) as error:  # a port taken, a manifest refused…
            hint = " (--prometheus ADDRESS, or --no-prometheus)" if isinstance(error, PrometheusError) else ""
            hint = " (or run without --postgres)" if isinstance(error, PostgresMissing) else hint
            print(f"the local mesh did not start: {error}{hint}", file=sys.stderr, flush=True)
            return 1
        print(describe(mesh), flush=True)
        print("\nCtrl-C stops everything.", flush=True)
        while not stopping.wait(1.0):
            dead = mesh.stopped_unexpectedly()
            if dead:
                print(
                    f"stopped unexpectedly: {', '.join(dead)} (logs in {settings.state / 'logs'})", flush=True
                )
                return 1
    finally:
        print("stopping the local mesh ...", flush=True)
        mesh.stop()
        print("stopped: no process left.", flush=True)
    return 0


def run_xds(args: argparse.Namespace) -> int:
    from google.protobuf import json_format

    from shopmesh.canary.objects import running
    from shopmesh.localmesh.placement import place
    from shopmesh.localmesh.settings import LOCAL_REPLICAS, MeshSettings
    from shopmesh.localmesh.translate.translator import describe, translate
    from shopmesh.manifests.render import render

    settings = MeshSettings.for_project(args.root.resolve(), overlay=args.overlay)
    objects = running(render(settings.sources))
    snapshot = translate(objects, place(objects, replicas=LOCAL_REPLICAS))
    if not args.dump and args.name is None:
        print(json.dumps(describe(snapshot), indent=2))
        return 0
    out = {
        f"{type_url.rsplit('.', 1)[-1]} {name}": json_format.MessageToDict(message)
        for type_url, name, message in snapshot.items()
        if args.name is None or name == args.name
    }
    if not out:
        print(f"no resource named {args.name}")
        return 1
    print(json.dumps(out, indent=2))
    return 0
