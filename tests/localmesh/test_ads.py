"""The ADS server's state-of-the-world bookkeeping, one stream at a time (the end-to-end tests
run it against gRPC's own xDS client)."""

from __future__ import annotations

from pathlib import Path

from envoy.config.listener.v3 import listener_pb2
from envoy.config.route.v3 import route_pb2
from envoy.service.discovery.v3 import discovery_pb2
from google.protobuf import struct_pb2

from shopmesh.localmesh.ads import _Stream
from shopmesh.localmesh.placement import place
from shopmesh.localmesh.translate import names
from shopmesh.localmesh.translate.translator import Snapshot, translate
from shopmesh.manifests.model import MeshObjects

FIXTURE = Path(__file__).parent / "fixtures" / "mesh.yaml"
PAYMENT_LISTENER = "payment.shop.svc.cluster.local:50053"
PAYMENT_ROUTE = "outbound|50053||payment.shop.svc.cluster.local"


def _snapshot() -> Snapshot:
    objects = MeshObjects.from_yaml(FIXTURE.read_text())
    return translate(objects, place(objects))


def _ask(stream: _Stream, type_url: str, *names_: str, nonce: str = "") -> None:
    stream.on_request(
        discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=list(names_), response_nonce=nonce)
    )


def test_a_subscription_is_answered_and_its_ack_is_not() -> None:
    snapshot, stream = _snapshot(), _Stream()
    _ask(stream, names.LISTENER, PAYMENT_LISTENER)
    (response,) = stream.responses(snapshot, version=1)
    listener = listener_pb2.Listener()
    response.resources[0].Unpack(listener)
    assert (response.type_url, listener.name) == (names.LISTENER, PAYMENT_LISTENER)
    _ask(stream, names.LISTENER, PAYMENT_LISTENER, nonce=response.nonce)  # the ACK
    assert stream.responses(snapshot, version=1) == []


def test_an_unknown_listener_gets_an_empty_full_state_answer_and_an_unknown_route_waits() -> None:
    snapshot, stream = _snapshot(), _Stream()
    _ask(stream, names.LISTENER, "nowhere.shop.svc.cluster.local:1")
    _ask(stream, names.ROUTE, "outbound|1||nowhere.shop.svc.cluster.local")
    (response,) = stream.responses(snapshot, version=1)
    assert response.type_url == names.LISTENER
    assert list(response.resources) == []  # LDS is full state: absent means "does not exist"


def test_only_changed_subscribed_resources_are_pushed_again() -> None:
    snapshot, stream = _snapshot(), _Stream()
    _ask(stream, names.ROUTE, PAYMENT_ROUTE)
    assert len(stream.responses(snapshot, version=1)) == 1

    unchanged = _snapshot()
    assert stream.responses(unchanged, version=2) == []

    changed = _snapshot()
    routes = changed.resources[names.ROUTE][PAYMENT_ROUTE]
    assert isinstance(routes, route_pb2.RouteConfiguration)
    routes.virtual_hosts[0].routes[0].route.retry_policy.num_retries.value = 5
    (response,) = stream.responses(changed, version=3)
    assert (response.type_url, response.version_info) == (names.ROUTE, "3")


def _node(stream: _Stream, type_url: str, name: str, namespace: str, labels: dict[str, str]) -> None:
    request = discovery_pb2.DiscoveryRequest(type_url=type_url, resource_names=[name])
    request.node.id = f"sidecar~127.0.0.1~{labels.get('app', 'x')}.{namespace}~{namespace}.svc.cluster.local"
    metadata = struct_pb2.Struct()
    metadata.update({"NAMESPACE": namespace, "LABELS": labels})
    request.node.metadata.CopyFrom(metadata)
    stream.on_request(request)


def test_each_node_is_answered_with_the_routes_its_labels_select() -> None:
    objects = MeshObjects.from_yaml(FIXTURE.read_text())
    faulted = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "payment", "namespace": "shop"},
        "spec": {
            "hosts": ["payment"],
            "http": [
                {
                    "name": "v2-fails",
                    "match": [{"sourceLabels": {"version": "v2"}}],
                    "fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}},
                    "route": [{"destination": {"host": "payment"}}],
                },
                {"name": "payment-api", "route": [{"destination": {"host": "payment"}}]},
            ],
        },
    }
    objects = MeshObjects([*objects, faulted])
    snapshot = translate(objects, place(objects))
    answered = {}
    for version in ("v1", "v2"):
        stream = _Stream()
        _node(stream, names.ROUTE, PAYMENT_ROUTE, "shop", {"app": "order", "version": version})
        (response,) = stream.responses(snapshot, version=1)
        configuration = route_pb2.RouteConfiguration()
        response.resources[0].Unpack(configuration)
        answered[version] = [route.name for route in configuration.virtual_hosts[0].routes]
    assert answered == {"v1": ["payment-api"], "v2": ["v2-fails", "payment-api"]}
