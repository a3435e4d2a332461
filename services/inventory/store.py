"""Inventory's tables and its repository: the only module that speaks SQL for inventory."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    select,
    update,
)
from sqlalchemy.ext.asyncio import AsyncSession

from services.inventory.domain import Product, Reservation, ReservationStatus, ReservedLine
from services.runtime.messages import Money
from services.runtime.persistence import UtcDateTime, insert_if_absent

metadata = MetaData()

products = Table(
    "products",
    metadata,
    Column("product_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("price_minor_units", BigInteger, nullable=False),
    # The database, not only the code, refuses to oversell.
    Column(
        "available",
        BigInteger,
        CheckConstraint("available >= 0", name="available_not_negative"),
        nullable=False,
    ),
)

reservations = Table(
    "reservations",
    metadata,
    Column("reservation_id", String(64), primary_key=True),
    Column("status", String(16), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
)

reservation_lines = Table(
    "reservation_lines",
    metadata,
    Column("reservation_id", String(64), ForeignKey("reservations.reservation_id"), primary_key=True),
    Column("position", Integer, primary_key=True),
    Column("product_id", String(64), nullable=False),
    Column("product_name", String(200), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("unit_price_minor_units", BigInteger, nullable=False),
)


def _product(row: object) -> Product:
    return Product(
        product_id=row.product_id,  # type: ignore[attr-defined]
        name=row.name,  # type: ignore[attr-defined]
        price=Money(row.currency_code, row.price_minor_units),  # type: ignore[attr-defined]
        available=row.available,  # type: ignore[attr-defined]
    )


class InventoryRepository:
    """Products and reservations inside one transaction (the session the caller opened)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    # -- products -----------------------------------------------------------------------------
    async def get_product(self, product_id: str) -> Product | None:
        row = (
            await self.session.execute(select(products).where(products.c.product_id == product_id))
        ).first()
        return None if row is None else _product(row)

    async def list_products(self, after: str | None, limit: int) -> list[Product]:
        query = select(products).order_by(products.c.product_id).limit(limit)
        if after is not None:
            query = query.where(products.c.product_id > after)
        return [_product(row) for row in await self.session.execute(query)]

    async def take_stock(self, product_id: str, quantity: int) -> Product | None:
        """Decrements `available` only if enough is there; None if not (or no such product).

        One conditional UPDATE: on PostgreSQL it locks the row and re-checks the condition
        after any concurrent writer commits; SQLite runs writers one at a time. Either way two
        orders can never both take the last unit.
        """
        result = await self.session.execute(
            update(products)
            .where(products.c.product_id == product_id, products.c.available >= quantity)
            .values(available=products.c.available - quantity)
            .returning(*products.c)
        )
        row = result.first()
        return None if row is None else _product(row)

    async def add_stock(self, product_id: str, delta: int) -> Product | None:
        """Adds `delta` (may be negative) unless that would go below zero; None if refused."""
        result = await self.session.execute(
            update(products)
            .where(products.c.product_id == product_id, products.c.available + delta >= 0)
            .values(available=products.c.available + delta)
            .returning(*products.c)
        )
        row = result.first()
        return None if row is None else _product(row)

    async def add_product(self, product: Product) -> bool:
        return await insert_if_absent(
            self.session,
            products,
            {
                "product_id": product.product_id,
                "name": product.name,
                "currency_code": product.price.currency_code,
                "price_minor_units": product.price.minor_units,
                "available": product.available,
            },
        )

    # -- reservations -------------------------------------------------------------------------
    async def claim_reservation(self, reservation: Reservation) -> bool:
        """Records a new reservation (no lines yet); False if the id is already taken."""
        return await insert_if_absent(
            self.session,
            reservations,
            {
                "reservation_id": reservation.reservation_id,
                "status": reservation.status.value,
                "create_time": reservation.create_time,
                "update_time": reservation.update_time,
            },
        )

    async def add_lines(self, reservation_id: str, lines: Sequence[ReservedLine]) -> None:
        if not lines:
            return
        await self.session.execute(
            reservation_lines.insert(),
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
        query = select(reservations).where(reservations.c.reservation_id == reservation_id)
        if for_update:
            # Locks the row on PostgreSQL; SQLite has no row locks (nor FOR UPDATE), and needs
            # none: its transactions hold the write lock from BEGIN (services/runtime/database.py).
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        if row is None:
            return None
        line_rows = await self.session.execute(
            select(reservation_lines)
            .where(reservation_lines.c.reservation_id == reservation_id)
            .order_by(reservation_lines.c.position)
        )
        return Reservation(
            reservation_id=row.reservation_id,
            status=ReservationStatus(row.status),
            create_time=row.create_time,
            update_time=row.update_time,
            lines=[
                ReservedLine(
                    line.product_id,
                    line.product_name,
                    line.quantity,
                    Money(line.currency_code, line.unit_price_minor_units),
                )
                for line in line_rows
            ],
        )

    async def save_status(self, reservation: Reservation) -> None:
        await self.session.execute(
            update(reservations)
            .where(reservations.c.reservation_id == reservation.reservation_id)
            .values(status=reservation.status.value, update_time=reservation.update_time)
        )
