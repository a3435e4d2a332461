"""Every statement a store runs prepares against its service's migrated schema, on both
backends: the SQL in store.py and the tables the migrations build agree (a missing column or
a mistyped parameter fails here, not in a running service)."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path

import asyncpg
import pytest
from fixtures.postgres import PostgresServer, unique_name

from services.inventory import store as inventory_store
from services.order import store as order_store
from services.payment import store as payment_store
from services.runtime.database import Database, Statement, postgresql_dsn

STATEMENTS: dict[str, tuple[Statement, ...]] = {
    "order": order_store.STATEMENTS,
    "inventory": inventory_store.STATEMENTS,
    "payment": payment_store.STATEMENTS,
}
ROOT = Path(__file__).resolve().parents[2]


def _migrated(url: str, service: str) -> None:
    Database(url, service=service).upgrade(ROOT / "services" / service / "migrations")


@pytest.mark.parametrize("service", sorted(STATEMENTS))
async def test_statements_prepare_on_sqlite(service: str, tmp_path: Path) -> None:
    path = tmp_path / f"{service}.db"
    await asyncio.to_thread(_migrated, f"sqlite:///{path}", service)
    connection = sqlite3.connect(path)
    try:
        for statement in STATEMENTS[service]:
            # EXPLAIN compiles the statement (tables, columns, parameters) without running it.
            connection.execute(f"EXPLAIN {statement.sql}", dict.fromkeys(statement.names))
    finally:
        connection.close()


@pytest.mark.parametrize("service", sorted(STATEMENTS))
async def test_statements_prepare_on_postgresql(service: str, postgres: PostgresServer) -> None:
    url = postgres.create_database(unique_name(service))
    await asyncio.to_thread(_migrated, url, service)
    dsn = postgresql_dsn(url)
    assert dsn is not None
    connection = await asyncpg.connect(dsn, server_settings={"search_path": service})
    try:
        async with connection.transaction():  # FOR UPDATE prepares only inside one
            for statement in STATEMENTS[service]:
                prepared = await connection.prepare(statement.postgresql)
                assert len(prepared.get_parameters()) == len(statement.names), statement
    finally:
        await connection.close()
