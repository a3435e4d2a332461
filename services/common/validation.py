"""Validation of the item lists that order and inventory both accept."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from services.runtime.errors import InvalidArgument
from services.runtime.pagination import decode_page_token
from services.runtime.validation import Violations

MAX_ITEMS = 50
MAX_QUANTITY = 1000


class ItemLike(Protocol):
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


def page_token(violations: Violations, field: str, token: str, scope: str) -> str | None:
    """The position a page token carries, or None for the first page; a bad token is recorded
    with the request's other violations, so the caller hears of all of them at once."""
    try:
        return decode_page_token(field, token, scope)
    except InvalidArgument as invalid:
        for violation in invalid.violations:
            violations.add(violation.field, violation.description)
        return None


def require_identifier(field: str, value: str) -> str:
    """For a request that only names a resource: its identifier, or INVALID_ARGUMENT."""
    violations = Violations()
    violations.identifier(field, value)
    violations.raise_if_any()
    return value
