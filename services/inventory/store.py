"""Inventory's store: the only module that speaks SQL for inventory (the tables are declared in
tables.py, for the migrations).

`InventoryStore` runs the statements that are a transaction on their own (one round trip on
PostgreSQL, one hand-off on SQLite) and opens bigger transactions, inside which the use cases
(stock.py) work through an `InventoryRepository`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TypeVar

from services.inventory.domain import Product, Reservation, ReservationStatus, ReservedLine
from services.runtime.database import Database, Row, Statement, Store, Transaction
from services.runtime.messages import Money
from services.runtime.persistence import utc

T = TypeVar("T")

_PRODUCT = "product_id, name, currency_code, price_minor_units, available"
_RESERVATION = "reservation_id, status, create_time, update_time"

PRODUCT = Statement(f"SELECT {_PRODUCT} FROM products WHERE product_id = :product_id")
PRODUCTS = Statement(f"SELECT {_PRODUCT} FROM products ORDER BY product_id LIMIT :limit")
PRODUCTS_AFTER = Statement(
    f"SELECT {_PRODUCT} FROM products WHERE product_id > :after ORDER BY product_id LIMIT :limit"
)
# One conditional UPDATE each: on PostgreSQL it locks the row and re-checks the condition after
# any concurrent writer commits; SQLite runs writers one at a time. Either way two orders can
# never both take the last unit.
TAKE_STOCK = Statement(
    "UPDATE products SET available = available - :quantity"
    f" WHERE product_id = :product_id AND available >= :quantity RETURNING {_PRODUCT}"
)
ADD_STOCK = Statement(
    "UPDATE products SET available = available + :delta"
    f" WHERE product_id = :product_id AND available + :delta >= 0 RETURNING {_PRODUCT}"
)
ADD_PRODUCT = Statement(
    f"INSERT INTO products ({_PRODUCT})"
    " VALUES (:product_id, :name, :currency_code, :price_minor_units, :available)"
    " ON CONFLICT DO NOTHING RETURNING product_id"
)
CLAIM_RESERVATION = Statement(
    f"INSERT INTO reservations ({_RESERVATION})"
    " VALUES (:reservation_id, :status, :create_time, :update_time)"
    " ON CONFLICT DO NOTHING RETURNING reservation_id"
)
ADD_LINE = Statement(
    "INSERT INTO reservation_lines (reservation_id, position, product_id, product_name, quantity,"
    " currency_code, unit_price_minor_units) VALUES (:reservation_id, :position, :product_id,"
    " :product_name, :quantity, :currency_code, :unit_price_minor_units)"
)
RESERVATION = Statement(f"SELECT {_RESERVATION} FROM reservations WHERE reservation_id = :reservation_id")
RESERVATION_LOCKED = Statement(RESERVATION.sql, lock=True)
LINES = Statement(
    "SELECT product_id, product_name, quantity, currency_code, unit_price_minor_units"
    " FROM reservation_lines WHERE reservation_id = :reservation_id ORDER BY position"
)
#: A reservation changes status only from RESERVED: the commit is this one conditional UPDATE.
MOVE_FROM_RESERVED = Statement(
    "UPDATE reservations SET status = :status, update_time = :update_time"
    f" WHERE reservation_id = :reservation_id AND status = :reserved RETURNING {_RESERVATION}"
)
SAVE_STATUS = Statement(
    "UPDATE reservations SET status = :status, update_time = :update_time"
    " WHERE reservation_id = :reservation_id"
)
STATEMENTS = (
    PRODUCT, PRODUCTS, PRODUCTS_AFTER, TAKE_STOCK, ADD_STOCK, ADD_PRODUCT, CLAIM_RESERVATION,
    ADD_LINE, RESERVATION, RESERVATION_LOCKED, LINES, MOVE_FROM_RESERVED, SAVE_STATUS,
)  # fmt: skip


def _product(row: Row) -> Product:
    return Product(
        product_id=row["product_id"],
        name=row["name"],
        price=Money(row["currency_code"], row["price_minor_units"]),
        available=row["available"],
    )


def _reservation(row: Row) -> Reservation:
    return Reservation(
        reservation_id=row["reservation_id"],
        status=ReservationStatus(row["status"]),
        create_time=utc(row["create_time"]),
        update_time=utc(row["update_time"]),
    )


def _line(row: Row) -> ReservedLine:
    return ReservedLine(
        row["product_id"],
        row["product_name"],
        row["quantity"],
        Money(row["currency_code"], row["unit_price_minor_units"]),
    )


class InventoryRepository:
    """Products and reservations inside one transaction."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    # -- products -----------------------------------------------------------------------------
    async def get_product(self, product_id: str) -> Product | None:
        row = await self.tx.row(PRODUCT, product_id=product_id)
        return None if row is None else _product(row)

    async def take_stock(self, product_id: str, quantity: int) -> Product | None:
        """Decrements `available` only if enough is there; None if not (or no such product)."""
        row = await self.tx.row(TAKE_STOCK, product_id=product_id, quantity=quantity)
        return None if row is None else _product(row)

    async def add_stock(self, product_id: str, delta: int) -> Product | None:
        """Adds `delta` (may be negative) unless that would go below zero; None if refused."""
        row = await self.tx.row(ADD_STOCK, product_id=product_id, delta=delta)
        return None if row is None else _product(row)

    async def add_product(self, product: Product) -> bool:
        row = await self.tx.row(
            ADD_PRODUCT,
            product_id=product.product_id,
            name=product.name,
            currency_code=product.price.currency_code,
            price_minor_units=product.price.minor_units,
            available=product.available,
        )
        return row is not None

    # -- reservations -------------------------------------------------------------------------
    async def claim_reservation(self, reservation: Reservation) -> bool:
        """Records a new reservation (no lines yet); False if the id is already taken."""
        row = await self.tx.row(
            CLAIM_RESERVATION,
            reservation_id=reservation.reservation_id,
            status=reservation.status.value,
            create_time=reservation.create_time,
            update_time=reservation.update_time,
        )
        return row is not None

    async def add_lines(self, reservation_id: str, lines: Sequence[ReservedLine]) -> None:
        if not lines:
            return
        await self.tx.execute_many(
            ADD_LINE,
            [
                {
                    "reservation_id": reservation_id,
                    "position": position,
                    "product_id": line.product_id,
                    "product_name": line.product_name,
                    "quantity": line.quantity,
                    "currency_code": line.unit_price.currency_code,
                    "unit_price_minor_units": line.unit_price.minor_units,
                }
                for position, line in enumerate(lines)
            ],
        )

    async def get_reservation(self, reservation_id: str, *, for_update: bool = False) -> Reservation | None:
        # FOR UPDATE locks the row on PostgreSQL; SQLite's transactions run one at a time.
        row = await self.tx.row(
            RESERVATION_LOCKED if for_update else RESERVATION, reservation_id=reservation_id
        )
        if row is None:
            return None
        reservation = _reservation(row)
        reservation.lines = await self.lines(reservation_id)
        return reservation

    async def lines(self, reservation_id: str) -> list[ReservedLine]:
        return [_line(row) for row in await self.tx.rows(LINES, reservation_id=reservation_id)]

    async def move_from_reserved(
        self, reservation_id: str, status: ReservationStatus, now: datetime
    ) -> Reservation | None:
        """Moves a RESERVED reservation to `status` (lines not loaded); None if it was not RESERVED."""
        row = await self.tx.row(
            MOVE_FROM_RESERVED,
            reservation_id=reservation_id,
            status=status.value,
            update_time=now,
            reserved=ReservationStatus.RESERVED.value,
        )
        return None if row is None else _reservation(row)

    async def save_status(self, reservation: Reservation) -> None:
        await self.tx.execute(
            SAVE_STATUS,
            reservation_id=reservation.reservation_id,
            status=reservation.status.value,
            update_time=reservation.update_time,
        )


class InventoryStore(Store[InventoryRepository]):
    """The statements that are a transaction on their own; `transaction(work)` for bigger ones."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, InventoryRepository)

    async def get_product(self, product_id: str) -> Product | None:
        rows = await self.database.fetch(PRODUCT, product_id=product_id)
        return _product(rows[0]) if rows else None

    async def list_products(self, after: str | None, limit: int) -> list[Product]:
        if after is None:
            rows = await self.database.fetch(PRODUCTS, limit=limit)
        else:
            rows = await self.database.fetch(PRODUCTS_AFTER, after=after, limit=limit)
        return [_product(row) for row in rows]

    async def add_stock(self, product_id: str, delta: int) -> Product | None:
        """As InventoryRepository.add_stock, as a transaction of its own."""
        rows = await self.database.execute(ADD_STOCK, product_id=product_id, delta=delta)
        return _product(rows[0]) if rows else None
