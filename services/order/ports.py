"""What order's use cases need from outside, as ports (Cosmic Python): the store that keeps
orders, and the two services the saga calls. `service.py` plugs in the SQL and gRPC adapters
(store.py, dependencies.py); the tests plug in fakes, so every saga path runs in milliseconds.

The gateways speak the domain's language: a business refusal (no stock, unknown product) is
`Rejected`, a dependency that gives no answer is `DependencyFailed`; a declined card is an
outcome (ChargeOutcome.decline_reason), not an error. Each call carries an idempotency key
derived from the order, so calling again with the same key is always safe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.order.domain import Item, Line, Order
from services.runtime.messages import Money


class OrderStore(Protocol):
    """The orders, kept. Each method is one whole transaction: no caller holds one open across
    calls, nor across a call to another service, so the store alone decides how a transaction
    runs (a pooled session today; one worker per SQLite file would change only the adapter).

    Concurrent runners are kept apart by the order's `version`: `save` is a compare-and-set."""

    async def claim_or_load(self, order: Order, lease_until: datetime) -> tuple[Order, bool]:
        """Records a new order under its request id, its runner's lease until `lease_until`:
        (order, True). If an order with that request id exists already: (that order, False)."""
        ...

    async def save(self, order: Order, lease_until: datetime | None) -> bool:
        """Writes the order if its stored version is still `order.version`, and advances the
        version; False (nothing written) if someone saved it since it was read. `lease_until`
        is until when its runner owns it (None once it is at rest)."""
        ...

    async def get(self, order_id: str) -> Order | None: ...

    async def list_for_customer(
        self, customer_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        """Newest first; `before` is the (create_time, order_id) of the previous page's last order."""
        ...

    async def stranded(self, now: datetime, limit: int) -> list[Order]:
        """In-flight orders whose runner's lease ran out before `now`, oldest lease first."""
        ...


class InventoryGateway(Protocol):
    async def reserve(self, reservation_id: str, items: Sequence[Item]) -> list[Line]:
        """Holds the items' stock under `reservation_id` and prices them; Rejected if a product
        is unknown or short of stock."""
        ...

    async def commit(self, reservation_id: str) -> None:
        """Makes the reservation final (the stock is sold)."""
        ...

    async def release(self, reservation_id: str) -> None:
        """Gives the stock back; a reservation released before it was made stays released."""
        ...


@dataclass(frozen=True)
class ChargeOutcome:
    payment_id: str
    decline_reason: str  # "" when approved


class PaymentGateway(Protocol):
    async def charge(self, key: str, order_id: str, amount: Money, payment_token: str) -> ChargeOutcome:
        """Charges `amount` once per `key`: approved, or declined (a reason)."""
        ...

    async def refund(self, key: str, reason: str, *, payment_id: str = "", charge_key: str = "") -> None:
        """Refunds what is left of a payment, named by id or by its charge key (voiding a
        charge key under which nothing was charged yet), once per `key`."""
        ...
