"""Listeners: outbound API listeners for clients (one per service `host:port`), inbound server
listeners for each pod's sidecar (grpcgen/lds.go)."""

from __future__ import annotations

from collections.abc import Sequence

from envoy.config.core.v3 import address_pb2, base_pb2, config_source_pb2
from envoy.config.listener.v3 import api_listener_pb2, listener_components_pb2, listener_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2
from envoy.extensions.filters.http.router.v3 import router_pb2
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from google.protobuf import any_pb2
from google.protobuf.message import Message

from shopmesh.localmesh.translate import names


def _pack(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _filter(name: str, config: Message) -> hcm.HttpFilter:
    return hcm.HttpFilter(name=name, typed_config=_pack(config))


ROUTER = ("envoy.filters.http.router", router_pb2.Router())


def outbound_listener(listener_name: str, route_name: str, address: str, port: int) -> listener_pb2.Listener:
    """An API listener whose HCM fetches its routes by RDS over ADS; fault then router filters,
    the router last (grpcgen supportedFilters)."""
    manager = hcm.HttpConnectionManager(
        rds=hcm.Rds(
            config_source=config_source_pb2.ConfigSource(ads=config_source_pb2.AggregatedConfigSource()),
            route_config_name=route_name,
        ),
        http_filters=[_filter(names.FAULT_FILTER, fault_pb2.HTTPFault()), _filter(*ROUTER)],
    )
    return listener_pb2.Listener(
        name=listener_name,
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=address, port_value=port)
        ),
        api_listener=api_listener_pb2.ApiListener(api_listener=_pack(manager)),
    )


def inbound_listener(
    address: str,
    port: int,
    rbac_filters: Sequence[tuple[str, rbac_pb2.RBAC]],
    transport_socket: base_pb2.TransportSocket | None,
) -> listener_pb2.Listener:
    """A sidecar's server listener: its one filter chain terminates mTLS (STRICT) and runs the
    RBAC filters, DENY then ALLOW, before the router; the inline route only accepts the call
    (`non_forwarding_action`: the server handles it), as grpcgen buildInboundFilterChain."""
    http_filters = [_filter(name, config) for name, config in rbac_filters]
    http_filters.append(_filter(*ROUTER))
    suffix = "mtls" if transport_socket is not None else "plaintext"
    manager = hcm.HttpConnectionManager(
        route_config=route_pb2.RouteConfiguration(
            name="inbound",
            virtual_hosts=[
                route_components_pb2.VirtualHost(
                    name="inbound",
                    domains=["*"],
                    routes=[
                        route_components_pb2.Route(
                            match=route_components_pb2.RouteMatch(prefix="/"),
                            non_forwarding_action=route_components_pb2.NonForwardingAction(),
                        )
                    ],
                )
            ],
        ),
        http_filters=http_filters,
    )
    chain = listener_components_pb2.FilterChain(
        name=f"inbound-{suffix}",
        filters=[listener_components_pb2.Filter(name=f"inbound-hcm{suffix}", typed_config=_pack(manager))],
    )
    if transport_socket is not None:
        chain.transport_socket.CopyFrom(transport_socket)
    return listener_pb2.Listener(
        name=names.server_listener(address, port),
        address=address_pb2.Address(
            socket_address=address_pb2.SocketAddress(address=address, port_value=port)
        ),
        filter_chains=[chain],
    )
