"""PostgreSQL through asyncpg: a small pool, prepared statements, as few round trips as the
work needs.

- A statement alone (`execute`, `fetch`) runs in autocommit: one round trip, no BEGIN/COMMIT.
- A transaction is BEGIN, its statements, COMMIT; a read is a READ ONLY, REPEATABLE READ
  transaction (one snapshot for all its statements).
- asyncpg prepares each statement once per connection and keeps it (its statement cache, keyed
  by the text: `Statement` texts are built once).
- No round trip when a connection goes back to the pool: asyncpg's default reset (RESET ALL,
  CLOSE ALL, UNLISTEN, advisory unlocks) undoes session state this code never creates. An
  unfinished transaction is still rolled back (asyncpg does that whatever the reset).
- No pre-ping: a connection an outage broke fails its statement at once (UNAVAILABLE, the mesh
  retries) and the pool replaces it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any, TypeVar

import asyncpg  # type: ignore[import-untyped]

from services.runtime.database import (
    CONNECT_TIMEOUT_SECONDS,
    POOL_TIMEOUT_SECONDS,
    STATEMENT_TIMEOUT_SECONDS,
    Row,
    Statement,
    Work,
)

log = logging.getLogger(__name__)
T = TypeVar("T")
POOL_SIZE = 10


def _arguments(statement: Statement, params: Mapping[str, Any]) -> list[Any]:
    return [params[name] for name in statement.names]


class PostgresTransaction:
    __slots__ = ("_connection",)

    def __init__(self, connection: asyncpg.Connection) -> None:
        self._connection = connection

    async def rows(self, statement: Statement, **params: Any) -> Sequence[Row]:
        rows: list[Row] = await self._connection.fetch(statement.postgresql, *_arguments(statement, params))
        return rows

    async def row(self, statement: Statement, **params: Any) -> Row | None:
        row: Row | None = await self._connection.fetchrow(
            statement.postgresql, *_arguments(statement, params)
        )
        return row

    async def execute(self, statement: Statement, **params: Any) -> None:
        await self._connection.execute(statement.postgresql, *_arguments(statement, params))

    async def execute_many(self, statement: Statement, params: Sequence[Mapping[str, Any]]) -> None:
        await self._connection.executemany(
            statement.postgresql, [_arguments(statement, values) for values in params]
        )


async def _keep_session(_connection: asyncpg.Connection) -> None:
    """The pool's reset: nothing to undo (see the module's docstring)."""


class PostgresBackend:
    dialect = "postgresql"

    def __init__(self, dsn: str, service: str) -> None:
        self._dsn = dsn
        self._connect_options: dict[str, Any] = {
            "timeout": CONNECT_TIMEOUT_SECONDS,
            "command_timeout": STATEMENT_TIMEOUT_SECONDS,
            "server_settings": {"search_path": service, "application_name": service},
        }
        self._pool: asyncpg.Pool | None = None
        self._opening = asyncio.Lock()
        self._probe: asyncpg.Connection | None = None

    async def _connections(self) -> asyncpg.Pool:
        if self._pool is None:
            async with self._opening:
                if self._pool is None:
                    # min_size 0: no connection until one is needed, so a service starts (NOT_SERVING)
                    # while its database is down and serves once it is back.
                    self._pool = await asyncpg.create_pool(
                        self._dsn,
                        min_size=0,
                        max_size=POOL_SIZE,
                        reset=_keep_session,
                        **self._connect_options,
                    )
        return self._pool

    async def transaction(self, work: Work[T]) -> T:
        pool = await self._connections()
        async with pool.acquire(timeout=POOL_TIMEOUT_SECONDS) as connection, connection.transaction():
            return await work(PostgresTransaction(connection))

    async def read(self, work: Work[T]) -> T:
        pool = await self._connections()
        async with (
            pool.acquire(timeout=POOL_TIMEOUT_SECONDS) as connection,
            connection.transaction(isolation="repeatable_read", readonly=True),
        ):
            return await work(PostgresTransaction(connection))

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        pool = await self._connections()
        async with pool.acquire(timeout=POOL_TIMEOUT_SECONDS) as connection:
            rows: list[Row] = await connection.fetch(statement.postgresql, *_arguments(statement, params))
            return rows

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        return await self.execute(statement, params)

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 - a probe's own budget
        """`SELECT 1` on a connection of its own (a busy pool is not an outage)."""
        try:
            async with asyncio.timeout(timeout):
                if self._probe is None or self._probe.is_closed():
                    self._probe = await asyncpg.connect(self._dsn, **self._connect_options)
                await self._probe.fetchval("SELECT 1")
        except Exception as error:  # any failure at all means "not usable now"
            log.debug("database probe failed: %r", error)
            if self._probe is not None:
                self._probe.terminate()
                self._probe = None
            return False
        return True

    async def close(self) -> None:
        if self._probe is not None:
            self._probe.terminate()
            self._probe = None
        if self._pool is not None:
            try:
                await asyncio.wait_for(self._pool.close(), timeout=5)
            except TimeoutError:
                self._pool.terminate()
            self._pool = None
