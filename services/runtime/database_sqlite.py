"""The embedded SQLite database: one writer thread, one reader thread, whole transactions.

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

Reads run on a second connection, on a thread of its own, each on a WAL snapshot of what was
committed: they never take the write lock, never wait for the writer and never see a
transaction that is not yet durable.

A unit of work is an `async def` that awaits only its statements; here those complete at once,
so the thread drives the coroutine to its end in one step (`_run_to_end`).
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
#: Transactions committed together at most (bounds one group's latency).
MAX_GROUP = 64
#: SQLAlchemy's text form of a UTC timestamp, which the files' existing rows use: fixed width,
#: so comparing the text compares the times.
_TIMESTAMP = "%Y-%m-%d %H:%M:%S.%f"
_PING = Statement("SELECT 1")


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime: pass an aware UTC time")
        return value.astimezone(UTC).strftime(_TIMESTAMP)
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


class _Worker:
    """A thread and its connection: runs the jobs it is handed, in order."""

    def __init__(self, path: Path, *, writer: bool) -> None:
        self.path = path
        self.writer = writer
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._connection: sqlite3.Connection | None = None
        self._closed = False
        self._thread = threading.Thread(
            target=self._serve, name=f"sqlite-{'writer' if writer else 'reader'}", daemon=True
        )
        self._thread.start()

    def submit(self, work: Work[T]) -> Future[T]:
        if self._closed:
            raise RuntimeError("the database is closed")
        loop = get_running_loop()
        future: Future[T] = loop.create_future()
        self._jobs.put(_Job(work, future, loop))
        return future

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
                _deliver(self._commit(group) if self.writer else [self._read(job) for job in group])
        if self._connection is not None:
            self._connection.close()

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(
                self.path, isolation_level=None, check_same_thread=False, cached_statements=256
            )
            try:
                connection.row_factory = sqlite3.Row
                # WAL lets the reader run beside the writer; FULL syncs the log at every commit
                # (durable against power loss, not only a crash); SQLite leaves foreign keys off
                # unless asked.
                connection.execute("PRAGMA journal_mode=WAL")
                connection.execute("PRAGMA synchronous=FULL")
                connection.execute("PRAGMA foreign_keys=ON")
                connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MILLISECONDS}")
                if not self.writer:
                    connection.execute("PRAGMA query_only=ON")  # a write here is a bug
            except BaseException:
                connection.close()
                raise
            self._connection = connection
        return self._connection

    def _commit(self, group: list[_Job]) -> list[_Outcome]:
        """The group's jobs in one transaction, each in a savepoint if there are several."""
        outcomes: list[_Outcome] = []
        try:
            connection = self._connect()
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
            self._abandon()
            return [(job, None, error) for job in group]
        return outcomes

    def _read(self, job: _Job) -> _Outcome:
        try:
            connection = self._connect()
            connection.execute("BEGIN")  # deferred: a read snapshot, never the write lock
            try:
                value = _run_to_end(job.work(SqliteTransaction(connection)))
            finally:
                connection.execute("COMMIT")
        except Exception as error:
            self._abandon()
            return (job, None, error)
        return (job, value, None)

    def _abandon(self) -> None:
        """After a failure: roll back what is open; a broken connection is reopened next time."""
        if self._connection is None:
            return
        try:
            if self._connection.in_transaction:
                self._connection.execute("ROLLBACK")
        except sqlite3.Error:
            self._connection.close()
            self._connection = None


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
        self._writer = _Worker(path, writer=True)
        self._reader = _Worker(path, writer=False)

    async def transaction(self, work: Work[T]) -> T:
        return await self._writer.submit(work)

    async def read(self, work: Work[T]) -> T:
        return await self._reader.submit(work)

    async def execute(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        return await self._writer.submit(lambda tx: tx.rows(statement, **params))

    async def fetch(self, statement: Statement, params: Mapping[str, Any]) -> Sequence[Row]:
        return await self._reader.submit(lambda tx: tx.rows(statement, **params))

    async def ping(self, timeout: float) -> bool:  # noqa: ASYNC109 - a probe's own budget
        """The reader answers (its file opens): it queues behind reads, never behind writes."""
        try:
            async with asyncio.timeout(timeout):
                await self.fetch(_PING, {})
        except Exception as error:  # any failure at all means "not usable now"
            log.debug("database probe failed: %r", error)
            return False
        return True

    async def close(self) -> None:
        for worker in (self._writer, self._reader):
            await worker.stop()
