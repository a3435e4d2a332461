"""`shopmesh methods` lists every RPC of the contracts by its HTTP/2 path."""

from __future__ import annotations

import shutil
import subprocess
import sysconfig


def test_methods_lists_every_rpc_path() -> None:
    shopmesh = shutil.which("shopmesh", path=sysconfig.get_path("scripts"))
    assert shopmesh, "the shopmesh console script is not installed"
    result = subprocess.run([shopmesh, "methods"], capture_output=True, text=True, timeout=60, check=True)
    rows = {tuple(line.split()) for line in result.stdout.splitlines()}

    assert ("order", "server_stream", "/shop.order.v1.OrderService/WatchOrder") in rows
    assert ("payment", "unary", "/shop.payment.v1.PaymentService/Refund") in rows
    assert ("inventory", "unary", "/shop.inventory.v1.InventoryService/AdjustStock") in rows
    assert len(rows) == 14, result.stdout
