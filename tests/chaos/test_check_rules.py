"""The consistency rule (shopmesh.check.rules) on hand-made books: each way the books can
disagree is found, named and tied to its order, charge or product; books that agree give nothing."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import pytest

from shopmesh.check.model import Books, ChargeRecord, Kind, OrderRecord, ReservationRecord
from shopmesh.check.rules import books_of_orders, evaluate, order_of_reservation, reservation_id

STOCKED = {"sku-a": 10, "sku-b": 5}
T = TypeVar("T")


def agreeing_books() -> Books:
    """A confirmed order (2 a + 1 b), a declined one, a failed one retried and confirmed, a
    cancelled one, and one in flight; 10 a and 5 b stocked."""
    orders = [
        OrderRecord("o-conf", "CONFIRMED", None, 1, 700, {"sku-a": 2, "sku-b": 1}),
        OrderRecord("o-decl", "REJECTED", None, 1, 300, {"sku-a": 1}),
        OrderRecord("o-retry", "CONFIRMED", None, 2, 300, {"sku-a": 1}),
        OrderRecord("o-canc", "CANCELLED", None, 1, 300, {"sku-a": 1}),
        OrderRecord("o-fly", "PENDING", "CHARGING", 1, 300, {"sku-a": 1}),
    ]
    reservations = [
        ReservationRecord("o-conf", "COMMITTED", {"sku-a": 2, "sku-b": 1}),
        ReservationRecord("o-decl", "RELEASED", {"sku-a": 1}),
        ReservationRecord("o-retry", "RELEASED", {}),  # released before it was made: a tombstone
        ReservationRecord("o-retry.r2", "COMMITTED", {"sku-a": 1}),
        ReservationRecord("o-canc", "RELEASED", {"sku-a": 1}),
        ReservationRecord("o-fly", "RESERVED", {"sku-a": 1}),
    ]
    charges = [
        ChargeRecord("order-o-conf", "APPROVED", 700, 0),
        ChargeRecord("order-o-decl", "DECLINED", 300, 0),
        ChargeRecord("order-o-retry", "VOIDED", 0, 0),
        ChargeRecord("order-o-retry.r2", "APPROVED", 300, 0),
        ChargeRecord("order-o-canc", "REFUNDED", 300, 300),
    ]
    return Books(
        orders={o.order_id: o for o in orders},
        reservations={r.reservation_id: r for r in reservations},
        charges={c.key: c for c in charges},
        available={"sku-a": 6, "sku-b": 4},  # 10 - 2 sold - 1 sold - 1 held; 5 - 1 sold
    )


def with_changes(
    books: Books,
    *,
    records: Sequence[OrderRecord | ReservationRecord | ChargeRecord] = (),
    dropped: Sequence[str] = (),
    available: Mapping[str, int] | None = None,
) -> Books:
    """`books` with `records` added or replaced, the records named in `dropped` ("order:o-1",
    "reservation:o-1", "charge:order-o-1") removed, and inventory's `available` units changed."""

    def kept(
        kind: str, table: Mapping[str, T], record_type: type[T], key: Callable[[T], str]
    ) -> dict[str, T]:
        result = {name: record for name, record in table.items() if f"{kind}:{name}" not in dropped}
        result.update({key(record): record for record in records if isinstance(record, record_type)})
        return result

    return Books(
        kept("order", books.orders, OrderRecord, lambda record: record.order_id),
        kept("reservation", books.reservations, ReservationRecord, lambda record: record.reservation_id),
        kept("charge", books.charges, ChargeRecord, lambda record: record.key),
        {**(books.available or {}), **(available or {})},
    )


def kinds(books: Books) -> list[tuple[Kind, str]]:
    return [(finding.kind, finding.subject) for finding in evaluate(books, STOCKED).findings]


def test_agreeing_books_have_no_finding_and_say_what_is_in_flight() -> None:
    evaluation = evaluate(agreeing_books(), STOCKED)
    assert evaluation.findings == []
    assert evaluation.not_at_rest == {"o-fly": "PENDING/CHARGING"}
    assert evaluation.orders_by_status == {"CONFIRMED": 2, "REJECTED": 1, "CANCELLED": 1, "PENDING": 1}
    assert evaluation.stock_checked
    a = next(line for line in evaluation.stock or [] if line.product_id == "sku-a")
    assert (a.stocked, a.available, a.committed, a.held) == (10, 6, 3, 1)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        pytest.param(
            {"dropped": ["charge:order-o-conf"]},
            [(Kind.CONFIRMED_NOT_CHARGED, "o-conf")],
            id="confirmed-without-charge",
        ),
        pytest.param(
            {"records": [ChargeRecord("order-o-conf", "APPROVED", 600, 0)]},
            [(Kind.CONFIRMED_NOT_CHARGED, "o-conf")],
            id="charged-another-amount",
        ),
        pytest.param(
            {"records": [ChargeRecord("order-o-conf", "PARTIALLY_REFUNDED", 700, 100)]},
            [(Kind.CONFIRMED_NOT_CHARGED, "o-conf")],
            id="confirmed-partly-refunded",
        ),
        pytest.param(
            {"dropped": ["reservation:o-conf"]},  # and with it the units it sold
            [(Kind.LOST_RESERVATION, "o-conf"), (Kind.STOCK_DRIFT, "sku-a"), (Kind.STOCK_DRIFT, "sku-b")],
            id="lost-reservation",
        ),
        pytest.param(
            {
                "records": [ReservationRecord("o-conf", "RELEASED", {"sku-a": 2, "sku-b": 1})],
                "available": {"sku-a": 8, "sku-b": 5},
            },
            [(Kind.CONFIRMED_NOT_COMMITTED, "o-conf")],
            id="confirmed-but-restocked",
        ),
        pytest.param(
            {
                "records": [ReservationRecord("o-conf", "COMMITTED", {"sku-a": 1, "sku-b": 1})],
                "available": {"sku-a": 7},
            },
            [(Kind.SALE_MISMATCH, "o-conf")],
            id="sold-other-units",
        ),
        pytest.param(
            {"records": [ChargeRecord("order-o-decl", "APPROVED", 300, 0)]},
            [(Kind.ORPHAN_CHARGE, "order-o-decl")],
            id="rejected-but-charged",
        ),
        pytest.param(
            {"records": [ChargeRecord("order-o-canc", "PARTIALLY_REFUNDED", 300, 200)]},
            [(Kind.ORPHAN_CHARGE, "order-o-canc")],
            id="cancelled-not-fully-refunded",
        ),
        pytest.param(
            {"records": [ChargeRecord("order-o-retry", "APPROVED", 300, 0)]},
            [(Kind.ORPHAN_CHARGE, "order-o-retry")],
            id="failed-attempt-kept-its-charge",
        ),
        pytest.param(
            {"records": [ChargeRecord("refund-by-hand", "APPROVED", 50, 0)]},
            [(Kind.ORPHAN_CHARGE, "refund-by-hand")],
            id="charge-of-no-order",
        ),
        pytest.param(
            {"records": [ReservationRecord("o-decl", "RESERVED", {"sku-a": 1})], "available": {"sku-a": 5}},
            [(Kind.HELD_STOCK, "o-decl")],
            id="rejected-but-reserved",
        ),
        pytest.param(
            {"dropped": ["reservation:o-decl"]},
            [(Kind.LOST_RESERVATION, "o-decl")],
            id="rejected-without-its-release",
        ),
        pytest.param(
            {
                "records": [ReservationRecord("o-conf.r2", "RESERVED", {"sku-a": 1})],
                "available": {"sku-a": 5},
            },
            [(Kind.HELD_STOCK, "o-conf")],
            id="reserved-for-an-attempt-never-made",
        ),
        pytest.param({"available": {"sku-b": 5}}, [(Kind.STOCK_DRIFT, "sku-b")], id="stock-drift"),
        pytest.param(
            {"available": {"sku-c": 0}}, [(Kind.STOCK_DRIFT, "sku-c")], id="a-product-the-baseline-lacks"
        ),
        pytest.param(
            {"records": [OrderRecord("o-odd", "PENDING", None, 1, None)]},
            [(Kind.UNKNOWN_STATE, "o-odd")],
            id="pending-without-a-step",
        ),
        pytest.param(
            {"dropped": ["order:o-conf"]},
            [(Kind.LOST_ORDER, "o-conf")],
            id="records-of-an-order-that-is-gone",
        ),
    ],
)
def test_each_disagreement_is_found(change: dict[str, Any], expected: list[tuple[Kind, str]]) -> None:
    assert kinds(with_changes(agreeing_books(), **change)) == expected


def test_a_lost_order_names_what_is_left_of_it() -> None:
    [finding] = evaluate(with_changes(agreeing_books(), dropped=["order:o-conf"]), STOCKED).findings
    assert finding.detail == (
        "no such order in order's database, yet reservation o-conf COMMITTED; "
        "charge order-o-conf APPROVED 700 (refunded 0, kept 700)"
    )


def test_orders_in_flight_or_moving_are_left_out_and_their_stock_counts_as_held() -> None:
    books = with_changes(
        agreeing_books(),
        records=[ChargeRecord("order-o-fly", "APPROVED", 300, 0)],  # charged, not yet committed
    )
    assert evaluate(books, STOCKED).findings == []
    # An order seen to change while the books were read is judged at the next reading.
    moving = with_changes(books, records=[ChargeRecord("order-o-decl", "APPROVED", 300, 0)])
    evaluation = evaluate(moving, STOCKED, moved={"o-decl"})
    assert evaluation.findings == []
    assert evaluation.not_at_rest == {"o-fly": "PENDING/CHARGING", "o-decl": "REJECTED (moved)"}


def test_without_a_baseline_the_stock_rule_is_skipped_and_says_so() -> None:
    books = with_changes(agreeing_books(), available={"sku-b": 99})
    evaluation = evaluate(books, stocked=None)
    assert evaluation.findings == []
    assert not evaluation.stock_checked
    assert evaluation.notes == ["stock not checked: no baseline of what was stocked (see --stocked)"]


def test_books_of_orders_keep_only_those_orders_records_and_any_held_stock() -> None:
    books = with_changes(
        agreeing_books(),
        records=[
            ChargeRecord("someone-elses-key", "APPROVED", 10, 0),
            ReservationRecord("other-order", "RELEASED", {"sku-a": 1}),
            ReservationRecord("other-held", "RESERVED", {"sku-a": 1}),
        ],
    )
    scoped = books_of_orders(books)
    assert "someone-elses-key" not in scoped.charges
    assert "other-order" not in scoped.reservations
    assert [(f.kind, f.subject) for f in evaluate(scoped).findings] == [(Kind.LOST_ORDER, "other-held")]


def test_reservation_ids_and_attempts() -> None:
    assert reservation_id("7f3c", 1) == "7f3c"
    assert reservation_id("7f3c", 3) == "7f3c.r3"
    assert order_of_reservation("7f3c.r3") == ("7f3c", 3)
    assert order_of_reservation("7f3c") == ("7f3c", 1)
    assert order_of_reservation("a.rb") == ("a.rb", 1)
