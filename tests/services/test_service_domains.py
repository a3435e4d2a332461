"""The three domains' rules on their own: no server, no database."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from services.inventory.domain import Reservation, ReservationStatus, ReservedLine, StockRequest
from services.order.domain import DependencyCode, Item, Line, Order, OrderStatus, Rejected, SagaStep
from services.payment.domain import Payment, PaymentStatus, authorize
from services.runtime.errors import AlreadyExists, FailedPrecondition, InvalidArgument, Unavailable
from services.runtime.messages import CurrencyMismatch, Money

NOW = datetime(2026, 1, 1, tzinfo=UTC)
USD = "USD"


def test_money_never_mixes_currencies() -> None:
    assert Money(USD, 250) * 3 + Money(USD, 50) == Money(USD, 800)
    assert Money.total([]) is None
    with pytest.raises(CurrencyMismatch):
        Money(USD, 1) + Money("EUR", 1)
    assert Money(USD, 1) < Money(USD, 2) <= Money(USD, 2)
    with pytest.raises(CurrencyMismatch):
        assert Money(USD, 1) < Money("EUR", 2)


# -- inventory ----------------------------------------------------------------------------------
def _reservation(status: ReservationStatus = ReservationStatus.RESERVED) -> Reservation:
    lines = [ReservedLine("sku-a", "A", 2, Money(USD, 100)), ReservedLine("sku-b", "B", 1, Money(USD, 50))]
    return Reservation("o-1", status, NOW, NOW, lines)


def test_reservation_total_and_replay() -> None:
    reservation = _reservation()
    assert reservation.total == Money(USD, 250)
    assert reservation.replay([StockRequest("sku-a", 2), StockRequest("sku-b", 1)]) is reservation
    with pytest.raises(AlreadyExists) as caught:
        reservation.replay([StockRequest("sku-a", 3)])
    assert caught.value.reason == "RESERVATION_ID_REUSED"


def test_a_reservation_released_before_it_was_made_stays_released() -> None:
    tombstone = Reservation("o-1", ReservationStatus.RELEASED, NOW, NOW)
    assert tombstone.replay([StockRequest("sku-a", 1)]) is tombstone
    assert tombstone.release(NOW) == []


def test_commit_and_release_are_idempotent_and_ordered() -> None:
    reservation = _reservation()
    assert reservation.commit(NOW) is True
    assert reservation.commit(NOW) is False
    assert [line.product_id for line in reservation.release(NOW)] == ["sku-a", "sku-b"]  # restock a cancel
    assert reservation.release(NOW) == []
    with pytest.raises(FailedPrecondition) as caught:
        reservation.commit(NOW)
    assert caught.value.reason == "RESERVATION_RELEASED"


# -- payment ------------------------------------------------------------------------------------
def test_processor_is_deterministic() -> None:
    assert authorize("tok_visa") is None
    assert authorize("tok_chargeDeclined") == "card_declined"
    assert authorize("tok_nobody_knows") == "unknown_token"
    with pytest.raises(Unavailable):
        authorize("tok_unavailable")


def _payment(status: PaymentStatus = PaymentStatus.APPROVED, refunded: int = 0) -> Payment:
    return Payment("p-1", "k-1", "o-1", Money(USD, 1000), Money(USD, refunded), status, "", "f", NOW, NOW)


def test_refunds_never_exceed_the_charge() -> None:
    payment, amount = _payment().refund(Money(USD, 400), NOW)
    assert (payment.status, payment.refunded, amount) == (PaymentStatus.PARTIALLY_REFUNDED, Money(USD, 400),
                                                          Money(USD, 400))  # fmt: skip
    payment, amount = payment.refund(None, NOW)
    assert (payment.status, payment.refunded, amount) == (
        PaymentStatus.REFUNDED,
        Money(USD, 1000),
        Money(USD, 600),
    )
    with pytest.raises(FailedPrecondition) as caught:
        payment.refund(Money(USD, 1), NOW)
    assert caught.value.reason == "REFUND_EXCEEDS_CHARGE"
    with pytest.raises(InvalidArgument):
        _payment().refund(Money("EUR", 1), NOW)


def test_a_declined_payment_has_nothing_to_refund() -> None:
    declined = _payment(PaymentStatus.DECLINED)
    assert declined.refund(None, NOW) == (declined, Money(USD, 0))
    with pytest.raises(FailedPrecondition):
        declined.refund(Money(USD, 1), NOW)


def test_a_charge_key_replays_or_refuses() -> None:
    assert _payment().replay("f").payment_id == "p-1"
    with pytest.raises(AlreadyExists):
        _payment().replay("other")
    with pytest.raises(FailedPrecondition) as caught:
        _payment(PaymentStatus.VOIDED).replay("f")
    assert caught.value.reason == "CHARGE_VOIDED"


# -- order --------------------------------------------------------------------------------------
def _order() -> Order:
    return Order("o-1", "r-1", "c-1", "f", [Item("sku-a", 2)], NOW, NOW)


def test_the_happy_saga() -> None:
    order = _order()
    assert (order.status, order.step, order.reservation_id, order.charge_key) == (
        OrderStatus.PENDING, SagaStep.RESERVING, "o-1", "order-o-1",
    )  # fmt: skip
    order.reserved([Line("sku-a", "A", 2, Money(USD, 100))], NOW)
    assert order.total == Money(USD, 200)
    order.charged("p-1", NOW)
    order.committed(NOW)
    assert (order.status, order.step, order.in_flight) == (OrderStatus.CONFIRMED, None, False)


def test_compensation_undoes_the_charge_only_if_one_may_exist() -> None:
    early = _order()
    early.compensate(OrderStatus.REJECTED, "insufficient stock", NOW)
    assert (early.step, early.undo_charge) == (SagaStep.COMPENSATING, False)
    early.compensated(NOW)
    assert early.status is OrderStatus.REJECTED

    late = _order()
    late.reserved([Line("sku-a", "A", 2, Money(USD, 100))], NOW)
    late.compensate(OrderStatus.FAILED, "payment: UNAVAILABLE", NOW, DependencyCode.UNAVAILABLE)
    assert late.undo_charge is True

    declined = _order()
    declined.reserved([Line("sku-a", "A", 2, Money(USD, 100))], NOW)
    declined.declined("p-9", "card_declined", NOW)
    assert (declined.undo_charge, declined.outcome, declined.payment_id) == (
        False,
        OrderStatus.REJECTED,
        "p-9",
    )


def test_a_failed_order_retries_with_fresh_keys() -> None:
    order = _order()
    order.compensate(OrderStatus.FAILED, "inventory: UNAVAILABLE", NOW, DependencyCode.UNAVAILABLE)
    order.compensated(NOW)
    order.retry(NOW)
    assert (order.status, order.step, order.attempt) == (OrderStatus.PENDING, SagaStep.RESERVING, 2)
    assert (order.reservation_id, order.charge_key) == ("o-1.r2", "order-o-1.r2")
    with pytest.raises(ValueError, match="only a FAILED order"):
        order.retry(NOW)


def test_only_a_confirmed_order_is_cancelled() -> None:
    order = _order()
    with pytest.raises(FailedPrecondition) as caught:
        order.begin_cancel(NOW)
    assert (caught.value.reason, caught.value.metadata["status"]) == (
        "ORDER_NOT_CANCELLABLE",
        "ORDER_STATUS_PENDING",
    )
    order.reserved([Line("sku-a", "A", 2, Money(USD, 100))], NOW)
    order.charged("p-1", NOW)
    order.committed(NOW)
    assert order.begin_cancel(NOW) is True
    order.cancelled(NOW)
    assert order.begin_cancel(NOW) is False
    assert order.status is OrderStatus.CANCELLED


def test_a_request_id_names_one_request() -> None:
    with pytest.raises(AlreadyExists) as caught:
        _order().replay("another fingerprint")
    assert caught.value.reason == "REQUEST_ID_REUSED"


def test_a_total_payment_would_refuse_is_a_rejection() -> None:
    order = _order()
    order.reserved([Line("sku-a", "A", 1000, Money(USD, 100_001))], NOW)
    with pytest.raises(Rejected, match="exceeds the largest charge"):
        order.chargeable_total()
    small = _order()
    small.reserved([Line("sku-a", "A", 2, Money(USD, 100))], NOW)
    assert small.chargeable_total() == Money(USD, 200)
