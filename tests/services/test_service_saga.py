"""Every path of the CreateOrder saga, its recovery and cancellation, on fakes of its ports
(order_fakes.py): no server, no database, milliseconds each.

The same paths through real processes, real databases and a proxy that holds calls are proved
by test_service_flow.py and test_service_saga_faults.py; these show each rule on its own.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from order_fakes import (
    FakeInventory,
    FakeOrderStore,
    FakePayment,
    Fault,
    Product,
    assert_fake_books_agree,
)

from services.order.domain import Item, Order, OrderStatus, SagaStep
from services.order.orders import NewOrder, Orders
from services.order.recovery import Recovery
from services.order.saga import OrderEvents, Saga
from services.runtime.callcontext import CallContext, call_scope
from services.runtime.errors import AlreadyExists, DeadlineExceeded, FailedPrecondition, Unavailable
from services.runtime.messages import Money

PRICE = Money("USD", 1250)
RESERVE, CHARGE = "inventory.reserve", "payment.charge"
#: Every wait is bounded: a broken saga fails its test, never hangs it.
BOUND_SECONDS = 5.0


@dataclass
class Shop:
    """Order's use cases wired to fakes, as services/order/service.py wires the real adapters."""

    store: FakeOrderStore = field(default_factory=FakeOrderStore)
    journal: list[str] = field(default_factory=list)  # the calls to both dependencies, in order
    sagas: set[asyncio.Task[Order]] = field(default_factory=set)

    def __post_init__(self) -> None:
        catalog = {"sku-a": Product("A", PRICE, 10), "sku-b": Product("B", PRICE, 1)}
        self.inventory = FakeInventory(catalog, self.journal)
        self.payment = FakePayment(self.journal)
        self.restart()

    def restart(self) -> None:
        """A new process on the same database and dependencies: fresh saga, use cases, recovery."""
        self.events = OrderEvents()
        self.saga = Saga(self.store, self.inventory, self.payment, self.events)
        self.orders = Orders(self.store, self.saga, self.events, self.detach)
        self.recovery = Recovery(self.store, self.saga)

    def detach(self, work: Coroutine[Any, Any, Order]) -> asyncio.Task[Order]:
        task = asyncio.get_running_loop().create_task(work)
        self.sagas.add(task)
        task.add_done_callback(self.sagas.discard)
        return task

    async def create(self, request_id: str = "r-1", token: str = "tok_visa", **items: int) -> Order:
        request = NewOrder(request_id, "c-1", [Item(k, n) for k, n in (items or {"sku-a": 2}).items()], token)
        return await asyncio.wait_for(self.orders.create(request), BOUND_SECONDS)

    async def cancel(self, order_id: str, reason: str = "changed my mind") -> Order:
        return await asyncio.wait_for(self.orders.cancel(order_id, reason), BOUND_SECONDS)

    async def crash(self) -> None:
        """The process dies: its running sagas stop where they are, with nothing more saved."""
        for task in list(self.sagas):
            task.cancel()
        await asyncio.wait_for(asyncio.gather(*self.sagas, return_exceptions=True), BOUND_SECONDS)
        self.inventory.faults.clear()
        self.payment.faults.clear()
        self.restart()

    def books_agree(self) -> None:
        assert_fake_books_agree(self.store, self.inventory, self.payment)


@pytest.fixture
def shop() -> Iterator[Shop]:
    shop = Shop()
    yield shop
    assert not shop.sagas, "a saga was left running"


# -- forward ------------------------------------------------------------------------------------
async def test_confirm(shop: Shop) -> None:
    order = await shop.create()
    assert (order.status, order.step, order.total) == (OrderStatus.CONFIRMED, None, PRICE * 2)
    assert shop.inventory.calls == [("reserve", order.order_id), ("commit", order.order_id)]
    assert shop.payment.calls == [("charge", f"order-{order.order_id}")]
    assert shop.inventory.catalog["sku-a"].available == 8
    shop.books_agree()


async def test_decline_rejects_and_restocks(shop: Shop) -> None:
    order = await shop.create(token="tok_chargeDeclined")
    assert (order.status, order.rejection_reason) == (OrderStatus.REJECTED, "payment declined: card_declined")
    assert shop.inventory.methods_called() == ["reserve", "release"]
    assert shop.payment.methods_called() == ["charge"]  # nothing charged, nothing to refund
    assert shop.inventory.catalog["sku-a"].available == 10
    shop.books_agree()


@pytest.mark.parametrize(
    ("items", "reason"),
    [({"sku-b": 2}, "insufficient stock: sku-b"), ({"sku-nope": 1}, "unknown product: sku-nope")],
    ids=["out-of-stock", "unknown-product"],
)
async def test_a_refused_reservation_rejects_without_charging(
    shop: Shop, items: dict[str, int], reason: str
) -> None:
    order = await shop.create(**items)
    assert (order.status, order.rejection_reason) == (OrderStatus.REJECTED, reason)
    assert shop.payment.calls == []
    assert shop.inventory.methods_called() == ["reserve", "release"]  # a tombstone: a late reserve fails
    assert shop.inventory.catalog["sku-b"].available == 1
    shop.books_agree()


# -- failures -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("dependency", "method", "calls"),
    [
        ("inventory", "reserve", ["inventory.reserve", "inventory.release"]),
        # The charge may have been made: its key is voided or refunded.
        ("payment", "charge", [RESERVE, CHARGE, "payment.refund", "inventory.release"]),
        ("inventory", "commit", [RESERVE, CHARGE, "inventory.commit", "payment.refund", "inventory.release"]),
    ],
)
async def test_a_failed_step_is_compensated_and_the_order_fails(
    shop: Shop, dependency: str, method: str, calls: list[str]
) -> None:
    getattr(shop, dependency).faults[method] = Fault.FAIL
    with pytest.raises(Unavailable) as caught:
        await shop.create()
    assert caught.value.reason == "DEPENDENCY_UNAVAILABLE"
    order = shop.store.only()
    assert caught.value.metadata == {"order_id": order.order_id}
    assert (order.status, order.step) == (OrderStatus.FAILED, None)
    assert order.rejection_reason.startswith(f"{dependency}: UNAVAILABLE")
    assert shop.journal == calls
    assert shop.inventory.catalog["sku-a"].available == 10
    shop.books_agree()


@pytest.mark.parametrize(("dependency", "method"), [("payment", "refund"), ("inventory", "release")])
async def test_a_failed_compensation_is_finished_by_the_recovery_pass(
    shop: Shop, dependency: str, method: str
) -> None:
    shop.payment.faults["charge"] = Fault.FAIL
    getattr(shop, dependency).faults[method] = Fault.FAIL
    with pytest.raises(Unavailable):
        await shop.create()
    order = shop.store.only()
    assert (order.status, order.step) == (OrderStatus.PENDING, SagaStep.COMPENSATING)
    assert await shop.recovery.sweep() == 0  # its lease runs still: nobody takes it over yet

    shop.payment.faults.clear()
    shop.inventory.faults.clear()
    shop.store.expire_leases()
    assert await shop.recovery.sweep() == 1
    assert shop.store.only().status is OrderStatus.FAILED
    shop.books_agree()


async def test_a_deadline_passing_mid_saga_is_compensated_on_its_own_budget(shop: Shop) -> None:
    shop.payment.faults["charge"] = Fault.HANG  # payment never answers in time
    call = CallContext("req-1", "/shop.order.v1.OrderService/CreateOrder", time.monotonic() + 0.05)
    with call_scope(call), pytest.raises(DeadlineExceeded) as caught:
        await shop.create()
    assert caught.value.reason == "DEPENDENCY_DEADLINE_EXCEEDED"
    order = shop.store.only()
    assert (order.status, order.step) == (OrderStatus.FAILED, None)
    assert "DEADLINE_EXCEEDED" in order.rejection_reason
    # The compensation's calls ran after the caller's deadline, on budgets of their own.
    assert shop.payment.methods_called()[-1] == "refund"
    assert shop.inventory.methods_called()[-1] == "release"
    shop.books_agree()


async def test_a_caller_who_hangs_up_does_not_cut_the_saga_short(shop: Shop) -> None:
    shop.payment.faults["charge"] = Fault.HANG
    caller = asyncio.create_task(shop.create())
    await shop.payment.called("charge")
    caller.cancel()  # the client went away
    shop.payment.let_through["charge"].set()
    await asyncio.wait_for(asyncio.gather(*shop.sagas), BOUND_SECONDS)
    assert caller.cancelled()
    assert shop.store.only().status is OrderStatus.CONFIRMED
    shop.books_agree()


async def test_a_superseded_runner_stops_and_replies_what_the_new_runner_decided(shop: Shop) -> None:
    shop.payment.faults["charge"] = Fault.HANG
    caller = asyncio.create_task(shop.create())
    await shop.payment.called("charge")
    # The runner's lease runs out while its charge hangs; the recovery pass takes the order over
    # and rolls it back (it has no card token to charge with).
    shop.store.expire_leases()
    assert await shop.recovery.sweep() == 1
    shop.payment.let_through["charge"].set()  # the old runner's charge returns, too late
    with pytest.raises(Unavailable):  # the order FAILED: that is the reply
        await asyncio.wait_for(caller, BOUND_SECONDS)
    order = shop.store.only()
    assert (order.status, order.rejection_reason) == (OrderStatus.FAILED, "interrupted while charging")
    # The old runner's charge went through after the new runner had voided its key: nothing
    # charged. That runner then lost the order (its save failed) and stopped: no commit, and no
    # second compensation.
    assert shop.payment.books()[f"order-{order.order_id}"][0] == "VOIDED"
    assert shop.journal == ["inventory.reserve", "payment.charge", "payment.refund", "inventory.release"]
    shop.books_agree()


# -- recovery -----------------------------------------------------------------------------------
async def _crashed_while(shop: Shop, dependency: str, method: str) -> None:
    """Starts an order, and crashes the process while its `method` call is on its way."""
    getattr(shop, dependency).faults[method] = Fault.HANG
    caller = asyncio.create_task(shop.create())
    await getattr(shop, dependency).called(method)
    caller.cancel()
    await shop.crash()


@pytest.mark.parametrize(
    ("dependency", "method", "step", "outcome"),
    [
        ("inventory", "reserve", SagaStep.RESERVING, OrderStatus.FAILED),  # no token kept: roll back
        ("payment", "charge", SagaStep.CHARGING, OrderStatus.FAILED),
        ("inventory", "commit", SagaStep.COMMITTING, OrderStatus.CONFIRMED),  # paid: roll forward
    ],
)
async def test_recovery_resumes_an_order_left_in_flight(
    shop: Shop, dependency: str, method: str, step: SagaStep, outcome: OrderStatus
) -> None:
    await _crashed_while(shop, dependency, method)
    assert shop.store.only().step is step
    assert await shop.recovery.sweep() == 0  # the dead runner's lease has not run out yet
    shop.store.expire_leases()
    assert await shop.recovery.sweep() == 1
    assert (shop.store.only().status, shop.store.only().step) == (outcome, None)
    shop.books_agree()


async def test_recovery_finishes_an_interrupted_compensation(shop: Shop) -> None:
    shop.payment.faults["charge"] = Fault.FAIL
    await _crashed_while(shop, "payment", "refund")
    assert shop.store.only().step is SagaStep.COMPENSATING
    shop.store.expire_leases()
    assert await shop.recovery.sweep() == 1
    assert shop.store.only().status is OrderStatus.FAILED
    shop.books_agree()


async def test_recovery_finishes_an_interrupted_cancellation(shop: Shop) -> None:
    order = await shop.create()
    shop.payment.faults["refund"] = Fault.HANG
    canceller = asyncio.create_task(shop.cancel(order.order_id))
    await shop.payment.called("refund")
    canceller.cancel()
    await shop.crash()
    assert shop.store.only().step is SagaStep.CANCELLING
    shop.store.expire_leases()
    assert await shop.recovery.sweep() == 1
    assert shop.store.only().status is OrderStatus.CANCELLED
    assert shop.inventory.catalog["sku-a"].available == 10
    shop.books_agree()


# -- cancel, retry, replay ----------------------------------------------------------------------
async def test_cancel_refunds_and_restocks_once(shop: Shop) -> None:
    order = await shop.create()
    cancelled = await shop.cancel(order.order_id)
    assert cancelled.status is OrderStatus.CANCELLED
    assert shop.payment.calls[-1] == ("refund", f"cancel-{order.order_id}")
    assert shop.inventory.catalog["sku-a"].available == 10
    calls = len(shop.payment.calls) + len(shop.inventory.calls)
    assert (await shop.cancel(order.order_id, "again")).status is OrderStatus.CANCELLED
    assert len(shop.payment.calls) + len(shop.inventory.calls) == calls  # nothing done twice
    shop.books_agree()


async def test_only_a_confirmed_order_is_cancelled(shop: Shop) -> None:
    order = await shop.create(token="tok_chargeDeclined")
    with pytest.raises(FailedPrecondition) as caught:
        await shop.cancel(order.order_id)
    assert caught.value.reason == "ORDER_NOT_CANCELLABLE"


async def test_a_failed_order_asked_again_is_retried_with_fresh_keys(shop: Shop) -> None:
    shop.payment.faults["charge"] = Fault.FAIL
    with pytest.raises(Unavailable):
        await shop.create()
    shop.payment.faults.clear()
    order = await shop.create()
    assert (order.status, order.attempt) == (OrderStatus.CONFIRMED, 2)
    assert shop.inventory.statuses() == {order.order_id: "RELEASED", f"{order.order_id}.r2": "COMMITTED"}
    assert shop.payment.books()[f"order-{order.order_id}"][0] == "VOIDED"
    shop.books_agree()


async def test_a_request_id_is_replayed_never_run_twice(shop: Shop) -> None:
    first, second = await asyncio.gather(shop.create(), shop.create())  # concurrent retries
    assert first.order_id == second.order_id
    assert shop.inventory.methods_called() == ["reserve", "commit"]
    assert (await shop.create()).order_id == first.order_id  # at rest: the same reply, no call
    assert len(shop.payment.calls) == 1
    with pytest.raises(AlreadyExists):
        await shop.create(**{"sku-a": 3})  # another request under the same id
    shop.books_agree()


async def test_orders_are_listed_newest_first_by_page(shop: Shop) -> None:
    created = [await shop.create(f"r-{n}") for n in range(3)]
    first_page = await shop.orders.list("c-1", None, 2)
    assert [o.order_id for o in first_page] == [o.order_id for o in reversed(created)][:2]
    last = first_page[-1]
    rest = await shop.orders.list("c-1", (last.create_time, last.order_id), 2)
    assert [o.order_id for o in rest] == [created[0].order_id]
