"""grpcurl (the real one, v1.8.6) through the ingress gateway: plaintext in, routed by the
Gateway's VirtualService, mTLS with the gateway's identity into the mesh; and the gateway's
own health, which it answers itself."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import uuid
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shopmesh.localmesh.ingress import GatewayHealth
from shopmesh.localmesh.supervisor import LocalMesh

GRPCURL = str(Path(sys.executable).with_name("grpcurl"))


def grpcurl(mesh: LocalMesh, *after: str, flags: tuple[str, ...] = ()) -> str:
    completed = subprocess.run(
        [GRPCURL, "-plaintext", *flags, mesh.settings.ingress, *after],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr
    return completed.stdout


def test_grpcurl_lists_and_describes_the_public_services(mesh: LocalMesh) -> None:
    listed = grpcurl(mesh, "list").split()
    assert "shop.order.v1.OrderService" in listed
    described = grpcurl(mesh, "describe", "shop.order.v1.OrderService")
    assert "rpc CreateOrder ( .shop.order.v1.CreateOrderRequest )" in described


def test_grpcurl_lists_products_and_creates_an_order_through_the_mesh(mesh: LocalMesh) -> None:
    products = json.loads(grpcurl(mesh, "shop.inventory.v1.InventoryService/ListProducts"))["products"]
    assert products
    request = {
        "request_id": f"grpcurl-{uuid.uuid4()}",
        "customer_id": "grpcurl",
        "items": [{"product_id": products[0]["product_id"], "quantity": 1}],
        "payment_token": "tok_visa",
    }
    reply = json.loads(
        grpcurl(mesh, "shop.order.v1.OrderService/CreateOrder", flags=("-d", json.dumps(request)))
    )
    # order reached inventory and payment over mTLS as `order`: reserved, priced, charged
    assert reply["order"]["status"] == "ORDER_STATUS_CONFIRMED", reply
    assert reply["order"]["payment_id"]
    assert reply["order"]["total"]["minor_units"] == products[0]["price"]["minor_units"]


def test_a_method_the_gateway_does_not_route_is_not_reachable(mesh: LocalMesh) -> None:
    completed = subprocess.run(
        [
            GRPCURL,
            "-plaintext",
            "-d",
            "{}",
            mesh.settings.ingress,
            "shop.payment.v1.PaymentService/GetPayment",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert completed.returncode != 0
    # payment is not public: no route of the Gateway's VirtualService leads there
    assert "Code: Unavailable" in completed.stdout + completed.stderr
    assert "No matching route" in completed.stdout + completed.stderr


def test_grpcurls_first_call_the_gateways_health_is_answered_by_the_gateway(mesh: LocalMesh) -> None:
    """No route of the Gateway's VirtualService leads to grpc.health.v1: the gateway answers
    it, as Istio's gateway answers its own readiness (SERVING: it can route into the mesh)."""
    assert json.loads(grpcurl(mesh, "grpc.health.v1.Health/Check")) == {"status": "SERVING"}
    with grpc.insecure_channel(mesh.settings.ingress) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        watch = health.Watch(health_pb2.HealthCheckRequest(), timeout=5)
        assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
        with pytest.raises(grpc.RpcError) as unknown:  # the gateway answers for itself only
            health.Check(health_pb2.HealthCheckRequest(service="shop.order.v1.OrderService"), timeout=5)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def _status_becomes(health: GatewayHealth, expected: int, timeout: float = 10.0) -> None:
    request = health_pb2.HealthCheckRequest()
    deadline = time.monotonic() + timeout
    while (status := health.servicer.Check(request, None).status) != expected:
        assert time.monotonic() < deadline, f"still {status}"
        time.sleep(0.05)


def _backend() -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def test_the_gateway_is_serving_while_its_channel_can_route_and_not_once_it_stops() -> None:
    backend, address = _backend()
    with grpc.insecure_channel(address) as channel:
        health = GatewayHealth(channel)
        _status_becomes(health, health_pb2.HealthCheckResponse.SERVING)
        backend.stop(0)  # the mesh out of reach
        _status_becomes(health, health_pb2.HealthCheckResponse.NOT_SERVING)
        backend, _ = _backend_on(address)
        try:
            _status_becomes(health, health_pb2.HealthCheckResponse.SERVING)
            health.stop()  # SIGTERM: draining from now on, whatever the channel does
            _status_becomes(health, health_pb2.HealthCheckResponse.NOT_SERVING, timeout=0)
        finally:
            backend.stop(0)


def _backend_on(address: str) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    assert server.add_insecure_port(address)
    server.start()
    return server, address


def test_a_gateway_without_a_reachable_mesh_is_not_serving() -> None:
    with grpc.insecure_channel("127.0.0.1:1") as channel:  # nothing listens on port 1
        health = GatewayHealth(channel)
        time.sleep(0.5)
        assert health.servicer.Check(health_pb2.HealthCheckRequest(), None).status == (
            health_pb2.HealthCheckResponse.NOT_SERVING
        )
