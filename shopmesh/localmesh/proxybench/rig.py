"""The bench's mesh: a real control plane, the echo, its sidecar and the ingress, on loopback.

The very modules the local mesh runs (shopmesh.localmesh.controlplane, .sidecar, .ingress),
with STRICT mTLS and an AuthorizationPolicy in force; the echo is this package's (peers.py).
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.ports import free_port
from shopmesh.launch.processes import ManagedProcess
from shopmesh.launch.readiness import wait_serving
from shopmesh.localmesh.bootstrap import write_bootstrap
from shopmesh.localmesh.ca import spiffe_id
from shopmesh.localmesh.istiostats import ENVOY_PROMETHEUS_PORT
from shopmesh.localmesh.placement import Instance, free_subnet, place
from shopmesh.localmesh.state import MeshState
from shopmesh.localmesh.translate.translator import gateway_listener_name
from shopmesh.manifests.model import MeshObjects

ECHO_PORT = 50061
CLIENT_ACCOUNT = "bench-client"
START_TIMEOUT_SECONDS = 60.0


def echo_manifests(principals: Sequence[str], paths: Sequence[str], port: int = ECHO_PORT) -> str:
    """An `echo` workload in namespace shop (Service, Deployment with service account `echo`,
    a gRPC port), STRICT mTLS, and an AuthorizationPolicy admitting `principals` to `paths`."""
    return f"""
apiVersion: v1
kind: Service
metadata: {{name: echo, namespace: shop}}
spec:
  selector: {{app: echo}}
  ports: [{{name: grpc-echo, port: {port}, targetPort: {port}}}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: echo, namespace: shop}}
spec:
  template:
    metadata: {{labels: {{app: echo, version: v1}}}}
    spec:
      serviceAccountName: echo
      containers: [{{name: echo, ports: [{{name: grpc, containerPort: {port}}}]}}]
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
  - from: [{{source: {{principals: {json.dumps(list(principals))}}}}}]
    to: [{{operation: {{paths: {json.dumps(list(paths))}}}}}]
"""


#: The echo, callable by the bench's client and the ingress gateway, and the gateway's route
#: to it (reflection too, from which the ingress learns the echo's method is unary).
MANIFESTS = (
    echo_manifests(
        [
            f"cluster.local/ns/shop/sa/{CLIENT_ACCOUNT}",
            "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account",
        ],
        ["/bench.Echo/*", "/grpc.reflection.*"],
    )
    + f"""---
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
)


@dataclass
class Rig:
    """The running processes and where to call them."""

    state: MeshState
    processes: dict[str, ManagedProcess]
    echo: str  # plaintext, the app itself
    sidecar: str  # xds:/// target of the echo service
    ingress: str  # plaintext
    client_bootstrap: Path
    #: Where each proxy serves its Istio metrics (none when the rig runs without them).
    stats: dict[str, str]


@contextmanager
def rig(root: Path, subnet: int | None = None, *, telemetry: bool = True) -> Iterator[Rig]:
    """Control plane, echo, sidecar and ingress, up, under `root`; all stopped on exit. The pod
    gets 127.<subnet>.1.1 (default: a random one, as the test meshes do). With `telemetry`, the
    proxies record and serve Istio's metrics, as in the local mesh."""
    state = MeshState(root / "state")
    (root / "state").mkdir(parents=True)
    manifests = root / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    objects = MeshObjects.from_yaml(MANIFESTS)
    placement = place(objects, subnet=subnet or free_subnet())
    placement.save(state.placement_file)
    (pod,) = placement.instances
    gateway = gateway_listener_name(objects)
    control_plane, echo, ingress = (f"127.0.0.1:{free_port()}" for _ in range(3))
    sidecar = f"{pod.address}:{ECHO_PORT}"
    client = Instance("bench-client", "client", "shop", {}, CLIENT_ACCOUNT, "127.0.0.1", ())
    if accepts_connections(sidecar):
        raise RuntimeError(f"already in use: {sidecar} (another bench on this subnet?)")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("GRPC_XDS")}
    processes: dict[str, ManagedProcess] = {}

    def spawn(name: str, argv: list[str], bootstrap: Path | None = None) -> ManagedProcess:
        env = dict(environment, **({"GRPC_XDS_BOOTSTRAP": str(bootstrap)} if bootstrap else {}))
        process = ManagedProcess(name, argv, env, state.log_file(name), root).start()
        processes[name] = process
        return process

    stats = (
        {"sidecar": f"{pod.address}:{ENVOY_PROMETHEUS_PORT}", "ingress": f"127.0.0.1:{free_port()}"}
        if telemetry
        else {}
    )

    def stats_arguments(proxy: str) -> list[str]:
        return ["--stats", stats[proxy], "--peer-metadata", str(state.peer_metadata_file)] if stats else []

    try:
        spawn(
            "controlplane",
            python_module("shopmesh.localmesh.controlplane", "--state", str(state.root),
                          "--listen", control_plane, "--source", str(manifests),
                          "--identity", spiffe_id("shop", CLIENT_ACCOUNT)),
        ).wait_for_line("READY", START_TIMEOUT_SECONDS)  # fmt: skip
        bootstraps = {
            instance.name: write_bootstrap(
                state.bootstrap_file(instance.name),
                instance,
                control_plane,
                state.credentials(instance, placement),
            )
            for instance in (pod, placement.ingress, client)
        }
        spawn("echo", python_module("shopmesh.localmesh.proxybench.peers", "echo", echo)).wait_for_line(
            "STARTED", START_TIMEOUT_SECONDS
        )
        spawn(
            "sidecar",
            python_module("shopmesh.localmesh.sidecar", "--listen", sidecar, "--app", echo,
                          "--identity", pod.spiffe_id, "--node-id", pod.node_id,
                          *stats_arguments("sidecar")),
            bootstraps[pod.name],
        )  # fmt: skip
        spawn(
            "ingress",
            python_module("shopmesh.localmesh.ingress", "--listen", ingress, "--target", f"xds:///{gateway}",
                          "--node-id", placement.ingress.node_id, *stats_arguments("ingress")),
            bootstraps[placement.ingress.name],
        )  # fmt: skip
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
            stats=stats,
        )
    finally:
        for process in reversed(processes.values()):
            process.stop()


def python_module(module: str, *arguments: str) -> list[str]:
    return [sys.executable, "-m", module, *arguments]
