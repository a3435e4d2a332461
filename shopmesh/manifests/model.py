"""The rendered objects, one model for every reader: the lint and its analyzers, the
authorization matrix and the topology, and the local mesh's placement and xDS translator.

A `Resource` is one object as the API server would store it: a read-only mapping (any field can
be read as in the YAML) with names for what every reader needs. `MeshObjects` indexes a render.
A `Workload` is what Istio sees as a pod: a bare Pod, or the pod template of a controller
(Deployment, StatefulSet, ...), standing for the pods it will create. A `Service` is a
Kubernetes Service as Istio's registry sees it: its FQDN and its ports' protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import yaml

from shopmesh.manifests.mesh import fqdn, principal

#: Kinds whose `spec.template` is a pod template.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
#: Kinds without a namespace; any other object without one lands in `default`, as with
#: `kubectl apply` and `istioctl analyze` (src.SetDefaultNamespace).
CLUSTER_SCOPED_KINDS = frozenset(
    {
        "Namespace",
        "Node",
        "PersistentVolume",
        "StorageClass",
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "PriorityClass",
        "IngressClass",
        "GatewayClass",
    }
)
DEFAULT_NAMESPACE = "default"


class Resource(Mapping[str, Any]):
    """One rendered object. Equal only to itself: two identical documents are two objects."""

    __slots__ = ("doc",)
    __hash__ = object.__hash__

    def __init__(self, doc: Mapping[str, Any]) -> None:
        self.doc = doc

    def __getitem__(self, key: str) -> Any:
        return self.doc[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.doc)

    def __len__(self) -> int:
        return len(self.doc)

    def __eq__(self, other: object) -> bool:
        return self is other

    def __repr__(self) -> str:
        return f"Resource({self.ref})"

    @property
    def kind(self) -> str:
        return str(self.doc.get("kind", ""))

    @property
    def api_version(self) -> str:
        return str(self.doc.get("apiVersion", ""))

    @property
    def group(self) -> str:
        return self.api_version.rpartition("/")[0]

    @property
    def metadata(self) -> Mapping[str, Any]:
        metadata = self.doc.get("metadata")
        return metadata if isinstance(metadata, Mapping) else {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        if self.kind in CLUSTER_SCOPED_KINDS:
            return ""
        return str(self.metadata.get("namespace") or DEFAULT_NAMESPACE)

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metadata.get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.metadata.get("annotations") or {}

    @property
    def spec(self) -> Mapping[str, Any]:
        spec = self.doc.get("spec")
        return spec if isinstance(spec, Mapping) else {}

    @property
    def ref(self) -> str:
        return f"{self.kind}/{self.namespace}/{self.name}"

    @property
    def is_istio(self) -> bool:
        return self.group.endswith(".istio.io")


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A `matchLabels`-style selector: every pair is among the labels; none selects everything."""
    return all(labels.get(key) == value for key, value in (selector or {}).items())


@dataclass(frozen=True, eq=False)
class Workload:
    """A pod, or a controller's pod template, with the object that carries it."""

    owner: Resource

    @property
    def is_pod(self) -> bool:
        return self.owner.kind == "Pod"

    @property
    def pod_metadata(self) -> Mapping[str, Any]:
        if self.is_pod:
            return self.owner.metadata
        return (self.owner.spec.get("template") or {}).get("metadata") or {}

    @property
    def labels(self) -> Mapping[str, str]:
        return self.pod_metadata.get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return self.pod_metadata.get("annotations") or {}

    @property
    def pod_spec(self) -> Mapping[str, Any]:
        if self.is_pod:
            return self.owner.spec
        return (self.owner.spec.get("template") or {}).get("spec") or {}

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    @property
    def service_account(self) -> str:
        return str(self.pod_spec.get("serviceAccountName") or "default")

    @property
    def principal(self) -> str:
        return principal(self.namespace, self.service_account)

    @property
    def app(self) -> str:
        return str(self.labels.get("app", ""))

    def containers(self, *, init: bool = True) -> Iterator[Mapping[str, Any]]:
        yield from self.pod_spec.get("containers") or []
        if init:
            yield from self.pod_spec.get("initContainers") or []


#: The protocols Istio parses from a port name or appProtocol (pkg/config/protocol Parse).
ISTIO_PROTOCOLS = {
    "tcp": "TCP",
    "udp": "UDP",
    "grpc": "GRPC",
    "grpc-web": "GRPC-Web",
    "http": "HTTP",
    "http_proxy": "HTTP_PROXY",
    "http2": "HTTP2",
    "https": "HTTPS",
    "tls": "TLS",
    "mongo": "Mongo",
    "redis": "Redis",
    "mysql": "MySQL",
}
#: The appProtocol values Kubernetes standardises.
KUBERNETES_APP_PROTOCOLS = {
    "kubernetes.io/h2c": "HTTP2",
    "kubernetes.io/ws": "HTTP",
    "kubernetes.io/wss": "HTTPS",
}
#: Ports Istio treats as TCP when their name says nothing (conversion.go wellKnownPorts).
WELL_KNOWN_TCP_PORTS = frozenset({25, 53, 3306, 27017})
UNSUPPORTED_PROTOCOL = "UnsupportedProtocol"


def port_protocol(number: int, name: str, protocol: str = "TCP", app_protocol: str | None = None) -> str:
    """Istio's protocol for a Service port (pkg/config/kube/conversion.go ConvertProtocol): UDP
    is UDP; else appProtocol when set, else the name, up to its first `-` ("grpc-web" whole);
    what names no protocol is UnsupportedProtocol (sniffed), except on well-known TCP ports."""
    if protocol == "UDP":
        return "UDP"
    label = name
    if app_protocol is not None:
        label = app_protocol
        if label in KUBERNETES_APP_PROTOCOLS:
            return KUBERNETES_APP_PROTOCOLS[label]
    if label[: len("grpc-web")].lower() == "grpc-web":
        return "GRPC-Web"
    parsed = ISTIO_PROTOCOLS.get(label.split("-", 1)[0].lower(), UNSUPPORTED_PROTOCOL)
    if parsed == UNSUPPORTED_PROTOCOL and number in WELL_KNOWN_TCP_PORTS:
        return "TCP"
    return parsed


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    protocol: str = "TCP"  # the Kubernetes protocol (TCP, UDP, SCTP)
    app_protocol: str | None = None

    @property
    def istio_protocol(self) -> str:
        return port_protocol(self.port, self.name, self.protocol, self.app_protocol)

    @property
    def is_grpc(self) -> bool:
        """HTTP/2 under Istio's protocol selection: what a gRPC client can be routed over."""
        return self.istio_protocol in ("GRPC", "GRPC-Web", "HTTP2")


@dataclass(frozen=True)
class Service:
    """A Kubernetes Service, as Istio's service registry sees it."""

    resource: Resource
    ports: tuple[ServicePort, ...]

    @classmethod
    def of(cls, resource: Resource) -> Service:
        ports = tuple(
            ServicePort(
                name=str(port.get("name", "")),
                port=int(port["port"]),
                target_port=port.get("targetPort", port["port"]),
                protocol=str(port.get("protocol") or "TCP"),
                app_protocol=None if port.get("appProtocol") is None else str(port["appProtocol"]),
            )
            for port in resource.spec.get("ports") or []
        )
        return cls(resource, ports)

    @property
    def name(self) -> str:
        return self.resource.name

    @property
    def namespace(self) -> str:
        return self.resource.namespace

    @property
    def selector(self) -> Mapping[str, str]:
        return self.resource.spec.get("selector") or {}

    @property
    def hostname(self) -> str:
        return fqdn(self.name, self.namespace)


class MeshObjects:
    """Every object of one render, indexed."""

    def __init__(self, resources: Iterable[Resource | Mapping[str, Any] | None]) -> None:
        self.resources: list[Resource] = [
            r if isinstance(r, Resource) else Resource(r) for r in resources if r
        ]

    @classmethod
    def from_yaml(cls, text: str) -> MeshObjects:
        return cls(yaml.safe_load_all(text))

    def __iter__(self) -> Iterator[Resource]:
        return iter(self.resources)

    def __len__(self) -> int:
        return len(self.resources)

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == kind]

    @cached_property
    def workloads(self) -> list[Workload]:
        return [
            Workload(r)
            for r in self.resources
            if r.kind == "Pod" or (r.kind in WORKLOAD_KINDS and r.spec.get("template"))
        ]

    def workloads_selected(self, namespace: str | None, selector: Mapping[str, str] | None) -> list[Workload]:
        """The pods a selector picks, in one namespace (None: in every namespace)."""
        return [
            w
            for w in self.workloads
            if (namespace is None or w.namespace == namespace) and selects(selector, w.labels)
        ]

    @cached_property
    def namespaces(self) -> set[str]:
        rendered = {r.name for r in self.of_kind("Namespace")}
        return rendered | {r.namespace for r in self.resources if r.namespace}

    @cached_property
    def service_accounts(self) -> set[tuple[str, str]]:
        return {(r.namespace, r.name) for r in self.of_kind("ServiceAccount")}

    def services(self) -> list[Service]:
        return [Service.of(r) for r in self.of_kind("Service")]

    def services_by_fqdn(self) -> dict[str, Resource]:
        return {fqdn(r.name, r.namespace): r for r in self.of_kind("Service")}

    def service_by_hostname(self, hostname: str) -> Service | None:
        return next((service for service in self.services() if service.hostname == hostname), None)
