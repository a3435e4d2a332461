"""`shopmesh topology --live`: Kiali's view without Kiali — the graph the traffic drew, next to
the one the AuthorizationPolicies allow.

The edges come from Kiali's own queries (shopmesh.telemetry.kiali) against any Prometheus that
scrapes Istio's metrics: the local mesh's, or a cluster's through a port-forward. Nodes are
versioned workloads (order v1 and order v2 apart) and the callers without a workload (the
ingress gateway, an unknown source). Each edge carries its requests/s, its error share under
Kiali's rule, its p95 duration and a padlock when all of it was mutual TLS. Against the
authorization matrix (shopmesh.manifests.authz) it names the edges carrying traffic no policy
allows, and the allowed calls that saw none.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from shopmesh.manifests.authz import NO_IDENTITY, OTHER_WORKLOAD, Caller, callers, matrix
from shopmesh.manifests.mesh import SPIFFE_PREFIX
from shopmesh.manifests.model import MeshObjects
from shopmesh.manifests.topology import Edge as DrawnEdge
from shopmesh.manifests.topology import Node as DrawnNode
from shopmesh.manifests.topology import call_depths, draw
from shopmesh.telemetry.kiali import Edge, Node

PADLOCK = "\U0001f512"
ERROR_COLOR, ERROR_LABEL = "#d93025", "#a50e0e"


@dataclass(frozen=True)
class PolicyCheck:
    """Observed edges against the allowed calls, by caller name (the matrix's) and service."""

    #: observed edges that no AuthorizationPolicy allows
    not_allowed: tuple[Edge, ...]
    #: allowed (caller, service) pairs no observed edge used
    idle: tuple[tuple[str, str], ...]


def caller_of(edge: Edge, known: Sequence[Caller]) -> str | None:
    """The matrix's caller an observed edge came from, by the principal mTLS proved."""
    principal = edge.source_principal.removeprefix(SPIFFE_PREFIX)
    return next((caller.name for caller in known if caller.principal == principal), None)


def check_policies(observed: Sequence[Edge], objects: MeshObjects) -> PolicyCheck:
    probes = {OTHER_WORKLOAD.name, NO_IDENTITY.name}
    allowed = {
        (cell.caller, cell.service) for cell in matrix(objects) if cell.allowed and cell.caller not in probes
    }
    known = callers(objects)
    used = set()
    not_allowed = []
    for edge in observed:
        pair = (caller_of(edge, known), edge.destination.app)
        if pair[0] is not None and pair in allowed:
            used.add(pair)
        else:
            not_allowed.append(edge)
    return PolicyCheck(tuple(not_allowed), tuple(sorted(allowed - used)))


def _rate(value: float) -> str:
    return f"{value:.3g} req/s"


def _mtls(edge: Edge) -> str:
    if edge.mtls_percent is None:
        return "?"
    return f"{PADLOCK} mTLS" if edge.mtls_percent >= 100 else f"mTLS {edge.mtls_percent:.0f} %"


def _p95(edge: Edge) -> str:
    return "-" if edge.p95_ms is None else f"{edge.p95_ms:.3g} ms"


def render_table(observed: Sequence[Edge], check: PolicyCheck) -> str:
    unallowed = {id(edge) for edge in check.not_allowed}
    header = ("source", "destination", "requests/s", "errors", "p95", "security", "policy")
    rows = [
        (
            edge.source.name,
            edge.destination.name,
            f"{edge.rate:.3g}",
            f"{edge.error_percent:.1f} %",
            _p95(edge),
            _mtls(edge),
            "NOT ALLOWED" if id(edge) in unallowed else "allowed",
        )
        for edge in observed
    ]
    widths = [max(len(row[i]) for row in (header, *rows)) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in (header, *rows)
    ]
    if not observed:
        lines.append("(no traffic in the window)")
    lines.append("")
    lines.append(
        "traffic no policy allows: "
        + (", ".join(f"{e.source.name} -> {e.destination.name}" for e in check.not_allowed) or "none")
    )
    lines.append(
        "allowed calls without traffic: " + (", ".join(f"{c} -> {s}" for c, s in check.idle) or "none")
    )
    return "\n".join(lines) + "\n"


def _key(node: Node) -> str:
    return f"{node.namespace}/{node.workload}"


def render_svg(observed: Sequence[Edge], check: PolicyCheck, *, namespace: str, window: str) -> str:
    """The observed graph, laid out as `shopmesh topology` lays out the allowed one."""
    unallowed = {id(edge) for edge in check.not_allowed}
    drawn = [
        DrawnEdge(
            _key(edge.source),
            _key(edge.destination),
            (_rate(edge.rate), f"{edge.error_percent:.1f} % errors", f"p95 {_p95(edge)}", _mtls(edge)),
            *((ERROR_COLOR, ERROR_LABEL) if id(edge) in unallowed or edge.error_rate else ()),
        )
        for edge in observed
    ]
    nodes = {node for edge in observed for node in (edge.source, edge.destination)}
    destinations = {edge.destination for edge in observed}
    # Sources nothing calls and outside the namespace (the gateway, unknown callers) go left.
    outside = sorted(n for n in nodes if n not in destinations and n.namespace != namespace)
    inside = sorted(nodes - set(outside))
    depth = call_depths([_key(n) for n in inside], drawn, roots=[_key(n) for n in outside])
    placed = [DrawnNode(_key(n), 0, True, False, n.name) for n in outside]
    placed += [DrawnNode(_key(n), depth[_key(n)], False, True, n.name) for n in inside]
    if not placed:
        placed = [DrawnNode("none", 0, True, False, "no traffic")]
    not_allowed = ", ".join(f"{e.source.name} -> {e.destination.name}" for e in check.not_allowed) or "none"
    idle = ", ".join(f"{caller} -> {service}" for caller, service in check.idle) or "none"
    return draw(
        placed,
        drawn,
        title="shopmesh: the calls Istio's metrics observed",
        heading=f"shopmesh — observed traffic (namespace {namespace}, last {window}, Kiali's queries)",
        footer=f"Red: errors, or traffic no policy allows ({not_allowed}). Allowed, no traffic: {idle}.",
    )
