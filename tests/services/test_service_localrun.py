"""`scripts/up --plain`: the three services on loopback with the demo catalog; Ctrl-C leaves
nothing behind."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.launch.ports import free_port

pytestmark = pytest.mark.slow  # runs scripts/up --plain

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture(params=["sqlite", "postgres"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The run's databases and its state directory. PostgreSQL's server lives there, so it is
    one the `postgres` OS user can reach (a test's tmp_path is private to root)."""
    if request.param == "sqlite":
        yield "sqlite", tmp_path / "state"
        return
    state = Path(tempfile.mkdtemp(prefix="shopmesh-up-"))
    state.chmod(0o755)
    try:
        yield "postgres", state
    finally:
        shutil.rmtree(state, ignore_errors=True)


def test_up_serves_the_demo_catalog_and_stops_cleanly(tmp_path: Path, database: tuple[str, Path]) -> None:
    engine, state = database
    ports = {service: free_port() for service in ("order", "inventory", "payment")}
    arguments = ["--plain", "--state", str(state), *(["--postgres"] if engine == "postgres" else [])]
    for service, port in ports.items():
        arguments += [f"--{service}-port", str(port), f"--{service}-metrics-port", str(free_port())]
    output = tmp_path / "up.out"
    with output.open("wb") as sink:
        up = subprocess.Popen(
            [str(ROOT / "scripts" / "up"), *arguments], stdout=sink, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 90  # a first run may install the project
        while "Ctrl-C stops it." not in output.read_text() and time.monotonic() < deadline:
            assert up.poll() is None, output.read_text()
            time.sleep(0.2)
        printed = output.read_text()
        assert "Ctrl-C stops it." in printed, printed
        assert f"grpcurl -plaintext 127.0.0.1:{ports['order']} list" in printed
        pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", printed)]
        assert len(pids) == 3
        if engine == "postgres":
            assert "databases: PostgreSQL 127.0.0.1:" in printed
            # The server stops with the run, like the services.
            pids.append(int((state / "postgresql" / "data" / "postmaster.pid").read_text().split()[0]))

        with grpc.insecure_channel(f"127.0.0.1:{ports['order']}") as channel:
            order = order_pb2_grpc.OrderServiceStub(channel).CreateOrder(
                order_pb2.CreateOrderRequest(
                    request_id="up-1", customer_id="me", payment_token="tok_visa",
                    items=[order_pb2.OrderItem(product_id="sku-espresso-beans", quantity=2)],
                ),
                timeout=20,
            ).order  # fmt: skip
        assert (order.status, order.total.minor_units) == (order_pb2.ORDER_STATUS_CONFIRMED, 4900)
        files = sorted(path.name for path in state.glob("*.db"))
        assert files == ([] if engine == "postgres" else ["inventory.db", "order.db", "payment.db"])
        # The run's databases, as `shopmesh check` finds them: the order is there, and agrees.
        checked = subprocess.run(
            [str(ROOT / ".venv" / "bin" / "shopmesh"), "check", "--databases", str(state), "--wait", "10"],
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "1 CONFIRMED" in checked.stdout

        up.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert up.wait(timeout=30) == 0
        assert [pid for pid in pids if _alive(pid)] == []
        assert output.read_text().rstrip().endswith("stopped")
    finally:
        if up.poll() is None:
            up.kill()
            up.wait(10)
