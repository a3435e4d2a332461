"""The payment workload: what `serve` needs to run it (see services/runtime/server.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.payment.declaration import DECLARATION
from services.payment.payments import Payments
from services.payment.servicer import PaymentServicer
from services.payment.store import PaymentStore
from services.runtime.server import Registration, ServiceContext, ServiceDefinition
from shop.payment.v1 import payment_pb2_grpc


async def build(context: ServiceContext) -> Sequence[Registration]:
    payments = Payments(PaymentStore(context.database))
    return [Registration(payment_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer(payments))]


DEFINITION = ServiceDefinition(
    declaration=DECLARATION, migrations=Path(__file__).with_name("migrations"), build=build
)
