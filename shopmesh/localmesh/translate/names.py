"""xDS resource names and type URLs, as istiod names them for proxyless gRPC."""

from __future__ import annotations

LISTENER = "type.googleapis.com/envoy.config.listener.v3.Listener"
ROUTE = "type.googleapis.com/envoy.config.route.v3.RouteConfiguration"
CLUSTER = "type.googleapis.com/envoy.config.cluster.v3.Cluster"
ENDPOINT = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment"
TYPE_URLS = (LISTENER, ROUTE, CLUSTER, ENDPOINT)

#: gRPC's xDS server asks for `<template with %s = ip:port>` (istio-agent's grpcxds package).
SERVER_LISTENER_TEMPLATE = "grpc/server?xds.resource.listening_address=%s"

#: The transport socket name gRPC requires on TLS contexts (grpcgen: transportSocketName).
TLS_TRANSPORT_SOCKET = "envoy.transport_sockets.tls"

#: The fault filter of outbound listeners, and the key of its per-route config
#: (wellknown.Fault in istiod).
FAULT_FILTER = "envoy.filters.http.fault"

#: The names of the RBAC filters istiod gives proxyless servers (grpcgen/lds.go).
RBAC_FILTER = "envoy.filters.http.rbac"
RBAC_DENY_FILTER = "envoy.filters.http.rbac.DENY"


def outbound_listener(hostname: str, port: int) -> str:
    """`order.shop.svc.cluster.local:50051`: what `xds:///order.shop.svc.cluster.local:50051` asks."""
    return f"{hostname}:{port}"


def cluster(hostname: str, port: int, subset: str = "") -> str:
    """model.BuildSubsetKey: `outbound|50051|v2|order.shop.svc.cluster.local`."""
    return f"outbound|{port}|{subset}|{hostname}"


def route(hostname: str, port: int) -> str:
    """grpcgen names an outbound route like the default cluster (rds.go: clusterKey)."""
    return cluster(hostname, port)


def server_listener(address: str, port: int) -> str:
    return SERVER_LISTENER_TEMPLATE % f"{address}:{port}"
