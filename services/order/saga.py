"""The CreateOrder saga and its compensations: each step persisted before it is taken.

Runs forward with the incoming call's deadline (the runtime's channels pass it on); undoes with
budgets of its own, because a compensation is the service's duty whether or not the caller is
still waiting. Whoever drives an order (the request's task, or the recovery pass once the
runner's lease has run out) holds the order's version; losing it (Superseded) means someone
else drives the order now, and the loser just stops.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from prometheus_client import Counter

from services.order.domain import (
    DependencyCode,
    DependencyFailed,
    Order,
    OrderStatus,
    Rejected,
    SagaStep,
)
from services.order.ports import InventoryGateway, OrderStore, PaymentGateway
from services.runtime.callcontext import current_call, outbound_call_context
from services.runtime.persistence import utc_now

log = logging.getLogger(__name__)

ORDERS = Counter(
    "shop_orders_total",
    "Orders that came to rest, by outcome: confirmed, rejected, failed, cancelled.",
    ["outcome"],
)

#: Each compensating call's own budget, independent of the (maybe expired) incoming deadline.
COMPENSATION_CALL_SECONDS = 2.0
#: How long a runner may hold an order beyond its forward budget: room for both compensations.
COMPENSATION_BUDGET_SECONDS = 2 * COMPENSATION_CALL_SECONDS + 1.0
#: The forward budget of a run whose caller set no deadline (the channels' default per call).
FORWARD_BUDGET_SECONDS = 30.0


class Superseded(Exception):  # a hand-over, not a failure
    """Another runner changed the order since this one read it."""


class OrderEvents:
    """Wakes watchers of an order when this process changes it (other replicas' changes are
    seen by polling, see Orders.settled)."""

    def __init__(self) -> None:
        self._waiters: dict[str, set[asyncio.Future[None]]] = {}

    def notify(self, order_id: str) -> None:
        for waiter in self._waiters.pop(order_id, set()):
            if not waiter.done():
                waiter.set_result(None)

    async def wait(self, order_id: str, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(order_id, set()).add(waiter)
        try:
            await asyncio.wait_for(asyncio.shield(waiter), seconds)
        except TimeoutError:
            pass
        finally:
            waiters = self._waiters.get(order_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    del self._waiters[order_id]


def forward_lease(now: datetime) -> datetime:
    """Until when a runner that starts now owns the order: its caller's time, then compensation."""
    call = current_call()
    remaining = None if call is None else call.remaining()
    budget = FORWARD_BUDGET_SECONDS if remaining is None else min(remaining, FORWARD_BUDGET_SECONDS)
    return now + timedelta(seconds=budget + COMPENSATION_BUDGET_SECONDS)


def compensation_lease(now: datetime) -> datetime:
    return now + timedelta(seconds=COMPENSATION_BUDGET_SECONDS)


class Saga:
    def __init__(
        self,
        store: OrderStore,
        inventory: InventoryGateway,
        payment: PaymentGateway,
        events: OrderEvents,
    ) -> None:
        self.store = store
        self.inventory = inventory
        self.payment = payment
        self.events = events

    async def save(self, order: Order, lease_until: datetime | None) -> None:
        """Persists the order's new state (compare-and-set on its version), then tells watchers."""
        if not await self.store.save(order, lease_until):
            raise Superseded(order.order_id)
        if order.step is None:
            ORDERS.labels(order.status.value.lower()).inc()
        self.events.notify(order.order_id)

    async def run(self, order: Order, payment_token: str) -> Order:
        """From RESERVING to CONFIRMED, or compensated to REJECTED or FAILED."""
        lease = forward_lease(utc_now())
        try:
            lines = await self.inventory.reserve(order.reservation_id, order.items)
            order.reserved(lines, utc_now())
            await self.save(order, lease)
            total = order.chargeable_total()
            charge = await self.payment.charge(order.charge_key, order.order_id, total, payment_token)
            if charge.decline_reason:
                order.declined(charge.payment_id, charge.decline_reason, utc_now())
            else:
                order.charged(charge.payment_id, utc_now())
                await self.save(order, lease)
                return await self.commit(order)
        except Rejected as refusal:
            order.compensate(OrderStatus.REJECTED, refusal.reason, utc_now())
        except DependencyFailed as failure:
            log.warning("order %s: %s; compensating", order.order_id, failure)
            order.compensate(OrderStatus.FAILED, f"{failure}"[:200], utc_now(), failure.code)
        await self.save(order, compensation_lease(utc_now()))
        return await self.compensate(order)

    async def commit(self, order: Order) -> Order:
        try:
            await self.inventory.commit(order.reservation_id)
        except (Rejected, DependencyFailed) as failure:
            # Paid but not committed (the reservation is gone, or inventory is unreachable):
            # refund and restock rather than leave the order half-done.
            log.warning("order %s: commit failed (%s); compensating", order.order_id, failure)
            code = failure.code if isinstance(failure, DependencyFailed) else DependencyCode.UNAVAILABLE
            order.compensate(OrderStatus.FAILED, f"{failure}"[:200], utc_now(), code)
            await self.save(order, compensation_lease(utc_now()))
            return await self.compensate(order)
        order.committed(utc_now())
        await self.save(order, None)
        return order

    async def compensate(self, order: Order) -> Order:
        """Voids or refunds the charge key, releases the reservation, and lays the order to rest.

        DependencyFailed leaves the order COMPENSATING; the recovery pass finishes it later.
        """
        if order.undo_charge:
            with outbound_call_context(COMPENSATION_CALL_SECONDS):
                await self.payment.refund(
                    order.compensation_refund_key, order.rejection_reason, charge_key=order.charge_key
                )
        with outbound_call_context(COMPENSATION_CALL_SECONDS):
            await self.inventory.release(order.reservation_id)
        order.compensated(utc_now())
        await self.save(order, None)
        return order

    async def cancel(self, order: Order, reason: str) -> Order:
        """Refunds a confirmed order's payment and restocks it (with the caller's deadline)."""
        await self.payment.refund(
            order.cancel_refund_key, reason or "order cancelled", payment_id=order.payment_id
        )
        await self.inventory.release(order.reservation_id)
        order.cancelled(utc_now())
        await self.save(order, None)
        return order

    async def take_over(self, order: Order) -> Order:
        """Finishes or compensates an order whose runner is gone (the recovery pass).

        Taking the order over is one compare-and-set with a fresh lease — of two replicas, one
        wins — and it records the step the new runner resumes at, so rolling back an order
        interrupted while reserving or charging costs no write of its own.
        """
        if order.step in (SagaStep.RESERVING, SagaStep.CHARGING):
            # Without the card token (never stored) the charge cannot be made: roll back.
            order.compensate(
                OrderStatus.FAILED,
                f"interrupted while {order.step.value.lower()}",
                utc_now(),
                DependencyCode.UNAVAILABLE,
            )
        await self.save(order, compensation_lease(utc_now()))
        log.info("recovering order %s at step %s", order.order_id, order.step)
        if order.step is SagaStep.COMMITTING:
            return await self.commit(order)  # paid: roll forward
        if order.step is SagaStep.COMPENSATING:
            return await self.compensate(order)
        if order.step is SagaStep.CANCELLING:
            with outbound_call_context(COMPENSATION_CALL_SECONDS * 2):
                return await self.cancel(order, "order cancelled")
        return order
