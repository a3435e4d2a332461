"""The inventory workload: what `serve` needs to run it (see services/runtime/server.py)."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from services.inventory.declaration import DECLARATION
from services.inventory.servicer import InventoryServicer
from services.inventory.stock import Stock
from services.inventory.store import InventoryStore
from services.runtime.server import Registration, ServiceContext, ServiceDefinition
from shop.inventory.v1 import inventory_pb2_grpc

log = logging.getLogger(__name__)


async def build(context: ServiceContext) -> Sequence[Registration]:
    stock = Stock(InventoryStore(context.database))
    return [Registration(inventory_pb2_grpc.add_InventoryServiceServicer_to_server, InventoryServicer(stock))]


async def seed_catalog(context: ServiceContext) -> None:
    """SHOPMESH_SEED=demo: adds the demo catalog's missing products (a laptop run)."""
    if context.settings.seed == "demo":
        added = await Stock(InventoryStore(context.database)).seed()
        log.info("demo catalog: %d products added", added)


DEFINITION = ServiceDefinition(
    declaration=DECLARATION,
    migrations=Path(__file__).with_name("migrations"),
    build=build,
    on_start=seed_catalog,
)
