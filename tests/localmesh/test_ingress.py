"""grpcurl (the real one, v1.8.6) through the ingress gateway: plaintext in, routed by the
Gateway's VirtualService, mTLS with the gateway's identity into the mesh."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

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
