"""DestinationRule → xDS clusters (grpcgen/cds.go): one EDS cluster per service port, one per
subset, each with its merged traffic policy: TLS origination and outlier detection."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from envoy.config.cluster.v3 import circuit_breaker_pb2, cluster_pb2, outlier_detection_pb2
from envoy.config.core.v3 import config_source_pb2
from google.protobuf import wrappers_pb2

from shopmesh.localmesh.translate import names
from shopmesh.localmesh.translate.durations import parse_duration
from shopmesh.localmesh.translate.tls import client_tls_mode, upstream_transport_socket
from shopmesh.manifests.mesh import fqdn
from shopmesh.manifests.model import MeshObjects, Resource, Service

#: Envoy's defaults for what Istio leaves unset in `outlierDetection`.
DEFAULT_INTERVAL = "10s"
DEFAULT_BASE_EJECTION_TIME = "30s"
DEFAULT_MAX_EJECTION_PERCENT = 10
DEFAULT_CONSECUTIVE_ERRORS = 5
#: The failure rate at which a host counts as "failing consistently" (see outlier_detection).
FAILURE_PERCENTAGE_THRESHOLD = 50


def destination_rule_for(objects: MeshObjects, hostname: str) -> Resource | None:
    """The DestinationRule for a host: the oldest by name among those naming it (Istio merges
    several per host only in its root namespace; one per host is what our manifests hold)."""
    rules = [
        rule
        for rule in objects.of_kind("DestinationRule")
        if fqdn(str(rule.spec.get("host", "")), rule.namespace) == hostname
    ]
    return sorted(rules, key=lambda rule: (rule.namespace, rule.name))[0] if rules else None


def merge_traffic_policy(
    base: Mapping[str, Any] | None, override: Mapping[str, Any] | None, port: int
) -> dict[str, Any]:
    """MergeTrafficPolicy: a subset's policy replaces the top-level one field by field, and a
    matching `portLevelSettings` entry replaces both."""
    merged: dict[str, Any] = {}
    for policy in (base, override):
        if not policy:
            continue
        for key in ("tls", "outlierDetection", "connectionPool", "loadBalancer"):
            if key in policy:
                merged[key] = policy[key]
        for port_settings in policy.get("portLevelSettings") or []:
            if int((port_settings.get("port") or {}).get("number", -1)) == port:
                for key in ("tls", "outlierDetection", "connectionPool", "loadBalancer"):
                    if key in port_settings:
                        merged[key] = port_settings[key]
    return merged


def outlier_detection(spec: Mapping[str, Any], where: str) -> outlier_detection_pb2.OutlierDetection:
    """Istio's consecutive-error outlier detection, approximated with gRFC A50's failure percentage.

    gRPC implements only A50's success-rate and failure-percentage ejection; it ignores the
    consecutive_* fields Istio sets. So a host that "fails N calls in a row" in Envoy becomes,
    here, a host that failed at least FAILURE_PERCENTAGE_THRESHOLD % of at least N calls
    within one `interval`:

    | Istio                          | gRFC A50 (gRPC)                                           |
    | consecutive5xxErrors / consecutiveGatewayErrors = N (the smaller set one; 5 if neither) |
    |                                | failure_percentage_request_volume = N                    |
    |                                | failure_percentage_threshold = 50, enforcing = 100       |
    |                                | failure_percentage_minimum_hosts = 1 (judge any host)    |
    | interval                       | interval                                                  |
    | baseEjectionTime               | base_ejection_time (A50 also multiplies it per ejection)  |
    | maxEjectionPercent             | max_ejection_percent (both always allow one ejection)     |
    | (success rate: never set)      | enforcing_success_rate = 0                                |

    gRPC counts every non-OK status as a failure, where Envoy counts 5xx (for gRPC: the
    statuses mapped to 5xx/gateway errors). Setting N to 0 disables ejection, as in Istio.
    """
    consecutive = [
        int(spec[key])
        for key in ("consecutive5xxErrors", "consecutiveGatewayErrors", "consecutiveErrors")
        if spec.get(key) is not None
    ]
    enabled = [value for value in consecutive if value > 0]
    request_volume = min(enabled) if enabled else (DEFAULT_CONSECUTIVE_ERRORS if not consecutive else 0)
    detection = outlier_detection_pb2.OutlierDetection(
        interval=parse_duration(spec.get("interval", DEFAULT_INTERVAL), where),
        base_ejection_time=parse_duration(spec.get("baseEjectionTime", DEFAULT_BASE_EJECTION_TIME), where),
        max_ejection_percent=wrappers_pb2.UInt32Value(
            value=int(spec.get("maxEjectionPercent", DEFAULT_MAX_EJECTION_PERCENT))
        ),
        enforcing_success_rate=wrappers_pb2.UInt32Value(value=0),
        failure_percentage_threshold=wrappers_pb2.UInt32Value(value=FAILURE_PERCENTAGE_THRESHOLD),
        enforcing_failure_percentage=wrappers_pb2.UInt32Value(value=100 if request_volume else 0),
        failure_percentage_minimum_hosts=wrappers_pb2.UInt32Value(value=1),
        failure_percentage_request_volume=wrappers_pb2.UInt32Value(value=max(request_volume, 1)),
    )
    return detection


def eds_cluster(name: str) -> cluster_pb2.Cluster:
    """grpcgen edsCluster: endpoints come over ADS, named like the cluster."""
    return cluster_pb2.Cluster(
        name=name,
        type=cluster_pb2.Cluster.EDS,
        eds_cluster_config=cluster_pb2.Cluster.EdsClusterConfig(
            service_name=name,
            eds_config=config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource()),
        ),
    )


def apply_traffic_policy(
    cluster: cluster_pb2.Cluster, policy: Mapping[str, Any], service_account_sans: Sequence[str], where: str
) -> None:
    if client_tls_mode(policy, where) == "ISTIO_MUTUAL":
        cluster.transport_socket.CopyFrom(upstream_transport_socket(service_account_sans))
    if policy.get("outlierDetection") is not None:
        cluster.outlier_detection.CopyFrom(outlier_detection(policy["outlierDetection"], where))
    # loadBalancer: round robin whatever is asked, as grpcgen does (applyLoadBalancing logs
    # "cannot apply LbPolicy"): grpcio 1.85 refuses LEAST_REQUEST both as the lb_policy enum
    # and as a load_balancing_policy extension, and would NACK the whole cluster.
    max_requests = ((policy.get("connectionPool") or {}).get("http") or {}).get("http2MaxRequests")
    if max_requests is not None:
        # gRFC A32: gRPC honours the circuit breaker's max_requests (Istio: http2MaxRequests).
        cluster.circuit_breakers.thresholds.append(
            circuit_breaker_pb2.CircuitBreakers.Thresholds(
                max_requests=wrappers_pb2.UInt32Value(value=int(max_requests))
            )
        )


def clusters_for(
    objects: MeshObjects, service: Service, service_account_sans: Sequence[str]
) -> list[tuple[cluster_pb2.Cluster, Mapping[str, str]]]:
    """(cluster, subset labels) for every port of a service and every DestinationRule subset."""
    rule = destination_rule_for(objects, service.hostname)
    spec = rule.spec if rule is not None else {}
    where = f"DestinationRule {rule.namespace}/{rule.name}" if rule is not None else service.hostname
    out: list[tuple[cluster_pb2.Cluster, Mapping[str, str]]] = []
    for port in (p for p in service.ports if p.is_grpc):
        top = merge_traffic_policy(spec.get("trafficPolicy"), None, port.port)
        default = eds_cluster(names.cluster(service.hostname, port.port))
        apply_traffic_policy(default, top, service_account_sans, where)
        out.append((default, {}))
        for subset in spec.get("subsets") or []:
            cluster = eds_cluster(names.cluster(service.hostname, port.port, str(subset["name"])))
            merged = merge_traffic_policy(spec.get("trafficPolicy"), subset.get("trafficPolicy"), port.port)
            apply_traffic_policy(cluster, merged, service_account_sans, f"{where} subset {subset['name']}")
            out.append((cluster, dict(subset.get("labels") or {})))
    return out
