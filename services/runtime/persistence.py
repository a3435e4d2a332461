"""What every service's repository and use cases need beside the Database: written once, for
PostgreSQL and SQLite — the session factory type, aware UTC timestamps, the idempotency claim
(and the fingerprint that tells a retry from another request reusing its key), NOT_FOUND.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeVar

from sqlalchemy import DateTime, Table, TypeDecorator
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.asyncio import AsyncSession

from services.runtime.errors import NotFound

T = TypeVar("T")

#: What a use case needs to open one transaction: `Database.session`.
SessionFactory = Callable[[], AbstractAsyncContextManager[AsyncSession]]


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend (SQLite stores naive text and forgets the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


async def insert_if_absent(session: AsyncSession, table: Table, values: Mapping[str, Any]) -> bool:
    """INSERT … ON CONFLICT DO NOTHING: True if this call created the row.

    The claim that makes an idempotency key safe under concurrency: of two transactions that
    insert the same key at once, the database lets exactly one win (the other waits for it on
    PostgreSQL, or for the write lock on SQLite, then inserts nothing and reads the winner's row).
    """
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    result = await session.execute(insert(table).values(**values).on_conflict_do_nothing())
    return bool(getattr(result, "rowcount", 0) == 1)


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
