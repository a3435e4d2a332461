"""Istio's evaluation of AuthorizationPolicies, and the matrix it yields.

The rules (https://istio.io/latest/docs/concepts/security/#authorization-policy and
istio/istio pilot/pkg/security/authz/builder): for the workload a request reaches, DENY
policies are evaluated first and any match denies; then, if any ALLOW policy applies to the
workload, the request must match one of them, otherwise it is denied; a workload with no ALLOW
policy allows. A policy applies when it is in the workload's namespace (or the root namespace)
and its selector matches the pod's labels; no selector means every workload there. A policy
with no rules matches nothing (so `spec: {}` denies everything as an ALLOW policy). A rule
matches when any of its `from`, any of its `to` and all of its `when` match; within a source or
operation every field present must match, a field matching when any of its values does and none
of its `not` values does. Strings match exactly, as `prefix*`, `*suffix` or `*`. A request
without a peer identity (plaintext) matches no `principals` and no `namespaces` value.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from services.runtime.registry import declaration, declarations
from shopmesh.manifests.model import CLUSTER_DOMAIN, Inventory, Resource, Workload, selects

ROOT_NAMESPACE = "istio-system"
INGRESS_PRINCIPAL = "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
#: Reflection as grpcurl 1.8.6 (v1alpha) and current clients (v1) speak it.
REFLECTION_PATHS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)
#: Health over the network: nobody needs it (the kubelet's probes go through the sidecar's
#: agent on localhost), so the matrix shows it denied to everyone.
HEALTH_PATH = "/grpc.health.v1.Health/Check"


@dataclass(frozen=True)
class Caller:
    """Who calls: a name for the table and the peer identity mTLS proves (None: plaintext)."""

    name: str
    principal: str | None

    @property
    def namespace(self) -> str | None:
        if self.principal is None:
            return None
        parts = self.principal.split("/")
        return parts[2] if len(parts) >= 5 and parts[1] == "ns" else None


def shop_principal(service_account: str, namespace: str = "shop") -> str:
    return f"{CLUSTER_DOMAIN}/ns/{namespace}/sa/{service_account}"


#: Every caller the design names, plus a foreign workload and a plaintext client.
CALLERS: tuple[Caller, ...] = (
    Caller("ingress", INGRESS_PRINCIPAL),
    Caller("order", shop_principal("order")),
    Caller("inventory", shop_principal("inventory")),
    Caller("payment", shop_principal("payment")),
    Caller("operator", shop_principal("operator")),
    Caller("other-workload", shop_principal("default", "default")),
    Caller("no-identity", None),
)


@dataclass(frozen=True)
class Request:
    caller: Caller
    path: str | None  # None: a TCP connection (no HTTP attributes)
    port: int
    method: str = "POST"


def string_matches(pattern: str, value: str) -> bool:
    """Istio's string match: exact, `prefix*`, `*suffix`, or `*` (anything, even empty)."""
    if pattern == "*":
        return True
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return value == pattern


def _field_matches(spec: Mapping[str, Any], field: str, value: str | None) -> bool | None:
    """Whether `field` / `notField` admit the value; None when neither is present."""
    values, not_values = spec.get(field), spec.get("not" + field[0].upper() + field[1:])
    if values is None and not_values is None:
        return None
    if value is None:
        # An absent attribute (no identity, no HTTP path) matches no value and no `not` value.
        return values is None
    return (values is None or any(string_matches(p, value) for p in values)) and not any(
        string_matches(p, value) for p in not_values or []
    )


HTTP_ONLY_FIELDS = ("paths", "notPaths", "methods", "notMethods", "hosts", "notHosts")


def _source_matches(source: Mapping[str, Any], caller: Caller) -> bool:
    checks = (
        _field_matches(source, "principals", caller.principal),
        _field_matches(source, "namespaces", caller.namespace),
    )
    return all(check is not False for check in checks)


def _operation_matches(operation: Mapping[str, Any], request: Request, *, deny: bool) -> bool:
    if request.path is None and any(f in operation for f in HTTP_ONLY_FIELDS):
        # A TCP connection has no HTTP attributes: Istio drops such a rule from an ALLOW
        # policy (it never matches) and keeps it matching in a DENY policy (fail closed).
        return deny
    checks = (
        _field_matches(operation, "paths", request.path),
        _field_matches(operation, "methods", request.method),
        _field_matches(operation, "ports", str(request.port)),
    )
    return all(check is not False for check in checks)


def _rule_matches(rule: Mapping[str, Any], request: Request, *, deny: bool) -> bool:
    sources = rule.get("from")
    operations = rule.get("to")
    if sources is not None and not any(
        _source_matches(s.get("source") or {}, request.caller) for s in sources
    ):
        return False
    if operations is not None and not any(
        _operation_matches(o.get("operation") or {}, request, deny=deny) for o in operations
    ):
        return False
    # `when` conditions name request attributes this model does not have; a rule with any
    # is treated as not matching an ALLOW and matching a DENY (the safe side of each).
    return not rule.get("when") or deny


def applies_to(policy: Resource, workload: Workload) -> bool:
    if policy.namespace not in (workload.namespace, ROOT_NAMESPACE):
        return False
    return selects((policy.spec.get("selector") or {}).get("matchLabels"), workload.labels)


def allowed(policies: Iterable[Resource], workload: Workload, request: Request) -> bool:
    applicable = [p for p in policies if applies_to(p, workload)]

    def matches(policy: Resource) -> bool:
        deny = policy.spec.get("action") == "DENY"
        return any(_rule_matches(rule, request, deny=deny) for rule in policy.spec.get("rules") or [])

    if any(matches(p) for p in applicable if p.spec.get("action") == "DENY"):
        return False
    allow_policies = [p for p in applicable if p.spec.get("action", "ALLOW") == "ALLOW"]
    return not allow_policies or any(matches(p) for p in allow_policies)


def grpc_paths(service: str) -> list[str]:
    """The paths one workload serves: its methods, reflection (v1, v1alpha) and health."""
    return [m.path for m in declaration(service).methods] + [*REFLECTION_PATHS, HEALTH_PATH]


@dataclass(frozen=True)
class Cell:
    caller: str
    service: str
    path: str
    allowed: bool


def grpc_port(inventory: Inventory, service: str) -> int:
    for resource in inventory.of_kind("Service"):
        if resource.name == service:
            return int((resource.spec.get("ports") or [{}])[0].get("port", 0))
    raise LookupError(f"no Service {service} in the rendered manifests")


def matrix(inventory: Inventory, callers: Sequence[Caller] = CALLERS) -> list[Cell]:
    """Every caller x every path of every service, as Istio would decide it."""
    policies = inventory.of_kind("AuthorizationPolicy")
    cells = []
    for service in declarations():
        workloads = [w for w in inventory.workloads if w.app == service]
        if not workloads:
            raise LookupError(f"no workload app={service} in the rendered manifests")
        port = grpc_port(inventory, service)
        for path in grpc_paths(service):
            for caller in callers:
                request = Request(caller, path, port)
                # Every version of a workload must agree, or the answer depends on routing.
                decisions = {allowed(policies, w, request) for w in workloads}
                cells.append(Cell(caller.name, service, path, decisions == {True}))
    return cells


def render_table(cells: Sequence[Cell], *, markdown: bool) -> str:
    callers = list(dict.fromkeys(c.caller for c in cells))
    rows = list(dict.fromkeys((c.service, c.path) for c in cells))
    decision = {(c.caller, c.service, c.path): c.allowed for c in cells}
    header = ["service", "method", *callers]
    body = [
        [service, path, *("allow" if decision[(caller, service, path)] else "deny" for caller in callers)]
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
