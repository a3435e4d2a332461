"""The declared services are found by looking, and ordered so that callees start first."""

from __future__ import annotations

import pytest

from services.runtime.registry import declaration, declarations, start_order


def test_every_service_package_declares_itself() -> None:
    assert list(declarations()) == ["inventory", "order", "payment"]
    order = declaration("order")
    assert (order.grpc_port, order.metrics_port, order.calls) == (50051, 9091, ("inventory", "payment"))
    assert order.proto_package == "shop.order.v1"
    assert order.health_names == ["shop.order.v1.OrderService"]
    assert [method.path for method in order.methods][:1] == ["/shop.order.v1.OrderService/CreateOrder"]


def test_a_service_starts_after_the_services_it_calls() -> None:
    names = [service.name for service in start_order()]
    assert set(names) == set(declarations())
    for service in start_order():
        assert all(names.index(callee) < names.index(service.name) for callee in service.calls)


def test_an_unknown_name_says_which_are_declared() -> None:
    with pytest.raises(LookupError, match="one of inventory, order, payment"):
        declaration("shipping")
