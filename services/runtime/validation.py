"""Request validation that reports every bad field at once (google.rpc.BadRequest).

Usage in a servicer or the domain:

    violations = Violations()
    violations.identifier("request_id", request.request_id)
    violations.count("items", request.items, 1, 50)
    violations.raise_if_any()   # InvalidArgument listing all of them

Untrusted strings are bounded here, so nothing unbounded reaches the database or the logs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence, Sized
from typing import Protocol

from services.runtime.errors import FieldViolation, InvalidArgument
from shop.money.v1.money_pb2 import Money

_IDENTIFIER = re.compile(r"[A-Za-z0-9._-]{1,64}")
_TOKEN = re.compile(r"[A-Za-z0-9_]{1,128}")
_CURRENCY = re.compile(r"[A-Z]{3}")

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100
#: Item lists (CreateOrder, ReserveStock): at most this many lines, each of 1 to MAX_QUANTITY units.
MAX_ITEMS = 50
MAX_QUANTITY = 1000


class Violations:
    """Collects field violations; `raise_if_any()` raises them as one InvalidArgument."""

    def __init__(self) -> None:
        self.violations: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.violations.append(FieldViolation(field, description))

    def identifier(self, field: str, value: str) -> None:
        if not _IDENTIFIER.fullmatch(value):
            self.add(field, "must be 1-64 characters of [A-Za-z0-9._-]")

    def token(self, field: str, value: str) -> None:
        if not _TOKEN.fullmatch(value):
            self.add(field, "must be 1-128 characters of [A-Za-z0-9_]")

    def text(self, field: str, value: str, *, max_length: int, required: bool = False) -> None:
        if required and not value.strip():
            self.add(field, "is required")
        elif len(value) > max_length:
            self.add(field, f"must be at most {max_length} characters")

    def int_range(self, field: str, value: int, low: int, high: int) -> None:
        if not low <= value <= high:
            self.add(field, f"must be between {low} and {high}")

    def count(self, field: str, items: Sized, low: int, high: int) -> None:
        if not low <= len(items) <= high:
            self.add(field, f"must have between {low} and {high} entries")

    def unique(self, field: str, values: Sequence[str]) -> None:
        seen: set[str] = set()
        for index, value in enumerate(values):
            if value in seen:
                self.add(f"{field}[{index}]", f"duplicates an earlier entry {value[:64]!r}")
            seen.add(value)

    def money(self, field: str, money: Money | None, *, low: int, high: int) -> None:
        if money is None:
            self.add(field, "is required")
            return
        if not _CURRENCY.fullmatch(money.currency_code):
            self.add(f"{field}.currency_code", "must be an ISO 4217 code of 3 upper-case letters")
        if not low <= money.minor_units <= high:
            self.add(f"{field}.minor_units", f"must be between {low} and {high}")

    def page_size(self, field: str, value: int) -> int:
        """AIP-158: negative is an error, 0 means the default, above the maximum is clamped."""
        if value < 0:
            self.add(field, "must not be negative")
            return DEFAULT_PAGE_SIZE
        if value == 0:
            return DEFAULT_PAGE_SIZE
        return min(value, MAX_PAGE_SIZE)

    def raise_if_any(self) -> None:
        if self.violations:
            raise InvalidArgument(self.violations)


class ItemLike(Protocol):
    """A line of an item list: order's `LineItem` request and inventory's `StockRequest` alike."""

    @property
    def product_id(self) -> str: ...
    @property
    def quantity(self) -> int: ...


def check_items(violations: Violations, field: str, items: Sequence[ItemLike]) -> None:
    """1 to 50 lines, each a product id and 1 to 1000 units, product ids unique.

    Only the first MAX_ITEMS lines are inspected one by one: a longer list is already refused,
    and the violations stay bounded whatever the caller sends.
    """
    violations.count(field, items, 1, MAX_ITEMS)
    inspected = items[:MAX_ITEMS]
    for index, item in enumerate(inspected):
        violations.identifier(f"{field}[{index}].product_id", item.product_id)
        violations.int_range(f"{field}[{index}].quantity", item.quantity, 1, MAX_QUANTITY)
    violations.unique(field, [item.product_id[:64] for item in inspected])


def require_identifier(field: str, value: str) -> str:
    """For a request that only names a resource: its identifier, or INVALID_ARGUMENT."""
    violations = Violations()
    violations.identifier(field, value)
    violations.raise_if_any()
    return value
