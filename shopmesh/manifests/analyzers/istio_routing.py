"""VirtualServices, DestinationRules and Gateways against each other and the Services.

Upstream: istio/istio pkg/config/analysis/analyzers/virtualservice/ and destinationrule/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.mesh import fqdn
from shopmesh.manifests.model import Resource
from shopmesh.manifests.service_registry import ServiceRegistry

#: The reserved gateway name for sidecars.
MESH_GATEWAY = "mesh"


def route_destinations(vs: Resource) -> Iterator[Mapping[str, Any]]:
    """Every `destination` of every http/tcp/tls route (virtualservice/util.go getRouteDestinations)."""
    for protocol in ("http", "tcp", "tls"):
        for rule in vs.spec.get(protocol) or []:
            for route in rule.get("route") or []:
                if route.get("destination"):
                    yield route["destination"]


def mirror_destinations(vs: Resource) -> Iterator[Mapping[str, Any]]:
    """Every `mirror` and `mirrors[].destination` of the http routes (getHTTPMirrorDestinations)."""
    for rule in vs.spec.get("http") or []:
        if rule.get("mirror"):
            yield rule["mirror"]
        for mirror in rule.get("mirrors") or []:
            if mirror.get("destination"):
                yield mirror["destination"]


def _destination_rule_subsets(inventory: Inventory) -> set[tuple[str, str]]:
    return {
        (fqdn(dr.spec.get("host", ""), dr.namespace), subset.get("name", ""))
        for dr in inventory.of_kind("DestinationRule")
        for subset in dr.spec.get("subsets") or []
    }


def _export_to(resource: Resource) -> list[str]:
    return [str(value) for value in resource.spec.get("exportTo") or []]


def virtual_service_destinations(inventory: Inventory) -> None:
    """IST0101 for a destination or mirror host that the registry does not show the
    VirtualService (no Service or ServiceEntry has it, or it is not exported to its namespace),
    for a port the entry lacks, or a host+subset no DestinationRule has; IST0112 when the port
    is needed to choose. Upstream: virtualservice/destinationhosts.go (DestinationHostAnalyzer,
    checkServiceEntryPorts, with util.GetDestinationHost) and virtualservice/destinationrules.go
    (DestinationRuleAnalyzer: "host+subset in destinationrule")."""
    registry = ServiceRegistry(inventory)
    subsets = _destination_rule_subsets(inventory)
    for vs in inventory.of_kind("VirtualService"):
        for kind, destinations in (
            ("host", route_destinations(vs)),
            ("mirror host", mirror_destinations(vs)),
        ):
            for destination in destinations:
                written = str(destination.get("host", ""))
                entry = registry.lookup(vs.namespace, _export_to(vs), written)
                if entry is None:
                    inventory.report("IST0101", vs, f'Referenced {kind} not found: "{written}"')
                    continue
                host = fqdn(written, vs.namespace)
                port = (destination.get("port") or {}).get("number")
                if port is None and len(entry.ports) > 1:
                    inventory.report(
                        "IST0112",
                        vs,
                        f'This VirtualService routes to a service "{host}" that exposes multiple ports '
                        f"{list(entry.ports)}. "
                        "Specifying a port in the destination is required to disambiguate.",
                    )
                if port is not None and port not in entry.ports:
                    inventory.report("IST0101", vs, f'Referenced host:port not found: "{host}:{port}"')
                subset = destination.get("subset")
                if subset and (host, subset) not in subsets:
                    what = "host+subset" if kind == "host" else "mirror+subset"
                    inventory.report(
                        "IST0101", vs, f'Referenced {what} in destinationrule not found: "{host}+{subset}"'
                    )


def _gateway_ref(name: str, namespace: str) -> tuple[str, str]:
    gateway_namespace, _, gateway_name = name.rpartition("/")
    return (gateway_namespace or namespace, gateway_name)


def virtual_service_gateways(inventory: Inventory) -> None:
    """IST0101 for a gateway that does not exist (virtualservice/gateways.go,
    GatewayAnalyzer), and IST0132 for a VirtualService host no server of its Gateway accepts
    (same file, VirtualServiceHostNotFoundInGateway)."""
    gateways = {(g.namespace, g.name): g for g in inventory.of_kind("Gateway")}
    for vs in inventory.of_kind("VirtualService"):
        for name in vs.spec.get("gateways") or []:
            if name == MESH_GATEWAY:
                continue
            gateway = gateways.get(_gateway_ref(name, vs.namespace))
            if gateway is None:
                inventory.report("IST0101", vs, f'Referenced gateway not found: "{name}"')
                continue
            accepted = [
                h.rpartition("/")[2] for s in gateway.spec.get("servers") or [] for h in s.get("hosts") or []
            ]
            missing = [
                h for h in vs.spec.get("hosts") or [] if not any(_host_matches(a, h) for a in accepted)
            ]
            if missing:
                inventory.report(
                    "IST0132",
                    vs,
                    f"one or more host {missing} defined in VirtualService {vs.namespace}/{vs.name} "
                    f"not found in Gateway {gateway.namespace}/{gateway.name}.",
                )


def _host_matches(pattern: str, host: str) -> bool:
    if pattern == "*":
        return True
    if pattern.startswith("*."):
        return host.endswith(pattern[1:]) or host == pattern
    return pattern == host


def destination_rule_hosts_and_subsets(inventory: Inventory) -> None:
    """IST0174 for a host the registry does not show the DestinationRule (util.GetDestinationHost
    with the rule's exportTo), IST0173 for a subset no pod would be selected by. Upstream:
    destinationrule/subset.go (PodNotSelectedAnalyzer): the subset's labels merged with the
    entry's workload selector (a ServiceEntry's; none for a Service) must match some pod, in
    any namespace."""
    registry = ServiceRegistry(inventory)
    for dr in inventory.of_kind("DestinationRule"):
        entry = registry.lookup(dr.namespace, _export_to(dr), str(dr.spec.get("host", "")))
        if entry is None:
            inventory.report(
                "IST0174",
                dr,
                f"The host {dr.spec.get('host')} defined in the DestinationRule "
                "does not match any services in the mesh.",
            )
            continue
        for subset in dr.spec.get("subsets") or []:
            selector = {**entry.workload_selector, **(subset.get("labels") or {})}
            if not inventory.workloads_selected(None, selector):
                inventory.report(
                    "IST0173",
                    dr,
                    f"The Subset {subset.get('name')} defined in the DestinationRule "
                    "does not select any pods. "
                    "Which may lead to 503 UH (NoHealthyUpstream).",
                )


def mtls_conflicts(inventory: Inventory) -> None:
    """IST0113: a DestinationRule that turns mTLS off toward a namespace whose
    PeerAuthentication is STRICT. Upstream: the MTLSPolicyConflict message
    (msg/messages.yaml); the check is ours to make here, on the same meaning."""
    strict = {
        pa.namespace: pa
        for pa in inventory.of_kind("PeerAuthentication")
        if not pa.spec.get("selector") and (pa.spec.get("mtls") or {}).get("mode") == "STRICT"
    }
    for dr in inventory.of_kind("DestinationRule"):
        host_namespace = fqdn(dr.spec.get("host", ""), dr.namespace).split(".")[1:2]
        mode = ((dr.spec.get("trafficPolicy") or {}).get("tls") or {}).get("mode")
        policy = strict.get(host_namespace[0]) if host_namespace else None
        if policy is not None and mode == "DISABLE":
            inventory.report(
                "IST0113",
                dr,
                f"A DestinationRule and Policy are in conflict with regards to mTLS for host "
                f'{dr.spec.get("host")}. The DestinationRule "{dr.namespace}/{dr.name}" specifies that mTLS '
                f'must be false but the Policy object "{policy.namespace}/{policy.name}" specifies STRICT.',
            )


ANALYZERS = (
    virtual_service_destinations,
    virtual_service_gateways,
    destination_rule_hosts_and_subsets,
    mtls_conflicts,
)
