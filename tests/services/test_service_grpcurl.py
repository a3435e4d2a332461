"""The stack through real grpcurl 1.8.6 (it speaks reflection v1alpha): what an operator types."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from shop_stack import Stack

GRPCURL = Path(sys.executable).with_name("grpcurl")


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(GRPCURL), "-plaintext", "-max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.slow  # runs grpcurl
def test_grpcurl_version_is_the_one_that_needs_v1alpha() -> None:
    version = subprocess.run(
        [str(GRPCURL), "-version"], capture_output=True, text=True, timeout=10, check=True
    )
    assert "1.8.6" in version.stdout + version.stderr


def test_list_and_describe(sqlite_stack: Stack) -> None:
    address = sqlite_stack.processes["order"].address
    listed = grpcurl(address, "list")
    assert listed.returncode == 0, listed.stderr
    assert set(listed.stdout.split()) >= {"shop.order.v1.OrderService", "grpc.health.v1.Health"}
    described = grpcurl(address, "describe", "shop.order.v1.OrderService")
    assert described.returncode == 0, described.stderr
    described_rpcs = " ".join(described.stdout.split())
    assert (
        "rpc CreateOrder ( .shop.order.v1.CreateOrderRequest ) "
        "returns ( .shop.order.v1.CreateOrderResponse );" in described_rpcs
    )
    assert (
        "rpc WatchOrder ( .shop.order.v1.WatchOrderRequest ) "
        "returns ( stream .shop.order.v1.WatchOrderResponse );" in described_rpcs
    )
    message = grpcurl(address, "describe", "shop.order.v1.CreateOrderRequest")
    assert "string request_id = 1;" in message.stdout


def test_create_then_get_order(sqlite_stack: Stack) -> None:
    address = sqlite_stack.processes["order"].address
    request = {
        "request_id": f"grpcurl-{uuid.uuid4().hex[:8]}",
        "customer_id": "grpcurl-customer",
        "items": [{"product_id": "sku-espresso-beans", "quantity": 1}],
        "payment_token": "tok_visa",
    }
    created = grpcurl("-d", json.dumps(request), address, "shop.order.v1.OrderService/CreateOrder")
    assert created.returncode == 0, created.stderr
    order = json.loads(created.stdout)["order"]
    assert order["status"] == "ORDER_STATUS_CONFIRMED"
    assert order["total"] == {"currency_code": "USD", "minor_units": "2450"}

    got = grpcurl(
        "-d", json.dumps({"order_id": order["order_id"]}), address, "shop.order.v1.OrderService/GetOrder"
    )
    assert got.returncode == 0, got.stderr
    assert json.loads(got.stdout)["order"] == order


def test_bad_request_shows_field_violations(sqlite_stack: Stack) -> None:
    address = sqlite_stack.processes["order"].address
    bad = grpcurl(
        "-d", json.dumps({"order_id": "not valid!"}), address, "shop.order.v1.OrderService/GetOrder"
    )
    assert bad.returncode != 0
    assert "Code: InvalidArgument" in bad.stderr
    assert '"field":"order_id"' in bad.stderr.replace(" ", "")


def test_health_check(sqlite_stack: Stack) -> None:
    for name, service in (
        ("order", "shop.order.v1.OrderService"),
        ("inventory", "shop.inventory.v1.InventoryService"),
        ("payment", "shop.payment.v1.PaymentService"),
    ):
        address = sqlite_stack.processes[name].address
        for target in ("", service):
            checked = grpcurl("-d", json.dumps({"service": target}), address, "grpc.health.v1.Health/Check")
            assert checked.returncode == 0, checked.stderr
            assert json.loads(checked.stdout) == {"status": "SERVING"}
