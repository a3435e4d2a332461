"""A new database gets its schema from the committed snapshot in one transaction, and that
snapshot is exactly what the migrations build; any other database is left to alembic
(services/runtime/snapshot.py, upgrade.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from services.runtime import upgrade
from services.runtime.database import Database, alembic_upgrade
from services.runtime.registry import declarations
from services.runtime.snapshot import generate, load_if_empty, read_snapshot, snapshot_file

REPO = Path(__file__).resolve().parents[2]
SERVICES = sorted(declarations())


def migrations(service: str) -> Path:
    return REPO / "services" / service / "migrations"


def schema(path: Path) -> list[tuple[Any, ...]]:
    """Every object of a SQLite file (its CREATE statement, less the spaces at line ends that
    a snapshot drops) and alembic's stamp."""
    connection = sqlite3.connect(path)
    try:
        objects = connection.execute("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY name")
        found = [(kind, name, table, sql and _trimmed(sql)) for kind, name, table, sql in objects]
        if any(name == "alembic_version" for _, name, _, _ in found):
            found += connection.execute("SELECT 'stamp', version_num FROM alembic_version").fetchall()
        return found
    finally:
        connection.close()


def _trimmed(sql: str) -> str:
    return "\n".join(line.rstrip() for line in sql.splitlines())


@pytest.fixture
async def new_database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite:///{tmp_path / 'new.db'}", service="order")
    try:
        yield database
    finally:
        await database.dispose()


@pytest.mark.slow  # runs alembic
@pytest.mark.parametrize("service", SERVICES)
def test_each_snapshot_is_what_the_migrations_build_now(service: str) -> None:
    committed = snapshot_file(migrations(service), "sqlite").read_text()
    assert committed == generate(service, migrations(service)), (
        f"{service}'s schema snapshot drifted from its migrations: run scripts/refresh-schema-snapshots"
    )


@pytest.mark.slow  # runs alembic
@pytest.mark.parametrize("service", SERVICES)
async def test_a_new_database_starts_from_its_snapshot_as_if_migrated(
    service: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrated = tmp_path / "migrated.db"
    await asyncio.to_thread(alembic_upgrade, f"sqlite:///{migrated}", service, migrations(service))

    async def no_child(*args: object, **kwargs: object) -> None:
        raise AssertionError("a new database was migrated by alembic, not from its snapshot")

    monkeypatch.setattr(upgrade.asyncio, "create_subprocess_exec", no_child)
    database = Database(f"sqlite:///{tmp_path / 'new.db'}", service=service)
    try:
        await upgrade.upgrade_if_behind(database, migrations(service))
        assert await upgrade.is_at_head(database, migrations(service))
    finally:
        await database.dispose()
    assert schema(tmp_path / "new.db") == schema(migrated)


async def test_a_database_that_holds_anything_is_left_to_alembic(
    new_database: Database, tmp_path: Path
) -> None:
    connection = sqlite3.connect(tmp_path / "new.db")
    connection.execute("CREATE TABLE orders (order_id TEXT PRIMARY KEY)")  # made by hand, never stamped
    connection.close()
    before = schema(tmp_path / "new.db")

    heads = upgrade.head_revisions(migrations("order"))
    assert not await load_if_empty(new_database, migrations("order"), heads)
    assert schema(tmp_path / "new.db") == before


async def test_a_snapshot_of_other_revisions_than_the_heads_is_not_loaded(
    new_database: Database, tmp_path: Path
) -> None:
    assert not await load_if_empty(new_database, migrations("order"), {"a-later-revision"})
    assert schema(tmp_path / "new.db") == []


async def test_a_snapshot_loads_whole_or_not_at_all(new_database: Database, tmp_path: Path) -> None:
    broken = tmp_path / "migrations"
    broken.mkdir()
    snapshot_file(broken, "sqlite").write_text(
        "-- heads: 0001\n"
        "CREATE TABLE orders (order_id TEXT PRIMARY KEY);\n"
        "CREATE TABLE orders (order_id TEXT PRIMARY KEY);\n"  # fails: the first must not stay
        "INSERT INTO alembic_version (version_num) VALUES ('0001');\n"
    )
    with pytest.raises(sqlite3.OperationalError, match="already exists"):
        await load_if_empty(new_database, broken, {"0001"})
    assert schema(tmp_path / "new.db") == []


def test_a_snapshot_is_read_statement_by_statement(tmp_path: Path) -> None:
    path = tmp_path / "head.sqlite.sql"
    path.write_text(
        "-- a comment\n-- heads: 0002 0001\n\n"
        "CREATE TABLE t (\n\tnote TEXT DEFAULT 'a; b'\n);\n\n"
        "INSERT INTO alembic_version (version_num) VALUES ('0001');\n"
    )
    snapshot = read_snapshot(path)
    assert snapshot is not None
    assert snapshot.heads == {"0001", "0002"}
    assert [statement.sql for statement in snapshot.statements] == [
        "CREATE TABLE t (\n\tnote TEXT DEFAULT 'a; b'\n)",
        "INSERT INTO alembic_version (version_num) VALUES ('0001')",
    ]
    assert read_snapshot(tmp_path / "none.sql") is None
    path.write_text("CREATE TABLE t (v INTEGER)\n")
    with pytest.raises(ValueError, match="ends inside a statement"):
        read_snapshot(path)


async def test_a_snapshot_statement_runs_as_written(new_database: Database, tmp_path: Path) -> None:
    # Spaces and a `:name` inside a string literal are the schema's, not layout or parameters.
    written = "CREATE TABLE notes (\n    note TEXT NOT NULL DEFAULT 'at  10:30' CHECK (note <> ':none')\n)"
    directory = tmp_path / "migrations"
    directory.mkdir()
    snapshot_file(directory, "sqlite").write_text(
        "-- heads: 0001\n"
        f"{written};\n"
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL);\n"
        "INSERT INTO alembic_version (version_num) VALUES ('0001');\n"
    )

    assert await load_if_empty(new_database, directory, {"0001"})

    connection = sqlite3.connect(tmp_path / "new.db")
    try:
        (kept,) = connection.execute("SELECT sql FROM sqlite_master WHERE name = 'notes'").fetchone()
        connection.execute("INSERT INTO notes DEFAULT VALUES")
        (note,) = connection.execute("SELECT note FROM notes").fetchone()
    finally:
        connection.close()
    assert kept == written
    assert note == "at  10:30"
