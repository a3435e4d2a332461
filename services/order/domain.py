"""Order's rules: the order aggregate and the state machine of its saga.

Pure Python: no gRPC, no SQL. Every transition returns nothing and changes the order in place;
the caller persists the order (with an optimistic version check) *before* taking the step the
new state announces, so a crash at any point leaves a state that says what to do next.

    PENDING/RESERVING --reserved--> PENDING/CHARGING --charged--> PENDING/COMMITTING --> CONFIRMED
          |                              |                               |
          +------------- compensate(outcome) -> PENDING/COMPENSATING ----+--> REJECTED | FAILED
    CONFIRMED --begin_cancel--> CONFIRMED/CANCELLING --> CANCELLED
    FAILED --retry--> PENDING/RESERVING (next attempt, fresh downstream keys)
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from services.runtime.errors import AlreadyExists, FailedPrecondition
from services.runtime.messages import MAX_CHARGE_MINOR_UNITS, Money, PricedLine


class OrderStatus(enum.Enum):
    PENDING = "PENDING"
    CONFIRMED = "CONFIRMED"
    REJECTED = "REJECTED"
    CANCELLED = "CANCELLED"
    FAILED = "FAILED"


class SagaStep(enum.Enum):
    """What the saga must do next. An order with a step is in flight; without one it is at rest."""

    RESERVING = "RESERVING"  # reserve stock (the call may or may not have reached inventory)
    CHARGING = "CHARGING"  # stock reserved and priced; charge the total
    COMMITTING = "COMMITTING"  # payment approved; commit the reservation
    COMPENSATING = "COMPENSATING"  # undo: void/refund the charge key, release the reservation
    CANCELLING = "CANCELLING"  # a confirmed order: refund the payment, restock


class DependencyCode(enum.Enum):
    """How a dependency failed; the CreateOrder reply carries the same status."""

    UNAVAILABLE = "UNAVAILABLE"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"


class Rejected(Exception):  # a business outcome, not an error
    """A dependency refused the order for a business reason (no stock, declined card)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class DependencyFailed(Exception):
    """A dependency could not answer (unreachable, out of time, or an unexpected reply)."""

    def __init__(self, dependency: str, code: DependencyCode, detail: str) -> None:
        super().__init__(f"{dependency}: {detail}")
        self.dependency = dependency
        self.code = code
        self.detail = detail


@dataclass(frozen=True)
class Item:
    product_id: str
    quantity: int


#: An item priced by inventory when its stock was reserved.
Line = PricedLine


TERMINAL = frozenset({OrderStatus.CONFIRMED, OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.FAILED})


@dataclass
class Order:
    order_id: str
    request_id: str
    customer_id: str
    request_fingerprint: str
    items: list[Item]
    create_time: datetime
    update_time: datetime
    status: OrderStatus = OrderStatus.PENDING
    step: SagaStep | None = SagaStep.RESERVING
    attempt: int = 1
    lines: list[Line] = field(default_factory=list)
    payment_id: str = ""
    rejection_reason: str = ""
    #: While compensating: the status the order ends in (REJECTED or FAILED).
    outcome: OrderStatus | None = None
    #: Whether compensation must void or refund the charge key (a charge may have been sent).
    undo_charge: bool = False
    #: For a FAILED order: how the dependency failed (the status a waiting caller gets).
    failure: DependencyCode | None = None
    version: int = 0

    # -- the downstream idempotency keys: derived, so retries and recovery reuse them -------------
    @property
    def reservation_id(self) -> str:
        # A failed attempt's reservation id stays released for good (inventory keeps the
        # tombstone), so each further attempt of the same order needs an id of its own.
        return self.order_id if self.attempt == 1 else f"{self.order_id}.r{self.attempt}"

    @property
    def charge_key(self) -> str:
        return f"order-{self.reservation_id}"

    @property
    def compensation_refund_key(self) -> str:
        return f"compensate-{self.reservation_id}"

    @property
    def cancel_refund_key(self) -> str:
        return f"cancel-{self.order_id}"

    @property
    def total(self) -> Money | None:
        return Money.total(line.line_total for line in self.lines)

    @property
    def in_flight(self) -> bool:
        return self.step is not None

    # -- transitions ----------------------------------------------------------------------------
    def replay(self, request_fingerprint: str) -> None:
        """Refuses a different request under this order's request id."""
        if request_fingerprint != self.request_fingerprint:
            raise AlreadyExists(
                "REQUEST_ID_REUSED",
                f"request id {self.request_id!r} was used for a different order",
                {"request_id": self.request_id, "order_id": self.order_id},
            )

    def reserved(self, lines: Sequence[Line], now: datetime) -> None:
        self._expect(SagaStep.RESERVING)
        self.lines = list(lines)
        self._at(SagaStep.CHARGING, now)

    def chargeable_total(self) -> Money:
        """The total to charge; a total payment would refuse is a business refusal, not a failure."""
        total = self.total
        assert total is not None, "priced: a reservation has at least one line"
        if total.minor_units > MAX_CHARGE_MINOR_UNITS:
            raise Rejected(
                f"total of {total.minor_units} {total.currency_code} minor units exceeds the largest charge"
            )
        return total

    def charged(self, payment_id: str, now: datetime) -> None:
        self._expect(SagaStep.CHARGING)
        self.payment_id = payment_id
        self._at(SagaStep.COMMITTING, now)

    def declined(self, payment_id: str, reason: str, now: datetime) -> None:
        """The card was declined: nothing was charged, so only the stock goes back."""
        self._expect(SagaStep.CHARGING)
        self.payment_id = payment_id
        self.compensate(OrderStatus.REJECTED, rejection_reason("payment declined", reason), now)
        self.undo_charge = False

    def committed(self, now: datetime) -> None:
        self._expect(SagaStep.COMMITTING)
        self.status = OrderStatus.CONFIRMED
        self._at(None, now)

    def compensate(
        self, outcome: OrderStatus, reason: str, now: datetime, failure: DependencyCode | None = None
    ) -> None:
        """Starts undoing the order; it ends REJECTED (a business refusal) or FAILED."""
        if outcome not in (OrderStatus.REJECTED, OrderStatus.FAILED):
            raise ValueError(f"a compensated order ends REJECTED or FAILED, not {outcome}")
        if self.step in (None, SagaStep.CANCELLING):
            raise ValueError(f"order {self.order_id} is not being created")
        if self.step is SagaStep.COMPENSATING:
            return
        self.undo_charge = self.step in (SagaStep.CHARGING, SagaStep.COMMITTING)
        self.outcome = outcome
        self.rejection_reason = reason
        self.failure = failure
        self._at(SagaStep.COMPENSATING, now)

    def compensated(self, now: datetime) -> None:
        self._expect(SagaStep.COMPENSATING)
        assert self.outcome is not None
        self.status = self.outcome
        self.outcome = None
        self._at(None, now)

    def retry(self, now: datetime) -> None:
        """A FAILED order asked again under its request id: the saga starts over."""
        if self.status is not OrderStatus.FAILED:
            raise ValueError(f"only a FAILED order is retried, not {self.status.value}")
        self.attempt += 1
        self.status = OrderStatus.PENDING
        self.lines = []
        self.payment_id = ""
        self.rejection_reason = ""
        self.failure = None
        self.undo_charge = False
        self._at(SagaStep.RESERVING, now)

    def begin_cancel(self, now: datetime) -> bool:
        """True if the cancellation must run now; False if the order is already CANCELLED."""
        if self.status is OrderStatus.CANCELLED:
            return False
        if self.status is not OrderStatus.CONFIRMED:
            raise FailedPrecondition(
                "ORDER_NOT_CANCELLABLE",
                f"order {self.order_id!r} is {self.status.value}; only a CONFIRMED order can be cancelled",
                {"status": f"ORDER_STATUS_{self.status.value}", "order_id": self.order_id},
            )
        self._at(SagaStep.CANCELLING, now)
        return True

    def cancelled(self, now: datetime) -> None:
        self._expect(SagaStep.CANCELLING)
        self.status = OrderStatus.CANCELLED
        self._at(None, now)

    def _expect(self, step: SagaStep) -> None:
        if self.step is not step:
            raise ValueError(f"order {self.order_id} is at {self.step}, not {step}")

    def _at(self, step: SagaStep | None, now: datetime) -> None:
        self.step = step
        self.update_time = now


def rejection_reason(code: str, detail: str) -> str:
    """A refusal in words, bounded: `detail` comes from another service."""
    return f"{code}: {detail}"[:200]
