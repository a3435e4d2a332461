"""Cutting one page out of rows fetched with one extra (AIP-158), for every List method."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TypeVar

from services.runtime.pagination import encode_page_token

T = TypeVar("T")


def cut_page(
    rows: Sequence[T], page_size: int, scope: str, position: Callable[[T], str]
) -> tuple[list[T], str]:
    """The first `page_size` rows and the token of the next page ("" on the last one).

    The caller fetched `page_size + 1` rows: the extra one tells whether another page follows,
    without a count query. `position` names a row's place in the order, for the next query.
    """
    page = list(rows[:page_size])
    token = encode_page_token(scope, position(page[-1])) if len(rows) > page_size else ""
    return page, token
