"""Where each workload instance runs locally: the scheduler and endpoints controller's part.

Each Deployment replica becomes an instance with its own loopback address, 127.<subnet>.<d>.<r>
(d = the Deployment's position, r = the replica's), as each pod has its own IP: the sidecar binds
that address on the container's port, so `payment` has two endpoints on port 50053 and EDS
lists them like Kubernetes Endpoints would. Deterministic from the objects, so the control plane
and the supervisor agree on it without talking to each other.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from shopmesh.localmesh.ca import spiffe_id
from shopmesh.localmesh.translate import TranslationError
from shopmesh.manifests.mesh import CLUSTER_DOMAIN, INGRESS_GATEWAY
from shopmesh.manifests.model import MeshObjects, Service, selects


@dataclass(frozen=True)
class Instance:
    """One pod: a Deployment replica with its labels, identity and address."""

    name: str  # e.g. "payment-1"
    deployment: str  # e.g. "payment"
    namespace: str
    labels: Mapping[str, str]
    service_account: str
    address: str  # the "pod IP", 127.x.y.z
    ports: tuple[int, ...]  # container ports the sidecar serves (the services' target ports)

    @property
    def app(self) -> str:
        return self.labels.get("app", self.deployment)

    @property
    def version(self) -> str:
        return self.labels.get("version", "")

    @property
    def spiffe_id(self) -> str:
        return spiffe_id(self.namespace, self.service_account)

    @property
    def node_id(self) -> str:
        """Istio's proxy id: `sidecar~<ip>~<pod>.<namespace>~<namespace>.svc.cluster.local`."""
        return f"sidecar~{self.address}~{self.name}.{self.namespace}~{self.namespace}.svc.{CLUSTER_DOMAIN}"


@dataclass(frozen=True)
class Placement:
    instances: tuple[Instance, ...]
    ingress: Instance = field(
        default_factory=lambda: Instance(
            name="istio-ingressgateway-0",
            deployment="istio-ingressgateway",
            namespace=INGRESS_GATEWAY.namespace,
            labels=dict(INGRESS_GATEWAY.labels),
            service_account=INGRESS_GATEWAY.service_account,
            address="127.0.0.1",
            ports=(),
        )
    )

    def backing(self, service: Service) -> list[Instance]:
        """The pods a Service selects (what its Endpoints would list)."""
        return [
            instance
            for instance in self.instances
            if instance.namespace == service.namespace and selects(service.selector, instance.labels)
        ]

    def pods(self) -> tuple[Instance, ...]:
        """Every pod: the workloads' and the ingress gateway's."""
        return (*self.instances, self.ingress)

    def identities(self) -> list[str]:
        return sorted({instance.spiffe_id for instance in self.pods()})

    def save(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=2))

    @classmethod
    def load(cls, path: Path) -> Placement:
        raw = json.loads(path.read_text())

        def instance(data: dict[str, Any]) -> Instance:
            return Instance(**{**data, "ports": tuple(data["ports"]), "labels": dict(data["labels"])})

        return cls(
            instances=tuple(instance(item) for item in raw["instances"]),
            ingress=instance(raw["ingress"]),
        )


#: Subnets handed out by this process: two meshes it starts never share one, even before they bind.
_handed_out: set[int] = set()


def free_subnet(low: int = 100, high: int = 250) -> int:
    """A random 127.<subnet>/16 that no socket listens in (/proc/net/tcp) and this process has not
    handed out: for meshes that run beside others (tests, benchmarks, experiments)."""
    taken = set(_handed_out)
    try:
        lines = Path("/proc/net/tcp").read_text().splitlines()[1:]
    except OSError:  # not Linux: the random choice alone
        lines = []
    for line in lines:
        local, state = line.split()[1], line.split()[3]
        address = bytes.fromhex(local.split(":")[0])[::-1]  # little-endian IPv4
        if state == "0A" and address[0] == 127:  # LISTEN
            taken.add(address[1])
    free = [subnet for subnet in range(low, high + 1) if subnet not in taken]
    if not free:
        raise RuntimeError(f"every loopback subnet 127.{low}-{high}.0.0/16 has listeners")
    subnet = random.choice(free)
    _handed_out.add(subnet)
    return subnet


def autoscaler_floors(objects: MeshObjects) -> dict[str, int]:
    """Each Deployment a HorizontalPodAutoscaler scales, and the replicas it never goes below
    (`minReplicas`, Kubernetes' default 1): what a cluster runs at its quietest."""
    floors: dict[str, int] = {}
    for autoscaler in objects.of_kind("HorizontalPodAutoscaler"):
        target = autoscaler["spec"].get("scaleTargetRef") or {}
        if target.get("kind") == "Deployment" and target.get("name"):
            floors[str(target["name"])] = int(autoscaler["spec"].get("minReplicas", 1))
    return floors


def place(objects: MeshObjects, *, subnet: int = 10, replicas: Mapping[str, int] | None = None) -> Placement:
    """An instance per replica of every Deployment; `replicas` overrides counts by Deployment name.

    The ingress gateway runs on 127.0.0.1 (where grpcurl is pointed); its pod is not in the
    rendered objects (Istio installs it), so its identity is Istio's default one.
    """
    if not 1 <= subnet <= 254:
        raise ValueError(f"subnet must be 1..254, got {subnet}")
    overrides = dict(replicas or {})
    instances: list[Instance] = []
    deployments = sorted(objects.of_kind("Deployment"), key=lambda obj: (obj.namespace, obj.name))
    for index, deployment in enumerate(deployments, start=1):
        name = deployment.name
        template = deployment["spec"]["template"]
        pod_spec = template["spec"]
        count = overrides.get(name, int(deployment["spec"].get("replicas", 1)))
        if not 0 <= count <= 50:
            raise TranslationError(f"Deployment {name}: {count} replicas is not a local-mesh size")
        ports = tuple(
            int(port["containerPort"])
            for container in pod_spec.get("containers", [])
            for port in container.get("ports", [])
            if str(port.get("name", "")).startswith("grpc")
        )
        for replica in range(count):
            instances.append(
                Instance(
                    name=f"{name}-{replica}",
                    deployment=name,
                    namespace=deployment.namespace,
                    labels=dict(template.get("metadata", {}).get("labels") or {}),
                    service_account=str(pod_spec.get("serviceAccountName") or "default"),
                    address=f"127.{subnet}.{index}.{replica + 1}",
                    ports=ports,
                )
            )
    return Placement(instances=tuple(instances))
