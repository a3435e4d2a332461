"""Telling a retry from a different request that reuses an idempotency key."""

from __future__ import annotations

import hashlib


def fingerprint(*parts: object) -> str:
    """A stable digest of a request's meaningful fields (secrets such as card tokens are kept
    only inside this digest, never stored)."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()
