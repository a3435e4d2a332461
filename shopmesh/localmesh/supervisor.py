"""Brings the whole local mesh up and down: control plane, every pod (app + sidecar), ingress.

    mesh = LocalMesh(MeshSettings.for_project(Path.cwd()))
    mesh.start()        # returns once every process serves
    print(mesh.describe())
    mesh.stop()         # nothing left: every process stopped, every port closed

Used by `shopmesh mesh up` (and so `scripts/up`) and by tests/localmesh.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.registry import declarations
from shopmesh.localmesh.bootstrap import write_bootstrap
from shopmesh.localmesh.ca import IdentityFiles, spiffe_id
from shopmesh.localmesh.placement import Instance, Placement, place
from shopmesh.localmesh.processes import ManagedProcess
from shopmesh.localmesh.sidecar import APP_RECONNECT_MAX_SECONDS
from shopmesh.localmesh.state import MeshState
from shopmesh.localmesh.translate.translator import gateway_listener_name
from shopmesh.manifests.model import MeshObjects
from shopmesh.manifests.render import render

#: Replicas run locally, by Deployment; others run their `replicas` (default 1, HPAs aside).
#: payment runs two so that outlier detection has a replica to eject and one to keep.
LOCAL_REPLICAS = {"payment": 2}
#: The Kubernetes metrics port; each pod has its own address, so they never collide.
POD_METRICS_PORT = 9090
SERVICES = ("order", "inventory", "payment")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@dataclass
class MeshSettings:
    root: Path  # the project: the services run from here
    sources: list[Path]  # what the control plane renders and watches
    state: Path  # certificates, bootstraps, logs, embedded databases
    subnet: int = 10  # pods get 127.<subnet>.x.y
    control_plane: str = "127.0.0.1:15010"
    ingress: str = "127.0.0.1:50051"
    replicas: Mapping[str, int] = field(default_factory=lambda: dict(LOCAL_REPLICAS))
    extra_identities: Sequence[str] = ()
    certificate_lifetime: float = 3600.0
    app_environment: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def for_project(cls, root: Path, overlay: str = "canary", **overrides: object) -> MeshSettings:
        """The canary stack by default (order v1 and v2), as `scripts/up` runs it."""
        sources = [root / "k8s" / "overlays" / overlay, root / "istio" / "overlays" / overlay]
        if not all((source / "kustomization.yaml").exists() for source in sources):
            sources = [root / "k8s", root / "istio"]
        return cls(root=root, sources=sources, state=root / "var" / "mesh", **overrides)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Pod:
    instance: Instance
    app_address: str  # 127.0.0.1:<port>, the unchanged service

    @property
    def sidecar_addresses(self) -> list[str]:
        return [f"{self.instance.address}:{port}" for port in self.instance.ports]

    @property
    def metrics_address(self) -> str:
        return f"{self.instance.address}:{POD_METRICS_PORT}"


class LocalMesh:
    def __init__(self, settings: MeshSettings) -> None:
        self.settings = settings
        self.state = MeshState(settings.state)
        self.objects: MeshObjects | None = None
        self.placement: Placement | None = None
        self.pods: list[Pod] = []
        self.processes: dict[str, ManagedProcess] = {}
        self.gateway_target = ""

    # -- start -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        settings = self.settings
        for directory in ("bootstrap", "logs", "db"):
            (settings.state / directory).mkdir(parents=True, exist_ok=True)
        self.objects = render(settings.sources)
        self.placement = place(self.objects, subnet=settings.subnet, replicas=settings.replicas)
        self.placement.save(self.state.placement_file)
        gateway = gateway_listener_name(self.objects)
        self.gateway_target = f"xds:///{gateway}" if gateway else ""
        pod_addresses = [f"{i.address}:{port}" for i in self.placement.instances for port in i.ports]
        busy = [
            a for a in (settings.control_plane, settings.ingress, *pod_addresses) if accepts_connections(a)
        ]
        if busy:  # checked first: readiness checks below could not tell our servers from these
            raise RuntimeError(f"already in use: {', '.join(busy)} (another mesh running? see --subnet)")

        control_plane = self._spawn(
            "controlplane",
            [
                "-m",
                "shopmesh.localmesh.controlplane",
                "--state",
                str(settings.state),
                "--listen",
                settings.control_plane,
                "--certificate-lifetime",
                str(settings.certificate_lifetime),
                *[argument for source in settings.sources for argument in ("--source", str(source))],
                *[
                    argument
                    for identity in settings.extra_identities
                    for argument in ("--identity", identity)
                ],
            ],
        )
        control_plane.wait_for_line("READY", timeout)

        self.pods = [Pod(instance, f"127.0.0.1:{free_port()}") for instance in self.placement.instances]
        for pod in self.pods:
            self.write_bootstrap(pod.instance)
        self.write_bootstrap(self.placement.ingress)

        # The first pod of each workload migrates its embedded database; the others wait, so
        # two processes never run the same migration at once.
        first = {pod.instance.app: pod for pod in reversed(self.pods)}
        for pod in first.values():
            self._spawn_app(pod)
        self._wait_apps(list(first.values()), timeout)
        rest = [pod for pod in self.pods if first[pod.instance.app] is not pod]
        for pod in rest:
            self._spawn_app(pod)
        for pod in self.pods:
            self._spawn_sidecar(pod)
        if self.gateway_target:
            self._spawn(
                "ingress",
                [
                    "-m",
                    "shopmesh.localmesh.ingress",
                    "--listen",
                    settings.ingress,
                    "--target",
                    self.gateway_target,
                ],
                bootstrap=self.state.bootstrap_file(self.placement.ingress.name),
            )
        self._wait_apps(rest, timeout)
        for pod in self.pods:
            for address in pod.sidecar_addresses:
                self._wait_listening(f"sidecar-{pod.instance.name}", address, timeout)
        if self.gateway_target:
            # its own line first: a port someone else holds would answer the TCP check
            self.processes["ingress"].wait_for_line("STARTED", timeout)
            self._wait_listening("ingress", settings.ingress, timeout)

    def identity_files(self, spiffe_uri: str) -> IdentityFiles:
        return IdentityFiles(self.state.identities_directory / spiffe_uri.removeprefix("spiffe://"))

    def write_bootstrap(self, instance: Instance) -> Path:
        return write_bootstrap(
            self.state.bootstrap_file(instance.name),
            instance,
            self.settings.control_plane,
            self.identity_files(instance.spiffe_id),
        )

    def client_bootstrap(self, namespace: str, service_account: str, name: str | None = None) -> Path:
        """A bootstrap for a client pod with this identity and no labels (no workload's
        policies or routes single it out): how tests and `shopmesh mesh` call as anyone."""
        assert self.placement is not None
        identity = spiffe_id(namespace, service_account)
        if not self.identity_files(identity).certificate_chain.exists():
            raise LookupError(f"the control plane issued no certificate for {identity}")
        client = Instance(
            name=name or f"client-{namespace}-{service_account}",
            deployment="client",
            namespace=namespace,
            labels={},
            service_account=service_account,
            address="127.0.0.1",
            ports=(),
        )
        return self.write_bootstrap(client)

    def _environment(self, bootstrap: Path | None) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("GRPC_XDS_BOOTSTRAP_CONFIG", None)
        if bootstrap is not None:
            env["GRPC_XDS_BOOTSTRAP"] = str(bootstrap)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(
        self,
        name: str,
        arguments: list[str],
        bootstrap: Path | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> ManagedProcess:
        env = self._environment(bootstrap)
        env.update(extra_env or {})
        process = ManagedProcess(
            name, [sys.executable, *arguments], env, self.state.log_file(name), self.settings.root
        ).start()
        self.processes[name] = process
        return process

    def app_environment(self, pod: Pod) -> dict[str, str]:
        """The service's configuration as its pod would have it, in mesh mode."""
        assert self.objects is not None
        app = pod.instance.app
        env = {
            "SHOPMESH_LISTEN_ADDRESS": pod.app_address,
            "SHOPMESH_METRICS_ADDRESS": pod.metrics_address,
            "SHOPMESH_DATABASE_URL": f"sqlite+aiosqlite:///{self.settings.state / 'db' / app}.db",
            "SHOPMESH_CHANNEL_CREDENTIALS": "xds",
            "SHOPMESH_DRAIN_SECONDS": "0",
            "SHOPMESH_GRACE_SECONDS": "1",
        }
        for service in self.objects.services():
            grpc_ports = [p.port for p in service.ports if p.name.startswith("grpc")]
            if service.namespace == pod.instance.namespace and grpc_ports:
                env[f"SHOPMESH_{service.name.upper()}_TARGET"] = f"xds:///{service.hostname}:{grpc_ports[0]}"
        seed = declarations()[app].seed if app in declarations() else None
        if seed is not None:
            env["SHOPMESH_SEED"] = seed
        env.update(self.settings.app_environment)
        return env

    def _spawn_app(self, pod: Pod) -> ManagedProcess:
        return self._spawn(
            f"app-{pod.instance.name}",
            ["-m", f"services.{pod.instance.app}"],
            bootstrap=self.state.bootstrap_file(pod.instance.name),
            extra_env=self.app_environment(pod),
        )

    def restart_app(self, instance_name: str, timeout: float = 30.0) -> None:
        pod = next(pod for pod in self.pods if pod.instance.name == instance_name)
        self.processes[f"app-{instance_name}"].stop()
        self._spawn_app(pod)
        self._wait_apps([pod], timeout)
        time.sleep(APP_RECONNECT_MAX_SECONDS)  # the sidecar's next reconnection attempt finds it

    def _spawn_sidecar(self, pod: Pod) -> None:
        for index, address in enumerate(pod.sidecar_addresses):
            suffix = "" if index == 0 else f"-{index}"
            self._spawn(
                f"sidecar-{pod.instance.name}{suffix}",
                [
                    "-m",
                    "shopmesh.localmesh.sidecar",
                    "--listen",
                    address,
                    "--app",
                    pod.app_address,
                    "--identity",
                    pod.instance.spiffe_id,
                    "--node-id",
                    pod.instance.node_id,
                ],
                bootstrap=self.state.bootstrap_file(pod.instance.name),
            )

    def _wait_apps(self, pods: Sequence[Pod], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for pod in pods:
            process = self.processes[f"app-{pod.instance.name}"]
            while not _serving(pod.app_address):
                if not process.running():
                    raise RuntimeError(f"{process.name} exited:\n{process.logs()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{process.name} not SERVING within {timeout}s:\n{process.logs()}")
                time.sleep(0.1)

    def _wait_listening(self, name: str, address: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while True:
            if accepts_connections(address):
                return
            process = self.processes[name]
            if not process.running():
                raise RuntimeError(f"{name} exited:\n{process.logs()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} not listening on {address} within {timeout}s:\n{process.logs()}")
            time.sleep(0.1)

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Ingress, sidecars, apps, then the control plane: each SIGTERM, SIGKILL if it lingers."""
        order = sorted(
            self.processes.values(),
            key=lambda p: ("ingress", "sidecar", "app", "controlplane").index(p.name.split("-")[0]),
        )
        for process in order:
            process.signal(15)
        for process in order:
            process.stop(timeout=5.0)
        self.processes.clear()

    # -- report ------------------------------------------------------------------------------
    def describe(self) -> str:
        assert self.placement is not None
        lines = [
            f"control plane (xDS, CA)  {self.settings.control_plane}   state {self.settings.state}",
        ]
        for pod in self.pods:
            instance = pod.instance
            lines.append(
                f"{instance.name:<22} {instance.spiffe_id:<42} sidecar {', '.join(pod.sidecar_addresses)}"
                f"  app {pod.app_address}  metrics http://{pod.metrics_address}/metrics"
            )
        if self.gateway_target:
            lines.append(
                f"ingress gateway          {self.settings.ingress} (plaintext) -> {self.gateway_target}"
            )
        lines.append(f"logs                     {self.settings.state / 'logs'}")
        lines.append("")
        lines.append("try:")
        host = self.settings.ingress
        # The grpcurl the project installs (as scripts/up --plain prints): it need not be on PATH.
        grpcurl = ".venv/bin/grpcurl"
        lines.append(f"  {grpcurl} -plaintext {host} list")
        lines.append(f"  {grpcurl} -plaintext {host} describe shop.order.v1.OrderService")
        lines.append(f"  {grpcurl} -plaintext {host} shop.inventory.v1.InventoryService/ListProducts")
        order = (
            '{"request_id": "r1", "customer_id": "c1", "payment_token": "tok_visa", '
            '"items": [{"product_id": "sku-espresso-beans", "quantity": 1}]}'
        )
        lines.append(f"  {grpcurl} -plaintext -d '{order}' {host} shop.order.v1.OrderService/CreateOrder")
        lines.append(
            f"  {grpcurl} -plaintext -H 'x-canary: true' -d '{{\"customer_id\": \"c1\"}}' {host} "
            "shop.order.v1.OrderService/ListOrders   # always order v2"
        )
        lines.append("  .venv/bin/shopmesh mesh xds   # the xDS resources served now")
        return "\n".join(lines)


def accepts_connections(address: str) -> bool:
    host, port = address.rsplit(":", 1)
    with socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, int(port))) == 0


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=0.5)
        except grpc.RpcError:
            return False
        # grpc-stubs' grpc_health stubs make health_pb2 Any: the comparison's type is said here.
        serving: bool = reply.status == health_pb2.HealthCheckResponse.SERVING
        return serving
