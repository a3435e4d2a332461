"""Do the pieces agree? Retries against idempotency, DestinationRules against the design,
Sidecar egress and NetworkPolicies against the calls the AuthorizationPolicies allow.
Only this project can check these: they need proto/'s semantics and the whole picture.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from services.runtime.registry import declaration, declarations
from shopmesh.manifests.authz import allows, grpc_paths, grpc_port, served_contract
from shopmesh.manifests.findings import Inventory, namespace_resource
from shopmesh.manifests.mesh import CLUSTER_DOMAIN, INGRESS_GATEWAY, fqdn
from shopmesh.manifests.model import MeshObjects, Resource, Workload, selects
from shopmesh.manifests.policy import Request, authorization_policies
from shopmesh.manifests.service_registry import ServiceRegistry

#: Methods a repeat would apply twice (proto/shop/inventory/v1/inventory.proto: "Not
#: idempotent, so the mesh never retries it"). Every other method is read-only or keyed by a
#: caller-chosen id (request_id, reservation_id, idempotency_key).
NON_IDEMPOTENT_PATHS = frozenset({"/shop.inventory.v1.InventoryService/AdjustStock"})
OUTLIER_FIELDS = (
    "consecutive5xxErrors",
    "consecutiveGatewayErrors",
    "interval",
    "baseEjectionTime",
    "maxEjectionPercent",
)


def _uri_admits(match: Mapping[str, Any], path: str) -> bool:
    uri = match.get("uri")
    if not uri:
        return True
    if "exact" in uri:
        return bool(uri["exact"] == path)
    if "prefix" in uri:
        return path.startswith(uri["prefix"])
    return True  # a regex: assume it may carry the method (the safe side for this check)


def _route_admits(route: Mapping[str, Any], path: str) -> tuple[bool, bool]:
    """(may carry the path, certainly captures it: later routes never see it)."""
    matches = route.get("match") or [{}]
    admitting = [m for m in matches if _uri_admits(m, path)]
    unconditional = any(set(m) <= {"uri", "name"} for m in admitting)
    return bool(admitting), unconditional


def _retries_disabled(route: Mapping[str, Any]) -> bool:
    retries = route.get("retries")
    return retries is not None and retries.get("attempts", 0) == 0


def grpc_service_hosts(inventory: Inventory) -> dict[str, str]:
    """FQDN -> contract name, for the rendered Services in front of the declared gRPC services."""
    hosts = {fqdn(s.name, s.namespace): served_contract(inventory, s) for s in inventory.of_kind("Service")}
    return {host: contract for host, contract in hosts.items() if contract is not None}


def retries_on_non_idempotent(inventory: Inventory) -> None:
    """SHM0201: a route that can carry a non-idempotent method must say `attempts: 0`, since
    Istio retries every route by default (2 attempts, including on UNAVAILABLE)."""
    hosts = grpc_service_hosts(inventory)
    for vs in inventory.of_kind("VirtualService"):
        for host, service in hosts.items():
            routes = [
                r
                for r in vs.spec.get("http") or []
                if any(
                    fqdn(d.get("destination", {}).get("host", ""), vs.namespace) == host
                    for d in r.get("route") or []
                )
            ]
            for method in declaration(service).methods:
                if method.path not in NON_IDEMPOTENT_PATHS:
                    continue
                for route in routes:
                    carries, captures = _route_admits(route, method.path)
                    if carries and not _retries_disabled(route):
                        inventory.report(
                            "SHM0201",
                            vs,
                            f"route {route.get('name', '(unnamed)')!r} may retry {method.path}, which is not "
                            "idempotent: set retries.attempts: 0",
                        )
                    if captures:
                        break


def destination_rules(inventory: Inventory) -> None:
    """SHM0202: each gRPC service has a DestinationRule with ISTIO_MUTUAL, a connection pool
    and outlier detection on both 5xx and gateway errors."""
    rules = {fqdn(dr.spec.get("host", ""), dr.namespace): dr for dr in inventory.of_kind("DestinationRule")}
    for service in inventory.of_kind("Service"):
        if served_contract(inventory, service) is None:
            continue
        dr = rules.get(fqdn(service.name, service.namespace))
        if dr is None:
            inventory.report("SHM0202", service, "no DestinationRule for this gRPC service")
            continue
        policy = dr.spec.get("trafficPolicy") or {}
        gaps = []
        if (policy.get("tls") or {}).get("mode") != "ISTIO_MUTUAL":
            gaps.append("tls.mode ISTIO_MUTUAL")
        if not policy.get("connectionPool"):
            gaps.append("connectionPool")
        outlier = policy.get("outlierDetection") or {}
        gaps += [f"outlierDetection.{f}" for f in OUTLIER_FIELDS if f not in outlier]
        if gaps:
            inventory.report("SHM0202", dr, f"trafficPolicy lacks {', '.join(gaps)}")


def _target_port(service: Resource, workload: Workload) -> int | None:
    """The container port a Service's first port reaches on this workload."""
    ports = service.spec.get("ports") or []
    if not ports:
        return None
    target = ports[0].get("targetPort", ports[0].get("port"))
    if isinstance(target, int):
        return target
    for container in workload.containers(init=False):
        for port in container.get("ports") or []:
            if port.get("name") == target:
                return int(port["containerPort"])
    return None


def mesh_edges(inventory: MeshObjects) -> Iterator[tuple[Workload, Workload, Resource, int]]:
    """(caller, callee, callee's Service, port) for every pair of rendered workloads where the
    AuthorizationPolicies let the caller make at least one call (a gRPC method of a declared
    service, any connection to another Service's port)."""
    policies = authorization_policies(inventory, skip_invalid=True)
    for service in inventory.of_kind("Service"):
        contract = served_contract(inventory, service)
        paths: list[str | None] = [m.path for m in declaration(contract).methods] if contract else [None]
        for callee in inventory.workloads_selected(
            service.namespace, service.spec.get("selector") or {"": ""}
        ):
            port = _target_port(service, callee)
            if port is None:
                continue
            for caller in inventory.workloads:
                if any(allows(policies, callee, Request(caller.principal, port, path)) for path in paths):
                    yield caller, callee, service, port


def _egress_covers(hosts: list[str], namespace: str, target: str) -> bool:
    for entry in hosts:
        entry_namespace, _, host = entry.rpartition("/")
        if entry_namespace not in (".", "*", namespace, ""):
            continue
        if host == "*" or fqdn(host, namespace) == target:
            return True
    return False


def sidecar_egress(inventory: Inventory) -> None:
    """SHM0203 for an allowed call a Sidecar's egress omits (the call would fail with
    REGISTRY_ONLY, or reach the passthrough cluster), and KIA1004 for an egress host of the
    Sidecar's own namespace that nothing in the registry the Sidecar sees declares (Kiali
    sidecars/egress_listener_checker.go, sidecar.egress.servicenotfound): a Service (as
    `name.namespace`, `name.namespace.svc` or its FQDN) or a ServiceEntry host, each only if
    exported to the Sidecar's namespace. Hosts of other namespaces are not judged: they are
    not in the render."""
    registry = ServiceRegistry(inventory)
    sidecars = inventory.of_kind("Sidecar")
    for sidecar in sidecars:
        for egress in sidecar.spec.get("egress") or []:
            for entry in egress.get("hosts") or []:
                entry_namespace, _, host = entry.partition("/")
                if host.startswith("*") or entry_namespace not in (".", sidecar.namespace):
                    continue
                if not any(registry.lookup(sidecar.namespace, [], name) for name in _kubernetes_names(host)):
                    inventory.report(
                        "KIA1004",
                        sidecar,
                        f'This host has no matching entry in the service registry: "{entry}"',
                    )
    for caller, _callee, service, _port in mesh_edges(inventory):
        for sidecar in sidecars:
            labels = (sidecar.spec.get("workloadSelector") or {}).get("labels")
            if sidecar.namespace != caller.namespace or not selects(labels, caller.labels):
                continue
            hosts = [h for e in sidecar.spec.get("egress") or [] for h in e.get("hosts") or []]
            target = fqdn(service.name, service.namespace)
            if not _egress_covers(hosts, sidecar.namespace, target):
                inventory.report(
                    "SHM0203", sidecar, f"egress omits {target}, which {caller.owner.ref} may call"
                )


def _kubernetes_names(host: str) -> list[str]:
    """The names Kiali accepts for a Service besides its FQDN: `name.namespace` and
    `name.namespace.svc` (kubernetes.ParseHost)."""
    parts = host.split(".")
    if len(parts) == 2:
        return [host, f"{host}.svc.{CLUSTER_DOMAIN}"]
    if len(parts) == 3 and parts[2] == "svc":
        return [host, f"{host}.{CLUSTER_DOMAIN}"]
    return [host]


def _namespace_labels(inventory: Inventory, namespace: str) -> dict[str, str]:
    rendered = next((dict(n.labels) for n in inventory.of_kind("Namespace") if n.name == namespace), {})
    return {**rendered, "kubernetes.io/metadata.name": namespace}


def _peer_matches(inventory: Inventory, peer: Mapping[str, Any], policy: Resource, other: Workload) -> bool:
    if "ipBlock" in peer:
        return False
    namespace_selector = peer.get("namespaceSelector")
    if namespace_selector is None:
        in_namespace = other.namespace == policy.namespace
    else:
        in_namespace = selects(
            namespace_selector.get("matchLabels"), _namespace_labels(inventory, other.namespace)
        )
    pod_selector = peer.get("podSelector") or {}
    return in_namespace and selects(pod_selector.get("matchLabels"), other.labels)


def _network_allows(
    inventory: Inventory, direction: str, subject: Workload, other: Workload, port: int
) -> bool:
    """Kubernetes NetworkPolicy semantics, for one direction ("Ingress"/"Egress")."""
    peers_key, rules_key = ("from", "ingress") if direction == "Ingress" else ("to", "egress")
    policies = [
        p
        for p in inventory.of_kind("NetworkPolicy")
        if p.namespace == subject.namespace
        and direction in (p.spec.get("policyTypes") or ["Ingress"])
        and selects((p.spec.get("podSelector") or {}).get("matchLabels"), subject.labels)
    ]
    if not policies:
        return True
    for policy in policies:
        for rule in policy.spec.get(rules_key) or []:
            peers = rule.get(peers_key)
            ports = rule.get("ports")
            peer_ok = peers is None or any(_peer_matches(inventory, peer, policy, other) for peer in peers)
            port_ok = ports is None or any(p.get("port") in (None, port) for p in ports)
            if peer_ok and port_ok:
                return True
    return False


def network_policies(inventory: Inventory) -> None:
    """SHM0206 without a default deny; SHM0204 when a call the mesh allows is blocked;
    SHM0205 when rendered workloads may connect although the mesh allows them nothing."""
    for namespace in {w.namespace for w in inventory.workloads}:
        if not any(
            p.namespace == namespace
            and not (p.spec.get("podSelector") or {}).get("matchLabels")
            and {"Ingress", "Egress"} <= set(p.spec.get("policyTypes") or [])
            and not p.spec.get("ingress")
            and not p.spec.get("egress")
            for p in inventory.of_kind("NetworkPolicy")
        ):
            inventory.report(
                "SHM0206", namespace_resource(namespace), "no default-deny NetworkPolicy (Ingress and Egress)"
            )
    allowed_edges = {
        (caller.owner.ref, callee.owner.ref, port) for caller, callee, _s, port in mesh_edges(inventory)
    }
    for caller, callee, service, port in mesh_edges(inventory):
        if not (
            _network_allows(inventory, "Egress", caller, callee, port)
            and _network_allows(inventory, "Ingress", callee, caller, port)
        ):
            inventory.report(
                "SHM0204",
                service,
                f"NetworkPolicies block {caller.owner.ref} -> {callee.owner.ref}:{port}, "
                "which the mesh allows",
            )
    for service in inventory.of_kind("Service"):
        for callee in inventory.workloads_selected(
            service.namespace, service.spec.get("selector") or {"": ""}
        ):
            target_port = _target_port(service, callee)
            for caller in inventory.workloads:
                if (
                    caller is callee
                    or target_port is None
                    or (caller.owner.ref, callee.owner.ref, target_port) in allowed_edges
                ):
                    continue
                if _network_allows(inventory, "Egress", caller, callee, target_port) and _network_allows(
                    inventory, "Ingress", callee, caller, target_port
                ):
                    inventory.report(
                        "SHM0205",
                        service,
                        f"NetworkPolicies let {caller.owner.ref} reach {callee.owner.ref}:{target_port}, "
                        "which no AuthorizationPolicy allows",
                    )


def _gateway_routes(inventory: Inventory) -> Iterator[tuple[Resource, Mapping[str, Any], str]]:
    """(VirtualService, http route, gRPC service it routes to) for routes bound to a Gateway."""
    for vs in inventory.of_kind("VirtualService"):
        if not [g for g in vs.spec.get("gateways") or [] if g != "mesh"]:
            continue
        for route in vs.spec.get("http") or []:
            for destination in route.get("route") or []:
                host = fqdn((destination.get("destination") or {}).get("host", ""), vs.namespace)
                service = grpc_service_hosts(inventory).get(host)
                if service is not None:
                    yield vs, route, service


def _ingress_request(inventory: Inventory, service: str, path: str) -> Request | None:
    try:
        port = grpc_port(inventory, service)
    except LookupError:
        return None
    return Request(INGRESS_GATEWAY.principal, port, path)


def ingress_coherence(inventory: Inventory) -> None:
    """What the ingress gateway routes and what the ingress identity may call must agree:
    SHM0207 for a routed method the policies deny it (a customer gets PERMISSION_DENIED),
    SHM0208 for an allowed method no gateway route reaches (a dead grant)."""
    policies = authorization_policies(inventory, skip_invalid=True)
    routed: set[tuple[str, str]] = set()
    for vs, route, service in _gateway_routes(inventory):
        callees = [w for w in inventory.workloads if w.app == service]
        for path in grpc_paths(service):
            if not any(_uri_admits(match, path) for match in route.get("match") or [{}]):
                continue
            routed.add((service, path))
            request = _ingress_request(inventory, service, path)
            if request and callees and not all(allows(policies, w, request) for w in callees):
                inventory.report(
                    "SHM0207",
                    vs,
                    f"route {route.get('name', '(unnamed)')!r} exposes {path} of {service}, "
                    "which the ingress gateway may not call",
                )
    if not routed:
        return  # no gateway in this render: nothing to compare
    for service in declarations():
        callees = [w for w in inventory.workloads if w.app == service]
        for path in grpc_paths(service):
            request = _ingress_request(inventory, service, path)
            if (service, path) in routed or request is None:
                continue
            granting = [w for w in callees if allows(policies, w, request)]
            if granting:
                inventory.report(
                    "SHM0208",
                    granting[0].owner,
                    f"the ingress gateway may call {path} but no gateway route reaches it",
                )


ANALYZERS = (
    retries_on_non_idempotent,
    destination_rules,
    sidecar_egress,
    network_policies,
    ingress_coherence,
)
