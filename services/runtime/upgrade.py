"""Migrations at start, paid only when needed: a database already at its newest revision costs
one query, and the service never imports alembic or SQLAlchemy (a fifth of its memory).

The newest revisions are read from the migration scripts' own `revision`/`down_revision`
assignments (parsed, not imported), the database's from alembic's `alembic_version` table. When
they differ, a new (empty) database gets its schema snapshot at those revisions in one
transaction (services/runtime/snapshot.py); any other, `python -m services.runtime.upgrade
<service> <migrations>` runs `alembic upgrade head` in a child process (as Kubernetes runs
`shopmesh migrate` in an init container), so the service's own process stays as small as one
that never migrated.

    python -m services.runtime.upgrade SERVICE MIGRATIONS_DIR   # SHOPMESH_DATABASE_URL: the database
"""

from __future__ import annotations

import ast
import asyncio
import logging
import os
import sys
from pathlib import Path

from services.runtime.database import Database, Statement, alembic_upgrade
from services.runtime.snapshot import load_if_empty

log = logging.getLogger(__name__)

CURRENT = Statement("SELECT version_num FROM alembic_version")
#: A migration's bound: it holds the service's start, and the child is killed after it.
UPGRADE_SECONDS = 120.0


def head_revisions(migrations: Path) -> set[str]:
    """The revisions no other revision builds on, from `versions/*.py` (as alembic finds them)."""
    revisions: set[str] = set()
    parents: set[str] = set()
    for script in sorted((migrations / "versions").glob("*.py")):
        values = _literal_assignments(script)
        revision = values.get("revision")
        if not isinstance(revision, str):
            continue  # not a revision script (e.g. __init__.py)
        revisions.add(revision)
        down = values.get("down_revision")
        if isinstance(down, str):
            parents.add(down)
        elif isinstance(down, tuple | list):  # a merge revision
            parents.update(parent for parent in down if isinstance(parent, str))
    return revisions - parents


def _literal_assignments(script: Path) -> dict[str, object]:
    """`name = <literal>` (or `name: type = <literal>`) at a script's top level."""
    values: dict[str, object] = {}
    for node in ast.parse(script.read_text(), str(script)).body:
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name, value = node.targets[0].id, node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.value is not None:
            name, value = node.target.id, node.value
        else:
            continue
        try:
            values[name] = ast.literal_eval(value)
        except ValueError:
            continue  # not a literal
    return values


async def is_at_head(database: Database, migrations: Path) -> bool:
    heads = head_revisions(migrations)
    try:
        current = {row["version_num"] for row in await database.fetch(CURRENT)}
    except Exception as error:  # no version table yet (a new database), or unreachable
        log.debug("no schema revision read: %r", error)
        return False
    return bool(heads) and current == heads


async def upgrade_if_behind(database: Database, migrations: Path) -> None:
    """Brings the database to its newest revision unless it is there already."""
    if await is_at_head(database, migrations):
        return
    heads = head_revisions(migrations)
    if await load_if_empty(database, migrations, heads):
        log.info("made the new database's schema at %s from its snapshot", ", ".join(sorted(heads)))
        return
    log.info("migrating the database to %s", ", ".join(sorted(heads)))
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "services.runtime.upgrade", database.service, str(migrations),
        env={**os.environ, "SHOPMESH_DATABASE_URL": database.url},  # never on a command line
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        _, errors = await asyncio.wait_for(child.communicate(), UPGRADE_SECONDS)
    except TimeoutError:
        child.kill()
        await child.wait()
        raise RuntimeError(f"the migration did not finish within {UPGRADE_SECONDS:.0f}s") from None
    if child.returncode != 0:
        raise RuntimeError(f"the migration failed:\n{errors.decode(errors='replace')[-3000:]}")


def main(argv: list[str]) -> int:
    service, migrations = argv
    alembic_upgrade(os.environ["SHOPMESH_DATABASE_URL"], service, Path(migrations))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
