"""The whole flow through the generated clients: create, get, list, watch, cancel; the saga's
business refusals (declined card, missing stock) and its compensations (payment unavailable)."""

from __future__ import annotations

import asyncio
import urllib.request
import uuid

import grpc
import pytest
from shop_stack import Clients, Stack, status_details

from shop.money.v1 import money_pb2
from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2


def _request_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


async def test_order_lifecycle(backend: tuple[Stack, Clients]) -> None:
    stack, clients = backend
    await clients.set_stock("sku-espresso-beans", 100)
    await clients.set_stock("sku-moka-pot", 25)
    customer = _request_id("customer")
    request = order_pb2.CreateOrderRequest(
        request_id=_request_id("life"),
        customer_id=customer,
        items=[
            order_pb2.OrderItem(product_id="sku-espresso-beans", quantity=2),
            order_pb2.OrderItem(product_id="sku-moka-pot", quantity=1),
        ],
        payment_token="tok_visa",
    )
    order = (await clients.order.CreateOrder(request, timeout=20)).order

    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    # Prices come from the catalog: 2 x 24.50 + 34.00.
    assert [(line.product_id, line.product_name, line.unit_price.minor_units, line.line_total.minor_units)
            for line in order.items] == [
        ("sku-espresso-beans", "Espresso beans, 1 kg", 2450, 4900),
        ("sku-moka-pot", "Moka pot, 6 cups", 3400, 3400),
    ]  # fmt: skip
    assert order.total == money_pb2.Money(currency_code="USD", minor_units=8300)
    assert (await clients.available("sku-espresso-beans"), await clients.available("sku-moka-pot")) == (
        98,
        24,
    )
    got = (await clients.order.GetOrder(order_pb2.GetOrderRequest(order_id=order.order_id))).order
    assert got == order
    payment = (
        await clients.payment.GetPayment(payment_pb2.GetPaymentRequest(payment_id=order.payment_id))
    ).payment
    assert (payment.status, payment.amount.minor_units, payment.order_id) == (
        payment_pb2.PAYMENT_STATUS_APPROVED, 8300, order.order_id,
    )  # fmt: skip

    # A confirmed order's stream is its current state, then the end.
    stream = [reply.order.status async for reply in clients.order.WatchOrder(
        order_pb2.WatchOrderRequest(order_id=order.order_id), timeout=10)]  # fmt: skip
    assert stream == [order_pb2.ORDER_STATUS_CONFIRMED]

    second = await clients.create_order(_request_id("life"), {"sku-moka-pot": 1})
    assert second.customer_id == "customer-1"
    listed = await clients.order.ListOrders(order_pb2.ListOrdersRequest(customer_id=customer, page_size=1))
    assert [o.order_id for o in listed.orders] == [order.order_id]
    assert listed.next_page_token == ""

    cancelled = (await clients.order.CancelOrder(order_pb2.CancelOrderRequest(order_id=order.order_id))).order
    assert cancelled.status == order_pb2.ORDER_STATUS_CANCELLED
    again = (await clients.order.CancelOrder(order_pb2.CancelOrderRequest(order_id=order.order_id))).order
    assert again.status == order_pb2.ORDER_STATUS_CANCELLED
    assert (await clients.available("sku-espresso-beans"), await clients.available("sku-moka-pot")) == (
        100,
        24,
    )
    refunded = (
        await clients.payment.GetPayment(payment_pb2.GetPaymentRequest(payment_id=order.payment_id))
    ).payment
    assert (refunded.status, refunded.refunded.minor_units) == (payment_pb2.PAYMENT_STATUS_REFUNDED, 8300)
    await stack.assert_books_agree()


async def test_list_orders_pages_newest_first(backend: tuple[Stack, Clients]) -> None:
    clients = backend[1]
    await clients.set_stock("sku-milk-jug", 40)
    customer = _request_id("pager")
    created = []
    for _ in range(3):
        request = order_pb2.CreateOrderRequest(
            request_id=_request_id("page"), customer_id=customer, payment_token="tok_visa",
            items=[order_pb2.OrderItem(product_id="sku-milk-jug", quantity=1)],
        )  # fmt: skip
        created.append((await clients.order.CreateOrder(request, timeout=20)).order.order_id)
    seen: list[str] = []
    token = ""
    for _ in range(5):
        page = await clients.order.ListOrders(
            order_pb2.ListOrdersRequest(customer_id=customer, page_size=2, page_token=token)
        )
        seen += [order.order_id for order in page.orders]
        token = page.next_page_token
        if not token:
            break
    assert seen == created[::-1]
    # A token names its listing: another customer's listing refuses it.
    first = await clients.order.ListOrders(order_pb2.ListOrdersRequest(customer_id=customer, page_size=1))
    assert first.next_page_token
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.order.ListOrders(
            order_pb2.ListOrdersRequest(customer_id="someone-else", page_token=first.next_page_token)
        )
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert [v.field for v in status_details(caught.value)["bad_request"].field_violations] == ["page_token"]


async def test_declined_card_rejects_and_restocks(backend: tuple[Stack, Clients]) -> None:
    stack, clients = backend
    await clients.set_stock("sku-grinder", 10)
    order = await clients.create_order(_request_id("decline"), {"sku-grinder": 3}, token="tok_chargeDeclined")
    assert order.status == order_pb2.ORDER_STATUS_REJECTED
    assert "card_declined" in order.rejection_reason
    assert await clients.available("sku-grinder") == 10
    payment = await clients.payment.GetPayment(payment_pb2.GetPaymentRequest(payment_id=order.payment_id))
    assert payment.payment.status == payment_pb2.PAYMENT_STATUS_DECLINED
    await stack.assert_books_agree()


@pytest.mark.parametrize(
    ("items", "reason"),
    [({"sku-grinder": 11}, "insufficient stock"), ({"sku-does-not-exist": 1}, "unknown product")],
)
async def test_missing_stock_or_product_rejects(
    backend: tuple[Stack, Clients], items: dict[str, int], reason: str
) -> None:
    clients = backend[1]
    await clients.set_stock("sku-grinder", 10)
    order = await clients.create_order(_request_id("short"), items)
    assert order.status == order_pb2.ORDER_STATUS_REJECTED
    assert order.rejection_reason.startswith(reason)
    assert order.payment_id == ""
    assert await clients.available("sku-grinder") == 10


async def test_payment_unavailable_compensates(backend: tuple[Stack, Clients]) -> None:
    stack, clients = backend
    await clients.set_stock("sku-grinder", 10)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.create_order(_request_id("outage"), {"sku-grinder": 4}, token="tok_unavailable")
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    info = status_details(caught.value)["error_info"]
    assert (info.reason, info.domain) == ("DEPENDENCY_UNAVAILABLE", "order.shop")
    order_id = info.metadata["order_id"]

    order = (await clients.order.GetOrder(order_pb2.GetOrderRequest(order_id=order_id))).order
    assert order.status == order_pb2.ORDER_STATUS_FAILED
    assert await clients.available("sku-grinder") == 10
    # The charge key is voided: a charge arriving late (a retry the mesh still had in flight)
    # can no longer take the customer's money.
    with pytest.raises(grpc.aio.AioRpcError) as late:
        await clients.payment.Charge(
            payment_pb2.ChargeRequest(
                idempotency_key=f"order-{order_id}", order_id=order_id, payment_token="tok_visa",
                amount=money_pb2.Money(currency_code="USD", minor_units=order.total.minor_units),
            )
        )  # fmt: skip
    assert status_details(late.value)["error_info"].reason == "CHARGE_VOIDED"
    await stack.assert_books_agree()


def _scrape(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as page:
        return str(page.read().decode())


async def test_business_counters_are_exported(sqlite_stack: Stack, sqlite_clients: Clients) -> None:
    """Each service's outcomes reach its /metrics page."""
    await sqlite_clients.set_stock("sku-milk-jug", 40)
    await sqlite_clients.create_order(_request_id("counted"), {"sku-milk-jug": 1})
    expected = {
        "order": 'shop_orders_total{outcome="confirmed"}',
        "inventory": 'shop_reservations_total{outcome="reserved"}',
        "payment": 'shop_payments_total{outcome="approved"}',
    }
    for service, series in expected.items():
        lines = (await asyncio.to_thread(_scrape, sqlite_stack.processes[service].metrics_url)).splitlines()
        values = [float(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(series)]
        assert len(values) == 1, (service, series)
        assert values[0] >= 1, (service, series)
