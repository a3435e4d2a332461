"""The saga under faults, frozen at exact steps by a proxy (no hook in the service's code):
a caller's deadline passing mid-saga, a transient outage then a retry with the same request id,
the order process SIGKILLed after reserve and after charge, and a live WatchOrder stream."""

from __future__ import annotations

import asyncio
import signal
import uuid

import grpc
import pytest
from holding_proxy import Mode
from shop_stack import ProxiedOrder, status_details

from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2

CHARGE = "/shop.payment.v1.PaymentService/Charge"
COMMIT = "/shop.inventory.v1.InventoryService/CommitReservation"


def _request_id(label: str) -> str:
    return f"{label}-{uuid.uuid4().hex[:10]}"


async def _order_id_of(proxied: ProxiedOrder, request_id: str) -> str:
    rows = await proxied.stack.rows("order", f"SELECT order_id FROM orders WHERE request_id = '{request_id}'")
    assert len(rows) == 1
    return str(rows[0][0])


async def test_watch_streams_each_change(proxied_order: ProxiedOrder) -> None:
    proxied = proxied_order
    await proxied.clients.set_stock("sku-moka-pot", 25)
    proxied.payment.rules[CHARGE] = Mode.HOLD_REQUEST
    request_id = _request_id("watch")
    creating = asyncio.create_task(proxied.clients.create_order(request_id, {"sku-moka-pot": 1}))
    await asyncio.wait_for(proxied.payment.held.wait(), 10)
    order_id = await _order_id_of(proxied, request_id)

    stream = proxied.clients.order.WatchOrder(order_pb2.WatchOrderRequest(order_id=order_id), timeout=15)
    first = await stream.read()
    assert first.order.status == order_pb2.ORDER_STATUS_PENDING
    assert first.order.total.minor_units == 3400  # priced: stock is reserved, the charge is held
    proxied.payment.release.set()
    second = await stream.read()
    assert second.order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert await stream.read() == grpc.aio.EOF  # the stream ends at a final status
    assert (await creating).status == order_pb2.ORDER_STATUS_CONFIRMED


async def test_deadline_passing_mid_saga_is_compensated(proxied_order: ProxiedOrder) -> None:
    proxied = proxied_order
    await proxied.clients.set_stock("sku-tamper", 15)
    proxied.payment.rules[CHARGE] = Mode.HOLD_REQUEST  # payment never answers in time
    request_id = _request_id("late")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxied.clients.create_order(request_id, {"sku-tamper": 5}, seconds=1.5)
    assert caught.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED

    # The caller is gone; the service still owes the compensation, on its own budget.
    order = await proxied.clients.settled_order(await _order_id_of(proxied, request_id), seconds=15)
    assert order.status == order_pb2.ORDER_STATUS_FAILED
    assert "DEADLINE_EXCEEDED" in order.rejection_reason
    assert await proxied.clients.available("sku-tamper") == 15
    await proxied.stack.assert_books_agree()


async def test_retry_after_an_outage_confirms_the_same_order(proxied_order: ProxiedOrder) -> None:
    proxied = proxied_order
    await proxied.clients.set_stock("sku-milk-jug", 40)
    proxied.payment.rules[CHARGE] = Mode.UNAVAILABLE
    request_id = _request_id("retry")
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await proxied.clients.create_order(request_id, {"sku-milk-jug": 2})
    assert caught.value.code() == grpc.StatusCode.UNAVAILABLE
    order_id = status_details(caught.value)["error_info"].metadata["order_id"]
    assert await proxied.clients.available("sku-milk-jug") == 40

    del proxied.payment.rules[CHARGE]
    order = await proxied.clients.create_order(request_id, {"sku-milk-jug": 2})
    assert (order.order_id, order.status) == (order_id, order_pb2.ORDER_STATUS_CONFIRMED)
    assert await proxied.clients.available("sku-milk-jug") == 38
    await proxied.stack.assert_books_agree()


async def _kill_while_held(proxied: ProxiedOrder, proxy_mode: tuple[str, Mode], items: dict[str, int]) -> str:
    """Starts an order, SIGKILLs the order process while the proxy holds the given call, restarts
    it, and returns the order id once the recovery pass has laid the order to rest."""
    method, mode = proxy_mode
    proxy = proxied.payment if method == CHARGE else proxied.inventory
    proxy.rules[method] = mode
    request_id = _request_id("crash")
    creating = asyncio.create_task(proxied.clients.create_order(request_id, items, seconds=3))
    await asyncio.wait_for(proxy.held.wait(), 10)
    proxied.process.signal(signal.SIGKILL)
    await asyncio.to_thread(proxied.process.wait, 10)
    with pytest.raises(grpc.aio.AioRpcError):
        await creating  # the caller saw the connection drop
    proxy.release.set()
    order_id = await _order_id_of(proxied, request_id)
    await proxied.restart()
    return order_id


async def test_killed_after_reserve_is_compensated(proxied_order: ProxiedOrder) -> None:
    proxied = proxied_order
    await proxied.clients.set_stock("sku-grinder", 10)
    # Payment charges the card, but order dies before it hears so.
    order_id = await _kill_while_held(proxied, (CHARGE, Mode.HOLD_REPLY), {"sku-grinder": 2})
    assert proxied.payment.forwarded == [CHARGE]

    order = await proxied.clients.settled_order(order_id)
    assert order.status == order_pb2.ORDER_STATUS_FAILED
    assert await proxied.clients.available("sku-grinder") == 10
    # The charge order never saw was refunded in full by the recovery pass.
    refund = await proxied.clients.payment.Refund(
        payment_pb2.RefundRequest(
            idempotency_key=_request_id("probe"), charge_idempotency_key=f"order-{order_id}"
        )
    )
    assert (refund.payment.status, refund.payment.refunded.minor_units) == (
        payment_pb2.PAYMENT_STATUS_REFUNDED, 2 * 12900,
    )  # fmt: skip
    assert refund.refunded.minor_units == 0
    await proxied.stack.assert_books_agree()


async def test_killed_after_charge_is_finished(proxied_order: ProxiedOrder) -> None:
    proxied = proxied_order
    await proxied.clients.set_stock("sku-grinder", 10)
    # Paid; order dies before inventory hears of the commit.
    order_id = await _kill_while_held(proxied, (COMMIT, Mode.HOLD_REQUEST), {"sku-grinder": 3})
    assert COMMIT not in proxied.inventory.forwarded

    order = await proxied.clients.settled_order(order_id)
    assert order.status == order_pb2.ORDER_STATUS_CONFIRMED
    assert await proxied.clients.available("sku-grinder") == 7
    payment = await proxied.clients.payment.GetPayment(
        payment_pb2.GetPaymentRequest(payment_id=order.payment_id)
    )
    assert (payment.payment.status, payment.payment.amount.minor_units) == (
        payment_pb2.PAYMENT_STATUS_APPROVED, 3 * 12900,
    )  # fmt: skip
    await proxied.stack.assert_books_agree()
