"""VirtualServices, DestinationRules and Gateways against each other and the Services.

Upstream: istio/istio pkg/config/analysis/analyzers/virtualservice/ and destinationrule/.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.mesh import fqdn
from shopmesh.manifests.model import Resource, selects

#: The reserved gateway name for sidecars.
MESH_GATEWAY = "mesh"


def route_destinations(vs: Resource) -> Iterator[Mapping[str, Any]]:
    """Every `destination` of every http/tcp/tls route (virtualservice/util.go getRouteDestinations)."""
    for protocol in ("http", "tcp", "tls"):
        for rule in vs.spec.get(protocol) or []:
            for route in rule.get("route") or []:
                if route.get("destination"):
                    yield route["destination"]


def _destination_rule_subsets(inventory: Inventory) -> set[tuple[str, str]]:
    return {
        (fqdn(dr.spec.get("host", ""), dr.namespace), subset.get("name", ""))
        for dr in inventory.of_kind("DestinationRule")
        for subset in dr.spec.get("subsets") or []
    }


def virtual_service_destinations(inventory: Inventory) -> None:
    """IST0101 for a destination host, host:port or host+subset that does not exist; IST0112
    when the port is needed to choose. Upstream: virtualservice/destinationhosts.go
    (DestinationHostAnalyzer, checkServiceEntryPorts) and virtualservice/destinationrules.go
    (DestinationRuleAnalyzer: "host+subset in destinationrule")."""
    services = inventory.services_by_fqdn()
    subsets = _destination_rule_subsets(inventory)
    for vs in inventory.of_kind("VirtualService"):
        for destination in route_destinations(vs):
            host = fqdn(destination.get("host", ""), vs.namespace)
            service = services.get(host)
            if service is None:
                inventory.report("IST0101", vs, f'Referenced host not found: "{destination.get("host")}"')
                continue
            ports = [p.get("port") for p in service.spec.get("ports") or []]
            port = (destination.get("port") or {}).get("number")
            if port is None and len(ports) > 1:
                inventory.report(
                    "IST0112",
                    vs,
                    f'This VirtualService routes to a service "{host}" that exposes multiple ports {ports}. '
                    "Specifying a port in the destination is required to disambiguate.",
                )
            if port is not None and port not in ports:
                inventory.report("IST0101", vs, f'Referenced host:port not found: "{host}:{port}"')
            subset = destination.get("subset")
            if subset and (host, subset) not in subsets:
                inventory.report(
                    "IST0101", vs, f'Referenced host+subset in destinationrule not found: "{host}+{subset}"'
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
    """IST0174 for a host that is no Service, IST0173 for a subset no pod would be selected by.
    Upstream: destinationrule/subset.go (PodNotSelectedAnalyzer): the subset's labels merged
    with the service's selector must match some pod."""
    services = inventory.services_by_fqdn()
    for dr in inventory.of_kind("DestinationRule"):
        host = fqdn(dr.spec.get("host", ""), dr.namespace)
        service = services.get(host)
        if service is None:
            inventory.report(
                "IST0174",
                dr,
                f"The host {dr.spec.get('host')} defined in the DestinationRule "
                "does not match any services in the mesh.",
            )
            continue
        for subset in dr.spec.get("subsets") or []:
            selector = {**(service.spec.get("selector") or {}), **(subset.get("labels") or {})}
            if not any(
                selects(selector, w.labels) for w in inventory.workloads_selected(service.namespace, None)
            ):
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
