"""The runtime as the three real services use it, each in its own process (SQLite files):
trace context and request id cross order → inventory/payment, metrics count the calls made
(business counters too), health answers every name, error replies are Trailers-Only."""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from fixtures.h2frames import raw_unary_call
from fixtures.processes import log_records, start_stack
from fixtures.scrape import delta, scrape

from services.runtime.registry import declaration
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.launch.service import ServiceProcess
from shopmesh.launch.stack import Stack

REPO = Path(__file__).resolve().parents[2]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
SPAN = "00f067aa0ba902b7"


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ServiceProcess]]:
    """inventory (demo catalog), payment and order wired to them; killed after the module."""
    stack = start_stack(Stack, tmp_path_factory.mktemp("runtime-stack"))
    try:
        yield stack.processes
    finally:
        stack.kill()


def place_order(order: ServiceProcess, metadata: list[tuple[str, str]]) -> order_pb2.Order:
    request = order_pb2.CreateOrderRequest(
        request_id=str(uuid.uuid4()),
        customer_id="c-runtime",
        items=[order_pb2.OrderItem(product_id="sku-espresso-beans", quantity=1)],
        payment_token="tok_visa",
    )
    with grpc.insecure_channel(order.address) as channel:
        reply = order_pb2_grpc.OrderServiceStub(channel).CreateOrder(request, metadata=metadata, timeout=15)
    assert reply.order.status == order_pb2.ORDER_STATUS_CONFIRMED
    return reply.order


def rpc_lines(process: ServiceProcess, method: str, request_id: str, within: float = 5.0) -> list[dict]:
    """The access-log lines of `method` calls made under `request_id` (logs are flushed per line)."""
    deadline = time.monotonic() + within
    while True:
        lines = [
            record
            for record in log_records(process)
            if record.get("grpc_method", "").endswith(f"/{method}") and record.get("request_id") == request_id
        ]
        if lines or time.monotonic() > deadline:
            return lines
        time.sleep(0.1)


@pytest.mark.parametrize(
    "trace_headers",
    [
        [("traceparent", f"00-{TRACE}-{SPAN}-01")],
        [("b3", f"{TRACE}-{SPAN}-1")],
        [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("x-b3-sampled", "1")],
    ],
    ids=["traceparent", "b3", "x-b3"],
)
def test_trace_and_request_id_reach_inventory_and_payment(mesh, trace_headers) -> None:
    request_id = f"req-{uuid.uuid4()}"
    place_order(mesh["order"], [*trace_headers, ("x-request-id", request_id)])
    for service, method in [
        ("order", "CreateOrder"),
        ("inventory", "ReserveStock"),
        ("payment", "Charge"),
        ("inventory", "CommitReservation"),
    ]:
        lines = rpc_lines(mesh[service], method, request_id)
        assert len(lines) == 1, f"{service} logged {lines}"
        assert lines[0]["trace_id"] == TRACE, f"{service}.{method} left the trace"
        assert lines[0]["grpc_code"] == "OK"


def test_metrics_count_grpc_calls_and_business_outcomes(mesh) -> None:
    before = {name: scrape(process.metrics_url) for name, process in mesh.items()}
    place_order(mesh["order"], [])
    after = {name: scrape(process.metrics_url) for name, process in mesh.items()}

    def handled(service: str, grpc_service: str, method: str) -> float:
        labels = {
            "grpc_type": "unary",
            "grpc_service": grpc_service,
            "grpc_method": method,
            "grpc_code": "OK",
        }
        return delta(before[service], after[service], "grpc_server_handled_total", **labels)

    assert handled("order", "shop.order.v1.OrderService", "CreateOrder") == 1
    assert handled("inventory", "shop.inventory.v1.InventoryService", "ReserveStock") == 1
    assert handled("inventory", "shop.inventory.v1.InventoryService", "CommitReservation") == 1
    assert handled("payment", "shop.payment.v1.PaymentService", "Charge") == 1
    assert delta(before["order"], after["order"], "shop_orders_total", outcome="confirmed") == 1
    assert delta(before["payment"], after["payment"], "shop_payments_total", outcome="approved") == 1
    assert delta(before["inventory"], after["inventory"], "shop_reservations_total", outcome="reserved") == 1


def test_health_answers_for_the_server_and_every_service_name(mesh) -> None:
    for name, process in mesh.items():
        for service in ["", *declaration(name).health_names]:
            assert process.health(service) == 1, f"{name} health({service!r})"  # SERVING


def test_real_error_replies_are_trailers_only(mesh) -> None:
    invalid = asyncio.run(
        raw_unary_call(
            mesh["order"].address, "/shop.order.v1.OrderService/CreateOrder", order_pb2.CreateOrderRequest()
        )
    )
    missing = asyncio.run(
        raw_unary_call(
            mesh["order"].address,
            "/shop.order.v1.OrderService/GetOrder",
            order_pb2.GetOrderRequest(order_id="nope"),
        )
    )
    # A server-streaming method that fails before its first message is Trailers-Only too.
    unwatchable = asyncio.run(
        raw_unary_call(
            mesh["order"].address,
            "/shop.order.v1.OrderService/WatchOrder",
            order_pb2.WatchOrderRequest(order_id="nope"),
        )
    )
    assert invalid.headers.get("grpc-status") == "3"
    assert missing.headers.get("grpc-status") == "5"
    assert unwatchable.headers.get("grpc-status") == "5"
    assert invalid.trailers_only
    assert missing.trailers_only
    assert unwatchable.trailers_only


def test_grpcurl_lists_a_real_service(mesh) -> None:
    result = subprocess.run(
        [str(REPO / ".venv/bin/grpcurl"), "-plaintext", "-max-time", "10", mesh["order"].address, "list"],
        capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    assert "shop.order.v1.OrderService" in result.stdout.split()
