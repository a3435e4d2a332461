"""Istio's service registry as `istioctl analyze` builds it from files
(pkg/config/analysis/analyzers/util/service_lookup.go InitServiceEntryHostMap and
GetDestinationHost): every ServiceEntry host and every Service, each visible from the
namespaces its exportTo names. What a VirtualService destination or a DestinationRule host
must be found in.

Visibility, as upstream: a ServiceEntry's `spec.exportTo` and a Service's
`networking.istio.io/exportTo` annotation give scopes (`*` or none: everywhere, `.`: its own
namespace, any other value: that namespace, so `~` is seen nowhere). A lookup from an object
tries the `*` scope, then its own namespace (or, when the object has an `exportTo` of its own,
each of those scopes), then the wildcard hosts (`*.example.com`) visible everywhere or in its
namespace, by suffix. A Service is entered after the ServiceEntries and wins a tie. Entries
carry the ports found and the workload selector a subset is matched with (a Service's is
empty upstream: its subsets are matched by their own labels).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from shopmesh.manifests.mesh import fqdn
from shopmesh.manifests.model import MeshObjects, Resource

EXPORT_TO_ANNOTATION = "networking.istio.io/exportTo"
EVERYWHERE, OWN_NAMESPACE = "*", "."


@dataclass(frozen=True)
class RegistryEntry:
    resource: Resource  # the ServiceEntry or Service
    ports: tuple[int, ...]
    workload_selector: Mapping[str, str]


def _scopes(export_to: Iterable[str], namespace: str) -> list[str]:
    scopes = [namespace if value == OWN_NAMESPACE else value for value in export_to]
    if not scopes or EVERYWHERE in scopes:
        return [EVERYWHERE]
    return scopes


class ServiceRegistry:
    def __init__(self, objects: MeshObjects) -> None:
        self._entries: dict[tuple[str, str], RegistryEntry] = {}
        for entry in objects.of_kind("ServiceEntry"):
            spec = entry.spec
            registered = RegistryEntry(
                entry,
                tuple(int(port.get("number", 0)) for port in spec.get("ports") or []),
                dict((spec.get("workloadSelector") or {}).get("labels") or {}),
            )
            for host in spec.get("hosts") or []:
                for scope in _scopes(map(str, spec.get("exportTo") or []), entry.namespace):
                    self._entries[(scope, fqdn(str(host), entry.namespace))] = registered
        for service in objects.of_kind("Service"):
            annotation = str(service.annotations.get(EXPORT_TO_ANNOTATION, ""))
            export_to = [value.strip() for value in annotation.split(",")] if annotation else []
            registered = RegistryEntry(
                service, tuple(int(port.get("port", 0)) for port in service.spec.get("ports") or []), {}
            )
            for scope in _scopes(export_to, service.namespace):
                self._entries[(scope, fqdn(service.name, service.namespace))] = registered

    def lookup(self, namespace: str, export_to: Iterable[str], host: str) -> RegistryEntry | None:
        """The entry an object of `namespace` (with its own `exportTo`) finds for `host`."""
        name = fqdn(host, namespace)
        scopes = [EVERYWHERE, *([namespace if s == OWN_NAMESPACE else s for s in export_to] or [namespace])]
        for scope in scopes:
            found = self._entries.get((scope, name))
            if found is not None:
                return found
        for (scope, registered), entry in self._entries.items():
            visible = scope in (EVERYWHERE, namespace)
            if visible and registered.startswith("*") and name.removeprefix("*").endswith(registered[1:]):
                return entry
        return None

    def hosts(self) -> list[str]:
        return sorted({name for _, name in self._entries})
