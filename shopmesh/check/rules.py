"""The rule the three services' books must agree on, once the orders are at rest.

- each CONFIRMED order has exactly one charge, approved for its total, and its reservation
  committed, for the units it ordered;
- each REJECTED, FAILED or CANCELLED order (and each earlier attempt of an order) keeps no money
  and holds no stock: its reservation is released (inventory keeps the release, so a late
  ReserveStock can never hold stock for it), its charge key voided, declined or refunded in full;
- no money is kept and no stock held for an order that order's database does not have;
- per product, inventory's available + committed (sold) + held (reserved by orders in flight)
  equals what was stocked.

The links are the saga's own idempotency keys (services/order/README.md): the reservation id is
the order id (attempt 1) or `<order id>.r<n>`, the charge key `order-<reservation id>`. Orders in
flight are left out of the per-order rules (their reservations count as held); `evaluate` says
which they are, and the caller decides whether to wait for them.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Mapping

from shopmesh.check.model import (
    Books,
    ChargeRecord,
    Evaluation,
    Finding,
    Kind,
    OrderRecord,
    StockLine,
    Units,
)

AT_REST = frozenset({"CONFIRMED", "REJECTED", "FAILED", "CANCELLED"})
CHARGE_KEY_PREFIX = "order-"
_ATTEMPT = re.compile(r"^(?P<order>.+)\.r(?P<attempt>[0-9]+)$")


def reservation_id(order_id: str, attempt: int) -> str:
    """The reservation id of an order's attempt (services/order/domain.py Order.reservation_id)."""
    return order_id if attempt == 1 else f"{order_id}.r{attempt}"


def order_of_reservation(reservation: str) -> tuple[str, int]:
    """The order id and attempt a reservation id belongs to."""
    match = _ATTEMPT.match(reservation)
    if match is None:
        return reservation, 1
    return match["order"], int(match["attempt"])


def evaluate(books: Books, stocked: Units | None = None, moved: Collection[str] = ()) -> Evaluation:
    """Every finding in `books`. `stocked`: units stocked by product (None: the stock rule is
    skipped, and a note says so). `moved`: orders seen to change while the books were read,
    left out like orders in flight."""
    not_at_rest = {
        order.order_id: f"{order.status}/{order.step}" if order.step else f"{order.status} (moved)"
        for order in books.orders.values()
        if order.step is not None or order.order_id in moved
    }
    findings: list[Finding] = []
    notes: list[str] = []
    for order in books.orders.values():
        if order.order_id not in not_at_rest:
            findings.extend(_order_findings(order, books))
    findings.extend(_findings_without_order(books, not_at_rest))
    stock = None if books.available is None else stock_lines(books, stocked)
    if stock is None:
        notes.append("stock not checked: inventory's products were not read")
    elif stocked is None:
        notes.append("stock not checked: no baseline of what was stocked (see --stocked)")
    else:
        findings.extend(_stock_findings(stock))
    if books.available is not None and any(r.lines is None for r in books.reservations.values()):
        notes.append("reservation lines unknown: stock totals are incomplete")
    return Evaluation(
        findings=findings,
        not_at_rest=not_at_rest,
        orders_by_status=dict(Counter(order.status for order in books.orders.values())),
        stock=stock,
        stock_checked=stock is not None and stocked is not None,
        notes=notes,
    )


def _order_findings(order: OrderRecord, books: Books) -> Iterable[Finding]:
    subject = order.order_id
    if order.status not in AT_REST:
        yield Finding(Kind.UNKNOWN_STATE, subject, f"status {order.status} with no saga step")
        return
    for attempt in range(1, order.attempt):  # every earlier attempt failed and was undone
        yield from _undone(order, reservation_id(order.order_id, attempt), f"attempt {attempt}", books)
    last = reservation_id(order.order_id, order.attempt)
    if order.status != "CONFIRMED":
        yield from _undone(order, last, order.status, books)
        return
    reservation = books.reservations.get(last)
    if reservation is None:
        yield Finding(Kind.LOST_RESERVATION, subject, f"CONFIRMED, but inventory has no reservation {last}")
    elif reservation.status != "COMMITTED":
        yield Finding(
            Kind.CONFIRMED_NOT_COMMITTED,
            subject,
            f"CONFIRMED, but reservation {last} is {reservation.status}",
        )
    elif reservation.lines is not None and order.lines is not None and reservation.lines != order.lines:
        yield Finding(
            Kind.SALE_MISMATCH,
            subject,
            f"ordered {_units(order.lines)}, reservation {last} sold {_units(reservation.lines)}",
        )
    charge = books.charges.get(CHARGE_KEY_PREFIX + last)
    if charge is None:
        yield Finding(Kind.CONFIRMED_NOT_CHARGED, subject, f"CONFIRMED, but payment has no charge {last}")
    elif charge.status != "APPROVED" or charge.amount_minor_units != order.total_minor_units:
        yield Finding(
            Kind.CONFIRMED_NOT_CHARGED,
            subject,
            f"CONFIRMED for {order.total_minor_units}, but its charge is {_charge(charge)}",
        )


def _undone(order: OrderRecord, reservation: str, what: str, books: Books) -> Iterable[Finding]:
    """An attempt that did not end in a sale: released, and nothing kept of its charge."""
    record = books.reservations.get(reservation)
    if record is None:
        yield Finding(
            Kind.LOST_RESERVATION,
            order.order_id,
            f"{what}: inventory has no record of reservation {reservation}, released or not",
        )
    elif record.status != "RELEASED":
        yield Finding(
            Kind.HELD_STOCK, order.order_id, f"{what}, but reservation {reservation} is {record.status}"
        )
    charge = books.charges.get(CHARGE_KEY_PREFIX + reservation)
    if charge is not None and charge.kept:
        yield Finding(
            Kind.ORPHAN_CHARGE,
            charge.key,
            f"order {order.order_id} {what}, but its charge is {_charge(charge)}",
        )


def _findings_without_order(books: Books, moving: Collection[str]) -> Iterable[Finding]:
    """Records whose order (or order attempt) does not exist, and charges of no saga at all.
    A moving order may be at a newer attempt than was read: its records are left alone."""
    evidence: dict[str, list[str]] = defaultdict(list)
    for reservation in books.reservations.values():
        order_id, attempt = order_of_reservation(reservation.reservation_id)
        order = books.orders.get(order_id)
        if order is None:
            evidence[order_id].append(f"reservation {reservation.reservation_id} {reservation.status}")
        elif order_id not in moving and attempt > order.attempt and reservation.status != "RELEASED":
            yield Finding(
                Kind.HELD_STOCK,
                order_id,
                f"reservation {reservation.reservation_id} is {reservation.status}, "
                f"but the order is at attempt {order.attempt}",
            )
    for charge in books.charges.values():
        if not charge.key.startswith(CHARGE_KEY_PREFIX):
            if charge.kept:
                yield Finding(Kind.ORPHAN_CHARGE, charge.key, f"not an order's charge key; {_charge(charge)}")
            continue
        order_id, attempt = order_of_reservation(charge.key.removeprefix(CHARGE_KEY_PREFIX))
        order = books.orders.get(order_id)
        if order is None:
            evidence[order_id].append(f"charge {charge.key} {_charge(charge)}")
        elif order_id not in moving and attempt > order.attempt and charge.kept:
            yield Finding(
                Kind.ORPHAN_CHARGE,
                charge.key,
                f"{_charge(charge)}, but the order is at attempt {order.attempt}",
            )
    for order_id, records in sorted(evidence.items()):
        yield Finding(
            Kind.LOST_ORDER, order_id, f"no such order in order's database, yet {'; '.join(records)}"
        )


def books_of_orders(books: Books) -> Books:
    """Only the records of `books.orders`, and any stock held: for databases that others share.

    Tests run several order databases (each with its own order process) against one inventory
    and one payment, and payment's own tests charge it directly: there, records of no order in
    `books.orders` are someone else's, not lost. Stock still reserved is never someone else's
    at rest, so RESERVED reservations stay in.
    """
    return Books(
        orders=books.orders,
        reservations={
            key: reservation
            for key, reservation in books.reservations.items()
            if reservation.status == "RESERVED" or order_of_reservation(key)[0] in books.orders
        },
        charges={
            key: charge
            for key, charge in books.charges.items()
            if key.startswith(CHARGE_KEY_PREFIX)
            and order_of_reservation(key.removeprefix(CHARGE_KEY_PREFIX))[0] in books.orders
        },
        available=books.available,
    )


def stock_lines(books: Books, stocked: Units | None) -> list[StockLine]:
    """Per product: stocked, available, committed and held units (reservations' lines)."""
    committed: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for reservation in books.reservations.values():
        target = {"COMMITTED": committed, "RESERVED": held}.get(reservation.status)
        if target is not None and reservation.lines is not None:
            target.update(reservation.lines)
    available = books.available or {}
    products = sorted(set(available) | set(stocked or {}) | set(committed) | set(held))
    return [
        StockLine(
            product_id=product,
            stocked=None if stocked is None else stocked.get(product),
            available=available.get(product, 0),
            committed=committed[product],
            held=held[product],
        )
        for product in products
    ]


def _stock_findings(stock: Iterable[StockLine]) -> Iterable[Finding]:
    for line in stock:
        if line.stocked != line.accounted:
            stocked = "nothing known" if line.stocked is None else str(line.stocked)
            yield Finding(
                Kind.STOCK_DRIFT,
                line.product_id,
                f"stocked {stocked}, but available {line.available} + committed {line.committed} "
                f"+ held {line.held} = {line.accounted}",
            )


def _charge(charge: ChargeRecord) -> str:
    return (
        f"{charge.status} {charge.amount_minor_units} (refunded {charge.refunded_minor_units}, "
        f"kept {charge.kept})"
    )


def _units(lines: Mapping[str, int]) -> str:
    return ", ".join(f"{units} x {product}" for product, units in sorted(lines.items())) or "nothing"
