"""Violations collects every bad field; page tokens are opaque and bound to their listing."""

from __future__ import annotations

import pytest

from services.runtime.errors import InvalidArgument
from services.runtime.pagination import cut_page, decode_page_token, encode_page_token, read_page_token
from services.runtime.validation import Violations, check_items, require_identifier
from shop.money.v1.money_pb2 import Money


def fields(violations: Violations) -> list[str]:
    return [violation.field for violation in violations.violations]


def test_every_bad_field_is_reported_at_once() -> None:
    violations = Violations()
    violations.identifier("request_id", "")
    violations.identifier("customer_id", "ok-1.2_3")
    violations.identifier("order_id", "x" * 65)
    violations.token("payment_token", "tok-visa")  # '-' is not allowed in a token
    violations.text("reason", "r" * 201, max_length=200)
    violations.text("name", "   ", max_length=10, required=True)
    violations.int_range("items[0].quantity", 0, 1, 1000)
    violations.count("items", [], 1, 50)
    violations.unique("items", ["a", "b", "a", "a"])
    violations.money("amount", Money(currency_code="usd", minor_units=0), low=1, high=100)
    violations.money("total", None, low=0, high=1)
    assert fields(violations) == [
        "request_id",
        "order_id",
        "payment_token",
        "reason",
        "name",
        "items[0].quantity",
        "items",
        "items[2]",
        "items[3]",
        "amount.currency_code",
        "amount.minor_units",
        "total",
    ]
    with pytest.raises(InvalidArgument) as failure:
        violations.raise_if_any()
    assert len(failure.value.violations) == 12


def test_nothing_is_raised_for_a_good_request() -> None:
    violations = Violations()
    violations.identifier("request_id", "7f1c-42")
    violations.money("amount", Money(currency_code="EUR", minor_units=1999), low=1, high=100_000_000)
    violations.raise_if_any()
    assert violations.violations == []


@pytest.mark.parametrize(
    ("given", "used", "bad"), [(0, 20, False), (7, 7, False), (500, 100, False), (-1, 20, True)]
)
def test_page_size_follows_aip_158(given: int, used: int, bad: bool) -> None:
    violations = Violations()
    assert violations.page_size("page_size", given) == used
    assert bool(violations.violations) is bad


def test_a_page_token_round_trips_within_its_scope() -> None:
    token = encode_page_token("customers/c-1/orders", "2026-11-22T04:00:00|o-9")
    assert decode_page_token("page_token", token, "customers/c-1/orders") == "2026-11-22T04:00:00|o-9"
    assert decode_page_token("page_token", "", "customers/c-1/orders") is None


@pytest.mark.parametrize(
    "token", ["not base64!", "e30", "x" * 2000, encode_page_token("customers/c-2/orders", "k")]
)
def test_a_foreign_or_garbage_token_is_invalid_on_its_field(token: str) -> None:
    with pytest.raises(InvalidArgument) as failure:
        decode_page_token("page_token", token, "customers/c-1/orders")
    assert [violation.field for violation in failure.value.violations] == ["page_token"]


def test_a_bad_page_token_is_reported_with_the_other_violations() -> None:
    violations = Violations()
    violations.identifier("customer_id", "")
    assert read_page_token(violations, "page_token", "e30", "customers/c-1/orders") is None
    assert fields(violations) == ["customer_id", "page_token"]
    token = encode_page_token("customers/c-1/orders", "k-7")
    assert read_page_token(violations, "page_token", token, "customers/c-1/orders") == "k-7"
    assert fields(violations) == ["customer_id", "page_token"]


def test_a_page_is_cut_from_rows_fetched_with_one_extra() -> None:
    page, token = cut_page(["a", "b", "c"], 2, "products", lambda row: row)
    assert page == ["a", "b"]
    assert decode_page_token("page_token", token, "products") == "b"
    assert cut_page(["a", "b"], 2, "products", lambda row: row) == (["a", "b"], "")


class _Line:
    def __init__(self, product_id: str, quantity: int) -> None:
        self.product_id = product_id
        self.quantity = quantity


def test_item_lists_are_checked_line_by_line_and_bounded() -> None:
    violations = Violations()
    check_items(violations, "items", [_Line("p-1", 1), _Line("", 0), _Line("p-1", 1001)])
    assert fields(violations) == [
        "items[1].product_id",
        "items[1].quantity",
        "items[2].quantity",
        "items[2]",
    ]
    violations = Violations()
    check_items(violations, "items", [_Line("", 0)] * 500)
    assert fields(violations)[0] == "items"
    assert len(fields(violations)) <= 1 + 2 * 50 + 50  # only the first 50 lines are inspected


def test_a_request_naming_a_resource_needs_a_valid_identifier() -> None:
    assert require_identifier("order_id", "o-1") == "o-1"
    with pytest.raises(InvalidArgument) as failure:
        require_identifier("order_id", "no spaces")
    assert [violation.field for violation in failure.value.violations] == ["order_id"]
