"""The Database: whole transactions on both backends, SQLite's one writer (group commit, FIFO)
and its reader beside it, PostgreSQL's schema per service, error mapping, and an outage seen
from outside: NOT_SERVING and fast UNAVAILABLE, then SERVING again."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from fixtures.postgres import unique_name
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.probe_server import probe_settings, running
from services.runtime import errors
from services.runtime.database import Database, Statement, Transaction, translate_error
from services.runtime.database_sqlite import BUSY_TIMEOUT_MILLISECONDS, READ_BUSY_TIMEOUT_MILLISECONDS
from services.runtime.health import LIVENESS
from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
CREATE = Statement("CREATE TABLE t (v INTEGER)")
INSERT = Statement("INSERT INTO t VALUES (:v)")
VALUES = Statement("SELECT v FROM t ORDER BY v")
INCREMENT = Statement("UPDATE t SET v = :v")


@pytest.fixture
async def database(tmp_path: Path) -> AsyncIterator[Database]:
    database = Database(f"sqlite+aiosqlite:///{tmp_path}/t.db", service="payment")
    try:
        await database.execute(CREATE)
        yield database
    finally:
        await database.dispose()


async def _values(database: Database) -> list[int]:
    return [row["v"] for row in await database.fetch(VALUES)]


async def test_sqlite_runs_in_wal_fully_synced_with_a_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path}/var/deep/payment.db", service="payment")
    pragmas = ("journal_mode", "synchronous", "busy_timeout", "foreign_keys")

    async def settings(tx: Transaction) -> tuple[object, ...]:
        return tuple([(await tx.row(Statement(f"PRAGMA {name}")))[0] for name in pragmas])  # type: ignore[index]

    try:
        # synchronous=2 is FULL: each commit is on disk. The writer waits for another process's
        # write lock; a read (on the event loop) only briefly, in SQLite's corner cases.
        assert await database.transaction(settings) == ("wal", 2, BUSY_TIMEOUT_MILLISECONDS, 1)
        assert await database.read(settings) == ("wal", 2, READ_BUSY_TIMEOUT_MILLISECONDS, 1)
        assert (BUSY_TIMEOUT_MILLISECONDS, READ_BUSY_TIMEOUT_MILLISECONDS) == (5000, 100)
        assert database.dialect == "sqlite"
        assert database.schema is None
        assert await database.ping()
    finally:
        await database.dispose()


async def test_a_transaction_commits_on_success_and_rolls_back_on_error(database: Database) -> None:
    await database.execute(INSERT, v=1)

    async def insert_then_fail(tx: Transaction) -> None:
        await tx.execute(INSERT, v=2)
        raise errors.NotFound("thing", "t-2")

    with pytest.raises(errors.NotFound):  # a domain error passes through untouched
        await database.transaction(insert_then_fail)
    assert await _values(database) == [1]


async def test_transactions_at_once_commit_together_and_fail_alone(database: Database) -> None:
    async def insert(v: int) -> int:
        async def work(tx: Transaction) -> int:
            await tx.execute(INSERT, v=v)
            if v % 3 == 0:
                raise errors.Aborted("TEST", f"{v} fails")
            return v

        return await database.transaction(work)

    outcomes = await asyncio.gather(*(insert(v) for v in range(1, 31)), return_exceptions=True)
    assert [o for o in outcomes if isinstance(o, errors.Aborted)] != []
    assert await _values(database) == [v for v in range(1, 31) if v % 3]  # in the order they came


async def test_read_then_write_transactions_never_lose_an_update(database: Database) -> None:
    await database.execute(INSERT, v=0)

    async def increment(tx: Transaction) -> None:
        seen = (await tx.rows(VALUES))[0]["v"]
        await tx.execute(INCREMENT, v=seen + 1)

    await asyncio.gather(*(database.transaction(increment) for _ in range(40)))
    assert await _values(database) == [40]


async def test_a_unit_of_work_may_await_only_its_statements(database: Database) -> None:
    async def sleepy(tx: Transaction) -> None:
        await tx.execute(INSERT, v=7)
        await asyncio.sleep(0)  # would hold the one writer for as long as it waits

    with pytest.raises(RuntimeError, match="awaited something other than its own statements"):
        await database.transaction(sleepy)
    assert await _values(database) == []


async def test_reads_and_the_probe_never_wait_for_a_writer(database: Database, tmp_path: Path) -> None:
    await database.execute(INSERT, v=1)
    # Another connection (as a migration run beside the service would) holds the write lock.
    writer = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO t VALUES (2)")
        started = time.monotonic()
        assert await _values(database) == [1]  # what is committed, at once
        assert await database.ping(timeout=0.5)
        assert time.monotonic() - started < 0.5
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert await _values(database) == [1, 2]


async def test_a_read_may_not_write(database: Database) -> None:
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await database.read(lambda tx: tx.execute(INSERT, v=1))
    with pytest.raises(sqlite3.OperationalError, match="readonly"):
        await database.fetch(INSERT, v=1)
    assert await _values(database) == []


async def test_a_one_statement_read_keeps_no_snapshot_open(database: Database, tmp_path: Path) -> None:
    await database.execute(INSERT, v=1)
    assert await _values(database) == [1]  # a fetch: one statement, no BEGIN … COMMIT around it
    # A snapshot still open would pin the write-ahead log: a TRUNCATE checkpoint would be busy.
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        busy, _, _ = other.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    finally:
        other.close()
    assert busy == 0


def test_a_statement_is_written_once_for_both_backends() -> None:
    statement = Statement("UPDATE t SET a = :a, b = :b WHERE id = :id AND a = :a", lock=True)
    assert statement.sql == "UPDATE t SET a = :a, b = :b WHERE id = :id AND a = :a"
    assert statement.postgresql == "UPDATE t SET a = $1, b = $2 WHERE id = $3 AND a = $1 FOR UPDATE"
    assert statement.names == ("a", "b", "id")
    assert Statement("SELECT x::text FROM t WHERE y = :y").postgresql == "SELECT x::text FROM t WHERE y = $1"


class _SqlState(Exception):
    def __init__(self, sqlstate: str) -> None:
        super().__init__(sqlstate)
        self.sqlstate = sqlstate


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ConnectionRefusedError(111, "refused"), errors.Unavailable),
        (TimeoutError(), errors.Unavailable),
        (_SqlState("08006"), errors.Unavailable),  # connection failure
        (_SqlState("57P01"), errors.Unavailable),  # admin shutdown
        (_SqlState("53300"), errors.Unavailable),  # too many connections
        (_SqlState("40001"), errors.Aborted),  # serialization failure
        (_SqlState("40P01"), errors.Aborted),  # deadlock
        (sqlite3.OperationalError("database is locked"), errors.Unavailable),
        (_SqlState("23505"), None),  # unique violation: a bug or a domain case, not an outage
        (sqlite3.OperationalError("no such table: t"), None),
        (ValueError("bug"), None),
    ],
)
def test_database_failures_map_to_what_the_caller_may_do(error: Exception, expected) -> None:
    wrapped = RuntimeError("wrapper")
    wrapped.__cause__ = error
    translated = translate_error(wrapped)
    if expected is None:
        assert translated is None
    else:
        assert isinstance(translated, expected)
        assert translated.reason in ("DATABASE_UNAVAILABLE", "DATABASE_CONFLICT")


async def test_postgresql_keeps_each_service_in_its_own_schema(postgres) -> None:
    name = unique_name("payment")
    url = postgres.create_database(name)
    database = Database(url, service="payment")
    try:
        await asyncio.to_thread(database.upgrade, REPO / "services" / "payment" / "migrations")
        assert (await database.fetch(Statement("SHOW search_path")))[0][0] == "payment"
        assert (await database.fetch(Statement("SELECT current_user")))[0][0] == name
        tables = postgres.sql(
            "SELECT schemaname || '.' || tablename FROM pg_tables WHERE tableowner = current_database()",
            database=name,
        ).split()
        assert "payment.alembic_version" in tables
        assert "payment.payments" in tables
        assert not [table for table in tables if table.startswith("public.")]
        assert database.schema == "payment"
    finally:
        await database.dispose()


async def test_postgresql_transactions_commit_or_roll_back_whole(postgres) -> None:
    database = Database(postgres.create_database(unique_name("payment")), service="payment")
    try:
        await database.execute(Statement("CREATE SCHEMA payment"))  # the search_path's (migrations make it)
        await database.execute(CREATE)
        await database.execute(INSERT, v=1)

        async def insert_then_fail(tx: Transaction) -> None:
            await tx.execute_many(INSERT, [{"v": 2}, {"v": 3}])
            raise errors.NotFound("thing", "t-2")

        with pytest.raises(errors.NotFound):
            await database.transaction(insert_then_fail)

        async def increment(tx: Transaction) -> None:
            seen = (await tx.rows(Statement("SELECT v FROM t", lock=True)))[0]["v"]
            await tx.execute(INCREMENT, v=seen + 1)

        await asyncio.gather(*(database.transaction(increment) for _ in range(10)))
        assert await database.read(lambda tx: tx.rows(VALUES)) == [(11,)]
        assert database.dialect == "postgresql"
        assert await database.ping()
    finally:
        await database.dispose()


async def wait_for_health(channel: grpc.aio.Channel, wanted: int, within: float) -> float:
    """Seconds until health reports `wanted`; fails after `within` seconds."""
    stub = health_pb2_grpc.HealthStub(channel)
    started = time.monotonic()
    while True:  # asks at least once, however little time is left
        reply = await stub.Check(
            health_pb2.HealthCheckRequest(service="shop.payment.v1.PaymentService"), timeout=1
        )
        if reply.status == wanted:
            return time.monotonic() - started
        if time.monotonic() - started >= within:
            break
        await asyncio.sleep(0.05)
    raise AssertionError(f"health did not become {wanted} within {within}s")


async def test_database_outage_is_not_serving_and_fails_fast_then_recovers(private_postgres) -> None:
    url = private_postgres.create_database(unique_name("payment"))
    async with running(probe_settings(url)) as server, server.channel() as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        database_call = pb.ChargeRequest(payment_token="tok_database")
        await stub.Charge(database_call, timeout=5)
        await wait_for_health(channel, health_pb2.HealthCheckResponse.SERVING, within=5)

        await asyncio.to_thread(private_postgres.stop, "immediate")
        stopped = time.monotonic()
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await stub.Charge(database_call, timeout=5)
        assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - stopped < 1.0, "a dead database must fail the call at once, not hang"
        # The promise: NOT_SERVING within 1 s of the outage (the probe runs every 0.5 s).
        await wait_for_health(
            channel, health_pb2.HealthCheckResponse.NOT_SERVING, within=stopped + 1.0 - time.monotonic()
        )

        await asyncio.to_thread(private_postgres.start)
        await wait_for_health(channel, health_pb2.HealthCheckResponse.SERVING, within=5)
        await stub.Charge(database_call, timeout=5)  # same process, no restart


def test_the_real_payment_service_rides_out_a_database_outage(private_postgres, launch_service) -> None:
    url = private_postgres.create_database(unique_name("payment"))
    service = launch_service("payment", {"SHOPMESH_DATABASE_URL": url, "SHOPMESH_MIGRATE_ON_START": "true"})
    name = "shop.payment.v1.PaymentService"
    with grpc.insecure_channel(service.address) as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        lookup = pb.GetPaymentRequest(payment_id="p-unknown")
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetPayment(lookup, timeout=5)
        assert failure.value.code() is grpc.StatusCode.NOT_FOUND  # the database answered

        private_postgres.stop("immediate")
        stopped = time.monotonic()
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetPayment(lookup, timeout=5)
        assert failure.value.code() is grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - stopped < 1.0, "a dead database must fail the call at once, not hang"
        # NOT_SERVING within 1 s of the outage, as the issue promises (the probe runs every 0.5 s).
        assert wait_until(
            lambda: service.health(name) == health_pb2.HealthCheckResponse.NOT_SERVING,
            stopped + 1.0 - time.monotonic(),
        )
        assert service.health("") == health_pb2.HealthCheckResponse.NOT_SERVING
        # Not ready, yet alive: the livenessProbe's name does not follow the database, so a
        # kubelet restarts no replica for an outage a restart cannot end.
        assert service.health(LIVENESS) == health_pb2.HealthCheckResponse.SERVING

        private_postgres.start()
        assert wait_until(lambda: service.health(name) == health_pb2.HealthCheckResponse.SERVING, 5)
        with pytest.raises(grpc.RpcError) as failure:
            stub.GetPayment(lookup, timeout=5)
        assert failure.value.code() is grpc.StatusCode.NOT_FOUND  # answering again, same process
    assert service.returncode() is None


def wait_until(condition, within: float) -> bool:
    deadline = time.monotonic() + within
    while True:  # asks at least once, however little time is left
        if condition():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
