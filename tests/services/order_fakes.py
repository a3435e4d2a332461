"""Fakes of order's ports (services/order/ports.py), so the saga runs with no server, no database.

- FakeOrderStore keeps orders as a database would: copied in and out (what the saga changes is
  not stored until it saves), with the same compare-and-set on `version`, and each call yields
  to the event loop once, as any real transaction would.
- FakeInventory and FakePayment keep books like the real services (stock reserved, committed,
  released; one charge per key, refunds never above it, voided keys), and mirror what the gRPC
  gateways (services/order/dependencies.py) turn the services' replies into.
- Each fake method can be told to fail (no answer: UNAVAILABLE), refuse (a business refusal) or
  hang (no answer until the test releases it, or until the caller's deadline: exactly what a
  channel of the runtime does, services/runtime/outbound.py): `faults[method] = Fault.HANG`.
"""

from __future__ import annotations

import asyncio
import copy
import enum
import itertools
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from books import Charge, assert_books_agree

from services.order.domain import DependencyCode, DependencyFailed, Item, Line, Order, Rejected
from services.order.ports import ChargeOutcome
from services.runtime.callcontext import current_call
from services.runtime.messages import Money

#: A lease that ran out long ago: the recovery pass takes the order over.
EXPIRED = datetime(2000, 1, 1, tzinfo=UTC)


class FakeOrderStore:
    def __init__(self) -> None:
        self.rows: dict[str, tuple[Order, datetime | None]] = {}

    async def claim_or_load(self, order: Order, lease_until: datetime) -> tuple[Order, bool]:
        await asyncio.sleep(0)
        for stored, _ in self.rows.values():
            if stored.request_id == order.request_id:
                return copy.deepcopy(stored), False
        self._write(order, lease_until)
        return order, True

    async def save(self, order: Order, lease_until: datetime | None) -> bool:
        await asyncio.sleep(0)
        stored = self.rows.get(order.order_id)
        if stored is None or stored[0].version != order.version:
            return False
        order.version += 1
        self._write(order, lease_until)
        return True

    async def get(self, order_id: str) -> Order | None:
        await asyncio.sleep(0)
        return copy.deepcopy(self.rows[order_id][0]) if order_id in self.rows else None

    async def list_for_customer(
        self, customer_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        await asyncio.sleep(0)
        newest_first = sorted(
            (order for order, _ in self.rows.values() if order.customer_id == customer_id),
            key=lambda order: (order.create_time, order.order_id),
            reverse=True,
        )
        page = [o for o in newest_first if before is None or (o.create_time, o.order_id) < before]
        return copy.deepcopy(page[:limit])

    async def stranded(self, now: datetime, limit: int) -> list[Order]:
        await asyncio.sleep(0)
        expired = [(lease, order) for order, lease in self.rows.values() if lease is not None and lease < now]
        expired.sort(key=lambda pair: pair[0])
        return [copy.deepcopy(order) for _, order in expired[:limit]]

    def _write(self, order: Order, lease_until: datetime | None) -> None:
        # The saga's rule, checked: an order in flight always has a runner's lease (or the
        # recovery pass could never find it), and one at rest has none.
        assert (lease_until is None) == (not order.in_flight), (order.step, lease_until)
        self.rows[order.order_id] = (copy.deepcopy(order), lease_until)

    # -- for the tests ----------------------------------------------------------------------
    def only(self) -> Order:
        """The one order stored."""
        [(order, _)] = self.rows.values()
        return copy.deepcopy(order)

    def expire_leases(self) -> None:
        """As if every runner's lease ran out (the runner died, or time passed)."""
        for order_id, (order, lease) in self.rows.items():
            self.rows[order_id] = (order, None if lease is None else EXPIRED)


class Fault(enum.Enum):
    FAIL = "fail"  # no answer: DependencyFailed(UNAVAILABLE)
    REFUSE = "refuse"  # a business refusal: Rejected
    HANG = "hang"  # no answer until released (then the call goes through), or the deadline passes


@dataclass
class FakeDependency:
    """What both fakes share: the calls made, in order, and the faults to inject by method."""

    name: str
    #: Every call of every fake sharing it, "<dependency>.<method>", in the order they came.
    journal: list[str] = field(default_factory=list)
    calls: list[tuple[str, ...]] = field(default_factory=list)
    faults: dict[str, Fault] = field(default_factory=dict)
    #: Set when a call of that method arrives (a test waits for it, e.g. to crash the runner).
    entered: defaultdict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))
    #: Lets the hanging calls of that method go through.
    let_through: defaultdict[str, asyncio.Event] = field(default_factory=lambda: defaultdict(asyncio.Event))

    def methods_called(self) -> list[str]:
        return [call[0] for call in self.calls]

    async def called(self, method: str, within: float = 5.0) -> None:
        """Returns once a call of `method` has arrived (bounded: a broken saga must not hang)."""
        try:
            await asyncio.wait_for(self.entered[method].wait(), within)
        except TimeoutError:
            raise AssertionError(f"no {self.name}.{method} within {within}s; calls: {self.journal}") from None

    async def _arrive(self, method: str, *arguments: str) -> None:
        self.calls.append((method, *arguments))
        self.journal.append(f"{self.name}.{method}")
        self.entered[method].set()
        await asyncio.sleep(0)
        fault = self.faults.get(method)
        if fault is Fault.FAIL:
            raise DependencyFailed(self.name, DependencyCode.UNAVAILABLE, f"UNAVAILABLE: {method} (injected)")
        if fault is Fault.REFUSE:
            raise Rejected(f"{method} refused (injected)")
        if fault is Fault.HANG:
            # The runtime's channels end each call at the incoming call's deadline (or the
            # budget a compensation gives itself): so does this one.
            call = current_call()
            remaining = None if call is None else call.remaining()
            try:
                await asyncio.wait_for(self.let_through[method].wait(), remaining)
            except TimeoutError:
                detail = f"DEADLINE_EXCEEDED: {method} (injected)"
                raise DependencyFailed(self.name, DependencyCode.DEADLINE_EXCEEDED, detail) from None


@dataclass
class Product:
    name: str
    unit_price: Money
    available: int


class FakeInventory(FakeDependency):
    def __init__(self, catalog: dict[str, Product], journal: list[str]) -> None:
        super().__init__("inventory", journal)
        self.catalog = catalog
        self.reservations: dict[str, tuple[str, list[Line]]] = {}  # id -> (status, lines)

    async def reserve(self, reservation_id: str, items: Sequence[Item]) -> list[Line]:
        await self._arrive("reserve", reservation_id)
        if reservation_id in self.reservations:  # a replay
            status, lines = self.reservations[reservation_id]
            if status == "RELEASED":  # what GrpcInventoryGateway makes of a released reservation
                raise DependencyFailed(
                    "inventory", DependencyCode.UNAVAILABLE, "the reservation was released meanwhile"
                )
            return lines
        for item in items:
            if item.product_id not in self.catalog:
                raise Rejected(f"unknown product: {item.product_id}")
            if self.catalog[item.product_id].available < item.quantity:
                raise Rejected(f"insufficient stock: {item.product_id}")
        lines = []
        for item in items:
            product = self.catalog[item.product_id]
            product.available -= item.quantity
            lines.append(Line(item.product_id, product.name, item.quantity, product.unit_price))
        self.reservations[reservation_id] = ("RESERVED", lines)
        return lines

    async def commit(self, reservation_id: str) -> None:
        await self._arrive("commit", reservation_id)
        status, lines = self.reservations.get(reservation_id, ("", []))
        if status not in ("RESERVED", "COMMITTED"):  # unknown or released: an error status
            detail = f"cannot commit a reservation {status or 'never made'}"
            raise DependencyFailed("inventory", DependencyCode.UNAVAILABLE, detail)
        self.reservations[reservation_id] = ("COMMITTED", lines)

    async def release(self, reservation_id: str) -> None:
        await self._arrive("release", reservation_id)
        status, lines = self.reservations.get(reservation_id, ("", []))
        if status in ("RESERVED", "COMMITTED"):
            for line in lines:
                self.catalog[line.product_id].available += line.quantity
        self.reservations[reservation_id] = ("RELEASED", lines)  # released before made: stays so

    def statuses(self) -> dict[str, str]:
        return {reservation_id: status for reservation_id, (status, _) in self.reservations.items()}


class FakePayment(FakeDependency):
    """Stripe's test tokens, as the real processor: tok_chargeDeclined declines, others approve."""

    def __init__(self, journal: list[str]) -> None:
        super().__init__("payment", journal)
        self.charges: dict[str, tuple[str, str, Money, Money]] = {}  # key -> (id, status, amount, refunded)
        self.refunds: dict[str, str] = {}  # refund key -> charge key
        self._ids = (f"pay-{n}" for n in itertools.count(1))

    async def charge(self, key: str, order_id: str, amount: Money, payment_token: str) -> ChargeOutcome:
        await self._arrive("charge", key)
        if key not in self.charges:
            status = "DECLINED" if payment_token == "tok_chargeDeclined" else "APPROVED"
            self.charges[key] = (next(self._ids), status, amount, Money.zero(amount.currency_code))
        payment_id, status, _, _ = self.charges[key]
        if status == "VOIDED":  # the real service refuses a voided key with an error status
            raise DependencyFailed("payment", DependencyCode.UNAVAILABLE, "the charge key was voided")
        return ChargeOutcome(payment_id, "card_declined" if status == "DECLINED" else "")

    async def refund(self, key: str, reason: str, *, payment_id: str = "", charge_key: str = "") -> None:
        await self._arrive("refund", key)
        if key in self.refunds:
            return  # a replay
        if payment_id:
            charge_key = next(k for k, charge in self.charges.items() if charge[0] == payment_id)
        self.refunds[key] = charge_key
        if charge_key not in self.charges:  # nothing charged under the key: void it for good
            self.charges[charge_key] = ("", "VOIDED", Money("USD", 0), Money("USD", 0))
            return
        charge_id, status, amount, _ = self.charges[charge_key]
        if status == "APPROVED":
            self.charges[charge_key] = (charge_id, "REFUNDED", amount, amount)

    def books(self) -> dict[str, Charge]:
        return {
            key: (status, amount.minor_units, refunded.minor_units)
            for key, (_, status, amount, refunded) in self.charges.items()
        }


@dataclass(frozen=True)
class _Row:
    order_id: str
    status: str
    step: str | None
    attempt: int
    total_minor_units: int | None


def assert_fake_books_agree(store: FakeOrderStore, inventory: FakeInventory, payment: FakePayment) -> None:
    """The rule every process-level test checks on real databases, on the fakes' books."""
    rows = [
        _Row(
            order.order_id,
            order.status.value,
            None if order.step is None else order.step.value,
            order.attempt,
            None if order.total is None else order.total.minor_units,
        )
        for order, _ in store.rows.values()
    ]
    assert_books_agree(rows, inventory.statuses(), payment.books())
