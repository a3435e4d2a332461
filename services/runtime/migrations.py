"""The one body of every service's alembic env.py.

services/<name>/migrations/env.py is just:

    from services.<name>.tables import metadata
    from services.runtime.migrations import run_migrations

    run_migrations(metadata)

`Database.upgrade` (used by `shopmesh migrate <name>`, and by a starting service whose database
is behind: services/runtime/upgrade.py) passes the URL and the service's name through alembic's
Config, so env.py needs no ini file. Migrations run on SQLAlchemy — the standard library's
sqlite3 for SQLite, asyncpg for PostgreSQL — which only migrating processes import.
"""

from __future__ import annotations

import asyncio
from typing import Any

from alembic import context
from sqlalchemy import MetaData, create_engine, event, text
from sqlalchemy.engine import Connection

from services.runtime.database import (
    CONNECT_TIMEOUT_SECONDS,
    STATEMENT_TIMEOUT_SECONDS,
    postgresql_dsn,
    sqlite_path,
)
from services.runtime.database_sqlite import BUSY_TIMEOUT_MILLISECONDS


def run_migrations(target_metadata: MetaData) -> None:
    config = context.config
    url = config.get_main_option("sqlalchemy.url")
    service = config.attributes.get("service") or config.get_main_option("service")
    if not url or not service:
        raise RuntimeError("run migrations through `shopmesh migrate <service>` (needs url and service)")
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=target_metadata, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    path = sqlite_path(url)
    if path is not None:
        _run_sqlite(f"sqlite:///{path}", service, target_metadata)
    else:
        asyncio.run(_run_postgresql(url, service, target_metadata))


def _run_sqlite(url: str, service: str, target_metadata: MetaData) -> None:
    engine = create_engine(url)
    event.listen(engine, "connect", _sqlite_settings)
    # SQLAlchemy's recipe for SQLite transactions (docs: "Enabling Non-Legacy SQLite
    # Transactional Modes"), with IMMEDIATE: the migration holds the write lock from its start.
    event.listen(engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN IMMEDIATE"))
    try:
        with engine.connect() as connection:
            _migrate(connection, service, target_metadata)
    finally:
        engine.dispose()


def _sqlite_settings(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not BEGIN on its own (its legacy mode begins before the first write only);
    # SQLAlchemy emits BEGIN IMMEDIATE instead. WAL and foreign keys as the service runs them.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MILLISECONDS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


async def _run_postgresql(url: str, service: str, target_metadata: MetaData) -> None:
    from sqlalchemy.ext.asyncio import create_async_engine  # PostgreSQL only: SQLite's run is sync

    assert postgresql_dsn(url) is not None, url
    engine = create_async_engine(
        url.replace("postgresql://", "postgresql+asyncpg://", 1),
        pool_size=1,
        connect_args={
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": STATEMENT_TIMEOUT_SECONDS,
            "server_settings": {"search_path": service, "application_name": f"{service}-migrate"},
        },
    )
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_migrate, service, target_metadata)
    finally:
        await engine.dispose()


def _migrate(connection: Connection, service: str, target_metadata: MetaData) -> None:
    postgresql = connection.dialect.name == "postgresql"
    if postgresql:
        _ensure_schema(connection, service)
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        version_table_schema=service if postgresql else None,
        render_as_batch=not postgresql,  # SQLite alters tables by copying them
    )
    # One transaction for the whole upgrade on both backends (on SQLite BEGIN IMMEDIATE): a
    # migration that fails leaves no half-made tables. So on SQLite `PRAGMA foreign_keys=OFF`
    # inside a migration does nothing (SQLite ignores it in a transaction): a batch migration
    # that rebuilds a table others reference must keep the references valid as it goes.
    with context.begin_transaction():
        context.run_migrations()


def _ensure_schema(connection: Connection, schema: str) -> None:
    # Checked before creating: a role that may not create schemas can still run migrations
    # against one its DBA made for it.
    exists = connection.execute(
        text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
    )
    if exists.first() is None:
        quoted = connection.dialect.identifier_preparer.quote_identifier(schema)
        connection.execute(text(f"CREATE SCHEMA {quoted}"))
    connection.commit()
