"""Order's use cases: create (idempotent per request id), get, list, cancel, watch."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from services.order.domain import TERMINAL, DependencyCode, DependencyFailed, Item, Order, OrderStatus
from services.order.ports import OrderStore
from services.order.saga import OrderEvents, Saga, Superseded, forward_lease
from services.runtime.errors import DeadlineExceeded, Unavailable
from services.runtime.persistence import fingerprint, found, utc_now

#: How often a waiter re-reads an order that another replica may be driving.
POLL_SECONDS = 0.5


@dataclass(frozen=True)
class NewOrder:
    request_id: str
    customer_id: str
    items: Sequence[Item]
    payment_token: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(
            self.customer_id,
            self.payment_token,
            *(f"{item.product_id}*{item.quantity}" for item in self.items),
        )


def _reply(order: Order) -> Order:
    """An order at rest as the caller sees it: FAILED (or stuck compensating) is an error status."""
    if not order.in_flight and order.status is not OrderStatus.FAILED:
        return order
    raise _failure_status(order.order_id, order.failure, order.rejection_reason or "a dependency failed")


def _failure_status(order_id: str, code: DependencyCode | None, detail: str) -> Exception:
    metadata = {"order_id": order_id}
    message = f"order {order_id}: {detail}; safe to retry (the same request_id for CreateOrder)"
    if code is DependencyCode.DEADLINE_EXCEEDED:
        return DeadlineExceeded("DEPENDENCY_DEADLINE_EXCEEDED", message, metadata)
    return Unavailable("DEPENDENCY_UNAVAILABLE", message, metadata)


#: Starts a saga in a task of its own that shutdown lets finish (ServiceContext.detach).
Detach = Callable[[Coroutine[Any, Any, Order]], asyncio.Task[Order]]


class Orders:
    def __init__(self, store: OrderStore, saga: Saga, events: OrderEvents, detach: Detach) -> None:
        self.store = store
        self.saga = saga
        self.events = events
        self.detach = detach

    async def create(self, request: NewOrder) -> Order:
        now = utc_now()
        order = Order(
            order_id=str(uuid.uuid4()),
            request_id=request.request_id,
            customer_id=request.customer_id,
            request_fingerprint=request.fingerprint,
            items=list(request.items),
            create_time=now,
            update_time=now,
        )
        order, started = await self.store.claim_or_load(order, forward_lease(now))
        if not started:
            order.replay(request.fingerprint)
            if order.status is OrderStatus.FAILED and not order.in_flight:
                # A FAILED order asked again: the saga starts over, if this request wins (of two
                # requests retrying at once, the store's compare-and-set lets one save).
                order.retry(utc_now())
                started = await self.store.save(order, forward_lease(utc_now()))
        if not started:
            return await self.settled(order.order_id)
        self.events.notify(order.order_id)
        return await self._drive(order.order_id, self.saga.run(order, request.payment_token))

    async def _drive(self, order_id: str, saga: Coroutine[Any, Any, Order]) -> Order:
        """Runs a saga in a task of its own, so that a caller who hangs up (or runs out of time)
        cannot cut it short; the caller waits for it, shielded. At shutdown the runtime gives
        the task the grace period, then cancels it: its steps are persisted, recovery resumes it."""
        task = self.detach(saga)
        try:
            return _reply(await asyncio.shield(task))
        except Superseded:
            return await self.settled(order_id)
        except DependencyFailed as failure:
            # A compensation (or a cancellation) could not finish; recovery will.
            raise _failure_status(order_id, failure.code, str(failure)) from failure

    async def settled(self, order_id: str) -> Order:
        """Waits until the order is at rest (bounded by the caller's deadline), then replies."""
        while True:
            order = await self.get(order_id)
            if not order.in_flight:
                return _reply(order)
            await self.events.wait(order_id, POLL_SECONDS)

    async def get(self, order_id: str) -> Order:
        return found(await self.store.get(order_id), "order", order_id)

    async def list(self, customer_id: str, before: tuple[datetime, str] | None, limit: int) -> list[Order]:
        return await self.store.list_for_customer(customer_id, before, limit)

    async def cancel(self, order_id: str, reason: str) -> Order:
        order = await self.get(order_id)
        if not order.begin_cancel(utc_now()):
            return order
        if not await self.store.save(order, forward_lease(utc_now())):
            return await self.settled(order_id)
        self.events.notify(order_id)
        return await self._drive(order_id, self.saga.cancel(order, reason))

    async def watch(self, order_id: str) -> AsyncIterator[Order]:
        """The order now, then at each change of status, until it is at rest in a final status."""
        last: OrderStatus | None = None
        while True:
            order = await self.get(order_id)
            if order.status is not last:
                last = order.status
                yield order
            if order.status in TERMINAL:
                return
            await self.events.wait(order_id, POLL_SECONDS)
