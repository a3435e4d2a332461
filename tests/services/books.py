"""The rule that order's, inventory's and payment's books must agree on, once every order is at
rest, as the tests check it: on real databases (shop_stack.Stack) and on the saga's fakes
(order_fakes). The rule itself is `shopmesh.check.rules`, the one `shopmesh check` runs; this
module only turns the tests' rows into its records.

The tests' stacks are shared: several order databases use one inventory and one payment, and
payment's own tests charge it directly. So the books checked are those of the orders given
(`books_of_orders`), plus any stock left reserved; the rows carry no reservation lines or stock,
so the stock rule is `shopmesh check`'s alone (tests/chaos/test_check.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Protocol

from shopmesh.check.model import Books, ChargeRecord, OrderRecord, ReservationRecord
from shopmesh.check.rules import books_of_orders, evaluate

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
    """
    books = Books(
        orders={
            row.order_id: OrderRecord(row.order_id, row.status, row.step, row.attempt, row.total_minor_units)
            for row in orders
        },
        reservations={key: ReservationRecord(key, status) for key, status in reservations.items()},
        charges={key: ChargeRecord(key, *charge) for key, charge in charges.items()},
    )
    evaluation = evaluate(books_of_orders(books))
    assert evaluation.not_at_rest == {}, evaluation.not_at_rest
    assert evaluation.findings == [], "\n".join(
        f"{finding.kind.value} {finding.subject}: {finding.detail}" for finding in evaluation.findings
    )
