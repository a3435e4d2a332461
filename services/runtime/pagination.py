"""Pages of a List method (AIP-158): opaque page tokens, and cutting a page out of the rows.

A page token is base64url JSON that carries its `scope` (e.g. "customers/c-1/orders"), so a
token from one listing cannot be replayed against another; garbage or a foreign token is
INVALID_ARGUMENT on the field. Tokens are not signed: they only carry a position, never
anything the caller may not see.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from typing import TypeVar

from services.runtime.errors import FieldViolation, InvalidArgument
from services.runtime.validation import Violations

T = TypeVar("T")

#: Tokens are small; anything longer is rejected before decoding (untrusted input is bounded).
MAX_TOKEN_LENGTH = 1024


def encode_page_token(scope: str, offset_key: str) -> str:
    payload = json.dumps({"s": scope, "k": offset_key}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(payload).decode().rstrip("=")


def decode_page_token(field: str, token: str, scope: str) -> str | None:
    """The offset key in `token`, or None for an empty token (the first page)."""
    if not token:
        return None
    invalid = InvalidArgument([FieldViolation(field, "is not a page token issued for this listing")])
    if len(token) > MAX_TOKEN_LENGTH:
        raise invalid
    try:
        payload = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise invalid from None
    if not isinstance(payload, dict) or payload.get("s") != scope or not isinstance(payload.get("k"), str):
        raise invalid
    key: str = payload["k"]
    return key


def read_page_token(violations: Violations, field: str, token: str, scope: str) -> str | None:
    """`decode_page_token` for a request validated as a whole: a bad token is recorded with the
    request's other violations (so the caller hears of all of them at once) and reads as None."""
    try:
        return decode_page_token(field, token, scope)
    except InvalidArgument as invalid:
        for violation in invalid.violations:
            violations.add(violation.field, violation.description)
        return None


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
