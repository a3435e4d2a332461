"""The embedded SQLite database: one writer thread running whole transactions; reads beside it.

SQLite lets one connection write at a time. Instead of many connections queueing for that lock
in SQLite's sleeping busy handler (a poll that makes a seconds-long tail), one writer thread owns
the one writing connection and runs the transactions it is handed, whole, in the order they
came: a transaction is one hand-off to the thread and one result back, however many statements
it runs. Nothing waits for a lock, so there is no lock-wait tail.

Group commit: when several transactions are queued, the writer runs them in one SQLite
transaction, each inside a SAVEPOINT of its own (one that fails is rolled back alone), and
commits them with one fsync. Each caller gets its result only after that commit is durable, so
durability is unchanged: `synchronous=FULL`, every acknowledged transaction survives a power
cut. (A failed COMMIT fails every transaction of its group: none of them happened.)

Reads run on a second connection, each on a WAL snapshot of what was committed: they never take
the write lock, never wait for the writer and never see a transaction that is not yet durable.
A read of several statements runs in BEGIN … COMMIT (one snapshot for all); a single statement
runs alone, in autocommit, which is already a snapshot of its own.
They run on the event loop's own thread: with nothing to wait for, a point read costs 10-30 µs
of CPU, less than handing it to a thread and back (measured: 50-80 µs more per GetProduct
under load). A read can wait only in SQLite's corner cases (another process holding an
exclusive lock, recovery after a crash), and then at most READ_BUSY_TIMEOUT_MILLISECONDS
before it fails UNAVAILABLE.

A unit of work is an `async def` that awaits only its statements; here those complete at once,
so it is driven to its end in one step (`_run_to_end`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import sqlite3
import threading
from asyncio import AbstractEventLoop, Future, get_running_loop
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from services.runtime.database import Row, Statement, Work

log = logging.getLogger(__name__)
T = TypeVar("T")

#: Waits for another process holding the write lock (a migration run beside the service);
#: this process's own transactions never wait for each other.
BUSY_TIMEOUT_MILLISECONDS = 5000
#: A read waits only in corner cases (see above), and never long: it runs on the event loop.
READ_BUSY_TIMEOUT_MILLISECONDS = 100
#: Transactions committed together at most (bounds one group's latency).
MAX_GROUP = 64
#: A timestamp is stored as SQLAlchemy's text form of the UTC time, `YYYY-MM-DD HH:MM:SS.ffffff`
#: (the files' existing rows use it): fixed width, so comparing the text compares the times.
_PING = Statement("SELECT 1")


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        # SQLAlchemy's form: isoformat with microseconds always (half strftime's cost).
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    return value


def _params(params: Mapping[str, Any]) -> dict[str, Any]:
    return {name: _value(value) for name, value in params.items()}


class SqliteTransaction:
    """The statements of one unit of work, on the thread's connection (they never suspend)."""

    __slots__ = ("_connection",)

    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    async def rows(self, statement: Statement, **params: Any) -> Sequence[Row]:
        rows: list[Row] = self._connection.execute(statement.sql, _params(params)).fetchall()
        return rows

    async def row(self, statement: Statement, **params: Any) -> Row | None:
        cursor = self._connection.execute(statement.sql, _params(params))
        found: Row | None = cursor.fetchone()
        cursor.close()  # a RETURNING statement finishes only when its cursor is done
        return found

    async def execute(self, statement: Statement, **params: Any) -> None:
        self._connection.execute(statement.sql, _params(params)).close()

    async def execute_many(self, statement: Statement, params: Sequence[Mapping[str, Any]]) -> None:
        self._connection.executemany(statement.sql, [_params(values) for values in params]).close()


def _run_to_end(work: Coroutine[Any, Any, T]) -> T:
    try:
        work.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    work.close()
    raise RuntimeError("a unit of work awaited something other than its own statements")


@dataclass(slots=True)
class _Job:
    work: Work[Any]
    future: Future[Any]
    loop: AbstractEventLoop


_Outcome = tuple[_Job, Any, BaseException | None]


def _connect(path: Path, *, busy_milliseconds: int) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False, cached_statements=256)
    try:
        connection.row_factory = sqlite3.Row
        # WAL lets reads run beside the writer; FULL syncs the log at every commit (durable
        # against power loss, not only a crash); SQLite leaves foreign keys off unless asked.
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("PRAGMA synchronous=FULL")
        connection.execute("PRAGMA foreign_keys=ON")
        connection.execute(f"PRAGMA busy_timeout={busy_milliseconds}")
    except BaseException:
        connection.close()
        raise
    return connection


class _Writer:
    """A thread and its connection: runs the transactions it is handed, in order."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="sqlite-writer", daemon=True)
        self._thread.start()

    def submit(self, work: Work[T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = get_running_loop()
        future: Future[T] = loop.create_future()
        self._jobs.put(_Job(work, future, loop))
        return future

    def alive(self) -> bool:
        return self._thread.is_alive()

    async def stop(self) -> None:
        """Finishes the jobs handed over so far, then closes the connection and the thread."""
        self._closed = True
        self._jobs.put(None)
        await asyncio.to_thread(self._thread.join, 10)

    def _serve(self) -> None:
        running = True
        while running:
            first = self._jobs.get()
            group = [] if first is None else [first]
            running = first is not None
            while running and len(group) < MAX_GROUP:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    running = False
                else:
                    group.append(job)
            # A caller that gave up (its call was cancelled) no longer waits for its job.
            group = [job for job in group if not job.future.cancelled()]
            if group:
                _deliver(self._commit(group))
        if self._connection is not None:
            self._connection.close()

    def _commit(self, group: list[_Job]) -> list[_Outcome]:
        """The group's jobs in one transaction, each in a savepoint if there are several."""
        outcomes: list[_Outcome] = []
        try:
            if self._connection is None:
                self._connection = _connect(self.path, busy_milliseconds=BUSY_TIMEOUT_MILLISECONDS)
            connection = self._connection
            opening = [job for job in group if job.work is _open]
            if opening:  # the file is open (in WAL mode): all these asked for
                outcomes += [(job, None, None) for job in opening]
                group = [job for job in group if job.work is not _open]
                if not group:
                    return outcomes
            # IMMEDIATE: takes the write lock at BEGIN, so a transaction is serializable from its
            # first read (no lost update) and never fails upgrading a read lock to a write lock.
            connection.execute("BEGIN IMMEDIATE")
            alone = len(group) == 1
            for job in group:
                if not alone:
                    connection.execute("SAVEPOINT unit")
                try:
                    value = _run_to_end(job.work(SqliteTransaction(connection)))
                except Exception as error:
                    if not connection.in_transaction:
                        raise  # SQLite ended the whole transaction (disk full, I/O): all failed
                    connection.execute("ROLLBACK" if alone else "ROLLBACK TO unit")
                    outcomes.append((job, None, error))
                else:
                    outcomes.append((job, value, None))
                if not alone:
                    connection.execute("RELEASE unit")
            if connection.in_transaction:
                connection.execute("COMMIT")
        except Exception as error:  # nothing of the group became durable
            self._connection = _abandoned(self._connection)
            return [(job, None, error) for job in group]
        return outcomes


class _Reader:
    """The read connection, used on the event loop's thread (see the module's docstring)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connection: sqlite3.Connection | None = None

    def run(self, work: Work[T]) -> T:
        connection = self._connected()
        try:
            connection.execute("BEGIN")  # deferred: a read snapshot, never the write lock
            try:
                return _run_to_end(work(SqliteTransaction(connection)))
            finally:
                connection.execute("COMMIT")
        except Exception:
            self._connection = _abandoned(connection)
            raise

    def fetch(self, statement: Statement, params: Mapping[str, Any]) -> list[Row]:
        """One statement, in SQLite's autocommit: a statement alone is its own read transaction,
        on one snapshot, so it needs no BEGIN and COMMIT around it (two statements fewer on every
        point read)."""
        connection = self._connected()
        try:
            rows: list[Row] = connection.execute(statement.sql, _params(params)).fetchall()
        except Exception:
            self._connection = _abandoned(connection)
            raise
        return rows

    def _connected(self) -> sqlite3.Connection:
        if self._connection is None:
            self._connection = _connect(self.path, busy_milliseconds=READ_BUSY_TIMEOUT_MILLISECONDS)
            self._connection.execute("PRAGMA query_only=ON")  # a write here is a bug
        return self._connection

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None


def _abandoned(connection: sqlite3.Connection | None) -> sqlite3.Connection | None:
    """After a failure: what is open rolled back; None (reopened next time) if that fails too."""
    if connection is None:
        return None
    try:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
    except sqlite3.Error:
        connection.close()
        return None
    return connection


def _deliver(outcomes: list[_Outcome]) -> None:
    """Hands the results back to their loops: one wake-up per group."""
    by_loop: dict[AbstractEventLoop, list[_Outcome]] = {}
    for outcome in outcomes:
        by_loop.setdefault(outcome[0].loop, []).append(outcome)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop closed: nobody waits any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(outcomes: list[_Outcome]) -> None:
    for job, value, error in outcomes:
        if job.future.done():
            continue
        if error is None:
            job.future.set_result(value)
        else:
            job.future.set_exception(error)


class SqliteBackend:
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self._writer = _Writer(path)
        self._reader = _Reader(path)
        self._file_ready = False

    async def transaction(self, work: Work[T]) -> T:
        return await self._writer.submit(work)

    async def read(self, work: Work[T]) -> T:
        await self._file_opened()
        return self._reader.run(work)

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        return await self._writer.submit(lambda tx: tx.rows(statement, **params))

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        await self._file_opened()
        return self._reader.fetch(statement, params)

    async def _file_opened(self) -> None:
        if not self._file_ready:
            # The writer opens the file first: it makes a new one and turns on WAL, so that no
            # read ever runs in the rollback-journal mode, where readers wait for writers.
            await self._writer.submit(_open)
            self._file_ready = True

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 - a probe's own budget
        """The file answers a read, and the writer thread runs (its queue is not probed: a
        busy writer is not an outage)."""
        try:
            async with asyncio.timeout(timeout):
                await self.fetch(_PING, {})
        except Exception as error:  # any failure at all means "not usable now"
            log.debug("database probe failed: %r", error)
            return False
        return self._writer.alive()

    async def close(self) -> None:
        await self._writer.stop()
        self._reader.close()


async def _open(_tx: Any) -> None:
    """A job that only has the writer open the file (it runs no transaction)."""
