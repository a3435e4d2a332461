"""Concurrency: no oversell, one order per request id, one payment per charge key."""

from __future__ import annotations

import asyncio
import collections
import uuid

import grpc
import pytest
from shop_stack import Clients, Stack, status_details

from shop.money.v1 import money_pb2
from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2


async def test_fifty_orders_for_ten_units_confirm_exactly_ten(backend: tuple[Stack, Clients]) -> None:
    stack, clients = backend
    await clients.set_stock("sku-tamper", 10)
    batch = uuid.uuid4().hex[:8]

    async def place(n: int) -> int:
        try:
            order = await clients.create_order(f"fifty-{batch}-{n}", {"sku-tamper": 1})
        except grpc.aio.AioRpcError as error:
            raise AssertionError(f"order {n}: {error.code()} {error.details()}") from None
        return order.status

    outcomes = collections.Counter(await asyncio.gather(*(place(n) for n in range(50))))

    assert outcomes == {order_pb2.ORDER_STATUS_CONFIRMED: 10, order_pb2.ORDER_STATUS_REJECTED: 40}
    assert await clients.available("sku-tamper") == 0
    committed = await stack.rows(
        "inventory",
        "SELECT SUM(l.quantity) FROM reservation_lines l JOIN reservations r USING (reservation_id) "
        f"WHERE r.status = 'COMMITTED' AND l.product_id = 'sku-tamper' AND r.reservation_id IN "
        f"({','.join(repr(oid) for oid in await _order_ids(stack, f'fifty-{batch}-'))})",
    )
    assert committed[0][0] == 10
    await stack.assert_books_agree()


async def _order_ids(stack: Stack, request_prefix: str) -> list[str]:
    rows = await stack.rows("order", f"SELECT order_id FROM orders WHERE request_id LIKE '{request_prefix}%'")
    return [row[0] for row in rows]


async def test_same_request_id_at_once_makes_one_order(backend: tuple[Stack, Clients]) -> None:
    stack, clients = backend
    await clients.set_stock("sku-milk-jug", 40)
    request_id = f"twice-{uuid.uuid4().hex[:8]}"
    orders = await asyncio.gather(*(clients.create_order(request_id, {"sku-milk-jug": 2}) for _ in range(5)))
    assert {order.order_id for order in orders} == {orders[0].order_id}
    assert {order.status for order in orders} == {order_pb2.ORDER_STATUS_CONFIRMED}
    assert await clients.available("sku-milk-jug") == 38
    # And once more, later: the same order again, no new charge.
    again = await clients.create_order(request_id, {"sku-milk-jug": 2})
    assert again == orders[0]
    assert await clients.available("sku-milk-jug") == 38
    assert await stack.rows("order", f"SELECT COUNT(*) FROM orders WHERE request_id = '{request_id}'") == [
        (1,)
    ]
    charges = await stack.rows(
        "payment", f"SELECT COUNT(*) FROM payments WHERE order_id = '{orders[0].order_id}'"
    )
    assert charges == [(1,)]


async def test_same_request_id_with_another_request_is_refused(sqlite_clients: Clients) -> None:
    await sqlite_clients.set_stock("sku-milk-jug", 40)
    request_id = f"reused-{uuid.uuid4().hex[:8]}"
    await sqlite_clients.create_order(request_id, {"sku-milk-jug": 1})
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await sqlite_clients.create_order(request_id, {"sku-milk-jug": 3})
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    info = status_details(caught.value)["error_info"]
    assert (info.reason, info.domain) == ("REQUEST_ID_REUSED", "order.shop")


async def test_same_charge_key_at_once_charges_once(backend: tuple[Stack, Clients]) -> None:
    stack, clients = backend
    key = f"charge-{uuid.uuid4().hex[:8]}"
    request = payment_pb2.ChargeRequest(
        idempotency_key=key,
        amount=money_pb2.Money(currency_code="USD", minor_units=1234),
        payment_token="tok_visa",
        order_id="order-x",
    )
    replies = await asyncio.gather(*(clients.payment.Charge(request) for _ in range(8)))
    assert {reply.payment.payment_id for reply in replies} == {replies[0].payment.payment_id}
    assert replies[0].payment.status == payment_pb2.PAYMENT_STATUS_APPROVED
    assert await stack.rows("payment", f"SELECT COUNT(*) FROM payments WHERE idempotency_key = '{key}'") == [
        (1,)
    ]

    different = payment_pb2.ChargeRequest()
    different.CopyFrom(request)
    different.amount.minor_units = 999
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await clients.payment.Charge(different)
    assert caught.value.code() == grpc.StatusCode.ALREADY_EXISTS
    assert status_details(caught.value)["error_info"].reason == "IDEMPOTENCY_KEY_REUSED"


async def test_concurrent_refunds_never_exceed_the_charge(postgres_clients: Clients) -> None:
    clients = postgres_clients
    charge = await clients.payment.Charge(
        payment_pb2.ChargeRequest(
            idempotency_key=f"refund-race-{uuid.uuid4().hex[:8]}",
            amount=money_pb2.Money(currency_code="USD", minor_units=1000),
            payment_token="tok_visa",
            order_id="order-y",
        )
    )
    payment_id = charge.payment.payment_id

    async def refund(n: int) -> str:
        try:
            await clients.payment.Refund(
                payment_pb2.RefundRequest(
                    idempotency_key=f"{payment_id}-{n}",
                    payment_id=payment_id,
                    amount=money_pb2.Money(currency_code="USD", minor_units=300),
                )
            )
        except grpc.aio.AioRpcError as error:
            return f"{error.code().name} {status_details(error)['error_info'].reason}"
        return "OK"

    outcomes = collections.Counter(await asyncio.gather(*(refund(n) for n in range(6))))
    assert outcomes == {"OK": 3, "FAILED_PRECONDITION REFUND_EXCEEDS_CHARGE": 3}
    payment = (await clients.payment.GetPayment(payment_pb2.GetPaymentRequest(payment_id=payment_id))).payment
    assert (payment.refunded.minor_units, payment.status) == (
        900,
        payment_pb2.PAYMENT_STATUS_PARTIALLY_REFUNDED,
    )
