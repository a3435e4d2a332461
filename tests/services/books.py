"""The rule that order's, inventory's and payment's books must agree on, once every order is at
rest: checked on real databases (shop_stack.Stack) and on the saga's fakes (order_fakes)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

#: A charge as payment keeps it: (status, amount, refunded), minor units.
Charge = tuple[str, int, int]


class OrderRow(Protocol):
    @property
    def order_id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def step(self) -> str | None: ...
    @property
    def attempt(self) -> int: ...
    @property
    def total_minor_units(self) -> int | None: ...


def assert_books_agree(
    orders: Iterable[OrderRow], reservations: Mapping[str, str], charges: Mapping[str, Charge]
) -> None:
    """Every order at rest, and stock and payments exactly as the orders say.

    `reservations`: inventory's status by reservation id; `charges`: payment's by charge key.
    CONFIRMED: its reservation committed, its charge approved for the order's total.
    REJECTED/FAILED: every attempt's reservation released; no charge kept (absent, voided,
    declined, or refunded in full). CANCELLED: released and refunded in full. And no
    reservation is left RESERVED.
    """
    orders = list(orders)
    assert [order for order in orders if order.step is not None] == []
    assert [key for key, status in reservations.items() if status == "RESERVED"] == []
    for order in orders:
        attempts = [order.order_id, *(f"{order.order_id}.r{n}" for n in range(2, order.attempt + 1))]
        last = attempts[-1]
        for reservation_id in attempts[:-1]:  # earlier attempts all failed
            assert reservations.get(reservation_id) == "RELEASED", (order, reservation_id)
            assert charge_kept(charges.get(f"order-{reservation_id}")) == 0, order
        charge = charges.get(f"order-{last}")
        if order.status == "CONFIRMED":
            assert reservations.get(last) == "COMMITTED", order
            assert charge is not None, order
            assert charge[:2] == ("APPROVED", order.total_minor_units), order
        else:
            assert order.status in ("REJECTED", "FAILED", "CANCELLED"), order
            assert reservations.get(last) == "RELEASED", order
            assert charge_kept(charge) == 0, (order, charge)


def charge_kept(charge: Charge | None) -> int:
    """What a charge still holds of the customer's money."""
    if charge is None or charge[0] in ("VOIDED", "DECLINED"):
        return 0
    return charge[1] - charge[2]
