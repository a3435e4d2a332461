"""Payment's store: the only module that speaks SQL for payment (the tables are declared in
tables.py, for the migrations).

`PaymentStore` runs the statements that are a transaction on their own (a charge is one INSERT:
one round trip on PostgreSQL, one hand-off on SQLite) and opens bigger transactions (a refund),
inside which the use cases (payments.py) work through a `PaymentRepository`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

from services.payment.domain import Payment, PaymentStatus
from services.runtime.database import Database, Row, Statement, Store, Transaction
from services.runtime.messages import Money
from services.runtime.persistence import utc

T = TypeVar("T")

_PAYMENT = (
    "payment_id, idempotency_key, order_id, currency_code, amount_minor_units, refunded_minor_units,"
    " status, decline_reason, request_fingerprint, create_time, update_time"
)
_REFUND = "idempotency_key, request_fingerprint, payment_id, currency_code, refunded_minor_units"

#: The charge key's claim: of two transactions inserting the same key, exactly one gets a row back.
CLAIM_CHARGE = Statement(
    f"INSERT INTO payments ({_PAYMENT}) VALUES (:payment_id, :idempotency_key, :order_id,"
    " :currency_code, :amount_minor_units, :refunded_minor_units, :status, :decline_reason,"
    " :request_fingerprint, :create_time, :update_time) ON CONFLICT DO NOTHING RETURNING payment_id"
)
BY_KEY = Statement(f"SELECT {_PAYMENT} FROM payments WHERE idempotency_key = :key")
BY_KEY_LOCKED = Statement(BY_KEY.sql, lock=True)
BY_ID = Statement(f"SELECT {_PAYMENT} FROM payments WHERE payment_id = :payment_id")
BY_ID_LOCKED = Statement(BY_ID.sql, lock=True)
SAVE_REFUNDED = Statement(
    "UPDATE payments SET refunded_minor_units = :refunded_minor_units, status = :status,"
    " update_time = :update_time WHERE payment_id = :payment_id"
)
CLAIM_REFUND = Statement(
    f"INSERT INTO refunds ({_REFUND}, reason, create_time) VALUES (:idempotency_key,"
    " :request_fingerprint, :payment_id, :currency_code, :refunded_minor_units, :reason, :create_time)"
    " ON CONFLICT DO NOTHING RETURNING idempotency_key"
)
SAVE_REFUND = Statement(
    "UPDATE refunds SET payment_id = :payment_id, currency_code = :currency_code,"
    " refunded_minor_units = :refunded_minor_units WHERE idempotency_key = :idempotency_key"
)
REFUND_BY_KEY = Statement(f"SELECT {_REFUND} FROM refunds WHERE idempotency_key = :idempotency_key")
STATEMENTS = (
    CLAIM_CHARGE, BY_KEY, BY_KEY_LOCKED, BY_ID, BY_ID_LOCKED, SAVE_REFUNDED, CLAIM_REFUND, SAVE_REFUND,
    REFUND_BY_KEY,
)  # fmt: skip


@dataclass(frozen=True)
class RefundRecord:
    idempotency_key: str
    request_fingerprint: str
    payment_id: str | None
    refunded: Money


def _payment(row: Row) -> Payment:
    return Payment(
        payment_id=row["payment_id"],
        idempotency_key=row["idempotency_key"],
        order_id=row["order_id"],
        amount=Money(row["currency_code"], row["amount_minor_units"]),
        refunded=Money(row["currency_code"], row["refunded_minor_units"]),
        status=PaymentStatus(row["status"]),
        decline_reason=row["decline_reason"],
        request_fingerprint=row["request_fingerprint"],
        create_time=utc(row["create_time"]),
        update_time=utc(row["update_time"]),
    )


def _charge_values(payment: Payment) -> dict[str, Any]:
    return {
        "payment_id": payment.payment_id,
        "idempotency_key": payment.idempotency_key,
        "order_id": payment.order_id,
        "currency_code": payment.amount.currency_code,
        "amount_minor_units": payment.amount.minor_units,
        "refunded_minor_units": payment.refunded.minor_units,
        "status": payment.status.value,
        "decline_reason": payment.decline_reason,
        "request_fingerprint": payment.request_fingerprint,
        "create_time": payment.create_time,
        "update_time": payment.update_time,
    }


class PaymentRepository:
    """Payments and refunds inside one transaction."""

    def __init__(self, tx: Transaction) -> None:
        self.tx = tx

    async def claim_charge(self, payment: Payment) -> bool:
        """Records the payment unless its idempotency key exists; True if recorded."""
        return await self.tx.row(CLAIM_CHARGE, **_charge_values(payment)) is not None

    async def by_key(self, idempotency_key: str, *, for_update: bool = False) -> Payment | None:
        row = await self.tx.row(BY_KEY_LOCKED if for_update else BY_KEY, key=idempotency_key)
        return None if row is None else _payment(row)

    async def by_id(self, payment_id: str, *, for_update: bool = False) -> Payment | None:
        row = await self.tx.row(BY_ID_LOCKED if for_update else BY_ID, payment_id=payment_id)
        return None if row is None else _payment(row)

    async def save_refunded(self, payment: Payment) -> None:
        await self.tx.execute(
            SAVE_REFUNDED,
            payment_id=payment.payment_id,
            refunded_minor_units=payment.refunded.minor_units,
            status=payment.status.value,
            update_time=payment.update_time,
        )

    async def claim_refund(self, record: RefundRecord, reason: str, now: datetime) -> bool:
        row = await self.tx.row(
            CLAIM_REFUND,
            idempotency_key=record.idempotency_key,
            request_fingerprint=record.request_fingerprint,
            payment_id=record.payment_id,
            currency_code=record.refunded.currency_code,
            refunded_minor_units=record.refunded.minor_units,
            reason=reason,
            create_time=now,
        )
        return row is not None

    async def save_refund(self, record: RefundRecord) -> None:
        await self.tx.execute(
            SAVE_REFUND,
            idempotency_key=record.idempotency_key,
            payment_id=record.payment_id,
            currency_code=record.refunded.currency_code,
            refunded_minor_units=record.refunded.minor_units,
        )

    async def refund_by_key(self, idempotency_key: str) -> RefundRecord | None:
        row = await self.tx.row(REFUND_BY_KEY, idempotency_key=idempotency_key)
        if row is None:
            return None
        return RefundRecord(
            row["idempotency_key"],
            row["request_fingerprint"],
            row["payment_id"],
            Money(row["currency_code"], row["refunded_minor_units"]),
        )


class PaymentStore(Store[PaymentRepository]):
    """The statements that are a transaction on their own; `transaction(work)` for bigger ones."""

    def __init__(self, database: Database) -> None:
        super().__init__(database, PaymentRepository)

    async def by_id(self, payment_id: str) -> Payment | None:
        rows = await self.database.fetch(BY_ID, payment_id=payment_id)
        return _payment(rows[0]) if rows else None

    async def by_key(self, idempotency_key: str) -> Payment | None:
        rows = await self.database.fetch(BY_KEY, key=idempotency_key)
        return _payment(rows[0]) if rows else None

    async def claim_charge(self, payment: Payment) -> bool:
        """As PaymentRepository.claim_charge, as a transaction of its own."""
        return bool(await self.database.execute(CLAIM_CHARGE, **_charge_values(payment)))
