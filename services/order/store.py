"""Order's store (the OrderStore port over the runtime's Database): the only module that speaks
SQL for orders. The table is declared in tables.py (for the migrations).

An order is stored as one row (its items and priced lines as JSON documents), so each saga
transition is a single-row compare-and-set on `version`: whoever runs a saga step — the
request's own task or the recovery pass after a crash — must hold the version it read, and
of two contenders exactly one wins. Every method is one statement: on PostgreSQL one round
trip, on SQLite one hand-off to the writer (or the reader).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from services.order.domain import DependencyCode, Item, Line, Order, OrderStatus, SagaStep
from services.runtime.database import Database, Row, Statement
from services.runtime.messages import Money
from services.runtime.persistence import from_json, to_json, utc

_COLUMNS = (
    "order_id, request_id, customer_id, request_fingerprint, status, step, attempt, items, lines, "
    "total_currency_code, total_minor_units, payment_id, rejection_reason, outcome, undo_charge, "
    "failure, version, lease_expires_at, create_time, update_time"
)
#: What a saga transition changes (the rest is written once, by the claim).
_STATE = (
    "status, step, attempt, lines, total_currency_code, total_minor_units, payment_id, "
    "rejection_reason, outcome, undo_charge, failure, update_time"
)

CLAIM = Statement(
    f"INSERT INTO orders ({_COLUMNS}) VALUES ({', '.join(f':{c.strip()}' for c in _COLUMNS.split(','))}) "
    "ON CONFLICT DO NOTHING RETURNING version"
)
SAVE = Statement(
    "UPDATE orders SET "
    + ", ".join(f"{c.strip()} = :{c.strip()}" for c in _STATE.split(","))
    + ", version = :version + 1, lease_expires_at = :lease_expires_at"
    " WHERE order_id = :order_id AND version = :version RETURNING version"
)
BY_ID = Statement(f"SELECT {_COLUMNS} FROM orders WHERE order_id = :order_id")
BY_REQUEST = Statement(f"SELECT {_COLUMNS} FROM orders WHERE request_id = :request_id")
NEWEST = Statement(
    f"SELECT {_COLUMNS} FROM orders WHERE customer_id = :customer_id"
    " ORDER BY create_time DESC, order_id DESC LIMIT :limit"
)
NEWEST_BEFORE = Statement(
    f"SELECT {_COLUMNS} FROM orders WHERE customer_id = :customer_id"
    " AND (create_time < :moment OR (create_time = :moment AND order_id < :order_id))"
    " ORDER BY create_time DESC, order_id DESC LIMIT :limit"
)
STRANDED = Statement(
    f"SELECT {_COLUMNS} FROM orders WHERE step IS NOT NULL AND lease_expires_at < :now"
    " ORDER BY lease_expires_at LIMIT :limit"
)
STATEMENTS = (CLAIM, SAVE, BY_ID, BY_REQUEST, NEWEST, NEWEST_BEFORE, STRANDED)


def _state(order: Order) -> dict[str, Any]:
    total = order.total
    return {
        "status": order.status.value,
        "step": None if order.step is None else order.step.value,
        "attempt": order.attempt,
        "lines": to_json(
            [
                {
                    "product_id": line.product_id,
                    "product_name": line.product_name,
                    "quantity": line.quantity,
                    "currency_code": line.unit_price.currency_code,
                    "unit_price": line.unit_price.minor_units,
                }
                for line in order.lines
            ]
        ),
        "total_currency_code": None if total is None else total.currency_code,
        "total_minor_units": None if total is None else total.minor_units,
        "payment_id": order.payment_id,
        "rejection_reason": order.rejection_reason,
        "outcome": None if order.outcome is None else order.outcome.value,
        "undo_charge": int(order.undo_charge),
        "failure": None if order.failure is None else order.failure.value,
        "update_time": order.update_time,
    }


def _order(row: Row) -> Order:
    return Order(
        order_id=row["order_id"],
        request_id=row["request_id"],
        customer_id=row["customer_id"],
        request_fingerprint=row["request_fingerprint"],
        items=[Item(item["product_id"], item["quantity"]) for item in from_json(row["items"])],
        create_time=utc(row["create_time"]),
        update_time=utc(row["update_time"]),
        status=OrderStatus(row["status"]),
        step=None if row["step"] is None else SagaStep(row["step"]),
        attempt=row["attempt"],
        lines=[
            Line(
                line["product_id"],
                line["product_name"],
                line["quantity"],
                Money(line["currency_code"], line["unit_price"]),
            )
            for line in from_json(row["lines"])
        ],
        payment_id=row["payment_id"],
        rejection_reason=row["rejection_reason"],
        outcome=None if row["outcome"] is None else OrderStatus(row["outcome"]),
        undo_charge=bool(row["undo_charge"]),
        failure=None if row["failure"] is None else DependencyCode(row["failure"]),
        version=row["version"],
    )


class SqlOrderStore:
    """The OrderStore (services/order/ports.py) on the service's database."""

    def __init__(self, database: Database) -> None:
        self.database = database

    async def claim_or_load(self, order: Order, lease_until: datetime) -> tuple[Order, bool]:
        claimed = await self.database.execute(
            CLAIM,
            **_state(order),
            order_id=order.order_id,
            request_id=order.request_id,
            customer_id=order.customer_id,
            request_fingerprint=order.request_fingerprint,
            items=to_json(
                [{"product_id": item.product_id, "quantity": item.quantity} for item in order.items]
            ),
            version=order.version,
            lease_expires_at=lease_until,
            create_time=order.create_time,
        )
        if claimed:
            return order, True
        # Not claimed: a committed order holds the request id (the claim waited for it, or ran
        # after it on SQLite's one writer), so it is there to read.
        [existing] = await self.database.fetch(BY_REQUEST, request_id=order.request_id)
        return _order(existing), False

    async def save(self, order: Order, lease_until: datetime | None) -> bool:
        saved = await self.database.execute(
            SAVE,
            **_state(order),
            order_id=order.order_id,
            version=order.version,
            lease_expires_at=lease_until,
        )
        if not saved:
            return False
        order.version += 1
        return True

    async def get(self, order_id: str) -> Order | None:
        rows = await self.database.fetch(BY_ID, order_id=order_id)
        return _order(rows[0]) if rows else None

    async def list_for_customer(
        self, customer_id: str, before: tuple[datetime, str] | None, limit: int
    ) -> list[Order]:
        if before is None:
            rows = await self.database.fetch(NEWEST, customer_id=customer_id, limit=limit)
        else:
            moment, order_id = before
            rows = await self.database.fetch(
                NEWEST_BEFORE, customer_id=customer_id, moment=moment, order_id=order_id, limit=limit
            )
        return [_order(row) for row in rows]

    async def stranded(self, now: datetime, limit: int) -> list[Order]:
        return [_order(row) for row in await self.database.fetch(STRANDED, now=now, limit=limit)]
