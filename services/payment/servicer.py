"""PaymentService over gRPC: validate, call the use case, map to proto. Nothing else."""

from __future__ import annotations

import grpc

from services.payment.domain import Payment
from services.payment.payments import ChargeRequest, Payments, RefundRequest
from services.runtime.messages import MAX_CHARGE_MINOR_UNITS, Money, timestamp
from services.runtime.validation import Violations, require_identifier
from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc

_STATUS = {
    "APPROVED": pb.PAYMENT_STATUS_APPROVED,
    "DECLINED": pb.PAYMENT_STATUS_DECLINED,
    "PARTIALLY_REFUNDED": pb.PAYMENT_STATUS_PARTIALLY_REFUNDED,
    "REFUNDED": pb.PAYMENT_STATUS_REFUNDED,
}


def payment_message(payment: Payment) -> pb.Payment:
    return pb.Payment(
        payment_id=payment.payment_id,
        idempotency_key=payment.idempotency_key,
        order_id=payment.order_id,
        amount=payment.amount.to_proto(),
        refunded=payment.refunded.to_proto(),
        status=_STATUS[payment.status.value],
        decline_reason=payment.decline_reason,
        create_time=timestamp(payment.create_time),
        update_time=timestamp(payment.update_time),
    )


class PaymentServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, payments: Payments) -> None:
        self.payments = payments

    async def Charge(
        self,
        request: pb.ChargeRequest,
        context: grpc.aio.ServicerContext[pb.ChargeRequest, pb.ChargeResponse],
    ) -> pb.ChargeResponse:
        violations = Violations()
        violations.identifier("idempotency_key", request.idempotency_key)
        violations.money(
            "amount",
            request.amount if request.HasField("amount") else None,
            low=1,
            high=MAX_CHARGE_MINOR_UNITS,
        )
        violations.token("payment_token", request.payment_token)
        violations.identifier("order_id", request.order_id)
        violations.raise_if_any()
        payment = await self.payments.charge(
            ChargeRequest(
                idempotency_key=request.idempotency_key,
                order_id=request.order_id,
                amount=Money.from_proto(request.amount),
                payment_token=request.payment_token,
            )
        )
        return pb.ChargeResponse(payment=payment_message(payment))

    async def Refund(
        self,
        request: pb.RefundRequest,
        context: grpc.aio.ServicerContext[pb.RefundRequest, pb.RefundResponse],
    ) -> pb.RefundResponse:
        violations = Violations()
        violations.identifier("idempotency_key", request.idempotency_key)
        target = request.WhichOneof("payment")
        if target is None:
            violations.add("payment_id", "exactly one of payment_id and charge_idempotency_key is required")
        else:
            violations.identifier(target, getattr(request, target))
        if request.HasField("amount"):
            violations.money("amount", request.amount, low=1, high=MAX_CHARGE_MINOR_UNITS)
        violations.text("reason", request.reason, max_length=200)
        violations.raise_if_any()
        result = await self.payments.refund(
            RefundRequest(
                idempotency_key=request.idempotency_key,
                payment_id=request.payment_id if target == "payment_id" else None,
                charge_key=request.charge_idempotency_key if target == "charge_idempotency_key" else None,
                amount=Money.from_proto(request.amount) if request.HasField("amount") else None,
                reason=request.reason,
            )
        )
        return pb.RefundResponse(
            payment=None if result.payment is None else payment_message(result.payment),
            refunded=None if result.refunded is None else result.refunded.to_proto(),
        )

    async def GetPayment(
        self,
        request: pb.GetPaymentRequest,
        context: grpc.aio.ServicerContext[pb.GetPaymentRequest, pb.GetPaymentResponse],
    ) -> pb.GetPaymentResponse:
        payment = await self.payments.get(require_identifier("payment_id", request.payment_id))
        return pb.GetPaymentResponse(payment=payment_message(payment))
