"""Opaque page tokens (AIP-158): base64url JSON naming the listing they belong to.

A token carries its `scope` (e.g. "customers/c-1/orders") so a token from one listing cannot
be replayed against another; garbage or a foreign token is INVALID_ARGUMENT on the field.
Tokens are not signed: they only carry a position, never anything the caller may not see.
"""

from __future__ import annotations

import base64
import binascii
import json

from services.runtime.errors import FieldViolation, InvalidArgument

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
