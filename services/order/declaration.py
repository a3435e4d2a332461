"""The order service, declared: see services/runtime/declaration.py."""

from services.runtime.declaration import ServiceDeclaration
from shop.order.v1 import order_pb2

DECLARATION = ServiceDeclaration(
    name="order",
    grpc_port=50051,
    metrics_port=9091,
    contract=order_pb2.DESCRIPTOR,
    calls=("inventory", "payment"),
)
