"""A pod of the local mesh: one workload instance, its service process and its sidecar addresses.

The service runs unchanged, as in its container, and is started like every service of the
project (shopmesh.launch.service) from its declaration. What the pod changes: the service
listens on a loopback port of its own behind the sidecar, serves metrics on the pod's address,
uses its service's database (shopmesh.launch.localdatabases), and reaches each service it calls
by an `xds:///` target, through gRPC's own xDS client (proxyless mesh).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from services.runtime.registry import declaration
from shopmesh.launch.service import ServiceProcess
from shopmesh.localmesh.istiostats import ENVOY_PROMETHEUS_PORT
from shopmesh.localmesh.placement import Instance
from shopmesh.localmesh.translate import TranslationError
from shopmesh.manifests.model import MeshObjects

#: The Kubernetes metrics port; each pod has its own address, so they never collide.
POD_METRICS_PORT = 9090
#: A pod's service calls through xDS; nothing balances load onto a stopping local pod, so it
#: does not drain, and it stops within a second.
APP_SETTINGS = {
    "SHOPMESH_CHANNEL_CREDENTIALS": "xds",
    "SHOPMESH_DRAIN_SECONDS": "0",
    "SHOPMESH_GRACE_SECONDS": "1",
}


@dataclass(frozen=True)
class Pod:
    instance: Instance
    app_address: str  # 127.0.0.1:<port>, the unchanged service

    @property
    def name(self) -> str:
        return self.instance.name

    @property
    def sidecar_addresses(self) -> list[str]:
        return [f"{self.instance.address}:{port}" for port in self.instance.ports]

    @property
    def metrics_address(self) -> str:
        return f"{self.instance.address}:{POD_METRICS_PORT}"

    def stats_address(self, index: int) -> str:
        """Where sidecar `index` serves its Istio metrics: Envoy's Prometheus port (15090) on
        the pod's address. (A pod with several gRPC ports runs a sidecar per port here, where
        Istio runs one Envoy: the next ones take the next ports.)"""
        return f"{self.instance.address}:{ENVOY_PROMETHEUS_PORT + index}"

    @property
    def app_process_name(self) -> str:
        return f"app-{self.name}"

    def sidecar_process_name(self, index: int) -> str:
        return f"sidecar-{self.name}" if index == 0 else f"sidecar-{self.name}-{index}"


def dependency_targets(objects: MeshObjects, instance: Instance) -> dict[str, str]:
    """Where the pod's service finds each service it calls: the Service of that name in its
    namespace, on its gRPC port, as an xDS target (the mesh's routes then apply)."""
    services = {(service.namespace, service.name): service for service in objects.services()}
    targets = {}
    for name in declaration(instance.app).calls:
        service = services.get((instance.namespace, name))
        ports = [port.port for port in service.ports if port.is_grpc] if service is not None else []
        if service is None or not ports:
            raise TranslationError(
                f"{instance.app} calls {name}, but namespace {instance.namespace} has no Service "
                f"{name} with a gRPC port"
            )
        targets[name] = f"xds:///{service.hostname}:{ports[0]}"
    return targets


def app_process(
    pod: Pod, objects: MeshObjects, database_url: str, log_file: Path, environment: Mapping[str, str]
) -> ServiceProcess:
    """The pod's service, not started: on its service's database `database_url` (shared by the
    service's pods, as in the cluster), its log in `log_file`, inheriting `environment` (which
    names the pod's xDS bootstrap)."""
    app = pod.instance.app
    return ServiceProcess(
        app,
        address=pod.app_address,
        metrics_address=pod.metrics_address,
        database_url=database_url,
        targets=dependency_targets(objects, pod.instance),
        log_file=log_file,
        base=environment,
        settings=APP_SETTINGS,
        name=pod.app_process_name,
    )
