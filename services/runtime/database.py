"""One service's database: whole transactions, statements written once, a probe, migrations.

PostgreSQL (asyncpg) in clusters and tests, an embedded SQLite file on a laptop. Each service
has its own database, role and schema: on PostgreSQL the schema is the service's name and is
put first on the connection's search_path, so the services' tables need no schema prefix.

A service's store hands the database whole units of work, never a session to keep open:

    await database.transaction(work)       # work(tx) reads and writes; one transaction
    await database.read(work)              # work(tx) only reads; one consistent snapshot
    await database.execute(STATEMENT, **p) # one statement, its own transaction: rows it returned
    await database.fetch(STATEMENT, **p)   # one read statement: its rows

`work` is an `async def` that awaits nothing but its transaction's statements
(`tx.rows`, `tx.row`, `tx.execute`, `tx.execute_many`). The backend decides how it runs:
on SQLite a worker thread runs it whole (database_sqlite.py), on PostgreSQL it awaits each
statement on a pooled connection (database_postgres.py). Statements are `Statement` constants,
built once per backend; both drivers cache the prepared statement by its text.

Timeouts are short on purpose: with the database gone a call must fail UNAVAILABLE within a
second (the mesh then retries elsewhere), never hang until the caller's deadline.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import sys
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Generic, NoReturn, Protocol, TypeVar

from services.runtime.errors import Aborted, ShopError, Unavailable

log = logging.getLogger(__name__)
T = TypeVar("T")

CONNECT_TIMEOUT_SECONDS = 1.0
STATEMENT_TIMEOUT_SECONDS = 5.0
POOL_TIMEOUT_SECONDS = 1.0
#: SQLSTATE classes that mean "the database is not reachable now": 08 connection exception,
#: 53 insufficient resources (too many connections), 57P operator intervention (shutdown).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")
#: Serialization failure and deadlock: the transaction lost a race; the caller may retry.
_CONFLICT_SQLSTATES = ("40001", "40P01")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error")
_PARAMETER = re.compile(r"(?<![:\w]):([a-z_][a-z0-9_]*)")


class Statement:
    """One SQL statement in the dialect both backends share, with `:name` parameters.

    Built once (module constants): SQLite runs the text as written, PostgreSQL gets `$1, $2…`
    and the parameters in that order. `lock=True` adds FOR UPDATE on PostgreSQL, which locks
    the rows read until the transaction ends; SQLite needs no such clause, since its one
    writer runs transactions one at a time.
    """

    __slots__ = ("names", "postgresql", "sql")

    def __init__(self, sql: str, *, lock: bool = False) -> None:
        self.sql = " ".join(sql.split())
        names: list[str] = []

        def number(match: re.Match[str]) -> str:
            if match.group(1) not in names:
                names.append(match.group(1))
            return f"${names.index(match.group(1)) + 1}"

        self.postgresql = _PARAMETER.sub(number, self.sql) + (" FOR UPDATE" if lock else "")
        self.names = tuple(names)

    @classmethod
    def verbatim(cls, sql: str) -> Statement:
        """A statement without parameters, run exactly as written on either backend: DDL read
        back from a database (a schema snapshot), whose string literals must keep their spaces
        and may hold what looks like a `:name`."""
        statement = cls.__new__(cls)
        statement.sql = statement.postgresql = sql
        statement.names = ()
        return statement

    def __repr__(self) -> str:
        return f"Statement({self.sql!r})"


class Row(Protocol):
    """A result row: columns by name (sqlite3.Row, asyncpg.Record)."""

    def __getitem__(self, key: str, /) -> Any: ...


class Transaction(Protocol):
    """What a unit of work may do: run statements, nothing else."""

    async def rows(self, statement: Statement, **params: Any) -> Sequence[Row]: ...

    async def row(self, statement: Statement, **params: Any) -> Row | None:
        """The first row, or None."""
        ...

    async def execute(self, statement: Statement, **params: Any) -> None: ...

    async def execute_many(self, statement: Statement, params: Sequence[Mapping[str, Any]]) -> None: ...


Work = Callable[[Transaction], Coroutine[Any, Any, T]]


class Backend(Protocol):
    dialect: str

    async def transaction(self, work: Work[T]) -> T: ...

    async def read(self, work: Work[T]) -> T: ...

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]: ...

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]: ...

    async def ping(self, timeout: float) -> bool: ...  # noqa: ASYNC109 - a probe's own budget

    async def close(self) -> None: ...


def sqlite_path(url: str) -> Path | None:
    """The file of an embedded database URL (`sqlite:///…`, `sqlite+aiosqlite:///…`), or None
    for any other URL. The `+driver` part is accepted and ignored: SQLite runs on the standard
    library's sqlite3."""
    scheme, separator, rest = url.partition(":///")
    if not separator or scheme.split("+")[0] != "sqlite":
        return None
    path = rest.split("?", 1)[0]
    if not path or path == ":memory:":
        # A writer and its readers share the database through its file.
        raise ValueError("an embedded SQLite database needs a file path")
    return Path(path)


def postgresql_dsn(url: str) -> str | None:
    """asyncpg's DSN for a `postgresql[+asyncpg]://…` URL, or None for any other URL."""
    scheme, separator, rest = url.partition("://")
    if not separator or scheme.split("+")[0] != "postgresql":
        return None
    return f"postgresql://{rest}"


class Database:
    def __init__(self, url: str, *, service: str) -> None:
        self.url = url
        self.service = service
        path = sqlite_path(url)
        if path is not None:
            from services.runtime.database_sqlite import SqliteBackend

            self._backend: Backend = SqliteBackend(path)
        else:
            dsn = postgresql_dsn(url)
            if dsn is None:
                raise ValueError(f"not a database URL this runtime speaks: {url[:40]!r}")
            # Imported only here: an embedded run never loads asyncpg.
            from services.runtime.database_postgres import PostgresBackend

            self._backend = PostgresBackend(dsn, service)

    @property
    def dialect(self) -> str:
        """ "sqlite" or "postgresql"."""
        return self._backend.dialect

    @property
    def schema(self) -> str | None:
        """The service's own schema on PostgreSQL; SQLite has none (the file is the service's)."""
        return self.service if self.dialect == "postgresql" else None

    async def transaction(self, work: Work[T]) -> T:
        """Runs `work` as one transaction: committed if it returns, rolled back if it raises.

        A database that cannot be reached surfaces as errors.Unavailable, a lost serialization
        race as errors.Aborted; the domain's own errors pass through unchanged.
        """
        try:
            return await self._backend.transaction(work)
        except Exception as error:
            _reraise(error)

    async def read(self, work: Work[T]) -> T:
        """Runs `work`, which only reads, on one snapshot; it never waits for a writer."""
        try:
            return await self._backend.read(work)
        except Exception as error:
            _reraise(error)

    async def execute(self, statement: Statement, **params: Any) -> Sequence[Row]:
        """One statement as its own transaction (on PostgreSQL one round trip, no BEGIN):
        the rows it returned (RETURNING)."""
        try:
            return await self._backend.execute(statement, params)
        except Exception as error:
            _reraise(error)

    async def fetch(self, statement: Statement, **params: Any) -> Sequence[Row]:
        """The rows of one read statement."""
        try:
            return await self._backend.fetch(statement, params)
        except Exception as error:
            _reraise(error)

    async def ping(self, timeout: float = 0.5) -> bool:  # noqa: ASYNC109 - the documented API
        """True if a trivial query answers within `timeout` seconds (on a connection of its own,
        so a busy service is not mistaken for an unreachable database)."""
        return await self._backend.ping(timeout)

    def upgrade(self, migrations: Path) -> None:
        """`alembic upgrade head` with the service's migrations, in this process (sync: it runs
        its own loop). `shopmesh migrate` uses it; a starting service runs it in a child process
        only when the database is behind (services/runtime/upgrade.py)."""
        alembic_upgrade(self.url, self.service, migrations)

    async def dispose(self) -> None:
        await self._backend.close()


R = TypeVar("R")


class Store(Generic[R]):
    """A service's store: the statements that are a transaction on their own (its methods, on
    `self.database`), and bigger transactions, in which the use cases work through the
    service's repository over the transaction (`repository(tx)`)."""

    def __init__(self, database: Database, repository: Callable[[Transaction], R]) -> None:
        self.database = database
        self._repository = repository

    async def transaction(self, work: Callable[[R], Coroutine[Any, Any, T]]) -> T:
        """Runs `work` as one transaction (committed if it returns, rolled back if it raises)."""
        return await self.database.transaction(lambda tx: work(self._repository(tx)))


def alembic_upgrade(url: str, service: str, migrations: Path) -> None:
    """`alembic upgrade head` of `migrations` on the database at `url` (services/runtime/migrations.py)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    config.attributes["service"] = service
    command.upgrade(config, "head")


def _reraise(error: Exception) -> NoReturn:
    """Raises the domain error a database failure means (see translate_error), else `error`."""
    translated = None if isinstance(error, ShopError) else translate_error(error)
    if translated is not None:
        raise translated from error
    raise error


def translate_error(error: BaseException) -> ShopError | None:
    """The domain error a database failure means, or None for a plain bug."""
    asyncpg = sys.modules.get("asyncpg")  # loaded only by a PostgreSQL database
    for cause in _causes(error):
        if isinstance(cause, OSError | TimeoutError):
            return _unavailable(cause)
        if asyncpg is not None and isinstance(cause, asyncpg.InterfaceError) and "closed" in str(cause):
            return _unavailable(cause)  # used a connection an outage closed
        sqlstate = getattr(cause, "sqlstate", None)
        if isinstance(sqlstate, str):
            if sqlstate.startswith(_UNAVAILABLE_SQLSTATES):
                return _unavailable(cause)
            if sqlstate in _CONFLICT_SQLSTATES:
                return Aborted("DATABASE_CONFLICT", "the transaction conflicted with another; retry it")
        if isinstance(cause, sqlite3.OperationalError) and str(cause).lower().startswith(_SQLITE_UNAVAILABLE):
            return _unavailable(cause)
    return None


def _unavailable(cause: BaseException) -> Unavailable:
    return Unavailable("DATABASE_UNAVAILABLE", f"the database is unavailable ({type(cause).__name__})")


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, the driver error it wraps (`orig`: SQLAlchemy's, in migrations) and its
    causes (bounded: chains can loop)."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        yield current
        pending.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
