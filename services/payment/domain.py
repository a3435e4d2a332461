"""Payment's rules: the simulated card processor, payments and what a refund may take back.

Pure Python: no gRPC, no SQL.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from services.runtime.errors import (
    AlreadyExists,
    FailedPrecondition,
    FieldViolation,
    InvalidArgument,
    Unavailable,
)
from services.runtime.messages import Money

#: Stripe's test tokens and what the simulated processor does with them. Deterministic on
#: purpose: a test (or a demo) picks the outcome by picking the token.
APPROVING_TOKENS = frozenset({"tok_visa", "tok_visa_debit", "tok_mastercard", "tok_amex"})
DECLINING_TOKENS = {
    "tok_chargeDeclined": "card_declined",
    "tok_chargeDeclinedInsufficientFunds": "insufficient_funds",
    "tok_chargeDeclinedExpiredCard": "expired_card",
    "tok_chargeDeclinedIncorrectCvc": "incorrect_cvc",
}
#: Fails the way a processor outage does: UNAVAILABLE, nothing recorded, safe to retry.
UNAVAILABLE_TOKEN = "tok_unavailable"


def authorize(payment_token: str) -> str | None:
    """The processor's answer: None approves, a string is the decline reason.

    Raises Unavailable for the outage token. A token the processor does not know is declined
    (as a real processor declines an unknown card), not an error: it is well-formed input.
    """
    if payment_token == UNAVAILABLE_TOKEN:
        raise Unavailable("PROCESSOR_UNAVAILABLE", "the card processor is unavailable; retry later")
    if payment_token in APPROVING_TOKENS:
        return None
    return DECLINING_TOKENS.get(payment_token, "unknown_token")


class PaymentStatus(enum.Enum):
    APPROVED = "APPROVED"
    DECLINED = "DECLINED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    REFUNDED = "REFUNDED"
    #: Internal only: a charge key voided by Refund before any charge was made.
    VOIDED = "VOIDED"


@dataclass(frozen=True)
class Payment:
    payment_id: str
    idempotency_key: str
    order_id: str
    amount: Money
    refunded: Money
    status: PaymentStatus
    decline_reason: str
    request_fingerprint: str
    create_time: datetime
    update_time: datetime

    @property
    def refundable(self) -> Money:
        """What was charged and not yet given back (nothing for a decline)."""
        if self.status is PaymentStatus.DECLINED:
            return Money.zero(self.amount.currency_code)
        return self.amount - self.refunded

    def replay(self, request_fingerprint: str) -> Payment:
        """The answer to a repeated Charge with this payment's key."""
        if self.status is PaymentStatus.VOIDED:
            raise FailedPrecondition(
                "CHARGE_VOIDED",
                f"charge key {self.idempotency_key!r} was voided by a refund; nothing was charged",
                {"idempotency_key": self.idempotency_key},
            )
        if request_fingerprint != self.request_fingerprint:
            raise key_reused(self.idempotency_key)
        return self

    def refund(self, requested: Money | None, now: datetime) -> tuple[Payment, Money]:
        """The payment after refunding `requested` (None: all that is left), and the amount."""
        if requested is not None and requested.currency_code != self.amount.currency_code:
            raise InvalidArgument(
                [
                    FieldViolation(
                        "amount.currency_code", f"must be the payment's currency {self.amount.currency_code}"
                    )
                ]
            )
        amount = self.refundable if requested is None else requested
        if amount > self.refundable:
            raise FailedPrecondition(
                "REFUND_EXCEEDS_CHARGE",
                f"refund of {amount.minor_units} exceeds the {self.refundable.minor_units} left to refund",
                {"payment_id": self.payment_id},
            )
        if amount.minor_units == 0:
            return self, amount
        refunded = self.refunded + amount
        status = PaymentStatus.REFUNDED if refunded == self.amount else PaymentStatus.PARTIALLY_REFUNDED
        return replace(self, refunded=refunded, status=status, update_time=now), amount


def key_reused(key: str) -> AlreadyExists:
    return AlreadyExists(
        "IDEMPOTENCY_KEY_REUSED",
        f"idempotency key {key!r} was used for a different request",
        {"idempotency_key": key},
    )
