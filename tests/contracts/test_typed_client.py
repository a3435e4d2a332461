"""The generated stubs give real types: a client of all three services passes mypy --strict."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs mypy


def mypy(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", *args],
        cwd=root,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_example_client_passes_mypy_strict(root: Path) -> None:
    result = mypy(root, "scripts/example_client.py")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict_catches_a_wrong_field_type(root: Path, tmp_path: Path) -> None:
    """Guards the test above: if the stubs were untyped (Any), this would pass silently."""
    wrong = tmp_path / "wrong_client.py"
    wrong.write_text(
        "from shop.order.v1 import order_pb2\norder_pb2.OrderItem(product_id='sku-1', quantity='three')\n"
    )
    result = mypy(root, str(wrong))
    assert result.returncode != 0
    assert 'Argument "quantity" to "OrderItem" has incompatible type "str"' in result.stdout
