"""VirtualService → xDS routes (pilot/pkg/networking/core route translation, which grpcgen's
RDS reuses through BuildSidecarOutboundVirtualHosts), for one proxy: a match with
sourceLabels, sourceNamespace or gateways applies only where it applies (proxy.py), and a
route's `fault` goes in its typed_per_filter_config (fault.py)."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any

from envoy.config.route.v3 import route_components_pb2 as rc
from google.protobuf import wrappers_pb2

from shopmesh.localmesh.translate import TranslationError, names
from shopmesh.localmesh.translate.durations import parse_duration
from shopmesh.localmesh.translate.fault import http_fault
from shopmesh.localmesh.translate.matching import virtual_service_string
from shopmesh.localmesh.translate.proxy import SOURCE_FIELDS, Proxy, gateway_name, source_matches
from shopmesh.manifests.mesh import fqdn
from shopmesh.manifests.model import MeshObjects, Resource

MESH_GATEWAY = "mesh"
#: The HTTPMatchRequest fields enforced locally.
MATCH_FIELDS = frozenset({"name", "uri", "headers", "method", "authority", "ignoreUriCase", *SOURCE_FIELDS})

#: Istio's route retry policy when a VirtualService sets none (networking/core/route/retry:
#: DefaultPolicy). gRPC acts on the gRPC status names among them (`unavailable`,
#: `cancelled`) and ignores Envoy's HTTP-level ones, exactly as a proxyless Istio client does.
DEFAULT_RETRY_ON = "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
DEFAULT_RETRY_ATTEMPTS = 2


def bound_virtual_services(objects: MeshObjects, gateway: str, hostname: str | None = None) -> list[Resource]:
    """VirtualServices applying to `gateway` ("mesh" = sidecars) and, if given, to `hostname`.

    No `gateways` means mesh only; a gateway is named `<namespace>/<name>` or, in the
    VirtualService's own namespace, `<name>`.
    """
    out = []
    for vs in objects.of_kind("VirtualService"):
        spec = vs.spec
        namespace = vs.namespace
        gateways = [gateway_name(g, namespace) for g in spec.get("gateways") or []]
        if not gateways:
            gateways = [MESH_GATEWAY]
        if gateway not in gateways:
            continue
        hosts = [fqdn(host, namespace) for host in spec.get("hosts") or []]
        if hostname is None or hostname in hosts or "*" in hosts:
            out.append(vs)
    return sorted(out, key=lambda vs: (vs.namespace, vs.name))


def build_routes(
    objects: MeshObjects,
    virtual_services: Sequence[Resource],
    default_destination: tuple[str, int] | None,
    proxy: Proxy,
    gateways: Collection[str],
) -> list[rc.Route]:
    """The routes of one virtual host as `proxy`, a proxy of `gateways` (`mesh`: a sidecar),
    gets them: every HTTP route of the VirtualServices, in order, each match that applies to
    this proxy a route, then Istio's catch-all to the service itself when there is one (no
    VirtualService, or none matched)."""
    routes: list[rc.Route] = []
    for vs in virtual_services:
        namespace = vs.namespace
        for index, http in enumerate(vs.spec.get("http") or []):
            where = f"VirtualService {namespace}/{vs.name} http[{index}]"
            action = _route_action(objects, http, namespace, where)
            fault = http_fault(http["fault"], where) if "fault" in http else None
            for match in http.get("match") or [{}]:
                if not source_matches(match, proxy, gateways, namespace):
                    continue
                route = rc.Route(
                    name=str(http.get("name") or f"{vs.name}.{index}"),
                    match=_route_match(match, where),
                    route=action,
                )
                if fault is not None:
                    route.typed_per_filter_config[names.FAULT_FILTER].Pack(fault)
                routes.append(route)
    if default_destination is not None:
        hostname, port = default_destination
        routes.append(
            rc.Route(
                name="default",
                match=rc.RouteMatch(prefix="/"),
                route=rc.RouteAction(cluster=names.cluster(hostname, port), retry_policy=_default_retry()),
            )
        )
    return routes


def _route_match(match: Mapping[str, Any], where: str) -> rc.RouteMatch:
    unsupported = set(match) - MATCH_FIELDS
    if unsupported:
        raise TranslationError(f"{where}: match fields {sorted(unsupported)} are not enforced locally")
    route_match = rc.RouteMatch()
    uri = match.get("uri")
    if uri is None:
        route_match.prefix = "/"
    elif "exact" in uri:
        route_match.path = str(uri["exact"])
    elif "prefix" in uri:
        route_match.prefix = str(uri["prefix"])
    elif "regex" in uri:
        route_match.safe_regex.regex = str(uri["regex"])
    if match.get("ignoreUriCase"):
        route_match.case_sensitive.CopyFrom(wrappers_pb2.BoolValue(value=False))
    headers = dict(match.get("headers") or {})
    if "method" in match:
        headers[":method"] = match["method"]
    if "authority" in match:
        headers[":authority"] = match["authority"]
    for name, value in sorted(headers.items()):
        route_match.headers.append(
            rc.HeaderMatcher(name=str(name).lower(), string_match=virtual_service_string(value, where))
        )
    return route_match


def _destination_cluster(
    objects: MeshObjects, destination: Mapping[str, Any], namespace: str, where: str
) -> str:
    hostname = fqdn(str(destination["host"]), namespace)
    port = (destination.get("port") or {}).get("number")
    if port is None:
        service = objects.service_by_hostname(hostname)
        if service is None or len(service.ports) != 1:
            raise TranslationError(f"{where}: destination {hostname} needs a port number")
        port = service.ports[0].port
    return names.cluster(hostname, int(port), str(destination.get("subset") or ""))


def _route_action(
    objects: MeshObjects, http: Mapping[str, Any], namespace: str, where: str
) -> rc.RouteAction:
    unsupported = set(http) - {"name", "match", "route", "retries", "timeout", "fault"}
    if unsupported:
        raise TranslationError(f"{where}: {sorted(unsupported)} are not enforced locally")
    destinations = http.get("route") or []
    if not destinations:
        raise TranslationError(f"{where}: a route needs at least one destination")
    action = rc.RouteAction()
    if len(destinations) == 1:
        action.cluster = _destination_cluster(objects, destinations[0]["destination"], namespace, where)
    else:
        # Several destinations → weighted_clusters (route translation: weighted clusters with
        # the VirtualService's weights; a destination without weight gets 0).
        for destination in destinations:
            action.weighted_clusters.clusters.append(
                rc.WeightedCluster.ClusterWeight(
                    name=_destination_cluster(objects, destination["destination"], namespace, where),
                    weight=wrappers_pb2.UInt32Value(value=int(destination.get("weight", 0))),
                )
            )
    retries = http.get("retries")
    if retries is None:
        action.retry_policy.CopyFrom(_default_retry())
    elif int(retries.get("attempts", 0)) > 0:
        policy = rc.RetryPolicy(
            retry_on=str(retries.get("retryOn") or DEFAULT_RETRY_ON),
            num_retries=wrappers_pb2.UInt32Value(value=int(retries["attempts"])),
        )
        per_try = parse_duration(retries.get("perTryTimeout"), where)
        if per_try is not None:
            policy.per_try_timeout.CopyFrom(per_try)
        action.retry_policy.CopyFrom(policy)
    timeout = parse_duration(http.get("timeout"), where)
    if timeout is not None and timeout.ToNanoseconds() > 0:  # 0s: no timeout, as in Istio
        # gRPC reads max_stream_duration (gRFC A31); Envoy reads timeout. Istio sets both for
        # gRPC routes. (grpc-core fires it 1-2 s early: grpc/grpc#34547.)
        action.timeout.CopyFrom(timeout)
        action.max_stream_duration.max_stream_duration.CopyFrom(timeout)
        action.max_stream_duration.grpc_timeout_header_max.CopyFrom(timeout)
    return action


def _default_retry() -> rc.RetryPolicy:
    return rc.RetryPolicy(
        retry_on=DEFAULT_RETRY_ON, num_retries=wrappers_pb2.UInt32Value(value=DEFAULT_RETRY_ATTEMPTS)
    )


def virtual_host_domains(hostname: str, port: int) -> list[str]:
    """The names a client may use for a service, each alone and with `:port`
    (BuildSidecarOutboundVirtualHosts: FQDN, `<name>.<namespace>`, `<name>` within it)."""
    parts = hostname.split(".")
    short_names = [hostname, ".".join(parts[:2]), ".".join(parts[:3]), parts[0]]
    domains: list[str] = []
    for name in dict.fromkeys(short_names):
        domains.extend([name, f"{name}:{port}"])
    return domains
