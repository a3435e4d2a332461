"""Flagger's Canaries against the rest of the stack (SHM040x).

The inventory holds what a cluster runs once Flagger initialised each Canary (linter.applied:
its primary Deployment, Services, DestinationRules and VirtualService; shopmesh/canary/
objects.py), so the other analyzers already judge Flagger's objects like hand-written ones.
These check what only a Canary can get wrong: that nothing else routes its service, that it
judges a gRPC service by gRPC statuses, and that its analysis has traffic to judge.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping

from shopmesh.canary import CanaryError
from shopmesh.canary.spec import API_VERSION, Canary, Metric, MetricTemplate, metric_templates, read_canary
from shopmesh.manifests.analyzers.istio_routing import MESH_GATEWAY, mirror_destinations, route_destinations
from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.mesh import fqdn
from shopmesh.manifests.model import Resource, port_protocol

#: Istio's label for the HTTP status; a gRPC failure is an HTTP 200 (pkg/metrics/observers/
#: istio.go's request-success-rate counts only `response_code!~"5.*"` as failure).
RESPONSE_CODE = re.compile(r"\bresponse_code\b")
GRPC_STATUS = re.compile(r"\bgrpc_response_status\b")
#: The builtin check that judges by response_code only.
BUILTIN_SUCCESS_RATE = "request-success-rate"
#: flagger-loadtester's metadata type for a command started in the background (pkg/loadtester:
#: `type` absent means cmd), what drives load; `bash` and the others block and are checks.
LOAD_TASK_TYPE = "cmd"


def _canaries(inventory: Inventory) -> Iterator[Canary]:
    for resource in inventory.of_kind("Canary"):
        if resource.api_version != API_VERSION or resource in inventory.flagger.failed:
            continue
        try:
            yield read_canary(resource)
        except CanaryError:
            continue  # reported by canaries_run


def canaries_run(inventory: Inventory) -> None:
    """SHM0400: a Canary Flagger could not initialise or analyse: its target is not a
    Deployment of the render, or selects on none of Flagger's selector labels (it could not
    make the primary), a metric names a MetricTemplate that does not exist, or is neither a
    builtin, a template nor a query (scheduler_metrics.go: "no usable metrics template and query
    were configured")."""
    for resource, reason in inventory.flagger.failed.items():
        inventory.report("SHM0400", resource, f"Flagger cannot initialise it: {reason}")
    templates = metric_templates(inventory)
    for canary in _canaries(inventory):
        for metric in canary.metrics:
            if metric.template is not None and metric.template not in templates:
                namespace, name = metric.template
                inventory.report(
                    "SHM0400",
                    canary.resource,
                    f"metric {metric.name!r}: MetricTemplate {namespace}/{name} not found",
                )
            elif metric.template is None and not metric.query and not metric.is_builtin:
                inventory.report(
                    "SHM0400",
                    canary.resource,
                    f"metric {metric.name!r} has no templateRef or query and is not a builtin "
                    "(request-success-rate, request-duration)",
                )


def _canary_hosts(canary: Canary) -> set[str]:
    names = (canary.service_name, canary.primary_name, canary.canary_name)
    return {fqdn(name, canary.namespace) for name in names}


def _bound_to_mesh(vs: Resource) -> bool:
    gateways = vs.spec.get("gateways") or []
    return not gateways or MESH_GATEWAY in gateways


def hand_written_routes(inventory: Inventory) -> None:
    """SHM0401: Flagger owns the routing of a Canary's service: its VirtualService (named after
    the service) and the primary and canary DestinationRules. Reported: a rendered
    VirtualService or DestinationRule it would overwrite (same name); a DestinationRule with
    subsets for the service, its primary or its canary (versions are Flagger's Deployments, not
    subsets); a VirtualService that routes to one of them, or claims the service's host for the
    mesh (sidecars take one VirtualService per host, and it might not be Flagger's)."""
    generated = inventory.flagger.generated
    for canary in _canaries(inventory):
        owner = f"Canary {canary.namespace}/{canary.name}"
        hosts = _canary_hosts(canary)
        for rendered, replacement in inventory.flagger.replaced.items():
            if rendered.kind in ("VirtualService", "DestinationRule") and generated.get(replacement) == (
                canary.resource.ref
            ):
                inventory.report(
                    "SHM0401", rendered, f"{owner} makes a {rendered.kind} of this name and overwrites it"
                )
        for dr in inventory.of_kind("DestinationRule"):
            host = fqdn(str(dr.spec.get("host", "")), dr.namespace)
            if dr not in generated and host in hosts and dr.spec.get("subsets"):
                inventory.report(
                    "SHM0401",
                    dr,
                    f"subsets for {host}, whose versions {owner} runs as {canary.primary_workload} and "
                    f"{canary.target_name}",
                )
        for vs in inventory.of_kind("VirtualService"):
            if vs in generated:
                continue
            routed = sorted(
                {
                    fqdn(str(d.get("host", "")), vs.namespace)
                    for d in (*route_destinations(vs), *mirror_destinations(vs))
                }
                & hosts
            )
            claimed = sorted({fqdn(str(h), vs.namespace) for h in vs.spec.get("hosts") or []} & hosts)
            if routed:
                inventory.report(
                    "SHM0401", vs, f"routes to {', '.join(routed)}, whose traffic {owner} routes"
                )
            elif claimed and _bound_to_mesh(vs):
                inventory.report(
                    "SHM0401", vs, f"claims {', '.join(claimed)} for the mesh, whose routes {owner} makes"
                )


def _grpc_service(canary: Canary) -> bool:
    service = canary.service
    protocol = port_protocol(
        canary.port,
        str(service.get("portName") or "http"),
        app_protocol=str(service["appProtocol"]) if service.get("appProtocol") else None,
    )
    return protocol in ("GRPC", "GRPC-Web")


def _judges_by_http_status(query: str) -> bool:
    return bool(RESPONSE_CODE.search(query)) and not GRPC_STATUS.search(query)


def _metric_query(metric: Metric, templates: Mapping[tuple[str, str], MetricTemplate]) -> str | None:
    if metric.template is not None:
        template = templates.get(metric.template)
        return None if template is None else template.query
    return metric.query or None


def grpc_judged_by_http_status(inventory: Inventory) -> None:
    """SHM0402: a Canary of a gRPC service (its port named grpc…, or appProtocol grpc) with a
    metric that judges by `response_code` alone: the builtin request-success-rate, or a
    template or query reading response_code and not grpc_response_status. gRPC answers every
    call with HTTP 200 and puts its status in the trailers, so such a check passes a canary
    that fails every call."""
    templates = metric_templates(inventory)
    for canary in _canaries(inventory):
        if not _grpc_service(canary):
            continue
        for metric in canary.metrics:
            query = _metric_query(metric, templates)
            builtin = metric.is_builtin and metric.name == BUILTIN_SUCCESS_RATE
            if builtin or (query is not None and _judges_by_http_status(query)):
                what = "Flagger's builtin check" if builtin else "its query"
                inventory.report(
                    "SHM0402",
                    canary.resource,
                    f"metric {metric.name!r} judges gRPC service {canary.service_name} by response_code "
                    f"only ({what}); a gRPC failure is an HTTP 200 with its status in "
                    "grpc_response_status",
                )


def _drives_load(metadata: Mapping[str, str]) -> bool:
    return metadata.get("type", LOAD_TASK_TYPE) == LOAD_TASK_TYPE and bool(metadata.get("cmd", "").strip())


def load_webhook(inventory: Inventory) -> None:
    """SHM0403: a Canary whose analysis has no load webhook: a `rollout` hook (run every
    interval) asking flagger-loadtester for a background command (`type: cmd`, the default).
    Without traffic its metrics find no values and every check fails ("Halt advancement no
    values found"); real traffic may do instead, at the weights Flagger gives the canary."""
    for canary in _canaries(inventory):
        if canary.skip_analysis:
            continue
        if not any(_drives_load(hook.metadata) for hook in canary.hooks("rollout")):
            inventory.report(
                "SHM0403",
                canary.resource,
                "no rollout webhook drives load (flagger-loadtester metadata type: cmd); without traffic "
                "the analysis finds no values and halts",
            )


ANALYZERS = (canaries_run, hand_written_routes, grpc_judged_by_http_status, load_webhook)
