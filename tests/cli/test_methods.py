"""`shopmesh methods` lists every RPC of the contracts by its HTTP/2 path."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig

import pytest

pytestmark = pytest.mark.slow  # runs the shopmesh command


def test_methods_lists_every_rpc_path() -> None:
    shopmesh = shutil.which("shopmesh", path=sysconfig.get_path("scripts"))
    assert shopmesh, "the shopmesh console script is not installed"
    result = subprocess.run([shopmesh, "methods"], capture_output=True, text=True, timeout=60, check=True)
    rows = {tuple(line.split()) for line in result.stdout.splitlines()}

    assert ("order", "server_stream", "/shop.order.v1.OrderService/WatchOrder") in rows
    assert ("payment", "unary", "/shop.payment.v1.PaymentService/Refund") in rows
    assert ("inventory", "unary", "/shop.inventory.v1.InventoryService/AdjustStock") in rows
    assert len(rows) == 14, result.stdout


def test_methods_imports_neither_the_manifest_tooling_nor_a_service() -> None:
    """The CLI's promise (shopmesh/cli.py): a subcommand pays only for its own imports."""
    script = (
        "import contextlib, io, sys\n"
        "from shopmesh.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['methods'])\n"
        "heavy = ('shopmesh.manifests', 'shopmesh.localmesh', 'sqlalchemy', 'grpc')\n"
        "print(sorted(name for name in sys.modules if name.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
