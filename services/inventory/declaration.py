"""The inventory service, declared: see services/runtime/declaration.py."""

from services.runtime.declaration import ServiceDeclaration
from shop.inventory.v1 import inventory_pb2

DECLARATION = ServiceDeclaration(
    name="inventory",
    grpc_port=50052,
    metrics_port=9092,
    contract=inventory_pb2.DESCRIPTOR,
    seed="demo",  # the demo catalog (services/inventory/stock.py)
)
