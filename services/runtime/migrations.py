"""The one body of every service's alembic env.py.

services/<name>/migrations/env.py is just:

    from services.<name>.<module> import metadata
    from services.runtime.migrations import run_migrations

    run_migrations(metadata)

`Database.upgrade` (used by `shopmesh migrate <name>` and by `serve` for SQLite) passes the URL
and the service's name through alembic's Config, so env.py needs no ini file.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy import MetaData, text
from sqlalchemy.engine import Connection

from services.runtime.database import create_engine


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
    asyncio.run(_run_online(url, service, target_metadata))


async def _run_online(url: str, service: str, target_metadata: MetaData) -> None:
    engine = create_engine(url, service=service, pool_size=1)
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
    # One transaction for the whole upgrade on both backends (on SQLite it is the engine's
    # BEGIN IMMEDIATE, see database.py): a migration that fails leaves no half-made tables.
    # So on SQLite `PRAGMA foreign_keys=OFF` inside a migration does nothing (SQLite ignores it
    # in a transaction): a batch migration that rebuilds a table others reference must keep
    # the references valid as it goes.
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
