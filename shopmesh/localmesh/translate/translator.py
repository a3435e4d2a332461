"""The translator: every rule applied, the result one `Snapshot`.

`translate(objects, placement)` returns a `Snapshot`: every resource by type and name. Most
resources are the same for every node (clients ask by name; each pod's server listener is
named by its own address). Two things differ per node, as istiod generates each proxy's
configuration for it: the outbound listeners a pod's Sidecar lets it see, and the routes of a
VirtualService whose matches apply to some proxies only (`sourceLabels`, `sourceNamespace`,
`gateways`: translate/proxy.py). Such a route configuration is held as a builder, built once
per distinct proxy that asks, and each ADS stream is answered for its own node.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass, field

from envoy.config.core.v3 import address_pb2, health_check_pb2
from envoy.config.endpoint.v3 import endpoint_components_pb2, endpoint_pb2
from envoy.config.route.v3 import route_components_pb2, route_pb2
from google.protobuf.message import Message

from shopmesh.localmesh.placement import Instance, Placement
from shopmesh.localmesh.translate import TranslationError, names
from shopmesh.localmesh.translate.clusters import clusters_for
from shopmesh.localmesh.translate.listeners import inbound_listener, outbound_listener
from shopmesh.localmesh.translate.proxy import ANONYMOUS, Proxy, depends_on_proxy
from shopmesh.localmesh.translate.rbac import rbac_filters
from shopmesh.localmesh.translate.routes import (
    MESH_GATEWAY,
    bound_virtual_services,
    build_routes,
    virtual_host_domains,
)
from shopmesh.localmesh.translate.scope import EgressScope, egress_scopes, scope_for
from shopmesh.localmesh.translate.tls import STRICT, downstream_transport_socket, mtls_mode
from shopmesh.manifests.mesh import INGRESS_GATEWAY_HOST
from shopmesh.manifests.model import MeshObjects, Resource, Service, ServicePort, selects
from shopmesh.manifests.policy import PolicyError, WorkloadPolicies, authorization_policies

__all__ = ["Snapshot", "TranslationError", "gateway_listener_name", "translate"]


@dataclass
class Snapshot:
    """Every xDS resource, by type URL then resource name; some built per proxy."""

    resources: dict[str, dict[str, Message]] = field(
        default_factory=lambda: {type_url: {} for type_url in names.TYPE_URLS}
    )
    #: outbound listener name -> service hostname, to scope them per pod (Sidecar egress)
    outbound_hosts: dict[str, str] = field(default_factory=dict)
    scopes: list[EgressScope] = field(default_factory=list)
    #: (type URL, name) -> the builder of a resource whose content depends on the proxy
    per_proxy: dict[tuple[str, str], Callable[[Proxy], Message]] = field(default_factory=dict)
    _built: dict[tuple[str, str, Proxy], Message] = field(default_factory=dict)

    def visible(self, type_url: str, name: str, proxy: Proxy) -> bool:
        """Whether a pod may see this resource: its Sidecar's egress hosts bound the outbound
        listeners it gets; everything else is shared."""
        hostname = self.outbound_hosts.get(name) if type_url == names.LISTENER else None
        if hostname is None:
            return True
        scope = scope_for(self.scopes, proxy.namespace, proxy.label_map)
        return scope is None or scope.allows(hostname)

    def add(self, type_url: str, name: str, message: Message) -> None:
        if name in self.resources[type_url]:
            raise TranslationError(f"two {type_url.rsplit('.', 1)[-1]} resources named {name}")
        self.resources[type_url][name] = message

    def add_per_proxy(self, type_url: str, name: str, build: Callable[[Proxy], Message]) -> None:
        """A resource each proxy gets its own version of; `resources` holds what a proxy no
        source condition picks (ANONYMOUS) gets."""
        self.add(type_url, name, build(ANONYMOUS))
        self.per_proxy[(type_url, name)] = build

    def get(self, type_url: str, name: str, proxy: Proxy = ANONYMOUS) -> Message | None:
        build = self.per_proxy.get((type_url, name))
        if build is None or proxy == ANONYMOUS:
            return self.resources[type_url].get(name)
        key = (type_url, name, proxy)
        if key not in self._built:
            self._built[key] = build(proxy)
        return self._built[key]

    def items(self) -> Iterator[tuple[str, str, Message]]:
        for type_url, by_name in self.resources.items():
            for name, message in sorted(by_name.items()):
                yield type_url, name, message

    def digest(self, type_url: str, name: str, proxy: Proxy = ANONYMOUS) -> str:
        """A stable fingerprint of one resource as `proxy` gets it, to push only what changed."""
        message = self.get(type_url, name, proxy)
        if message is None:
            return ""
        return hashlib.sha256(message.SerializeToString(deterministic=True)).hexdigest()


def _target_port(service_port: ServicePort, instance: Instance) -> int:
    if isinstance(service_port.target_port, int) or str(service_port.target_port).isdigit():
        return int(service_port.target_port)
    if len(instance.ports) == 1:  # a named targetPort: the pod's one gRPC port
        return instance.ports[0]
    raise TranslationError(f"cannot resolve targetPort {service_port.target_port} on {instance.name}")


def _load_assignment(
    cluster_name: str, service: Service, port: ServicePort, instances: list[Instance]
) -> endpoint_pb2.ClusterLoadAssignment:
    """EDS: the pod addresses, one locality that carries a weight (gRPC refuses it without)."""
    locality = endpoint_components_pb2.LocalityLbEndpoints(load_balancing_weight={"value": 1})
    locality.locality.SetInParent()  # gRPC requires the field, even empty
    for instance in instances:
        locality.lb_endpoints.append(
            endpoint_components_pb2.LbEndpoint(
                endpoint=endpoint_components_pb2.Endpoint(
                    address=address_pb2.Address(
                        socket_address=address_pb2.SocketAddress(
                            address=instance.address, port_value=_target_port(port, instance)
                        )
                    )
                ),
                health_status=health_check_pb2.HEALTHY,
            )
        )
    return endpoint_pb2.ClusterLoadAssignment(cluster_name=cluster_name, endpoints=[locality])


def gateway_listener_name(objects: MeshObjects) -> str | None:
    """The API listener the ingress gateway's client asks for: `<gateway host>:<port>`."""
    gateways = sorted(objects.of_kind("Gateway"), key=lambda gw: (gw.namespace, gw.name))
    for gateway in gateways:
        for server in gateway.spec.get("servers") or []:
            return f"{INGRESS_GATEWAY_HOST}:{int(server['port']['number'])}"
    return None


def _ingress_gateways(objects: MeshObjects, placement: Placement) -> list[str]:
    """`<namespace>/<name>` of the Gateways whose selector picks the ingress pod."""
    return [
        f"{gw.namespace}/{gw.name}"
        for gw in objects.of_kind("Gateway")
        if selects(gw.spec.get("selector") or {}, placement.ingress.labels)
    ]


def translate(objects: MeshObjects, placement: Placement, ready: Collection[str] | None = None) -> Snapshot:
    """Every resource for these objects and pods. `ready`: the names of the Ready pods, the only
    ones EDS lists (None: every placed pod, as before any pod reported). As istiod, which sends
    a not-ready endpoint to no proxy (pilot/pkg/xds/endpoints/endpoint_builder.go: unhealthy
    endpoints only with PILOT_SEND_UNHEALTHY_ENDPOINTS, off by default), and as the endpoints
    controller, which lists a not-Ready pod under notReadyAddresses, not addresses."""
    snapshot = Snapshot(scopes=egress_scopes(objects))
    services = objects.services()
    for service in services:
        # Only gRPC ports reach a gRPC client's listeners (a TCP port, like PostgreSQL's,
        # would be an Envoy TCP proxy: nothing proxyless gRPC can ask for).
        grpc_ports = [port for port in service.ports if port.is_grpc]
        if not grpc_ports:
            continue
        backing = placement.backing(service)
        sans = sorted({instance.spiffe_id for instance in backing})
        for service_port in grpc_ports:
            hostname, port = service.hostname, service_port.port
            route_name = names.route(hostname, port)
            listener_name = names.outbound_listener(hostname, port)
            snapshot.add(
                names.LISTENER, listener_name, outbound_listener(listener_name, route_name, hostname, port)
            )
            snapshot.outbound_hosts[listener_name] = hostname
            virtual_services = bound_virtual_services(objects, MESH_GATEWAY, hostname)
            configuration = functools.partial(
                _service_routes, objects, virtual_services, route_name, listener_name, hostname, port
            )
            _add_routes(snapshot, route_name, virtual_services, configuration)
        for cluster, subset_labels in clusters_for(objects, service, sans):
            snapshot.add(names.CLUSTER, cluster.name, cluster)
            port = int(cluster.name.split("|")[1])
            service_port = next(p for p in service.ports if p.port == port)
            members = [
                i for i in backing if selects(subset_labels, i.labels) and (ready is None or i.name in ready)
            ]
            snapshot.add(
                names.ENDPOINT, cluster.name, _load_assignment(cluster.name, service, service_port, members)
            )

    try:
        policies = authorization_policies(objects)
    except PolicyError as error:
        raise TranslationError(str(error)) from error
    for instance in placement.instances:
        filters = rbac_filters(WorkloadPolicies.select(policies, instance.namespace, instance.labels))
        for port in instance.ports:
            mode = mtls_mode(objects, instance.namespace, instance.labels, port)
            socket = downstream_transport_socket() if mode == STRICT else None
            listener = inbound_listener(instance.address, port, filters, socket)
            snapshot.add(names.LISTENER, listener.name, listener)

    gateway_listener = gateway_listener_name(objects)
    if gateway_listener is not None:
        _add_gateway(snapshot, objects, placement, gateway_listener)
    return snapshot


def _service_routes(
    objects: MeshObjects,
    virtual_services: list[Resource],
    route_name: str,
    listener_name: str,
    hostname: str,
    port: int,
    proxy: Proxy,
) -> route_pb2.RouteConfiguration:
    """A sidecar's routes to one service port: its mesh VirtualServices', or the service."""
    default = None if virtual_services else (hostname, port)
    host = route_components_pb2.VirtualHost(
        name=listener_name,
        domains=virtual_host_domains(hostname, port),
        routes=build_routes(objects, virtual_services, default, proxy, {MESH_GATEWAY}),
    )
    return route_pb2.RouteConfiguration(name=route_name, virtual_hosts=[host])


def _add_routes(
    snapshot: Snapshot,
    name: str,
    virtual_services: list[Resource],
    configuration: Callable[[Proxy], route_pb2.RouteConfiguration],
) -> None:
    """Shared routes, or per proxy when a match applies to some proxies only. Each variant is
    built from the objects as they were when translated."""
    if any(depends_on_proxy(vs.spec.get("http")) for vs in virtual_services):
        snapshot.add_per_proxy(names.ROUTE, name, configuration)
    else:
        snapshot.add(names.ROUTE, name, configuration(ANONYMOUS))


def _add_gateway(snapshot: Snapshot, objects: MeshObjects, placement: Placement, listener_name: str) -> None:
    """The ingress gateway's client side: one API listener whose routes are those of every
    VirtualService bound to a Gateway selecting the ingress pod.

    Host matching is not enforced locally: Envoy would pick the virtual host by the request's
    `:authority`, which a gRPC server in Python does not expose, so every bound VirtualService
    shares one virtual host (`*`) in their order.
    """
    host, port = listener_name.rsplit(":", 1)
    route_name = f"gateway|{port}|{host}"
    snapshot.add(names.LISTENER, listener_name, outbound_listener(listener_name, route_name, host, int(port)))
    gateways = _ingress_gateways(objects, placement)
    virtual_services = [vs for gateway in gateways for vs in bound_virtual_services(objects, gateway)]
    unique = list({(vs.namespace, vs.name): vs for vs in virtual_services}.values())

    def configuration(proxy: Proxy) -> route_pb2.RouteConfiguration:
        routes = build_routes(objects, unique, None, proxy, set(gateways))
        return route_pb2.RouteConfiguration(
            name=route_name,
            virtual_hosts=[route_components_pb2.VirtualHost(name="gateway", domains=["*"], routes=routes)],
        )

    _add_routes(snapshot, route_name, unique, configuration)


def describe(snapshot: Snapshot) -> Mapping[str, list[str]]:
    """Resource names by type, for `shopmesh mesh xds` and logs."""
    return {type_url.rsplit(".", 1)[-1]: sorted(by_name) for type_url, by_name in snapshot.resources.items()}
