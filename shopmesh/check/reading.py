"""Reads the three services' books from their databases, by URL: SQLite files or PostgreSQL.

Read-only and without taking any lock a service waits for: SQLite files are opened read-only
(WAL lets readers run beside the one writer), PostgreSQL sessions are read-only. Each database
is read in one transaction (a snapshot: PostgreSQL REPEATABLE READ, SQLite one read
transaction), so inventory's stock and reservations agree with each other even under load.

The three databases cannot be read at one instant, so orders are read twice, before and after
inventory and payment. The saga writes an order's row before every downstream call it makes
(services/order/README.md), so an order whose row did not change between the two readings made
no downstream change in between: its records are final. One that changed, or appeared, is
"moved" and left for the next reading. A reservation or charge whose order is in neither
reading belongs to an order that order's database does not have.

The tables are the services' own (their tables modules), so a column renamed there is renamed here.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from sqlalchemy import event, select
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, NoSuchModuleError, SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from services.inventory.tables import products, reservation_lines, reservations
from services.order.tables import orders
from services.payment.tables import payments
from shopmesh.check.model import Books, ChargeRecord, OrderRecord, ReservationRecord, Units

SERVICES = ("order", "inventory", "payment")
#: How long one database may take to answer at all, and to answer one query.
CONNECT_TIMEOUT_SECONDS = 5.0
QUERY_TIMEOUT_SECONDS = 60.0


class Unreadable(RuntimeError):
    """A database could not be read: the message names the service and says why, in one line."""


@dataclass(frozen=True)
class DatabaseUrls:
    """Where each service's database is (SQLAlchemy URLs, as SHOPMESH_DATABASE_URL takes them)."""

    order: str
    inventory: str
    payment: str

    @classmethod
    def sqlite_files(cls, directory: Path) -> DatabaseUrls:
        """`<directory>/<service>.db` for each: var/mesh/db for `scripts/up`, var for
        `scripts/up --plain` (shopmesh.localmesh.pods, shopmesh.launch.stack)."""
        return cls(*(f"sqlite+aiosqlite:///{directory / f'{service}.db'}" for service in SERVICES))

    @classmethod
    def of_run(cls, directory: Path) -> DatabaseUrls:
        """The databases of the local run on `directory` (var/mesh/db for `scripts/up`, var for
        `scripts/up --plain`): those its record names (SQLite or PostgreSQL:
        shopmesh.launch.localdatabases), else the SQLite files there."""
        from shopmesh.launch.localdatabases import POSTGRESQL, DatabasesRecord

        try:
            record = DatabasesRecord.read(directory)
        except ValueError as error:
            raise Unreadable(str(error)) from None
        if record is None:
            return cls.sqlite_files(directory)
        if record.engine == POSTGRESQL and not record.running:
            raise Unreadable(
                f"the databases in {directory} are on a local PostgreSQL that runs only with its run, "
                "which has stopped: start it again (scripts/up --postgres; the data is kept)"
            )
        missing = [service for service in SERVICES if service not in record.urls]
        if missing:
            raise Unreadable(f"the run on {directory} has no database for {', '.join(missing)}")
        return cls(*(record.urls[service] for service in SERVICES))

    def of(self, service: str) -> str:
        url: str = getattr(self, service)
        return url

    def shown(self) -> dict[str, str]:
        """The URLs with their passwords hidden, for reports."""
        return {service: _shown(self.of(service)) for service in SERVICES}


@dataclass(frozen=True)
class Reading:
    books: Books
    moved: frozenset[str]  # orders that changed (or appeared) while the books were read


async def read_books(urls: DatabaseUrls) -> Reading:
    """One reading of the three databases (see the module's docstring)."""
    before = await _read_orders(urls.order)
    reservations_, available = await _read_inventory(urls.inventory)
    charges = await _read_payments(urls.payment)
    after = await _read_orders(urls.order)
    moved = frozenset(
        order_id for order_id, (_, version) in after.items() if before.get(order_id, (None, -1))[1] != version
    ) | frozenset(order_id for order_id in before if order_id not in after)
    records = {order_id: record for order_id, (record, _) in (after | before).items()}
    return Reading(Books(records, reservations_, charges, available), moved)


async def read_stock_totals(url: str) -> dict[str, int]:
    """Inventory's units by product wherever they are: available, sold or reserved."""
    reservations_, available = await _read_inventory(url)
    totals = Counter(available)
    for reservation in reservations_.values():
        if reservation.status in ("RESERVED", "COMMITTED") and reservation.lines is not None:
            totals.update(reservation.lines)
    return dict(totals)


async def _read_orders(url: str) -> dict[str, tuple[OrderRecord, int]]:
    columns = orders.c
    async with _snapshot(url, "order") as connection:
        rows = await connection.execute(
            select(
                columns.order_id,
                columns.status,
                columns.step,
                columns.attempt,
                columns.total_minor_units,
                columns.lines,
                columns.version,
            )
        )
        return {
            row.order_id: (
                OrderRecord(
                    order_id=row.order_id,
                    status=row.status,
                    step=row.step,
                    attempt=row.attempt,
                    total_minor_units=row.total_minor_units,
                    lines=_units((line["product_id"], line["quantity"]) for line in row.lines or []),
                ),
                row.version,
            )
            for row in rows
        }


async def _read_inventory(url: str) -> tuple[dict[str, ReservationRecord], dict[str, int]]:
    async with _snapshot(url, "inventory") as connection:
        available = {
            row.product_id: row.available
            for row in await connection.execute(select(products.c.product_id, products.c.available))
        }
        lines: dict[str, list[tuple[str, int]]] = {}
        for row in await connection.execute(
            select(
                reservation_lines.c.reservation_id,
                reservation_lines.c.product_id,
                reservation_lines.c.quantity,
            )
        ):
            lines.setdefault(row.reservation_id, []).append((row.product_id, row.quantity))
        records = {
            row.reservation_id: ReservationRecord(
                row.reservation_id, row.status, _units(lines.get(row.reservation_id, []))
            )
            for row in await connection.execute(select(reservations.c.reservation_id, reservations.c.status))
        }
    return records, available


async def _read_payments(url: str) -> dict[str, ChargeRecord]:
    columns = payments.c
    async with _snapshot(url, "payment") as connection:
        rows = await connection.execute(
            select(
                columns.idempotency_key,
                columns.status,
                columns.amount_minor_units,
                columns.refunded_minor_units,
            )
        )
        return {row.idempotency_key: ChargeRecord(*row) for row in rows}


def _units(pairs: Iterable[tuple[str, int]]) -> Units:
    units: Counter[str] = Counter()
    for product, quantity in pairs:
        units[product] += quantity
    return dict(units)


@asynccontextmanager
async def _snapshot(url: str, service: str) -> AsyncIterator[AsyncConnection]:
    """A read-only connection inside one transaction; any failure is `Unreadable`, naming `service`."""
    parsed = _parse(url, service)
    try:
        if parsed.get_backend_name() == "postgresql":
            engine = create_async_engine(
                parsed,
                poolclass=NullPool,
                isolation_level="REPEATABLE READ",
                connect_args={
                    "timeout": CONNECT_TIMEOUT_SECONDS,
                    "command_timeout": QUERY_TIMEOUT_SECONDS,
                    # Each service's tables live in the schema named after it (services/runtime/database.py).
                    "server_settings": {
                        "search_path": service,
                        "application_name": "shopmesh-check",
                        "default_transaction_read_only": "on",
                    },
                },
            )
        else:
            engine = create_async_engine(_read_only_sqlite(parsed, service), poolclass=NullPool)
            event.listen(engine.sync_engine, "connect", _sqlite_driver_without_transactions)
            event.listen(engine.sync_engine, "begin", lambda connection: connection.exec_driver_sql("BEGIN"))
    except (ArgumentError, NoSuchModuleError) as error:
        raise Unreadable(
            f"{service}: {_shown(url)} is not a database URL this check reads ({error})"
        ) from None
    try:
        async with (
            asyncio.timeout(QUERY_TIMEOUT_SECONDS),
            engine.connect() as connection,
            connection.begin(),
        ):
            yield connection
    except (SQLAlchemyError, OSError, TimeoutError) as error:
        raise Unreadable(f"{service}: cannot read {_shown(url)}: {_reason(error)}") from None
    finally:
        await engine.dispose()


def _parse(url: str, service: str) -> URL:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise Unreadable(f"{service}: {url!r} is not a database URL") from None
    if parsed.get_backend_name() not in ("postgresql", "sqlite"):
        raise Unreadable(f"{service}: {_shown(url)}: only PostgreSQL and SQLite databases are read")
    return parsed


def _read_only_sqlite(url: URL, service: str) -> str:
    """The file's URL opened read-only: a check never creates or changes a database."""
    database = url.database or ""
    if database in ("", ":memory:") or not Path(database).is_file():
        raise Unreadable(f"{service}: no SQLite database file at {database or '(none given)'}")
    return f"sqlite+aiosqlite:///file:{quote(str(Path(database).resolve()))}?mode=ro&uri=true"


def _sqlite_driver_without_transactions(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's legacy mode would not BEGIN before a SELECT, and each SELECT would see another
    # moment; SQLAlchemy's BEGIN (the "begin" listener) makes the whole reading one snapshot.
    dbapi_connection.isolation_level = None


def _shown(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(not a URL)"


def _reason(error: BaseException) -> str:
    if isinstance(error, TimeoutError):
        return f"no answer within {QUERY_TIMEOUT_SECONDS:g} s"
    original = getattr(error, "orig", None) if isinstance(error, DBAPIError) else None
    text = str(original or error).strip().splitlines()
    return f"{type(original or error).__name__}: {text[0] if text else ''}"[:300]
