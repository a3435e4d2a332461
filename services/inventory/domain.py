"""Inventory's rules: products, and reservations that move stock in two phases.

Pure Python: no gRPC, no SQL. The persistence layer enforces "never oversell" atomically (a
conditional decrement of `available`); this module decides what each request means for a
reservation that may already exist.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.runtime.errors import AlreadyExists, FailedPrecondition
from services.runtime.messages import Money, PricedLine


@dataclass(frozen=True)
class Product:
    product_id: str
    name: str
    price: Money
    available: int


@dataclass(frozen=True)
class StockRequest:
    """One line of a ReserveStock request."""

    product_id: str
    quantity: int


class ReservationStatus(enum.Enum):
    RESERVED = "RESERVED"
    COMMITTED = "COMMITTED"
    RELEASED = "RELEASED"


#: A reserved line, priced by the catalog at reservation time.
ReservedLine = PricedLine


@dataclass
class Reservation:
    reservation_id: str
    status: ReservationStatus
    create_time: datetime
    update_time: datetime
    lines: list[ReservedLine] = field(default_factory=list)

    @property
    def total(self) -> Money | None:
        return Money.total(line.line_total for line in self.lines)

    def requested(self) -> tuple[StockRequest, ...]:
        return tuple(StockRequest(line.product_id, line.quantity) for line in self.lines)

    def replay(self, items: Sequence[StockRequest]) -> Reservation:
        """The answer to a repeated ReserveStock with this id.

        A reservation released before it was made (a compensation that overtook the request)
        answers every late request with itself, reserving nothing.
        """
        if self.status is ReservationStatus.RELEASED and not self.lines:
            return self
        if self.requested() != tuple(items):
            raise AlreadyExists(
                "RESERVATION_ID_REUSED",
                f"reservation {self.reservation_id!r} was made with other items",
                {"reservation_id": self.reservation_id},
            )
        return self

    def commit(self, now: datetime) -> bool:
        """Makes the sale final; False when it already was (idempotent)."""
        if self.status is ReservationStatus.COMMITTED:
            return False
        if self.status is ReservationStatus.RELEASED:
            raise FailedPrecondition(
                "RESERVATION_RELEASED",
                f"reservation {self.reservation_id!r} was released and cannot be committed",
                {"reservation_id": self.reservation_id},
            )
        self._move(ReservationStatus.COMMITTED, now)
        return True

    def release(self, now: datetime) -> list[ReservedLine]:
        """Puts the units back; returns the lines to restock (none when already released).

        A committed reservation is restocked too: that is how a cancelled order's units return.
        """
        if self.status is ReservationStatus.RELEASED:
            return []
        self._move(ReservationStatus.RELEASED, now)
        return list(self.lines)

    def _move(self, status: ReservationStatus, now: datetime) -> None:
        self.status = status
        self.update_time = now


def check_single_currency(reservation_id: str, lines: Sequence[ReservedLine]) -> None:
    """A reservation's total is one amount, so its lines must share a currency."""
    currencies = sorted({line.unit_price.currency_code for line in lines})
    if len(currencies) > 1:
        raise FailedPrecondition(
            "MIXED_CURRENCIES",
            f"the products of reservation {reservation_id!r} are priced in {', '.join(currencies)}",
            {"reservation_id": reservation_id},
        )


def insufficient_stock(product_id: str, wanted: int, available: int) -> FailedPrecondition:
    return FailedPrecondition(
        "INSUFFICIENT_STOCK",
        f"product {product_id!r} has {available} units available, {wanted} requested",
        {"product_id": product_id},
    )
