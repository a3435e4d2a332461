"""What the consistency check reads from the three services, and what it finds.

Plain values, no SQL: the records are what each service keeps (order's orders, inventory's
reservations and products, payment's charges), reduced to what the rule in `shopmesh.check.rules`
needs. Anything a source cannot tell is None (a test's fake keeps no reservation lines; a
check given no baseline knows nothing of what was stocked), and the rules that need it are
then skipped and say so, never assumed to pass.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field

#: Units by product id.
Units = Mapping[str, int]


class Kind(enum.StrEnum):
    """What a finding says is wrong. Each one is money or stock that no order accounts for, or
    an order whose books do not show what its status says."""

    LOST_ORDER = "lost_order"  # inventory or payment hold records of an order that order does not
    LOST_RESERVATION = "lost_reservation"  # the reservation an order's state implies is not in inventory
    CONFIRMED_NOT_COMMITTED = "confirmed_not_committed"  # CONFIRMED, but its stock is not sold
    CONFIRMED_NOT_CHARGED = "confirmed_not_charged"  # CONFIRMED without one approved charge of its total
    SALE_MISMATCH = "sale_mismatch"  # CONFIRMED, but the units sold are not the units ordered
    ORPHAN_CHARGE = "orphan_charge"  # money kept that no CONFIRMED order's one charge accounts for
    HELD_STOCK = "held_stock"  # stock reserved or sold for an order that is not buying it
    STOCK_DRIFT = "stock_drift"  # available + committed + held differs from what was stocked
    UNKNOWN_STATE = "unknown_state"  # a status this check does not know (a newer schema?)


@dataclass(frozen=True)
class OrderRecord:
    order_id: str
    status: str  # PENDING, CONFIRMED, REJECTED, FAILED, CANCELLED
    step: str | None  # the saga's next step; None when the order is at rest
    attempt: int  # 1, or n for the n-th attempt of a FAILED order asked again
    total_minor_units: int | None  # the priced total of the current attempt
    lines: Units | None = None  # units ordered by product (None: not known)


@dataclass(frozen=True)
class ReservationRecord:
    reservation_id: str
    status: str  # RESERVED, COMMITTED, RELEASED
    lines: Units | None = None  # units by product (None: not known)


@dataclass(frozen=True)
class ChargeRecord:
    key: str  # the charge's idempotency key: `order-<reservation id>` for the saga's
    status: str  # APPROVED, DECLINED, PARTIALLY_REFUNDED, REFUNDED, VOIDED
    amount_minor_units: int
    refunded_minor_units: int

    @property
    def kept(self) -> int:
        """What the charge still holds of the customer's money."""
        if self.status in ("VOIDED", "DECLINED"):
            return 0
        return self.amount_minor_units - self.refunded_minor_units


@dataclass(frozen=True)
class Books:
    """One reading of the three services' records."""

    orders: Mapping[str, OrderRecord]
    reservations: Mapping[str, ReservationRecord]
    charges: Mapping[str, ChargeRecord]
    available: Units | None = None  # inventory's `available` by product (None: not read)


@dataclass(frozen=True)
class Finding:
    kind: Kind
    subject: str  # the order id, charge key or product id it is about
    detail: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind.value, "subject": self.subject, "detail": self.detail}


@dataclass(frozen=True)
class StockLine:
    """One product's stock: where every unit stocked is now."""

    product_id: str
    stocked: int | None  # None: the baseline does not know the product (or there is none)
    available: int
    committed: int  # sold: lines of COMMITTED reservations
    held: int  # lines of RESERVED reservations (orders in flight)

    @property
    def accounted(self) -> int:
        return self.available + self.committed + self.held

    def to_json(self) -> dict[str, int | str | None]:
        return {
            "product_id": self.product_id,
            "stocked": self.stocked,
            "available": self.available,
            "committed": self.committed,
            "held": self.held,
        }


@dataclass(frozen=True)
class Evaluation:
    """What the rule made of one reading."""

    findings: list[Finding]
    not_at_rest: dict[str, str]  # order id -> its status/step, for the orders still moving
    orders_by_status: dict[str, int]
    stock: list[StockLine] | None  # None: inventory's stock was not read
    stock_checked: bool  # False when there was no baseline to compare with
    notes: list[str] = field(default_factory=list)  # rules skipped, and why
