"""The local mesh on PostgreSQL (`scripts/up --postgres`): a database and a role per service as in
the cluster, an order end to end with `shopmesh check` agreeing, and `shopmesh mesh stop-db` /
`start-db` (run as another shell would) as a real outage of one service's database: UNAVAILABLE
while it lasts, the others untouched, full recovery after without restarting the service."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.money.v1 import money_pb2
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.payment.v1 import payment_pb2, payment_pb2_grpc
from shopmesh.launch.demo import DEMO_PRODUCT
from shopmesh.launch.localdatabases import DatabasesRecord, PostgresMode
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.supervisor import LocalMesh

from .conftest import ROOT

CALL_SECONDS = 10.0
#: An outage's effect and the recovery are seen within a few health-probe periods (0.5 s each)
#: and the mesh's retries; bounded generously for a loaded machine.
SETTLE_SECONDS = 30.0


@pytest.fixture(scope="module")
def postgres_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    """The canary stack with `postgresql` set, no Prometheus (not what is tested here). The
    server's directory is one the `postgres` OS user can reach (a test's tmp_path is private to
    root); fsync off, as the tests' other PostgreSQL servers."""
    server = Path(tempfile.mkdtemp(prefix="shopmesh-pg-"))
    settings = MeshSettings.for_project(ROOT)
    settings.state = tmp_path_factory.mktemp("pgmesh") / "state"
    settings.prometheus = None
    settings.postgresql = PostgresMode(directory=server, durable=False)
    mesh = LocalMesh(settings.on_free_addresses())  # another mesh may run alongside
    try:
        mesh.start(timeout=120)
        yield mesh
    finally:
        mesh.stop()
        shutil.rmtree(server, ignore_errors=True)


def shopmesh(*arguments: str) -> subprocess.CompletedProcess[str]:
    """The CLI in a process of its own, as from another shell."""
    return subprocess.run(
        [sys.executable, "-m", "shopmesh.cli", *arguments],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def databases_option(mesh: LocalMesh) -> list[str]:
    return ["--databases", str(mesh.databases.directory)]


def code_of(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()  # type: ignore[no-any-return]
    return grpc.StatusCode.OK


def settles(check: Callable[[], bool], what: str) -> None:
    """Until `check` holds (the mesh and the service's probes need a moment)."""
    deadline = time.monotonic() + SETTLE_SECONDS
    while not check():
        assert time.monotonic() < deadline, f"not within {SETTLE_SECONDS}s: {what}"
        time.sleep(0.2)


def create_order(channel: grpc.Channel) -> order_pb2.Order:
    request = order_pb2.CreateOrderRequest(
        request_id=str(uuid.uuid4()),
        customer_id="pg-mode",
        payment_token="tok_visa",
        items=[order_pb2.OrderItem(product_id=DEMO_PRODUCT, quantity=1)],
    )
    reply = order_pb2_grpc.OrderServiceStub(channel).CreateOrder(request, timeout=CALL_SECONDS)
    return reply.order


def list_products(channel: grpc.Channel) -> object:
    stub = inventory_pb2_grpc.InventoryServiceStub(channel)
    return stub.ListProducts(inventory_pb2.ListProductsRequest(), timeout=CALL_SECONDS)


def serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        except grpc.RpcError:
            return False
    return bool(reply.status == health_pb2.HealthCheckResponse.SERVING)


def app_address(mesh: LocalMesh, service: str) -> str:
    return next(pod.app_address for pod in mesh.pods if pod.instance.app == service)


def test_each_service_has_its_own_database_and_role_as_in_the_cluster(postgres_mesh: LocalMesh) -> None:
    record = DatabasesRecord.read(postgres_mesh.databases.directory)
    assert record is not None
    assert record.engine == "postgresql"
    assert record.server is not None
    assert (postgres_mesh.databases.directory / "databases.json").stat().st_mode & 0o077 == 0
    owners = record.server.sql(
        "SELECT datname || '=' || pg_get_userbyid(datdba) FROM pg_database "
        "WHERE datname IN ('order', 'inventory', 'payment') ORDER BY datname;"
    )
    assert owners.split() == ["inventory=inventory", "order=order", "payment=payment"]
    # REVOKE ALL … FROM PUBLIC: one service's role cannot even connect to another's database.
    crossed = record.server.sql("SELECT has_database_privilege('order', 'inventory', 'CONNECT');")
    assert crossed == "f"
    for service, url in record.urls.items():
        assert url.startswith(f"postgresql+asyncpg://{service}:")
        assert url.endswith(f"@127.0.0.1:{record.server.port}/{service}")


def test_an_order_end_to_end_and_the_check_agrees(postgres_mesh: LocalMesh) -> None:
    with grpc.insecure_channel(postgres_mesh.settings.ingress) as channel:
        order = create_order(channel)
    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    # Its books are in PostgreSQL: the order's row in order's schema.
    record = DatabasesRecord.read(postgres_mesh.databases.directory)
    assert record is not None
    assert record.server is not None
    stored = record.server.sql(
        f"SELECT status FROM \"order\".orders WHERE order_id = '{order.order_id}';", database="order"
    )
    assert stored == "CONFIRMED"
    # Its default databases are the run's (its record), not SQLite files; here given by directory.
    checked = shopmesh("check", *databases_option(postgres_mesh), "--wait", "10")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "consistent" in checked.stdout


def test_stop_db_is_an_outage_of_that_database_alone_and_start_db_ends_it(postgres_mesh: LocalMesh) -> None:
    inventory = postgres_mesh.processes["app-inventory-0"]
    pid = inventory.pid
    with grpc.insecure_channel(postgres_mesh.settings.ingress) as channel:
        confirmed = create_order(channel)
        assert confirmed.status == order_pb2.ORDER_STATUS_CONFIRMED

        state = ["--state", str(postgres_mesh.settings.state)]  # as given to `mesh up --state`
        stopped = shopmesh("mesh", "stop-db", "inventory", *state)
        assert stopped.returncode == 0, stopped.stderr
        assert "inventory's database is unavailable" in stopped.stdout
        server = postgres_mesh.databases.server
        assert server is not None
        assert server.address is not None
        assert not server.address.available("inventory")
        assert server.address.available("order")
        assert server.address.available("payment")

        # What needs inventory's database fails UNAVAILABLE (the mesh may retry it), never INTERNAL.
        unavailable = grpc.StatusCode.UNAVAILABLE
        settles(lambda: code_of(lambda: list_products(channel)) == unavailable, "ListProducts UNAVAILABLE")
        assert code_of(lambda: create_order(channel)) == unavailable
        settles(lambda: not serving(app_address(postgres_mesh, "inventory")), "inventory NOT_SERVING")
        # Order's and payment's databases keep working.
        orders = order_pb2_grpc.OrderServiceStub(channel)
        got = orders.GetOrder(order_pb2.GetOrderRequest(order_id=confirmed.order_id), timeout=CALL_SECONDS)
        assert got.order.status == order_pb2.ORDER_STATUS_CONFIRMED
        with grpc.insecure_channel(app_address(postgres_mesh, "payment")) as channel_to_payment:
            payments = payment_pb2_grpc.PaymentServiceStub(channel_to_payment)
            key = f"pg-mode-{uuid.uuid4()}"
            charge = payments.Charge(
                payment_pb2.ChargeRequest(
                    idempotency_key=key,
                    amount=money_pb2.Money(currency_code="USD", minor_units=100),
                    payment_token="tok_visa",
                    order_id=str(uuid.uuid4()),
                ),
                timeout=CALL_SECONDS,
            )
            assert charge.payment.status == payment_pb2.PAYMENT_STATUS_APPROVED
            # Given back whole: a charge no order accounts for would be an orphan to `check`.
            refund = payments.Refund(
                payment_pb2.RefundRequest(idempotency_key=f"{key}-refund", charge_idempotency_key=key),
                timeout=CALL_SECONDS,
            )
            assert refund.payment.refunded.minor_units == 100
        assert serving(app_address(postgres_mesh, "order"))

        started = shopmesh("mesh", "start-db", "inventory", *databases_option(postgres_mesh))
        assert started.returncode == 0, started.stderr
        assert server.address.available("inventory")
        settles(lambda: code_of(lambda: list_products(channel)) == grpc.StatusCode.OK, "ListProducts OK")
        settles(lambda: serving(app_address(postgres_mesh, "inventory")), "inventory SERVING")
        assert create_order(channel).status == order_pb2.ORDER_STATUS_CONFIRMED
    # Recovered by itself: the same process, never restarted.
    assert inventory.running()
    assert inventory.pid == pid
    # Nothing lost or doubled by the orders the outage failed.
    checked = shopmesh("check", *databases_option(postgres_mesh), "--wait", "10")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_stop_db_of_an_unknown_service_names_the_known_ones(postgres_mesh: LocalMesh) -> None:
    completed = shopmesh("mesh", "stop-db", "shipping", *databases_option(postgres_mesh))
    assert completed.returncode == 1
    assert completed.stderr.strip() == (
        "shopmesh mesh stop-db: unknown service 'shipping': the run's databases are inventory, order, payment"
    )
