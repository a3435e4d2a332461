"""Order's table and its store (the OrderStore port over SQL): the only module that speaks SQL
for orders.

An order is stored as one row (its items and priced lines as JSON documents), so each saga
transition is a single-row compare-and-set on `version`: whoever runs a saga step — the
request's own task or the recovery pass after a crash — must hold the version it read, and
of two contenders exactly one wins.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    and_,
    or_,
    select,
    update,
)

from services.order.domain import DependencyCode, Item, Line, Order, OrderStatus, SagaStep
from services.runtime.messages import Money
from services.runtime.persistence import SessionFactory, UtcDateTime, insert_if_absent

metadata = MetaData()

orders = Table(
    "orders",
    metadata,
    Column("order_id", String(64), primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("customer_id", String(64), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("status", String(16), nullable=False),
    Column("step", String(16), nullable=True),
    Column("attempt", Integer, nullable=False),
    Column("items", JSON, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("total_currency_code", String(3), nullable=True),
    Column("total_minor_units", BigInteger, nullable=True),
    Column("payment_id", String(64), nullable=False),
    Column("rejection_reason", String(200), nullable=False),
    Column("outcome", String(16), nullable=True),
    Column("undo_charge", Integer, nullable=False),
    Column("failure", String(24), nullable=True),
    Column("version", Integer, nullable=False),
    # Until when the saga's current runner owns an in-flight order; after that the recovery
    # pass may take it over (the runner died, or its compensation could not finish).
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
    Index("orders_by_customer", "customer_id", "create_time", "order_id"),
    Index("orders_in_flight", "step", "lease_expires_at"),
)


def _row_values(order: Order) -> dict[str, Any]:
    total = order.total
    return {
        "status": order.status.value,
        "step": None if order.step is None else order.step.value,
        "attempt": order.attempt,
        "lines": [
            {
                "product_id": line.product_id,
                "product_name": line.product_name,
                "quantity": line.quantity,
                "currency_code": line.unit_price.currency_code,
                "unit_price": line.unit_price.minor_units,
            }
            for line in order.lines
        ],
        "total_currency_code": None if total is None else total.currency_code,
        "total_minor_units": None if total is None else total.minor_units,
        "payment_id": order.payment_id,
        "rejection_reason": order.rejection_reason,
        "outcome": None if order.outcome is None else order.outcome.value,
        "undo_charge": int(order.undo_charge),
        "failure": None if order.failure is None else order.failure.value,
        "update_time": order.update_time,
    }


def _order(row: Any) -> Order:
    return Order(
        order_id=row.order_id,
        request_id=row.request_id,
        customer_id=row.customer_id,
        request_fingerprint=row.request_fingerprint,
        items=[Item(item["product_id"], item["quantity"]) for item in row.items],
        create_time=row.create_time,
        update_time=row.update_time,
        status=OrderStatus(row.status),
        step=None if row.step is None else SagaStep(row.step),
        attempt=row.attempt,
        lines=[
            Line(
                line["product_id"],
                line["product_name"],
                line["quantity"],
                Money(line["currency_code"], line["unit_price"]),
            )
            for line in row.lines
        ],
        payment_id=row.payment_id,
        rejection_reason=row.rejection_reason,
        outcome=None if row.outcome is None else OrderStatus(row.outcome),
        undo_charge=bool(row.undo_charge),
        failure=None if row.failure is None else DependencyCode(row.failure),
        version=row.version,
    )


class SqlOrderStore:
    """The OrderStore (services/order/ports.py) on the service's database: each method one
    transaction of its own, through SQLAlchemy's async session."""

    def __init__(self, sessions: SessionFactory) -> None:
        self.sessions = sessions

    async def claim_or_load(self, order: Order, lease_until: datetime) -> tuple[Order, bool]:
        async with self.sessions() as session:
            claimed = await insert_if_absent(
                session,
                orders,
                {
                    **_row_values(order),
                    "order_id": order.order_id,
                    "request_id": order.request_id,
                    "customer_id": order.customer_id,
                    "request_fingerprint": order.request_fingerprint,
                    "items": [
                        {"product_id": item.product_id, "quantity": item.quantity} for item in order.items
                    ],
                    "version": order.version,
                    "lease_expires_at": lease_until,
                    "create_time": order.create_time,
                },
            )
            if claimed:
                return order, True
            # Not claimed: a committed order holds the request id (the claim waited for it).
            query = select(orders).where(orders.c.request_id == order.request_id)
            return _order((await session.execute(query)).one()), False

    async def save(self, order: Order, lease_until: datetime | None) -> bool:
        async with self.sessions() as session:
            result = await session.execute(
                update(orders)
                .where(orders.c.order_id == order.order_id, orders.c.version == order.version)
                .values(**_row_values(order), version=order.version + 1, lease_expires_at=lease_until)
            )
        if getattr(result, "rowcount", 0) != 1:
            return False
        order.version += 1
        return True

    async def get(self, order_id: str) -> Order | None:
        async with self.sessions() as session:
            query = select(orders).where(orders.c.order_id == order_id)
            row = (await session.execute(query)).first()
        return None if row is None else _order(row)

    async def list_for_customer(
        self, customer_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        query = select(orders).where(orders.c.customer_id == customer_id)
        if before is not None:
            moment, order_id = before
            query = query.where(
                or_(
                    orders.c.create_time < moment,
                    and_(orders.c.create_time == moment, orders.c.order_id < order_id),
                )
            )
        query = query.order_by(orders.c.create_time.desc(), orders.c.order_id.desc()).limit(limit)
        async with self.sessions() as session:
            return [_order(row) for row in await session.execute(query)]

    async def stranded(self, now: datetime, limit: int) -> list[Order]:
        query = (
            select(orders)
            .where(orders.c.step.is_not(None), orders.c.lease_expires_at < now)
            .order_by(orders.c.lease_expires_at)
            .limit(limit)
        )
        async with self.sessions() as session:
            return [_order(row) for row in await session.execute(query)]
