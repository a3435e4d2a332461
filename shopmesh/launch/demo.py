"""What a person can try on a running stack: the grpcurl lines the plain run and the local mesh
print. Written once; each run says where order and inventory answer."""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence

#: The grpcurl the project installs into .venv: it need not be on PATH.
GRPCURL = ".venv/bin/grpcurl -plaintext"
#: A product of the demo catalog, the seed inventory declares.
DEMO_PRODUCT = "sku-espresso-beans"


def grpcurl_examples(
    order: str, inventory: str, *, health_check: bool = True, more: Sequence[str] = ()
) -> list[str]:
    """Calls to try, for order answering at `order` and inventory at `inventory` (the same
    address behind an ingress gateway); `health_check` adds a health check of `order`, `more`
    lines of the caller's own."""
    create = {
        "request_id": "demo-1",
        "customer_id": "me",
        "payment_token": "tok_visa",
        "items": [{"product_id": DEMO_PRODUCT, "quantity": 2}],
    }
    order_id = shlex.quote(json.dumps({"order_id": "<order_id>"}))
    lines = [
        f"{GRPCURL} {order} list",
        f"{GRPCURL} {order} describe shop.order.v1.OrderService",
        f"{GRPCURL} {inventory} shop.inventory.v1.InventoryService/ListProducts",
        f"{GRPCURL} -d {shlex.quote(json.dumps(create))} {order} shop.order.v1.OrderService/CreateOrder",
        f"{GRPCURL} -d {order_id} {order} shop.order.v1.OrderService/GetOrder",
        f"{GRPCURL} -d {order_id} {order} shop.order.v1.OrderService/WatchOrder",
    ]
    if health_check:
        lines.append(f"{GRPCURL} {order} grpc.health.v1.Health/Check")
    lines.extend(more)
    lines.append("(tok_chargeDeclined declines, tok_unavailable is a processor outage)")
    return lines
