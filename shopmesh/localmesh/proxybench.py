"""What a relayed call costs the mesh's proxies: CPU per call, and the latency each hop adds.

    python -m shopmesh.localmesh.proxybench [--calls 3000] [--concurrency 1 4 16] [--size 64]
                                            [--profile DIR] [--json]

Starts, on loopback and under a temporary directory, a real control plane, the cheapest app
there is (shopmesh.localmesh.proxyload's grpc.aio echo), its sidecar and the ingress gateway —
the very modules the local mesh runs — with STRICT mTLS and an AuthorizationPolicy in force.
Then, at each concurrency, the same unary calls go three ways, each from a load process of
its own (shopmesh.localmesh.proxyload):

    direct   client ─plaintext→ echo
    sidecar  client (xDS, mTLS as a mesh identity) → sidecar → echo
    ingress  client ─plaintext→ ingress ─(xDS, mTLS)→ sidecar → echo

CPU per call is each process's utime + stime (/proc/<pid>/stat) over the measured calls,
divided by their number: the sidecar's in the `sidecar` run, the ingress's in the `ingress`
run. The latency a hop adds is the difference of the percentiles: sidecar minus direct for the
sidecar, ingress minus sidecar for the ingress. Everything shares the machine's cores, the load
processes included: CPU times are the robust figures, latencies move with whatever else runs.
`--profile DIR` records each proxy with py-spy (when installed) during its run.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopmesh.bench import machine, proc_status
from shopmesh.localmesh.bootstrap import write_bootstrap
from shopmesh.localmesh.ca import IdentityFiles, spiffe_id
from shopmesh.localmesh.placement import Instance, place
from shopmesh.localmesh.processes import ManagedProcess
from shopmesh.localmesh.state import MeshState
from shopmesh.localmesh.supervisor import accepts_connections, free_port
from shopmesh.localmesh.translate.objects import MeshObjects
from shopmesh.localmesh.translate.translator import gateway_listener_name
from shopmesh.localrun import wait_serving

ECHO_PORT = 50061
CLIENT_ACCOUNT = "bench-client"
START_TIMEOUT_SECONDS = 60.0
MANIFESTS = f"""
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: shop}}
spec:
  selector: {{app: echo}}
  ports: [{{name: grpc-echo, port: {ECHO_PORT}, targetPort: {ECHO_PORT}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo, namespace: shop}}
spec:
  template:
    metadata: {{labels: {{app: echo, version: v1}}}}
    spec:
      serviceAccountName: echo
      containers: [{{name: echo, ports: [{{name: grpc, containerPort: {ECHO_PORT}}}]}}]
---
apiVersion: security.istio.io/v1
kind: PeerAuthentication
metadata: {{name: default, namespace: shop}}
spec: {{mtls: {{mode: STRICT}}}}
---
apiVersion: security.istio.io/v1
kind: AuthorizationPolicy
metadata: {{name: echo, namespace: shop}}
spec:
  selector: {{matchLabels: {{app: echo}}}}
  rules:
  - from:
    - source:
        principals:
        - cluster.local/ns/shop/sa/{CLIENT_ACCOUNT}
        - cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account
    to: [{{operation: {{paths: ["/bench.Echo/*", "/grpc.reflection.*"]}}}}]
---
apiVersion: networking.istio.io/v1
kind: Gateway
metadata: {{name: bench-gateway, namespace: shop}}
spec:
  selector: {{istio: ingressgateway}}
  servers: [{{port: {{number: 80, name: grpc, protocol: GRPC}}, hosts: ["*"]}}]
---
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {{name: bench-ingress, namespace: shop}}
spec:
  hosts: ["*"]
  gateways: [bench-gateway]
  http:
  - match: [{{uri: {{prefix: /bench.Echo/}}}}, {{uri: {{prefix: /grpc.reflection.}}}}]
    route: [{{destination: {{host: echo.shop.svc.cluster.local, port: {{number: {ECHO_PORT}}}}}}}]
"""


@dataclass
class Rig:
    """The running processes and where to call them."""

    state: MeshState
    processes: dict[str, ManagedProcess]
    echo: str  # plaintext, the app itself
    sidecar: str  # xds:/// target of the echo service
    ingress: str  # plaintext
    client_bootstrap: Path


def _python(module: str, *arguments: str) -> list[str]:
    return [sys.executable, "-m", module, *arguments]


@contextmanager
def rig(root: Path) -> Iterator[Rig]:
    """Control plane, echo, sidecar and ingress, up; all stopped on exit."""
    state = MeshState(root / "state")
    (root / "state").mkdir(parents=True)
    manifests = root / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    objects = MeshObjects.from_yaml(MANIFESTS)
    placement = place(objects, subnet=254)
    placement.save(state.placement_file)
    (pod,) = placement.instances
    gateway = gateway_listener_name(objects)
    control_plane, echo, ingress = (f"127.0.0.1:{free_port()}" for _ in range(3))
    sidecar = f"{pod.address}:{ECHO_PORT}"
    client = Instance("bench-client", "client", "shop", {}, CLIENT_ACCOUNT, "127.0.0.1", ())
    busy = [address for address in (sidecar,) if accepts_connections(address)]
    if busy:
        raise RuntimeError(f"already in use: {', '.join(busy)}")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GRPC_XDS")}
    processes: dict[str, ManagedProcess] = {}

    def spawn(name: str, argv: list[str], bootstrap: Path | None = None) -> ManagedProcess:
        env = dict(environment, **({"GRPC_XDS_BOOTSTRAP": str(bootstrap)} if bootstrap else {}))
        process = ManagedProcess(name, argv, env, state.log_file(name), root).start()
        processes[name] = process
        return process

    def identity(instance: Instance) -> IdentityFiles:
        return IdentityFiles(state.identities_directory / instance.spiffe_id.removeprefix("spiffe://"))

    try:
        spawn(
            "controlplane",
            _python("shopmesh.localmesh.controlplane", "--state", str(state.root), "--listen", control_plane,
                    "--source", str(manifests), "--identity", spiffe_id("shop", CLIENT_ACCOUNT)),
        ).wait_for_line("READY", START_TIMEOUT_SECONDS)  # fmt: skip
        bootstraps = {
            instance.name: write_bootstrap(
                state.bootstrap_file(instance.name), instance, control_plane, identity(instance)
            )
            for instance in (pod, placement.ingress, client)
        }
        spawn("echo", _python("shopmesh.localmesh.proxyload", "echo", echo)).wait_for_line(
            "STARTED", START_TIMEOUT_SECONDS
        )
        spawn(
            "sidecar",
            _python("shopmesh.localmesh.sidecar", "--listen", sidecar, "--app", echo,
                    "--identity", pod.spiffe_id, "--node-id", pod.node_id),
            bootstraps[pod.name],
        )  # fmt: skip
        spawn(
            "ingress",
            _python("shopmesh.localmesh.ingress", "--listen", ingress, "--target", f"xds:///{gateway}"),
            bootstraps[placement.ingress.name],
        )
        processes["sidecar"].wait_for_line("STARTED", START_TIMEOUT_SECONDS)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not accepts_connections(sidecar):  # it binds once its Listener arrives
            if time.monotonic() > deadline or not processes["sidecar"].running():
                raise RuntimeError(f"sidecar not listening on {sidecar}:\n{processes['sidecar'].logs()}")
            time.sleep(0.05)
        # SERVING once its mesh channel has routes and a connection to the sidecar
        wait_serving(processes["ingress"], ingress, START_TIMEOUT_SECONDS)
        yield Rig(
            state,
            processes,
            echo=echo,
            sidecar=f"xds:///echo.shop.svc.cluster.local:{ECHO_PORT}",
            ingress=ingress,
            client_bootstrap=bootstraps[client.name],
        )
    finally:
        for process in reversed(processes.values()):
            process.stop()


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)

    def nearest_rank(fraction: float) -> float | None:
        return (
            round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3) if ordered else None
        )

    return {"p50": nearest_rank(0.5), "p90": nearest_rank(0.9), "p99": nearest_rank(0.99)}


@contextmanager
def _profiled(directory: Path | None, name: str, pid: int) -> Iterator[None]:
    """Meanwhile, py-spy records `pid`'s Python stacks into `directory/name.txt` (collapsed) and
    perf counts its context switches into `directory/name.perf`, each when installed."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    commands = []
    if Path(py_spy).exists():
        commands.append(
            [py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--threads",
             "--nonblocking", "--output", str(directory / f"{name}.txt")]
        )  # fmt: skip
    if shutil.which("perf"):
        commands.append(
            ["perf", "stat", "-e", "task-clock,context-switches,cpu-migrations", "-p", str(pid),
             "-o", str(directory / f"{name}.perf")]
        )  # fmt: skip
    recorders = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
    time.sleep(1.0 if recorders else 0)  # they attach
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(30)


def measure(bench: Rig, path: str, concurrency: int, args: argparse.Namespace) -> dict[str, Any]:
    """One path at one concurrency: latencies, and CPU per call of every process."""
    target, credentials = {
        "direct": (bench.echo, "insecure"),
        "sidecar": (bench.sidecar, "xds"),
        "ingress": (bench.ingress, "insecure"),
    }[path]
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRPC_XDS")}
    env["GRPC_XDS_BOOTSTRAP"] = str(bench.client_bootstrap)
    load = subprocess.Popen(
        _python("shopmesh.localmesh.proxyload", "load", target, "--credentials", credentials,
                "--concurrency", str(concurrency), "--calls", str(args.calls),
                "--warmup", str(args.warmup), "--size", str(args.size)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert load.stdin is not None
    assert load.stdout is not None
    with ExitStack() as cleanup:
        cleanup.callback(load.kill)
        if load.stdout.readline().strip() != "WARM":
            raise RuntimeError(f"the {path} load did not warm up (exit {load.wait()})")
        watched = {name: process.pid or 0 for name, process in bench.processes.items()}
        watched["load"] = load.pid
        proxy = path if path in ("sidecar", "ingress") else None
        with _profiled(args.profile, f"{path}-c{concurrency}", watched[proxy]) if proxy else ExitStack():
            before = {name: proc_status(pid)["cpu_seconds"] for name, pid in watched.items()}
            load.stdin.write("go\n")
            load.stdin.flush()
            report = json.loads(load.stdout.readline())
            after = {name: proc_status(pid)["cpu_seconds"] for name, pid in watched.items()}
        load.stdin.close()
        load.wait(30)
    calls = len(report["latencies"])
    return {
        "path": path,
        "concurrency": concurrency,
        "calls": calls,
        "failures": report["failures"],
        "calls_per_second": round(calls / report["seconds"], 1),
        "latency_ms": _percentiles(report["latencies"]),
        "cpu_ms_per_call": {
            name: round((after[name] - before[name]) * 1000 / max(calls, 1), 3)
            for name in watched
            if name != "controlplane"
        },
    }


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per concurrency: each proxy's CPU per relayed call and the latency its hop adds."""
    by_key = {(run["path"], run["concurrency"]): run for run in runs}
    rows = []
    for concurrency in sorted({run["concurrency"] for run in runs}):
        direct, sidecar, ingress = (by_key[(p, concurrency)] for p in ("direct", "sidecar", "ingress"))

        def added(outer: dict[str, Any], inner: dict[str, Any], percentile: str) -> float:
            return round(float(outer["latency_ms"][percentile]) - float(inner["latency_ms"][percentile]), 3)

        rows.append(
            {
                "concurrency": concurrency,
                "sidecar_cpu_ms": sidecar["cpu_ms_per_call"]["sidecar"],
                "ingress_cpu_ms": ingress["cpu_ms_per_call"]["ingress"],
                "sidecar_hop_ms": {p: added(sidecar, direct, p) for p in ("p50", "p90")},
                "ingress_hop_ms": {p: added(ingress, sidecar, p) for p in ("p50", "p90")},
            }
        )
    return rows


def render(report: dict[str, Any]) -> str:
    facts = report["machine"]
    lines = [
        f"proxy bench, {report['date']}: {facts['nproc']} CPUs ({facts['cpu_model']}), load average "
        f"{facts['load_average_at_start']} at start, {report['load_average_at_end']} at end",
        f"{report['settings']['calls']} unary calls per run, {report['settings']['size']} B requests",
        "",
        f"{'path':<8} {'conc':>4} {'calls/s':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8}  CPU ms/call",
    ]
    for run in report["runs"]:
        latency = run["latency_ms"]
        cpu = "  ".join(f"{name} {value}" for name, value in run["cpu_ms_per_call"].items())
        failed = f"  FAILED {run['failures']}" if run["failures"] else ""
        lines.append(
            f"{run['path']:<8} {run['concurrency']:>4} {run['calls_per_second']:>8} {latency['p50']:>8} "
            f"{latency['p90']:>8} {latency['p99']:>8}  {cpu}{failed}"
        )
    lines += [
        "",
        f"{'conc':>4}  {'sidecar CPU':>11} {'hop p50/p90 ms':>15}   "
        f"{'ingress CPU':>11} {'hop p50/p90 ms':>15}",
    ]
    for row in report["summary"]:
        side, edge = row["sidecar_hop_ms"], row["ingress_hop_ms"]
        lines.append(
            f"{row['concurrency']:>4}  {row['sidecar_cpu_ms']:>11} {side['p50']:>7}/{side['p90']:<7}   "
            f"{row['ingress_cpu_ms']:>11} {edge['p50']:>7}/{edge['p90']:<7}"
        )
    lines.append(f"rerun: {report['command']}")
    return "\n".join(lines)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shopmesh.localmesh.proxybench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--calls", type=int, default=3000, help="measured calls per run")
    parser.add_argument("--warmup", type=int, default=300, help="calls before measuring")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--size", type=int, default=64, help="request bytes")
    parser.add_argument("--profile", type=Path, help="py-spy recordings of the proxies, here")
    parser.add_argument("--state", type=Path, help="keep certificates and logs here (default: temporary)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.calls <= 1_000_000 or not 0 <= args.warmup <= 100_000:
        parser.error("--calls must be 1..1000000 and --warmup 0..100000")
    if not all(1 <= c <= 256 for c in args.concurrency) or not 0 <= args.size <= 4 * 1024 * 1024:
        parser.error("--concurrency must be 1..256 and --size 0..4194304")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse(arguments)
    facts = machine()
    with ExitStack() as cleanup:
        root = args.state or Path(
            cleanup.enter_context(tempfile.TemporaryDirectory(prefix="shopmesh-proxybench-"))
        )
        bench = cleanup.enter_context(rig(root))
        runs = [
            measure(bench, path, concurrency, args)
            for concurrency in args.concurrency
            for path in ("direct", "sidecar", "ingress")
        ]
    report = {
        "command": shlex.join(["python", "-m", "shopmesh.localmesh.proxybench", *arguments]),
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": facts,
        "load_average_at_end": [round(value, 2) for value in os.getloadavg()],
        "settings": {"calls": args.calls, "warmup": args.warmup, "size": args.size},
        "runs": runs,
        "summary": summarise(runs),
    }
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
