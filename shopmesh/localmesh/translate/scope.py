"""Sidecar `egress.hosts` → which services a pod's client may see (istiod's SidecarScope).

istiod sends a pod only the outbound listeners of the services its Sidecar resource lists
(`<namespace>/<host>`, `.` = the Sidecar's own namespace, `*` = any); grpcgen's LDS builds
listeners from `node.SidecarScope.Services()` only. Here the control plane filters each
stream's outbound listeners by the node's labels and namespace (from its bootstrap), so a
pod asking for a service outside its scope gets no listener: its call fails, as with istiod.
The most specific Sidecar wins: one whose workloadSelector picks the pod, else its
namespace's selector-less one, else the root namespace's; none means the whole registry.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass

from shopmesh.localmesh.translate import TranslationError
from shopmesh.manifests.mesh import ROOT_NAMESPACE
from shopmesh.manifests.model import MeshObjects, selects


@dataclass(frozen=True)
class EgressScope:
    namespace: str
    selector: Mapping[str, str] | None  # None: applies to the whole namespace
    hosts: tuple[tuple[str, str], ...]  # (namespace pattern, host pattern)

    def allows(self, hostname: str) -> bool:
        """`order.shop.svc.cluster.local` against `./inventory.shop.svc.cluster.local` etc."""
        parts = hostname.split(".")
        service_namespace = parts[1] if len(parts) > 1 else ""
        for namespace_pattern, host_pattern in self.hosts:
            if namespace_pattern not in ("*", "~") and namespace_pattern != service_namespace:
                continue
            if namespace_pattern == "~":
                continue  # "~/*": nothing from this namespace
            if fnmatch.fnmatchcase(hostname, host_pattern):
                return True
        return False


def egress_scopes(objects: MeshObjects) -> list[EgressScope]:
    scopes = []
    for sidecar in objects.of_kind("Sidecar"):
        spec = sidecar.spec
        namespace = sidecar.namespace
        hosts: list[tuple[str, str]] = []
        for listener in spec.get("egress") or []:
            if listener.get("port") is not None:
                raise TranslationError(
                    f"Sidecar {namespace}/{sidecar.name}: egress ports are not enforced locally"
                )
            for entry in listener.get("hosts") or []:
                namespace_pattern, _, host = str(entry).partition("/")
                hosts.append((namespace if namespace_pattern == "." else namespace_pattern, host))
        selector = (spec.get("workloadSelector") or {}).get("labels")
        scopes.append(EgressScope(namespace, dict(selector) if selector else None, tuple(hosts)))
    return scopes


def scope_for(scopes: list[EgressScope], namespace: str, labels: Mapping[str, str]) -> EgressScope | None:
    """The Sidecar that applies to a pod, by Istio's precedence; None: the whole registry."""
    for candidate in (
        [s for s in scopes if s.namespace == namespace and s.selector and selects(s.selector, labels)],
        [s for s in scopes if s.namespace == namespace and s.selector is None],
        [s for s in scopes if s.namespace == ROOT_NAMESPACE and s.selector is None],
    ):
        if candidate:
            return candidate[0]
    return None
