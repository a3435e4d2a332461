"""What every service's store and use cases need beside the Database, written once for
PostgreSQL and SQLite: aware UTC timestamps in and out, JSON columns, the fingerprint that
tells a retry from another request reusing its idempotency key, NOT_FOUND.

An idempotency key is claimed by the store's own `INSERT … ON CONFLICT DO NOTHING RETURNING …`:
of two transactions that insert the same key at once, the database lets exactly one win (the
other waits for it on PostgreSQL, or runs after it on SQLite's one writer) and returns no row
to the loser, who then reads the winner's row.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from typing import Any, TypeVar

from services.runtime.errors import NotFound

T = TypeVar("T")


def utc_now() -> datetime:
    return datetime.now(UTC)


def utc(value: datetime | str) -> datetime:
    """A timestamp column as an aware UTC datetime: PostgreSQL's driver returns one, SQLite's
    text form (UTC, no zone) is parsed."""
    if isinstance(value, str):
        return datetime.fromisoformat(f"{value}+00:00")  # read as UTC: a third of .replace(tzinfo=UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def optional_utc(value: datetime | str | None) -> datetime | None:
    return None if value is None else utc(value)


def to_json(value: Any) -> str:
    """A JSON column's value: text on both backends (asyncpg's json codec takes text)."""
    return json.dumps(value)


def from_json(value: str) -> Any:
    return json.loads(value)


def fingerprint(*parts: object) -> str:
    """A stable digest of a request's meaningful fields, stored beside its idempotency key so a
    retry (same digest) is told from another request reusing the key. Secrets such as card
    tokens are kept only inside this digest, never stored."""
    return hashlib.sha256("\x1f".join(str(part) for part in parts).encode()).hexdigest()


def found(resource: T | None, resource_type: str, name: str) -> T:
    """The resource a repository returned, or NOT_FOUND naming what was asked for."""
    if resource is None:
        raise NotFound(resource_type, name)
    return resource
