"""The payment service, declared: see services/runtime/declaration.py."""

from services.runtime.declaration import ServiceDeclaration
from shop.payment.v1 import payment_pb2

DECLARATION = ServiceDeclaration(
    name="payment",
    grpc_port=50053,
    metrics_port=9093,
    contract=payment_pb2.DESCRIPTOR,
)
