"""Column types the services' table declarations and migrations share.

Each service declares its tables with SQLAlchemy in `services/<name>/tables.py`: what its
migrations build, and what alembic's autogenerate compares them with
(tests/services/test_service_migrations.py). A running service never imports those modules, nor
SQLAlchemy: its store speaks SQL through the Database, and tests/services/test_service_statements.py
prepares every statement of every store against the migrated schema.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, TypeDecorator
from sqlalchemy.engine import Dialect


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC timestamp on every backend (SQLite stores naive text and forgets the zone).

    On SQLite the text is SQLAlchemy's fixed-width `YYYY-MM-DD HH:MM:SS.ffffff` in UTC, which
    services/runtime/database_sqlite.py writes too."""

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
