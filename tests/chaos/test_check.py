"""`shopmesh check` on real databases, SQLite and PostgreSQL: books the real services wrote agree
(also while orders are being placed), and each kind of damage done to a copy of them is found.

One stack per backend, with the demo catalog and no AdjustStock: so the demo baseline is what
was stocked. Its orders: confirmed, declined, out of stock, failed (processor outage),
cancelled. The damage is done to copies taken once the stack has stopped, never to the books
the stack still writes.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import pytest
from fixtures.postgres import PostgresServer, unique_name
from fixtures.processes import start_stack
from sqlalchemy.engine import make_url

from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.check.model import Kind
from shopmesh.check.reading import DatabaseUrls, Unreadable
from shopmesh.check.report import CheckReport, ExitStatus, check
from shopmesh.check.stocked import demo_catalog
from shopmesh.launch.stack import Stack

pytestmark = pytest.mark.slow
SERVICES = ("order", "inventory", "payment")
ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Shop:
    backend: str
    stack: Stack
    urls: DatabaseUrls
    postgres: PostgresServer | None
    orders: dict[str, str] = field(default_factory=dict)  # what each order is -> its id
    running: bool = True

    def channel(self) -> grpc.aio.Channel:
        assert self.running, "the stack was stopped to copy its books; run the live tests first"
        return grpc.aio.insecure_channel(self.stack.address("order"))


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
async def shop(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Shop]:
    state = tmp_path_factory.mktemp(f"check-{request.param}")
    postgres: PostgresServer | None = None
    urls: dict[str, str] | None = None
    if request.param == "postgres":
        postgres = request.getfixturevalue("postgres")
        urls = {name: postgres.create_database(unique_name(name)) for name in SERVICES}
    stack = await asyncio.to_thread(start_stack, Stack, state, urls)
    database_urls = DatabaseUrls(**{name: process.database_url for name, process in stack.processes.items()})
    shop = Shop(request.param, stack, database_urls, postgres)
    try:
        async with shop.channel() as channel:
            shop.orders = await _place_orders(order_pb2_grpc.OrderServiceStub(channel))
        yield shop
    finally:
        stack.kill()


async def _place_orders(orders: order_pb2_grpc.OrderServiceStub) -> dict[str, str]:
    async def create(token: str, **units: int) -> order_pb2.Order:
        request = order_pb2.CreateOrderRequest(
            request_id=uuid.uuid4().hex,
            customer_id="checked",
            payment_token=token,
            items=[order_pb2.OrderItem(product_id=p.replace("_", "-"), quantity=n) for p, n in units.items()],
        )
        if token != "tok_unavailable":
            return (await orders.CreateOrder(request, timeout=20)).order
        with pytest.raises(grpc.aio.AioRpcError) as failed:  # FAILED: the reply is UNAVAILABLE
            await orders.CreateOrder(request, timeout=20)
        assert failed.value.code() == grpc.StatusCode.UNAVAILABLE
        listed = await orders.ListOrders(order_pb2.ListOrdersRequest(customer_id="checked", page_size=1))
        return listed.orders[0]

    placed = {
        "confirmed": await create("tok_visa", sku_espresso_beans=2, sku_moka_pot=1),
        "confirmed-too": await create("tok_mastercard", sku_grinder=3),
        "declined": await create("tok_chargeDeclined", sku_tamper=1),
        "out-of-stock": await create("tok_visa", sku_grinder=8),  # 7 left
        "failed": await create("tok_unavailable", sku_milk_jug=2),
        "cancelled": await create("tok_visa", sku_milk_jug=1),
    }
    await orders.CancelOrder(order_pb2.CancelOrderRequest(order_id=placed["cancelled"].order_id), timeout=20)
    expected = {"confirmed": 2, "confirmed-too": 2, "declined": 3, "out-of-stock": 3, "failed": 5}
    assert {k: placed[k].status for k in expected} == expected, placed
    return {what: order.order_id for what, order in placed.items()}


def _assert_consistent(report: CheckReport) -> None:
    assert report.to_json()["findings"] == []
    assert report.consistent, report.to_text()
    assert report.exit_status is ExitStatus.CONSISTENT


async def test_the_books_the_services_wrote_agree(shop: Shop) -> None:
    report = await check(shop.urls, stocked=demo_catalog())
    _assert_consistent(report)
    assert report.evaluation.orders_by_status == {"CONFIRMED": 2, "REJECTED": 2, "FAILED": 1, "CANCELLED": 1}
    assert report.evaluation.stock_checked
    stock = {line.product_id: line for line in report.evaluation.stock or []}
    assert (stock["sku-grinder"].available, stock["sku-grinder"].committed) == (7, 3)
    assert stock["sku-milk-jug"].available == 40  # failed and cancelled: both back in stock
    assert set(report.counts().values()) == {0}


async def test_orders_placed_while_checking_are_waited_for_or_left_alone(shop: Shop) -> None:
    async with shop.channel() as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        placing = [
            asyncio.ensure_future(
                orders.CreateOrder(
                    order_pb2.CreateOrderRequest(
                        request_id=uuid.uuid4().hex,
                        customer_id="busy",
                        payment_token="tok_visa",
                        items=[order_pb2.OrderItem(product_id="sku-espresso-beans", quantity=1)],
                    ),
                    timeout=30,
                )
            )
            for _ in range(12)
        ]
        await asyncio.sleep(0.2)  # some are in flight now
        report = await check(shop.urls, stocked=demo_catalog(), wait=60)
        replies = await asyncio.gather(*placing)
    _assert_consistent(report)
    assert all(reply.order.status == order_pb2.ORDER_STATUS_CONFIRMED for reply in replies)
    _assert_consistent(await check(shop.urls, stocked=demo_catalog()))


def test_the_command_reads_postgresql_and_sqlite_urls_and_hides_passwords(shop: Shop) -> None:
    result = _shopmesh_check(shop.urls, "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(result.stdout)
    assert report["consistent"] is True
    assert report["counts"]["lost_order"] == report["counts"]["orphan_charge"] == 0
    assert report["counts"]["stock_drift"] == 0
    if shop.backend == "postgres":
        password = make_url(shop.urls.order).password
        assert password
        assert password not in result.stdout
        assert "***" in report["databases"]["order"]


# -- damage done to copies of the books ----------------------------------------------------------


@dataclass
class Damage:
    service: str
    sql: Callable[[Mapping[str, str]], str]  # the statement, given the shop's order ids
    kind: Kind
    subject: Callable[[Mapping[str, str]], str]


DAMAGE = {
    # A declined order's charge turned into an approved one: money no order accounts for.
    "orphan-charge": Damage(
        "payment",
        lambda o: f"UPDATE payments SET status = 'APPROVED' WHERE idempotency_key = 'order-{o['declined']}'",
        Kind.ORPHAN_CHARGE,
        lambda o: f"order-{o['declined']}",
    ),
    # A confirmed order's reservation (lines first: they reference it) gone.
    "lost-reservation": Damage(
        "inventory",
        lambda o: (
            f"DELETE FROM reservation_lines WHERE reservation_id = '{o['confirmed']}'; "
            f"DELETE FROM reservations WHERE reservation_id = '{o['confirmed']}'"
        ),
        Kind.LOST_RESERVATION,
        lambda o: o["confirmed"],
    ),
    "stock-drift": Damage(
        "inventory",
        lambda o: "UPDATE products SET available = available + 1 WHERE product_id = 'sku-tamper'",
        Kind.STOCK_DRIFT,
        lambda o: "sku-tamper",
    ),
    "confirmed-without-charge": Damage(
        "payment",
        lambda o: f"DELETE FROM payments WHERE idempotency_key = 'order-{o['confirmed-too']}'",
        Kind.CONFIRMED_NOT_CHARGED,
        lambda o: o["confirmed-too"],
    ),
    "lost-order": Damage(
        "order",
        lambda o: f"DELETE FROM orders WHERE order_id = '{o['confirmed']}'",
        Kind.LOST_ORDER,
        lambda o: o["confirmed"],
    ),
    # Money given back to a customer whose order stays confirmed.
    "refunded-but-confirmed": Damage(
        "payment",
        lambda o: (
            "UPDATE payments SET status = 'REFUNDED', refunded_minor_units = amount_minor_units "
            f"WHERE idempotency_key = 'order-{o['confirmed']}'"
        ),
        Kind.CONFIRMED_NOT_CHARGED,
        lambda o: o["confirmed"],
    ),
}


@pytest.fixture(scope="module")
def stopped_shop(shop: Shop) -> Shop:
    """The shop with its processes stopped: its books no longer change, and can be copied."""
    shop.stack.kill()
    shop.running = False
    return shop


@pytest.mark.parametrize("damage", DAMAGE.values(), ids=DAMAGE.keys())
async def test_damage_to_a_copy_is_found(stopped_shop: Shop, damage: Damage, tmp_path: Path) -> None:
    copy = _copy_books(stopped_shop, tmp_path)
    intact = await check(copy, stocked=demo_catalog())
    _assert_consistent(intact)

    _execute(stopped_shop, copy, damage.service, damage.sql(stopped_shop.orders))
    report = await check(copy, stocked=demo_catalog())
    assert report.exit_status is ExitStatus.INCONSISTENT
    subject = damage.subject(stopped_shop.orders)
    assert (damage.kind, subject) in [(f.kind, f.subject) for f in report.evaluation.findings], (
        report.to_text()
    )
    assert report.counts()[damage.kind.value] >= 1

    result = _shopmesh_check(copy)
    assert result.returncode == 1, result.stdout + result.stderr
    assert f"{damage.kind.value} {subject}:" in result.stdout


async def test_a_database_that_cannot_be_read_is_named(stopped_shop: Shop, tmp_path: Path) -> None:
    copy = _copy_books(stopped_shop, tmp_path)
    if stopped_shop.backend == "postgres":
        broken = DatabaseUrls(copy.order, copy.inventory, str(make_url(copy.payment).set(port=1)))
    else:
        broken = DatabaseUrls(copy.order, copy.inventory, f"sqlite+aiosqlite:///{tmp_path / 'nowhere.db'}")
    with pytest.raises(Unreadable, match=r"^payment: "):
        await check(broken, stocked=None)
    result = _shopmesh_check(broken)
    assert result.returncode == 2
    assert result.stderr.startswith("shopmesh check: payment: ")
    assert result.stderr.count("\n") == 1
    assert not (tmp_path / "nowhere.db").exists()  # a check never creates a database


def test_a_recorded_baseline_is_what_the_stock_is_checked_against(stopped_shop: Shop, tmp_path: Path) -> None:
    copy = _copy_books(stopped_shop, tmp_path)
    _execute(stopped_shop, copy, "inventory", "UPDATE products SET available = available + 5")
    assert _shopmesh_check(copy).returncode == 1  # against the demo catalog: five products drift
    recorded = _shopmesh_check(copy, "--record-stock", str(tmp_path / "stock.json"))
    assert recorded.returncode == 0, recorded.stderr
    assert _shopmesh_check(copy, "--stocked", str(tmp_path / "stock.json")).returncode == 0
    skipped = _shopmesh_check(copy, "--stocked", "none")
    assert skipped.returncode == 0
    assert "note: stock not checked" in skipped.stdout


def _copy_books(shop: Shop, directory: Path) -> DatabaseUrls:
    urls = {}
    for service in SERVICES:
        source = shop.urls.of(service)
        if shop.postgres is None:
            target = directory / f"{service}.db"
            with sqlite3.connect(make_url(source).database or "") as origin, sqlite3.connect(target) as copy:
                origin.backup(copy)
            urls[service] = f"sqlite+aiosqlite:///{target}"
        else:
            original = make_url(source)
            name = unique_name(f"copy_{service}")
            shop.postgres.sql(
                f"CREATE DATABASE {name} TEMPLATE {original.database} OWNER {original.username}"
            )
            urls[service] = original.set(database=name).render_as_string(hide_password=False)
    return DatabaseUrls(**urls)


def _execute(shop: Shop, copy: DatabaseUrls, service: str, sql: str) -> None:
    if shop.postgres is None:
        with sqlite3.connect(make_url(copy.of(service)).database or "") as database:
            database.executescript(sql)
    else:
        database = make_url(copy.of(service)).database or ""
        shop.postgres.sql(f'SET search_path TO "{service}"; {sql}', database=database)


def _shopmesh_check(urls: DatabaseUrls, *options: str) -> subprocess.CompletedProcess[str]:
    arguments = [f"--{service}-url={urls.of(service)}" for service in SERVICES]
    return subprocess.run(
        [sys.executable, "-m", "shopmesh.cli", "check", *arguments, *options],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
