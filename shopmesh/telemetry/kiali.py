"""Kiali's graph, from the same queries Kiali runs against Prometheus.

The queries are Kiali's own, rendered as its code renders them for a namespace's workload
graph with ambient off (kiali/kiali, commit d733a096, graph/telemetry/istio/istio.go
`buildNamespaceTrafficMap`, appender/security_policy.go, appender/response_time.go): request
traffic reported by destinations and by sources, the security policy from destination
telemetry, and the 95th percentile of the duration. `graph()` turns their answers into
versioned-workload nodes and edges the way Kiali does: a series missing one of the group-by
labels is skipped, the first reporter to describe an edge wins (destination first), and an
edge's error share follows Kiali's rule for gRPC (`util.HandleResponseCode`,
`graph/protocol.go addToMetadataGrpc`): a gRPC status other than "0", an HTTP 4xx/5xx, or no
response at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from shopmesh.telemetry.query import PrometheusClient, Sample

#: Kiali's default graph duration (graph/options.go `defaultDuration "10m"`).
DEFAULT_DURATION_SECONDS = 600
#: Kiali's default response-time quantile (appender.go `defaultQuantile = 0.95`).
DEFAULT_QUANTILE = 0.95

#: istio.go:144, verbatim.
GROUP_BY = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,"
    "destination_service_name,destination_workload_namespace,destination_workload,"
    "destination_canonical_service,destination_canonical_revision,request_protocol,response_code,"
    "grpc_response_status,response_flags"
)
#: security_policy.go:62, verbatim.
SECURITY_GROUP_BY = (
    "source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,source_principal,destination_cluster,destination_service_namespace,"
    "destination_service_name,destination_workload_namespace,destination_workload,"
    "destination_canonical_service,destination_canonical_revision,destination_principal,"
    "connection_security_policy"
)
#: response_time.go:132, verbatim.
RESPONSE_TIME_GROUP_BY = (
    "le,source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,"
    "destination_service_name,destination_workload_namespace,destination_workload,"
    "destination_canonical_service,destination_canonical_revision,request_protocol"
)
#: Labels a request series must carry, or Kiali skips it (istio.go, "missing expected TS labels").
_REQUIRED = tuple(
    name
    for name in GROUP_BY.split(",")
    if name not in ("source_cluster", "destination_cluster", "grpc_response_status")
)


def graph_queries(namespace: str, duration_seconds: int = DEFAULT_DURATION_SECONDS) -> list[str]:
    """The request-traffic queries of a namespace graph, in Kiali's order: unserviced requests
    into the namespace, then destination telemetry, then source telemetry (istio.go:141-189)."""
    window = f"[{duration_seconds}s]"
    unserviced = (
        f'reporter="source",source_workload_namespace!="{namespace}",destination_workload_namespace="unknown",'
        f'destination_workload="unknown",destination_service=~"^.+\\\\.{namespace}\\\\..+$"'
    )
    return [
        f"sum(rate(istio_requests_total{{{selector}}} {window})) by ({GROUP_BY}) > 0"
        for selector in (
            unserviced,
            f'reporter="destination",destination_workload_namespace="{namespace}"',
            f'reporter="source",source_workload_namespace="{namespace}"',
        )
    ]


def security_queries(namespace: str, duration_seconds: int = DEFAULT_DURATION_SECONDS) -> list[str]:
    """Destination telemetry, which alone reports the security policy (security_policy.go)."""
    return [
        f"(sum(rate(istio_requests_total{{{selector}}}[{duration_seconds}s])) by ({SECURITY_GROUP_BY}) > 0)"
        for selector in (
            f'reporter="destination",source_workload_namespace!="{namespace}",destination_service_namespace="{namespace}"',
            f'reporter="destination",source_workload_namespace="{namespace}"',
        )
    ]


def response_time_queries(
    namespace: str, duration_seconds: int = DEFAULT_DURATION_SECONDS, quantile: float = DEFAULT_QUANTILE
) -> list[str]:
    """The duration quantile, destination proxies first ("so must come first")."""
    return [
        f"histogram_quantile({quantile:g}, sum(rate(istio_request_duration_milliseconds_bucket{{{selector}}}"
        f"[{duration_seconds}s])) by ({RESPONSE_TIME_GROUP_BY})) > 0"
        for selector in (
            f'reporter="destination",destination_service_namespace="{namespace}"',
            f'reporter="source",source_workload_namespace="{namespace}"',
        )
    ]


def kiali_code(labels: Mapping[str, str]) -> str:
    """The code Kiali files a request under (util.HandleResponseCode): "-" for no response; the
    gRPC status for gRPC, unless the HTTP code is itself an error; the HTTP code otherwise."""
    code = labels.get("response_code", "")
    if code == "0":
        return "-"
    grpc_status = labels.get("grpc_response_status", "")
    if labels.get("request_protocol") != "grpc" or _is_http_error(code) or not grpc_status:
        return code
    return grpc_status


def is_error(labels: Mapping[str, str]) -> bool:
    """Kiali's error rule for an edge's requests (addToMetadataGrpc / addToMetadataHttp)."""
    code = kiali_code(labels)
    if code == "-":
        return True
    if len(code) == 3:
        return _is_http_error(code)
    return labels.get("request_protocol") == "grpc" and code not in ("0", "")


def _is_http_error(code: str) -> bool:
    return code.startswith(("4", "5")) and len(code) == 3


@dataclass(frozen=True, order=True)
class Node:
    """A versioned workload (Kiali's versioned-app node with a known workload), or `unknown`."""

    namespace: str
    workload: str
    app: str = ""  # canonical service
    version: str = ""  # canonical revision

    @property
    def name(self) -> str:
        if self.workload == "unknown":
            return "unknown"
        return f"{self.app} {self.version}" if self.app and self.version != "latest" else self.workload


@dataclass
class Edge:
    source: Node
    destination: Node
    #: requests/s by Kiali's code ("0", "14", "200", "-"): kept apart to show and to sum
    rates: dict[str, float] = field(default_factory=dict)
    error_rate: float = 0.0
    #: the share of requests/s carried over mutual TLS, 0-100 (None: no security telemetry)
    mtls_percent: float | None = None
    p95_ms: float | None = None
    source_principal: str = ""
    #: the destination service this edge reached (its `destination_service_name`)
    service: str = ""

    @property
    def rate(self) -> float:
        return sum(self.rates.values())

    @property
    def error_percent(self) -> float:
        return 100.0 * self.error_rate / self.rate if self.rate else 0.0


def _node(labels: Mapping[str, str], side: str) -> Node:
    return Node(
        namespace=labels.get(f"{side}_workload_namespace", "unknown"),
        workload=labels.get(f"{side}_workload", "unknown"),
        app=labels.get(f"{side}_canonical_service", ""),
        version=labels.get(f"{side}_canonical_revision", ""),
    )


def _key(labels: Mapping[str, str]) -> tuple[tuple[str, str], tuple[str, str]]:
    return (
        (labels.get("source_workload_namespace", ""), labels.get("source_workload", "")),
        (labels.get("destination_workload_namespace", ""), labels.get("destination_workload", "")),
    )


def edges_from(
    traffic: Iterable[Sample], security: Iterable[Sample] = (), response_times: Iterable[Sample] = ()
) -> list[Edge]:
    """Kiali's edges from the answers to its queries (each iterable in Kiali's query order)."""
    edges: dict[tuple[tuple[str, str], tuple[str, str]], Edge] = {}
    seen: set[tuple[object, ...]] = set()
    for sample in traffic:
        labels = sample.labels
        if any(name not in labels for name in _REQUIRED):
            continue  # "Skipping …, missing expected TS labels"
        code = kiali_code(labels)
        key = _key(labels)
        # One series per (edge, code, flags, host): the first reporter wins (istio.go:464-468).
        identity = (
            key,
            code,
            labels["response_flags"],
            labels["destination_service"],
            labels["request_protocol"],
        )
        if identity in seen:
            continue
        seen.add(identity)
        edge = edges.get(key)
        if edge is None:
            edge = edges[key] = Edge(_node(labels, "source"), _node(labels, "destination"))
            edge.service = labels.get("destination_service_name", "")
        edge.rates[code] = edge.rates.get(code, 0.0) + sample.value
        if is_error(labels):
            edge.error_rate += sample.value
    mtls: dict[tuple[tuple[str, str], tuple[str, str]], list[float]] = {}
    for sample in security:
        key = _key(sample.labels)
        shares = mtls.setdefault(key, [0.0, 0.0])
        shares[0 if sample.labels.get("connection_security_policy") == "mutual_tls" else 1] += sample.value
        if key in edges and not edges[key].source_principal:
            edges[key].source_principal = sample.labels.get("source_principal", "")
    for key, (secure, other) in mtls.items():
        if key in edges and secure + other > 0:
            edges[key].mtls_percent = 100.0 * secure / (secure + other)
    for sample in response_times:
        key = _key(sample.labels)
        if key in edges and edges[key].p95_ms is None and sample.value == sample.value:  # NaN skipped
            edges[key].p95_ms = sample.value
    return sorted(edges.values(), key=lambda edge: (edge.source, edge.destination))


def observed_graph(
    client: PrometheusClient,
    namespace: str,
    duration_seconds: int = DEFAULT_DURATION_SECONDS,
    at: float | None = None,
) -> list[Edge]:
    """Runs Kiali's queries against `client` (at time `at`, default now) and builds the edges."""

    def run(queries: list[str]) -> list[Sample]:
        return [sample for query in queries for sample in client.query(query, at)]

    return edges_from(
        run(graph_queries(namespace, duration_seconds)),
        run(security_queries(namespace, duration_seconds)),
        run(response_time_queries(namespace, duration_seconds)),
    )
