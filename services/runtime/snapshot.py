"""A new database's whole schema in one transaction, without alembic: the schema snapshot.

An empty database needs no history replayed. As Rails loads `db/schema.rb` into a new database
instead of running every migration, a new database here gets the schema its migrations build,
written down once per service and dialect (`services/<name>/migrations/head.<dialect>.sql`),
with alembic's stamp at the same revisions, in one transaction on the service's own connection.
That spares a new database the alembic child process (importing alembic and SQLAlchemy costs
about half a second of CPU per service): most of what a first `scripts/up --plain` paid.

A database that holds anything at all, or a snapshot of other revisions than the migration
scripts' heads, is left to alembic (services/runtime/upgrade.py); so is every dialect without
a snapshot (PostgreSQL, where `shopmesh migrate` runs as an init container).

A snapshot is what alembic built, read back from the database (SQLite keeps each object's
CREATE statement in sqlite_master), so it says nothing the migrations do not. After a change to
the migrations, `scripts/refresh-schema-snapshots` rewrites the snapshots, and
tests/runtime/test_schema_snapshot.py fails until it has:

    python -m services.runtime.snapshot [SERVICE ...]   # rewrites them (every service by default)
"""

from __future__ import annotations

import re
import sqlite3
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from services.runtime.database import Database, Statement, Transaction, alembic_upgrade

HEADS_LINE = "-- heads: "
#: Counts what a database holds: a new one holds nothing (alembic's version table included).
_OBJECTS = {"sqlite": Statement("SELECT count(*) AS objects FROM sqlite_master")}
#: SQLite's own tables (sqlite_sequence, sqlite_stat1) are made by SQLite, never by a statement.
#: With its rowid: the order the objects were made in, so each comes after what it refers to.
_SCHEMA = (
    "SELECT rowid, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite^_%' ESCAPE '^'"
)
_REVISION = re.compile(r"\w+")


@dataclass(frozen=True)
class Snapshot:
    heads: frozenset[str]  # the revisions it is stamped at
    statements: tuple[Statement, ...]  # the schema, then alembic's stamp


def snapshot_file(migrations: Path, dialect: str) -> Path:
    return migrations / f"head.{dialect}.sql"


def read_snapshot(path: Path) -> Snapshot | None:
    """The snapshot in `path`, or None if there is none. Statements end with `;` (told apart by
    SQLite's own tokenizer, so a `;` inside a string does not end one); `--` lines between
    statements are comments, one of them the heads."""
    if not path.is_file():
        return None
    heads: frozenset[str] = frozenset()
    statements: list[Statement] = []
    pending = ""
    for line in path.read_text().splitlines(keepends=True):
        if not pending.strip() and line.startswith("--"):
            if line.startswith(HEADS_LINE):
                heads = frozenset(line.removeprefix(HEADS_LINE).split())
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(Statement.verbatim(pending.strip().removesuffix(";")))
            pending = ""
    if pending.strip():
        raise ValueError(f"{path} ends inside a statement")
    return Snapshot(heads, tuple(statements))


async def load_if_empty(database: Database, migrations: Path, heads: set[str]) -> bool:
    """Builds an empty database's schema from its snapshot, stamped at `heads`, in one
    transaction (durable as any other). False, with nothing done, if the database holds
    anything, or there is no snapshot of `heads` for its dialect."""
    count = _OBJECTS.get(database.dialect)
    snapshot = read_snapshot(snapshot_file(migrations, database.dialect))
    if count is None or snapshot is None or not heads or snapshot.heads != heads:
        return False

    async def load(tx: Transaction) -> bool:
        # Counted inside the transaction that loads (it holds the write lock from its start):
        # a migration started beside it meanwhile cannot have made anything half of this.
        held = await tx.row(count)
        if held is None or held["objects"]:
            return False
        for statement in snapshot.statements:
            await tx.execute(statement)
        return True

    return await database.transaction(load)


def generate(service: str, migrations: Path) -> str:
    """The SQLite snapshot of `migrations`: `alembic upgrade head` on a new file, read back."""
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / f"{service}.db"
        alembic_upgrade(f"sqlite:///{path}", service, migrations)
        connection = sqlite3.connect(path)
        try:
            schema = [sql for _, sql in sorted(connection.execute(_SCHEMA))]
            heads = sorted(head for (head,) in connection.execute("SELECT version_num FROM alembic_version"))
        finally:
            connection.close()
    if not all(_REVISION.fullmatch(head) for head in heads):
        raise ValueError(f"unexpected revision ids {heads}")
    lines = [
        f"-- The schema `alembic upgrade head` builds for {service} on SQLite, and its stamp: what a",
        "-- new database gets in one transaction (services/runtime/snapshot.py).",
        "-- Generated by scripts/refresh-schema-snapshots; edit the migrations, never this file.",
        f"{HEADS_LINE}{' '.join(heads)}",
        "",
    ]
    for sql in schema:  # as SQLite keeps it, less the spaces alembic leaves at line ends
        lines += ["\n".join(line.rstrip() for line in sql.splitlines()) + ";", ""]
    lines += [f"INSERT INTO alembic_version (version_num) VALUES ('{head}');" for head in heads]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    from services.runtime.registry import declarations
    from services.runtime.server import load_definition

    for service in argv or list(declarations()):
        migrations = load_definition(service).migrations
        path = snapshot_file(migrations, "sqlite")
        path.write_text(generate(service, migrations))
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
