"""The rendered objects of one stack, indexed for the analyzers, and what they report.

Istio's analyzers look at live Pods; here the pods are the pod templates of the workloads
(Deployment, StatefulSet, ...): the pods those will create.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from shopmesh.manifests.messages import CATALOG, Level

#: Kinds whose `spec.template` is a pod template.
WORKLOAD_KINDS = frozenset({"Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"})
#: The cluster's domain (Istio's default trust domain and DNS suffix).
CLUSTER_DOMAIN = "cluster.local"


@dataclass(frozen=True)
class Resource:
    doc: Mapping[str, Any]

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
        return self.doc.get("metadata") or {}

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", ""))

    @property
    def labels(self) -> Mapping[str, str]:
        return self.metadata.get("labels") or {}

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


@dataclass(frozen=True)
class Workload:
    """A pod template, with the object that owns it."""

    owner: Resource

    @property
    def template(self) -> Mapping[str, Any]:
        return self.owner.spec.get("template") or {}

    @property
    def labels(self) -> Mapping[str, str]:
        return (self.template.get("metadata") or {}).get("labels") or {}

    @property
    def annotations(self) -> Mapping[str, str]:
        return (self.template.get("metadata") or {}).get("annotations") or {}

    @property
    def pod_spec(self) -> Mapping[str, Any]:
        return self.template.get("spec") or {}

    @property
    def namespace(self) -> str:
        return self.owner.namespace

    @property
    def service_account(self) -> str:
        return str(self.pod_spec.get("serviceAccountName") or "default")

    @property
    def principal(self) -> str:
        return f"{CLUSTER_DOMAIN}/ns/{self.namespace}/sa/{self.service_account}"

    @property
    def app(self) -> str:
        return str(self.labels.get("app", ""))

    def containers(self, *, init: bool = True) -> Iterator[Mapping[str, Any]]:
        yield from self.pod_spec.get("containers") or []
        if init:
            yield from self.pod_spec.get("initContainers") or []


def namespace_resource(namespace: str) -> Resource:
    """The Namespace a namespace-wide finding is about (whether or not it is rendered)."""
    return Resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})


def selects(selector: Mapping[str, str] | None, labels: Mapping[str, str]) -> bool:
    """A `matchLabels`-style selector; an empty one selects everything."""
    return all(labels.get(key) == value for key, value in (selector or {}).items())


@dataclass(frozen=True, order=True)
class Finding:
    code: str
    ref: str
    message: str

    @property
    def level(self) -> Level:
        return CATALOG[self.code].level

    def __str__(self) -> str:
        return f"{self.code} {self.level.value} {self.ref}: {self.message}"


@dataclass
class Inventory:
    """The objects of one stack, by kind."""

    resources: list[Resource]
    findings: list[Finding] = field(default_factory=list)

    @classmethod
    def of(cls, docs: list[dict[str, Any]]) -> Inventory:
        return cls([Resource(doc) for doc in docs])

    def report(self, code: str, resource: Resource, message: str) -> None:
        if code not in CATALOG:
            raise KeyError(f"unknown finding code {code}")
        self.findings.append(Finding(code, resource.ref, message))

    def of_kind(self, kind: str) -> list[Resource]:
        return [r for r in self.resources if r.kind == kind]

    @cached_property
    def workloads(self) -> list[Workload]:
        return [Workload(r) for r in self.resources if r.kind in WORKLOAD_KINDS and r.spec.get("template")]

    @cached_property
    def namespaces(self) -> set[str]:
        return {r.name for r in self.of_kind("Namespace")} | {
            r.namespace for r in self.resources if r.namespace
        }

    @cached_property
    def service_accounts(self) -> set[tuple[str, str]]:
        return {(r.namespace, r.name) for r in self.of_kind("ServiceAccount")}

    def services_by_fqdn(self) -> dict[str, Resource]:
        return {fqdn(r.name, r.namespace): r for r in self.of_kind("Service")}

    def workloads_selected(self, namespace: str | None, selector: Mapping[str, str] | None) -> list[Workload]:
        return [
            w
            for w in self.workloads
            if (namespace is None or w.namespace == namespace) and selects(selector, w.labels)
        ]


def fqdn(host: str, namespace: str) -> str:
    """Istio's short-name expansion: `order` in `shop` is `order.shop.svc.cluster.local`."""
    if "." in host or host == "*":
        return host
    return f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}"
