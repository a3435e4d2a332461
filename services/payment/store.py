"""Payment's tables and repository: the only module that speaks SQL for payment."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Column, MetaData, String, Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.payment.domain import Payment, PaymentStatus
from services.runtime.messages import Money
from services.runtime.persistence import UtcDateTime, insert_if_absent

metadata = MetaData()

payments = Table(
    "payments",
    metadata,
    Column("payment_id", String(64), primary_key=True),
    # Unique: the key is the claim that makes concurrent identical charges charge once.
    Column("idempotency_key", String(64), nullable=False, unique=True),
    Column("order_id", String(64), nullable=False),
    Column("currency_code", String(3), nullable=False),
    Column("amount_minor_units", BigInteger, nullable=False),
    Column("refunded_minor_units", BigInteger, nullable=False),
    Column("status", String(24), nullable=False),
    Column("decline_reason", String(64), nullable=False),
    Column("request_fingerprint", String(64), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
    Column("update_time", UtcDateTime, nullable=False),
)

refunds = Table(
    "refunds",
    metadata,
    Column("idempotency_key", String(64), primary_key=True),
    Column("request_fingerprint", String(64), nullable=False),
    # Null when the refund voided a charge key under which nothing had been charged.
    Column("payment_id", String(64), nullable=True),
    Column("currency_code", String(3), nullable=False),
    Column("refunded_minor_units", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("create_time", UtcDateTime, nullable=False),
)


@dataclass(frozen=True)
class RefundRecord:
    idempotency_key: str
    request_fingerprint: str
    payment_id: str | None
    refunded: Money


def _payment(row: Any) -> Payment:
    return Payment(
        payment_id=row.payment_id,
        idempotency_key=row.idempotency_key,
        order_id=row.order_id,
        amount=Money(row.currency_code, row.amount_minor_units),
        refunded=Money(row.currency_code, row.refunded_minor_units),
        status=PaymentStatus(row.status),
        decline_reason=row.decline_reason,
        request_fingerprint=row.request_fingerprint,
        create_time=row.create_time,
        update_time=row.update_time,
    )


class PaymentRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def claim_charge(self, payment: Payment) -> bool:
        """Records the payment unless its idempotency key exists; True if recorded."""
        return await insert_if_absent(
            self.session,
            payments,
            {
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
            },
        )

    async def by_key(self, idempotency_key: str, *, for_update: bool = False) -> Payment | None:
        return await self._one(payments.c.idempotency_key == idempotency_key, for_update)

    async def by_id(self, payment_id: str, *, for_update: bool = False) -> Payment | None:
        return await self._one(payments.c.payment_id == payment_id, for_update)

    async def _one(self, condition: Any, for_update: bool) -> Payment | None:
        query = select(payments).where(condition)
        if for_update:
            query = query.with_for_update()
        row = (await self.session.execute(query)).first()
        return None if row is None else _payment(row)

    async def save_refunded(self, payment: Payment) -> None:
        await self.session.execute(
            update(payments)
            .where(payments.c.payment_id == payment.payment_id)
            .values(
                refunded_minor_units=payment.refunded.minor_units,
                status=payment.status.value,
                update_time=payment.update_time,
            )
        )

    async def claim_refund(self, record: RefundRecord, reason: str, now: Any) -> bool:
        return await insert_if_absent(
            self.session,
            refunds,
            {
                "idempotency_key": record.idempotency_key,
                "request_fingerprint": record.request_fingerprint,
                "payment_id": record.payment_id,
                "currency_code": record.refunded.currency_code,
                "refunded_minor_units": record.refunded.minor_units,
                "reason": reason,
                "create_time": now,
            },
        )

    async def save_refund(self, record: RefundRecord) -> None:
        await self.session.execute(
            update(refunds)
            .where(refunds.c.idempotency_key == record.idempotency_key)
            .values(
                payment_id=record.payment_id,
                currency_code=record.refunded.currency_code,
                refunded_minor_units=record.refunded.minor_units,
            )
        )

    async def refund_by_key(self, idempotency_key: str) -> RefundRecord | None:
        row = (
            await self.session.execute(select(refunds).where(refunds.c.idempotency_key == idempotency_key))
        ).first()
        if row is None:
            return None
        return RefundRecord(
            row.idempotency_key,
            row.request_fingerprint,
            row.payment_id,
            Money(row.currency_code, row.refunded_minor_units),
        )
