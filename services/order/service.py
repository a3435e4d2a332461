"""The order workload: what `serve` needs to run it (see services/runtime/server.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from services.order.declaration import DECLARATION
from services.order.dependencies import GrpcInventoryGateway, GrpcPaymentGateway
from services.order.orders import Orders
from services.order.recovery import Recovery
from services.order.saga import OrderEvents, Saga
from services.order.servicer import OrderServicer
from services.order.store import SqlOrderStore
from services.runtime.server import Registration, ServiceContext, ServiceDefinition
from shop.order.v1 import order_pb2_grpc


async def build(context: ServiceContext) -> Sequence[Registration]:
    store = SqlOrderStore(context.database)
    events = OrderEvents()
    saga = Saga(
        store,
        GrpcInventoryGateway(context.channel("inventory")),
        GrpcPaymentGateway(context.channel("payment")),
        events,
    )
    # The recovery pass starts with the server (its first sweep finishes what a crash left
    # in flight) and keeps sweeping for orders whose runner's lease runs out.
    context.spawn(Recovery(store, saga).run())
    # Sagas run detached from their calls: shutdown gives them the grace period to finish.
    orders = Orders(store, saga, events, context.detach)
    return [Registration(order_pb2_grpc.add_OrderServiceServicer_to_server, OrderServicer(orders))]


DEFINITION = ServiceDefinition(
    declaration=DECLARATION, migrations=Path(__file__).with_name("migrations"), build=build
)
