"""The gateways to inventory and payment over gRPC (services/order/ports.py): gRPC calls in,
domain outcomes out.

The saga speaks in Rejected (a business refusal: no stock, unknown product) and DependencyFailed
(could not get an answer). Everything gRPC stays here. No retries: the mesh retries, and every
call carries an idempotency key derived from the order.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

import grpc

from services.order.domain import DependencyCode, DependencyFailed, Item, Line, Rejected
from services.order.ports import ChargeOutcome
from services.runtime.messages import Money
from services.runtime.outbound import error_reason
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.payment.v1 import payment_pb2, payment_pb2_grpc

T = TypeVar("T")


async def _call(
    dependency: str, call: Callable[[], Awaitable[T]], refusals: Callable[[grpc.aio.AioRpcError], str | None]
) -> T:
    """Runs one call; a refusal (`refusals` gives a reason) is Rejected, any other failure
    DependencyFailed — with DEADLINE_EXCEEDED kept apart, since the reply reports it as such."""
    try:
        return await call()
    except grpc.aio.AioRpcError as error:
        reason = refusals(error)
        if reason is not None:
            raise Rejected(reason) from error
        code = (
            DependencyCode.DEADLINE_EXCEEDED
            if error.code() is grpc.StatusCode.DEADLINE_EXCEEDED
            else DependencyCode.UNAVAILABLE
        )
        detail = f"{error.code().name}: {(error.details() or '')[:120]}"
        raise DependencyFailed(dependency, code, detail) from error


def _no_refusal(error: grpc.aio.AioRpcError) -> str | None:
    return None


def _stock_refusal(error: grpc.aio.AioRpcError) -> str | None:
    if error.code() is grpc.StatusCode.NOT_FOUND:
        return f"unknown product: {(error.details() or '')[:120]}"
    if error.code() is grpc.StatusCode.FAILED_PRECONDITION and error_reason(error) in (
        "INSUFFICIENT_STOCK",
        "MIXED_CURRENCIES",
    ):
        return f"{error_reason(error).lower().replace('_', ' ')}: {(error.details() or '')[:120]}"
    return None


class GrpcInventoryGateway:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = inventory_pb2_grpc.InventoryServiceStub(channel)

    async def reserve(self, reservation_id: str, items: Sequence[Item]) -> list[Line]:
        request = inventory_pb2.ReserveStockRequest(
            reservation_id=reservation_id,
            items=[
                inventory_pb2.StockRequest(product_id=item.product_id, quantity=item.quantity)
                for item in items
            ],
        )
        reply = await _call("inventory", lambda: self.stub.ReserveStock(request), _stock_refusal)
        reservation = reply.reservation
        if reservation.status != inventory_pb2.RESERVATION_STATUS_RESERVED:
            # Released already: a compensation (the recovery pass) overtook this request.
            raise DependencyFailed(
                "inventory", DependencyCode.UNAVAILABLE, "the reservation was released meanwhile"
            )
        return [
            Line(line.product_id, line.product_name, line.quantity, Money.from_proto(line.unit_price))
            for line in reservation.lines
        ]

    async def commit(self, reservation_id: str) -> None:
        request = inventory_pb2.CommitReservationRequest(reservation_id=reservation_id)
        await _call("inventory", lambda: self.stub.CommitReservation(request), _no_refusal)

    async def release(self, reservation_id: str) -> None:
        request = inventory_pb2.ReleaseReservationRequest(reservation_id=reservation_id)
        await _call("inventory", lambda: self.stub.ReleaseReservation(request), _no_refusal)


class GrpcPaymentGateway:
    def __init__(self, channel: grpc.aio.Channel) -> None:
        self.stub = payment_pb2_grpc.PaymentServiceStub(channel)

    async def charge(self, key: str, order_id: str, amount: Money, payment_token: str) -> ChargeOutcome:
        request = payment_pb2.ChargeRequest(
            idempotency_key=key, order_id=order_id, amount=amount.to_proto(), payment_token=payment_token
        )
        reply = await _call("payment", lambda: self.stub.Charge(request), _no_refusal)
        payment = reply.payment
        if payment.status == payment_pb2.PAYMENT_STATUS_DECLINED:
            return ChargeOutcome(payment.payment_id, payment.decline_reason or "declined")
        return ChargeOutcome(payment.payment_id, "")

    async def refund(self, key: str, reason: str, *, payment_id: str = "", charge_key: str = "") -> None:
        request = payment_pb2.RefundRequest(idempotency_key=key, reason=reason[:200])
        if payment_id:
            request.payment_id = payment_id
        else:
            request.charge_idempotency_key = charge_key
        await _call("payment", lambda: self.stub.Refund(request), _no_refusal)
