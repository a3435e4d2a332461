"""A test-only service served through the real `serve()`: PaymentService stubs, probe behaviour.

`Charge` does what its `payment_token` names (raise each domain error, sleep, touch the
database, call a downstream PaymentService); `GetPayment` reports what the call received
(metadata, remaining time) as JSON in `decline_reason`, so a test can see what an outbound
call carried. The real services are tested against the same runtime in tests/services.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc

from services.payment.declaration import DECLARATION as PAYMENT
from services.runtime import errors
from services.runtime.database import Statement
from services.runtime.server import Registration, ServiceContext, ServiceDefinition
from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc

ERRORS: dict[str, errors.ShopError] = {
    "tok_invalid": errors.InvalidArgument(
        [
            errors.FieldViolation("amount.currency_code", "must be 3 letters"),
            errors.FieldViolation("order_id", "bad"),
        ]
    ),
    "tok_notfound": errors.NotFound("payment", "p-404"),
    "tok_precondition": errors.FailedPrecondition("CHARGE_VOIDED", "the key was voided", {"key": "k-1"}),
    "tok_exists": errors.AlreadyExists("IDEMPOTENCY_KEY_REUSED", "the key was used for another charge"),
    "tok_unavailable": errors.Unavailable("PROCESSOR_UNAVAILABLE", "processor down", retry_after_seconds=1.5),
    "tok_deadline": errors.DeadlineExceeded("PROCESSOR_TIMEOUT", "processor too slow"),
}


PING = Statement("SELECT 1")


class ProbeServicer(payment_pb2_grpc.PaymentServiceServicer):
    def __init__(self, context: ServiceContext) -> None:
        self.context = context

    async def Charge(self, request: pb.ChargeRequest, context: grpc.aio.ServicerContext) -> pb.ChargeResponse:
        token = request.payment_token
        if token in ERRORS:
            raise ERRORS[token]
        if token == "tok_crash":
            raise RuntimeError("a bug with a secret in its message")
        if token.startswith("tok_sleep_"):
            await asyncio.sleep(int(token.removeprefix("tok_sleep_")) / 1000)
        if token == "tok_database":
            await self.context.database.fetch(PING)
        if token == "tok_forward":
            downstream = payment_pb2_grpc.PaymentServiceStub(self.context.channel("payment"))
            reply = await downstream.GetPayment(
                pb.GetPaymentRequest(payment_id="p-1"), timeout=request.amount.minor_units or None
            )
            return pb.ChargeResponse(payment=reply.payment)
        return pb.ChargeResponse(
            payment=pb.Payment(payment_id="p-1", idempotency_key=request.idempotency_key)
        )

    async def GetPayment(
        self, request: pb.GetPaymentRequest, context: grpc.aio.ServicerContext
    ) -> pb.GetPaymentResponse:
        seen = {
            "metadata": {
                key: value for key, value in context.invocation_metadata() or () if isinstance(value, str)
            },
            "time_remaining": context.time_remaining(),
        }
        return pb.GetPaymentResponse(
            payment=pb.Payment(payment_id=request.payment_id, decline_reason=json.dumps(seen))
        )


async def build(context: ServiceContext) -> list[Registration]:
    return [Registration(payment_pb2_grpc.add_PaymentServiceServicer_to_server, ProbeServicer(context))]


# It stands in for payment (same contract, same name): payment's declaration, its own servicer.
DEFINITION = ServiceDefinition(
    declaration=PAYMENT, migrations=Path(__file__).parent / "no-migrations", build=build
)


if __name__ == "__main__":  # `python -m runtime.probe_service` (PYTHONPATH=tests), for signal tests
    from services.runtime.server import main

    main(DEFINITION)
