"""One service's database: an SQLAlchemy async engine, transactions, a probe, migrations.

PostgreSQL (asyncpg) in clusters and tests, an embedded SQLite file on a laptop. Each service
has its own database, role and schema: on PostgreSQL the schema is the service's name and is
put first on the connection's search_path, so the services' tables need no schema prefix.

Timeouts are short on purpose: with the database gone a call must fail UNAVAILABLE within a
second (the mesh then retries elsewhere), never hang until the caller's deadline.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import sqlalchemy.exc
from sqlalchemy import event, text
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine

from services.runtime.errors import Aborted, ShopError, Unavailable

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_SECONDS = 1.0
STATEMENT_TIMEOUT_SECONDS = 5.0
POOL_TIMEOUT_SECONDS = 1.0
SQLITE_BUSY_TIMEOUT_SECONDS = 5.0
#: SQLSTATE classes that mean "the database is not reachable now": 08 connection exception,
#: 53 insufficient resources (too many connections), 57P operator intervention (shutdown).
_UNAVAILABLE_SQLSTATES = ("08", "53", "57P")
#: Serialization failure and deadlock: the transaction lost a race; the caller may retry.
_CONFLICT_SQLSTATES = ("40001", "40P01")
_SQLITE_UNAVAILABLE = ("database is locked", "unable to open database file", "disk i/o error")


def create_engine(url: str, *, service: str, pool_size: int = 10, transactions: bool = True) -> AsyncEngine:
    """An engine with the runtime's timeouts; on PostgreSQL the search_path is the service's schema.

    On SQLite every transaction starts with BEGIN IMMEDIATE (see `_begin_immediate`);
    `transactions=False` leaves SQLite statements in autocommit instead: for the health probe,
    whose one SELECT needs no transaction and must not queue for (or hold) the write lock.
    PostgreSQL ignores it: its transactions lock nothing until they write.
    """
    if make_url(url).get_backend_name() == "postgresql":
        return create_async_engine(
            url,
            pool_pre_ping=True,  # a connection broken by an outage is replaced, not reused
            pool_size=pool_size,
            max_overflow=pool_size,
            pool_timeout=POOL_TIMEOUT_SECONDS,
            connect_args={
                "timeout": CONNECT_TIMEOUT_SECONDS,
                "command_timeout": STATEMENT_TIMEOUT_SECONDS,
                "server_settings": {"search_path": service, "application_name": service},
            },
        )
    database = make_url(url).database
    if database and database != ":memory:":
        Path(database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_async_engine(
        url,
        pool_size=pool_size,
        pool_timeout=POOL_TIMEOUT_SECONDS,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS},
    )
    event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    if transactions:
        event.listen(engine.sync_engine, "begin", _begin_immediate)
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # The driver must not BEGIN on its own: sqlite3's legacy mode (aiosqlite's too) begins only
    # before the first INSERT/UPDATE/DELETE, so a transaction's reads ran outside it. SQLAlchemy
    # emits BEGIN instead (`_begin_immediate`); the driver still sends COMMIT and ROLLBACK.
    dbapi_connection.isolation_level = None
    # WAL lets readers run beside the one writer; busy_timeout waits for the writer instead of
    # failing at once; SQLite leaves foreign keys off unless asked.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={int(SQLITE_BUSY_TIMEOUT_SECONDS * 1000)}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    # SQLAlchemy's recipe for SQLite transactions (docs: "Enabling Non-Legacy SQLite
    # Transactional Modes"), with IMMEDIATE: the transaction takes the database's write lock at
    # BEGIN, waiting up to busy_timeout for the current writer. So a read-then-write
    # transaction is serializable from its first read — no lost update, no "database is locked"
    # when a deferred reader tries to become the writer — and needs no write-first trick. SQLite
    # has one writer at a time anyway; read-only transactions queue too, which on the embedded
    # (laptop) database costs less than a second code path for reads would.
    connection.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    def __init__(self, url: str, *, service: str) -> None:
        self.url = url
        self.service = service
        self.engine = create_engine(url, service=service)
        # The health probe has its own one-connection pool, so a busy service (every pooled
        # connection in use) is not mistaken for an unreachable database.
        # On SQLite it runs in autocommit: `SELECT 1` answers beside a writer instead of
        # queueing for the write lock behind it (and a slow writer is not an outage).
        self._probe_engine = create_engine(url, service=service, pool_size=1, transactions=False)
        self._sessions = async_sessionmaker(self.engine, expire_on_commit=False)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @property
    def schema(self) -> str | None:
        """The service's own schema on PostgreSQL; SQLite has none (the file is the service's)."""
        return self.service if self.dialect == "postgresql" else None

    @asynccontextmanager
    async def session(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block succeeds, rolled back when it raises.

        A database that cannot be reached surfaces as errors.Unavailable, a lost serialization
        race as errors.Aborted; the domain's own errors pass through unchanged.
        """
        try:
            async with self._sessions() as session, session.begin():
                yield session
        except ShopError:
            raise
        except Exception as error:
            translated = translate_error(error)
            if translated is None:
                raise
            raise translated from error

    async def ping(self, timeout: float = 0.5) -> bool:  # noqa: ASYNC109 - the documented API
        """True if a trivial query answers within `timeout` seconds."""
        try:
            async with asyncio.timeout(timeout), self._probe_engine.connect() as connection:
                await connection.execute(text("SELECT 1"))
        except Exception as error:  # any failure at all means "not usable now"
            log.debug("database probe failed: %r", error)
            return False
        return True

    def upgrade(self, migrations: Path) -> None:
        """`alembic upgrade head` with the service's migrations (sync: it runs its own loop)."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(migrations))
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        config.attributes["service"] = self.service
        command.upgrade(config, "head")

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self._probe_engine.dispose()


def translate_error(error: BaseException) -> ShopError | None:
    """The domain error a database failure means, or None for a plain bug."""
    for cause in _causes(error):
        if isinstance(cause, sqlalchemy.exc.DBAPIError) and cause.connection_invalidated:
            return _unavailable(cause)
        if isinstance(cause, OSError | sqlalchemy.exc.TimeoutError | asyncpg.ConnectionDoesNotExistError):
            return _unavailable(cause)
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
    """The error, the DBAPI error it wraps and its causes (bounded: chains can loop)."""
    seen: list[BaseException] = []
    pending: list[BaseException | None] = [error]
    while pending and len(seen) < 16:
        current = pending.pop(0)
        if current is None or any(current is known for known in seen):
            continue
        seen.append(current)
        yield current
        pending.extend([getattr(current, "orig", None), current.__cause__, current.__context__])
