"""The authorization matrix: every caller x every gRPC method of every declared service, decided
by the AuthorizationPolicies of a render exactly as Istio would (the model and its rules:
shopmesh/manifests/policy.py). `shopmesh authz` prints it; docs/authz.md is its Markdown.

Nothing here names a service. The rows are the declared services (services/*/declaration.py)
and their methods; the callers are the identities the render gives a meaning to: the ingress
gateway, each declared service's workloads, and every other identity a policy names, plus two
probes that nobody should ever admit, a foreign workload and a plaintext client.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from services.runtime.declaration import ServiceDeclaration
from services.runtime.registry import declaration, declarations, start_order
from shopmesh.manifests.mesh import INGRESS_GATEWAY, principal
from shopmesh.manifests.model import MeshObjects, Resource, Workload, selects
from shopmesh.manifests.policy import (
    Attribute,
    AuthorizationPolicy,
    Pattern,
    Request,
    WorkloadPolicies,
    authorization_policies,
)

#: Reflection as grpcurl 1.8.6 (v1alpha) and current clients (v1) speak it.
REFLECTION_PATHS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
#: Health over the network: nobody needs it (the kubelet's probes go through the sidecar's
#: agent on localhost), so the matrix shows it denied to everyone.
HEALTH_PATH = "/grpc.health.v1.Health/Check"
INGRESS = "ingress"


@dataclass(frozen=True)
class Caller:
    """Who calls: a name for the table and the peer identity mTLS proves (None: plaintext)."""

    name: str
    principal: str | None


#: The probes: an identity of the mesh that no policy names, and no identity at all.
OTHER_WORKLOAD = Caller("other-workload", principal("default", "default"))
NO_IDENTITY = Caller("no-identity", None)


def service_order() -> list[ServiceDeclaration]:
    """The declared services by call depth (those nobody calls first), then by name."""
    start_order()  # refuses services that call each other in a cycle
    callers_of = {
        name: [d.name for d in declarations().values() if name in d.calls] for name in declarations()
    }

    @functools.cache
    def depth(name: str) -> int:
        return 1 + max((depth(caller) for caller in callers_of[name]), default=-1)

    return sorted(declarations().values(), key=lambda d: (depth(d.name), d.name))


def _named_principals(policies: Iterable[AuthorizationPolicy]) -> list[str]:
    """Every identity a policy names exactly, in the order they first appear."""
    named = [
        value
        for policy in policies
        for rule in policy.rules
        for condition in rule.conditions
        if condition.attribute is Attribute.SOURCE_PRINCIPAL
        for value in (*condition.values, *condition.not_values)
        if Pattern.of(value).kind == "exact"
    ]
    return list(dict.fromkeys(named))


def _ingress_is_bound(objects: MeshObjects) -> bool:
    return any(
        selects(gateway.spec.get("selector") or {"": ""}, INGRESS_GATEWAY.labels)
        for gateway in objects.of_kind("Gateway")
    )


def callers(objects: MeshObjects) -> list[Caller]:
    """The matrix's columns: the ingress gateway (when a Gateway or a policy involves it),
    the declared services by call depth, every other identity a policy names (by its
    ServiceAccount's name, or whole when that is ambiguous), then the two probes."""
    named = _named_principals(authorization_policies(objects))
    found: list[Caller] = []
    if _ingress_is_bound(objects) or INGRESS_GATEWAY.principal in named:
        found.append(Caller(INGRESS, INGRESS_GATEWAY.principal))
    for declared in service_order():
        for identity in dict.fromkeys(w.principal for w in _workloads_of(objects, declared.name)):
            found.append(Caller(declared.name, identity))
    others = [p for p in named if p not in {c.principal for c in found}]
    short = [p.rpartition("/")[2] for p in others]
    clashing = {s for s in short if short.count(s) > 1} | {c.name for c in found}
    found += sorted(
        (Caller(s if s not in clashing else p, p) for s, p in zip(short, others, strict=True)),
        key=lambda caller: caller.name,
    )
    return [*found, OTHER_WORKLOAD, NO_IDENTITY]


def _workloads_of(objects: MeshObjects, service: str) -> list[Workload]:
    return [w for w in objects.workloads if w.app == service]


def grpc_paths(service: str) -> list[str]:
    """The paths one workload serves: its methods, reflection (v1, v1alpha) and health."""
    return [m.path for m in declaration(service).methods] + [*REFLECTION_PATHS, HEALTH_PATH]


def served_contract(objects: MeshObjects, service: Resource) -> str | None:
    """The declared gRPC service a Service fronts: the one its pods run (their `app` label),
    or, when it selects none, the one it is named after. So Flagger's `order-primary` and
    `order-canary` front order as the Service `order` does."""
    selector = service.spec.get("selector")
    apps = {w.app for w in objects.workloads_selected(service.namespace, selector)} if selector else set()
    declared = sorted(apps & set(declarations()))
    if len(declared) == 1:
        return declared[0]
    return service.name if not declared and service.name in declarations() else None


def grpc_port(objects: MeshObjects, service: str) -> int:
    """The port of a service's Service that gRPC is routed over."""
    for candidate in objects.services():
        if candidate.name == service:
            grpc = [p for p in candidate.ports if p.is_grpc]
            if grpc:
                return grpc[0].port
    raise LookupError(f"no Service {service} with a gRPC port in the rendered manifests")


def allows(policies: Sequence[AuthorizationPolicy], workload: Workload, request: Request) -> bool:
    """Istio's decision for one request reaching one workload."""
    return WorkloadPolicies.select(policies, workload.namespace, workload.labels).allows(request)


@dataclass(frozen=True)
class Cell:
    caller: str
    service: str
    path: str
    allowed: bool


def matrix(objects: MeshObjects, columns: Sequence[Caller] | None = None) -> list[Cell]:
    """Every caller x every path of every declared service, as Istio would decide it."""
    policies = authorization_policies(objects)
    columns = callers(objects) if columns is None else columns
    cells = []
    for service in declarations():
        workloads = _workloads_of(objects, service)
        if not workloads:
            raise LookupError(f"no workload app={service} in the rendered manifests")
        port = grpc_port(objects, service)
        selected = [WorkloadPolicies.select(policies, w.namespace, w.labels) for w in workloads]
        for path in grpc_paths(service):
            for caller in columns:
                request = Request(caller.principal, port, path)
                # Every version of a workload must agree, or the answer depends on routing.
                decisions = {policies_of.allows(request) for policies_of in selected}
                cells.append(Cell(caller.name, service, path, decisions == {True}))
    return cells


def render_table(cells: Sequence[Cell], *, markdown: bool) -> str:
    columns = list(dict.fromkeys(c.caller for c in cells))
    rows = list(dict.fromkeys((c.service, c.path) for c in cells))
    decision = {(c.caller, c.service, c.path): c.allowed for c in cells}
    header = ["service", "method", *columns]
    body = [
        [service, path, *("allow" if decision[(caller, service, path)] else "deny" for caller in columns)]
        for service, path in rows
    ]
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += [
            "| "
            + " | ".join([r[0], f"`{r[1]}`", *("**allow**" if v == "allow" else "deny" for v in r[2:])])
            + " |"
            for r in body
        ]
        return "\n".join(lines) + "\n"
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return (
        "\n".join(
            "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
            for row in [header, *body]
        )
        + "\n"
    )
