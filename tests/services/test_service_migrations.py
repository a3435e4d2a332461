"""Each service's Alembic history builds exactly the tables its repository declares."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from fixtures.postgres import PostgresServer, unique_name
from sqlalchemy import MetaData
from sqlalchemy.engine import Connection

from services.inventory.store import metadata as inventory_metadata
from services.order.store import metadata as order_metadata
from services.payment.store import metadata as payment_metadata
from services.runtime.database import Database

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
        async with database.engine.connect() as connection:
            differences = await connection.run_sync(_differences, METADATA[service])
    finally:
        await database.dispose()
    assert differences == []
