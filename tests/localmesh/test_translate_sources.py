"""VirtualService `fault` becomes the fault filter's per-route config as istiod writes it, and
matches with sourceLabels, sourceNamespace or gateways give each proxy its own routes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from envoy.config.route.v3 import route_components_pb2, route_pb2
from envoy.extensions.filters.http.fault.v3 import fault_pb2
from envoy.type.v3 import percent_pb2

from shopmesh.localmesh.placement import place
from shopmesh.localmesh.translate import TranslationError, names
from shopmesh.localmesh.translate.proxy import ANONYMOUS, Proxy
from shopmesh.localmesh.translate.translator import Snapshot, translate
from shopmesh.manifests.model import MeshObjects

FIXTURE = Path(__file__).parent / "fixtures" / "mesh.yaml"
PAYMENT_ROUTE = "outbound|50053||payment.shop.svc.cluster.local"
GATEWAY_ROUTE = "gateway|80|istio-ingressgateway.istio-system.svc.cluster.local"
ORDER_V2 = Proxy.of("shop", {"app": "order", "version": "v2"})
ORDER_V1 = Proxy.of("shop", {"app": "order", "version": "v1"})
MILLION = percent_pb2.FractionalPercent.MILLION


def _payment_service(http: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "payment", "namespace": "shop"},
        "spec": {"hosts": ["payment"], "http": http},
    }


def _snapshot(*extra: dict[str, Any]) -> Snapshot:
    documents = [*MeshObjects.from_yaml(FIXTURE.read_text()), *extra]
    objects = MeshObjects(documents)
    return translate(objects, place(objects, subnet=10))


def _routes(snapshot: Snapshot, name: str, proxy: Proxy = ANONYMOUS) -> list[route_components_pb2.Route]:
    configuration = snapshot.get(names.ROUTE, name, proxy)
    assert isinstance(configuration, route_pb2.RouteConfiguration)
    return list(configuration.virtual_hosts[0].routes)


def _fault(route: route_components_pb2.Route) -> fault_pb2.HTTPFault:
    fault = fault_pb2.HTTPFault()
    assert route.typed_per_filter_config[names.FAULT_FILTER].Unpack(fault)
    return fault


ROUTE = {"destination": {"host": "payment"}}


def test_an_abort_by_grpc_status_and_a_fixed_delay_become_the_routes_fault_config() -> None:
    snapshot = _snapshot(
        _payment_service(
            [
                {
                    "name": "chaos",
                    "fault": {
                        "abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 20}},
                        "delay": {"fixedDelay": "500ms", "percentage": {"value": 12.5}},
                    },
                    "route": [ROUTE],
                }
            ]
        )
    )
    (route,) = _routes(snapshot, PAYMENT_ROUTE)
    fault = _fault(route)
    assert (fault.abort.grpc_status, fault.abort.percentage.numerator) == (14, 200_000)
    assert fault.abort.percentage.denominator == MILLION
    assert fault.delay.fixed_delay.ToMilliseconds() == 500
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (125_000, MILLION)


def test_http_status_abort_and_legacy_percent_delay_translate_as_istiod_does() -> None:
    snapshot = _snapshot(
        _payment_service(
            [
                {
                    "fault": {"abort": {"httpStatus": 503}, "delay": {"fixedDelay": "1s", "percent": 30}},
                    "route": [ROUTE],
                }
            ]
        )
    )
    fault = _fault(_routes(snapshot, PAYMENT_ROUTE)[0])
    assert fault.abort.http_status == 503
    assert not fault.abort.HasField("percentage")  # istiod leaves it unset: nothing is aborted
    assert (fault.delay.percentage.numerator, fault.delay.percentage.denominator) == (
        30,
        percent_pb2.FractionalPercent.HUNDRED,
    )


def test_a_route_without_fault_has_no_fault_config() -> None:
    (route,) = _routes(_snapshot(_payment_service([{"route": [ROUTE]}])), PAYMENT_ROUTE)
    assert names.FAULT_FILTER not in route.typed_per_filter_config


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ({}, "must have an abort and/or a delay"),
        ({"abort": {"grpcStatus": "UNAVAILBLE"}}, r"abort\.grpcStatus: 'UNAVAILBLE' is not a gRPC status"),
        ({"abort": {"httpStatus": 700}}, r"abort\.httpStatus: 700 is not in range 200-599"),
        ({"abort": {"http2Error": "REFUSED_STREAM"}}, "http2Error"),
        ({"abort": {"percentage": {"value": 10}}}, "an abort needs grpcStatus or httpStatus"),
        ({"abort": {"httpStatus": 503, "percentage": {"value": 150}}}, "between 0 and 100"),
        ({"delay": {"exponentialDelay": "1s"}}, "exponentialDelay"),
        ({"delay": {"percentage": {"value": 5}}}, "a delay needs fixedDelay"),
        ({"delay": {"fixedDelay": "soon"}}, r"fixedDelay: 'soon' is not a duration"),
    ],
)
def test_faults_istio_refuses_or_would_drop_are_refused(fault: dict[str, Any], reason: str) -> None:
    with pytest.raises(TranslationError, match=rf"VirtualService shop/payment http\[0\] fault.*{reason}"):
        _snapshot(_payment_service([{"fault": fault, "route": [ROUTE]}]))


SOURCE_ROUTED = _payment_service(
    [
        {
            "name": "v2-fails",
            "match": [{"sourceLabels": {"app": "order", "version": "v2"}}],
            "fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 10}}},
            "route": [ROUTE],
        },
        {"name": "from-ops", "match": [{"sourceNamespace": "ops"}], "route": [ROUTE], "timeout": "1s"},
        {"name": "payment-api", "route": [ROUTE]},
    ]
)


def test_a_source_labels_match_is_in_the_routes_of_matching_proxies_only() -> None:
    snapshot = _snapshot(SOURCE_ROUTED)
    assert [r.name for r in _routes(snapshot, PAYMENT_ROUTE, ORDER_V2)] == ["v2-fails", "payment-api"]
    assert [r.name for r in _routes(snapshot, PAYMENT_ROUTE, ORDER_V1)] == ["payment-api"]
    assert [r.name for r in _routes(snapshot, PAYMENT_ROUTE)] == ["payment-api"]
    from_ops = _routes(snapshot, PAYMENT_ROUTE, Proxy.of("ops", {}))
    assert [r.name for r in from_ops] == ["from-ops", "payment-api"]
    labelled_elsewhere = Proxy.of("ops", {"app": "order", "version": "v2"})
    assert [r.name for r in _routes(snapshot, PAYMENT_ROUTE, labelled_elsewhere)] == [
        "v2-fails",
        "from-ops",
        "payment-api",
    ]
    # the one faulted route carries its abort, for v2's proxies
    assert _fault(_routes(snapshot, PAYMENT_ROUTE, ORDER_V2)[0]).abort.grpc_status == 14


def test_routes_without_source_matches_are_one_shared_resource() -> None:
    snapshot = _snapshot(_payment_service([{"route": [ROUTE]}]))
    assert (names.ROUTE, PAYMENT_ROUTE) not in snapshot.per_proxy
    assert snapshot.get(names.ROUTE, PAYMENT_ROUTE, ORDER_V2) is snapshot.get(names.ROUTE, PAYMENT_ROUTE)


def test_each_proxys_routes_are_built_once_and_fingerprinted_apart() -> None:
    snapshot = _snapshot(SOURCE_ROUTED)
    first = snapshot.get(names.ROUTE, PAYMENT_ROUTE, ORDER_V2)
    same_labels = Proxy.of("shop", {"version": "v2", "app": "order"})
    assert snapshot.get(names.ROUTE, PAYMENT_ROUTE, same_labels) is first
    v2, anonymous = (snapshot.digest(names.ROUTE, PAYMENT_ROUTE, p) for p in (ORDER_V2, ANONYMOUS))
    assert v2 != anonymous


def test_a_match_naming_gateways_applies_in_those_gateways_only() -> None:
    gateway_and_mesh = _payment_service(
        [
            {"name": "at-the-gateway", "match": [{"gateways": ["shop-gateway"]}], "route": [ROUTE]},
            {"name": "in-the-mesh", "match": [{"gateways": ["mesh"]}], "route": [ROUTE]},
        ]
    )
    gateway_and_mesh["spec"]["gateways"] = ["shop-gateway", "mesh"]
    snapshot = _snapshot(gateway_and_mesh)
    ingress = Proxy.of("istio-system", {"istio": "ingressgateway"})
    assert [r.name for r in _routes(snapshot, PAYMENT_ROUTE, ORDER_V1)] == ["in-the-mesh"]
    assert "at-the-gateway" in [r.name for r in _routes(snapshot, GATEWAY_ROUTE, ingress)]
    assert "in-the-mesh" not in [r.name for r in _routes(snapshot, GATEWAY_ROUTE, ingress)]
