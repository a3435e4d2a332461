"""Payment's use cases: Charge and Refund, each one transaction, each idempotent per key."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from prometheus_client import Counter

from services.payment.domain import Payment, PaymentStatus, authorize, key_reused
from services.payment.store import PaymentRepository, PaymentStore, RefundRecord
from services.runtime.errors import NotFound, Unavailable
from services.runtime.messages import Money
from services.runtime.persistence import fingerprint, utc_now

PAYMENTS = Counter(
    "shop_payments_total", "Charge outcomes: approved, declined, unavailable (processor outage).", ["outcome"]
)
REFUNDS = Counter(
    "shop_refunds_total",
    "Refund outcomes: refunded, nothing (nothing left), voided (no charge yet).",
    ["outcome"],
)


@dataclass(frozen=True)
class ChargeRequest:
    idempotency_key: str
    order_id: str
    amount: Money
    payment_token: str

    @property
    def fingerprint(self) -> str:
        return fingerprint(
            self.order_id, self.amount.currency_code, self.amount.minor_units, self.payment_token
        )


@dataclass(frozen=True)
class RefundRequest:
    idempotency_key: str
    payment_id: str | None  # exactly one of payment_id and charge_key is set
    charge_key: str | None
    amount: Money | None
    reason: str

    @property
    def fingerprint(self) -> str:
        amount = (None, None) if self.amount is None else (self.amount.currency_code, self.amount.minor_units)
        return fingerprint(self.payment_id, self.charge_key, *amount)


@dataclass(frozen=True)
class RefundResult:
    payment: Payment | None  # None: the charge key is voided, nothing had been charged
    refunded: Money | None  # None only when no currency is known (a voided key, no amount given)


class Payments:
    def __init__(self, store: PaymentStore) -> None:
        self.store = store

    async def get(self, payment_id: str) -> Payment:
        payment = await self.store.by_id(payment_id)
        if payment is None or payment.status is PaymentStatus.VOIDED:
            raise NotFound("payment", payment_id)
        return payment

    async def charge(self, request: ChargeRequest) -> Payment:
        try:
            # The simulated processor has no side effects, so it may answer inside the
            # transaction; a real one would be called between a "pending" and a final write.
            decline_reason = authorize(request.payment_token)
        except Unavailable:
            PAYMENTS.labels("unavailable").inc()
            # A key already used answers as it always does; only a new charge hits the outage.
            existing = await self.store.by_key(request.idempotency_key)
            if existing is None:
                raise
            return existing.replay(request.fingerprint)
        now = utc_now()
        payment = Payment(
            payment_id=str(uuid.uuid4()),
            idempotency_key=request.idempotency_key,
            order_id=request.order_id,
            amount=request.amount,
            refunded=Money.zero(request.amount.currency_code),
            status=PaymentStatus.APPROVED if decline_reason is None else PaymentStatus.DECLINED,
            decline_reason=decline_reason or "",
            request_fingerprint=request.fingerprint,
            create_time=now,
            update_time=now,
        )
        # One INSERT: the key's claim. Losing it means a committed charge holds the key (the claim
        # waited for it, or ran after it on SQLite's one writer): it answers, if this is a retry.
        if not await self.store.claim_charge(payment):
            existing = await self.store.by_key(request.idempotency_key)
            assert existing is not None, "claimed by a committed transaction"
            return existing.replay(request.fingerprint)
        PAYMENTS.labels(payment.status.value.lower()).inc()
        return payment

    async def refund(self, request: RefundRequest) -> RefundResult:
        now = utc_now()
        currency = "" if request.amount is None else request.amount.currency_code
        record = RefundRecord(request.idempotency_key, request.fingerprint, None, Money(currency, 0))

        async def refund(repository: PaymentRepository) -> tuple[RefundResult, str | None]:
            # The refund key is claimed first: the write that serialises retries of this refund.
            if not await repository.claim_refund(record, request.reason, now):
                return await self._replay_refund(repository, request), None
            payment = await self._target(repository, request, now)
            if payment is None:
                return RefundResult(None, record.refunded if currency else None), "voided"
            payment, refunded = payment.refund(request.amount, now)
            await repository.save_refunded(payment)
            await repository.save_refund(
                RefundRecord(record.idempotency_key, record.request_fingerprint, payment.payment_id, refunded)
            )
            return RefundResult(payment, refunded), "refunded" if refunded.minor_units else "nothing"

        result, outcome = await self.store.transaction(refund)
        if outcome is not None:
            REFUNDS.labels(outcome).inc()
        return result

    @staticmethod
    async def _target(repository: PaymentRepository, request: RefundRequest, now: datetime) -> Payment | None:
        """The (locked) payment to refund; None when the charge key had no charge (now voided)."""
        if request.payment_id is not None:
            payment = await repository.by_id(request.payment_id, for_update=True)
            if payment is None or payment.status is PaymentStatus.VOIDED:
                raise NotFound("payment", request.payment_id)
            return payment
        assert request.charge_key is not None
        void = Payment(
            payment_id=str(uuid.uuid4()),
            idempotency_key=request.charge_key,
            order_id="",
            amount=Money("", 0),
            refunded=Money("", 0),
            status=PaymentStatus.VOIDED,
            decline_reason="",
            request_fingerprint="",
            create_time=now,
            update_time=now,
        )
        # Voiding is a claim on the charge key too: of a late Charge and this refund, the
        # database lets exactly one have the key.
        if await repository.claim_charge(void):
            return None
        payment = await repository.by_key(request.charge_key, for_update=True)
        assert payment is not None, "claimed by a committed transaction"
        return None if payment.status is PaymentStatus.VOIDED else payment

    @staticmethod
    async def _replay_refund(repository: PaymentRepository, request: RefundRequest) -> RefundResult:
        record = await repository.refund_by_key(request.idempotency_key)
        assert record is not None, "claimed by a committed transaction"
        if record.request_fingerprint != request.fingerprint:
            raise key_reused(request.idempotency_key)
        payment = None if record.payment_id is None else await repository.by_id(record.payment_id)
        return RefundResult(payment, record.refunded if record.refunded.currency_code else None)
