"""scripts/example_client.py, the typed client the README points to, works against real services.

(tests/contracts runs mypy --strict on it; this runs it.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shop_stack import Stack

EXAMPLE_CLIENT = Path(__file__).resolve().parents[2] / "scripts" / "example_client.py"


def test_example_client_orders_watches_and_finds_the_payment(sqlite_stack: Stack) -> None:
    addresses = {name: process.address for name, process in sqlite_stack.processes.items()}
    result = subprocess.run(
        [
            sys.executable,
            str(EXAMPLE_CLIENT),
            f"--order={addresses['order']}",
            f"--inventory={addresses['inventory']}",
            f"--payment={addresses['payment']}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert ": ORDER_STATUS_CONFIRMED total " in result.stdout
    assert "watch: ORDER_STATUS_CONFIRMED" in result.stdout
    assert ": PAYMENT_STATUS_APPROVED" in result.stdout
