"""Each service's Alembic history builds exactly the tables its repository declares."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fixtures.postgres import PostgresServer, unique_name
from sqlalchemy import MetaData, create_engine
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import create_async_engine

from services.inventory.tables import metadata as inventory_metadata
from services.order.tables import metadata as order_metadata
from services.payment.tables import metadata as payment_metadata
from services.runtime.database import Database, sqlite_path

pytestmark = pytest.mark.slow  # runs PostgreSQL and alembic

METADATA = {"order": order_metadata, "inventory": inventory_metadata, "payment": payment_metadata}
ROOT = Path(__file__).resolve().parents[2]


def _differences(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return [diff for diff in compare_metadata(context, metadata) if diff[0] != "remove_table"
            or diff[1].name != "alembic_version"]  # fmt: skip


@pytest.mark.parametrize("service", sorted(METADATA))
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_migrations_match_the_tables(
    service: str, backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if backend == "postgres":
        postgres: PostgresServer = request.getfixturevalue("postgres")
        url = postgres.create_database(unique_name(service))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / service}.db"
    database = Database(url, service=service)
    try:
        await asyncio.to_thread(database.upgrade, ROOT / "services" / service / "migrations")
    finally:
        await database.dispose()
    assert await _compared(url, service, METADATA[service]) == []


async def _compared(url: str, service: str, metadata: MetaData) -> list[Any]:
    """The differences alembic's autogenerate finds (through SQLAlchemy, as migrations run)."""
    path = sqlite_path(url)
    if path is not None:
        engine = create_engine(f"sqlite:///{path}")
        try:
            with engine.connect() as connection:
                return _differences(connection, metadata)
        finally:
            engine.dispose()
    connect_args = {"server_settings": {"search_path": service}}
    async_engine = create_async_engine(url, connect_args=connect_args)
    try:
        async with async_engine.connect() as connection:
            return await connection.run_sync(_differences, metadata)
    finally:
        await async_engine.dispose()
