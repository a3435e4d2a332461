"""The three services as real processes (the launcher's Stack), their clients, and a check that
their books agree.

(Named shop_stack, not stack: tests/ has no packages, so helper module names must be unique.)
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from books import assert_books_agree
from fixtures.processes import ServiceProcess, start_stack
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from holding_proxy import HoldingProxy

from services.runtime.database import Database, Statement
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.payment.v1 import payment_pb2_grpc
from shopmesh.launch.service import ServiceProcess as LaunchedService
from shopmesh.launch.stack import Stack as LaunchedStack


@dataclass
class Clients:
    """Generated async clients of one running stack (channels live as long as the stack)."""

    order: order_pb2_grpc.OrderServiceStub
    inventory: inventory_pb2_grpc.InventoryServiceStub
    payment: payment_pb2_grpc.PaymentServiceStub
    channels: list[grpc.aio.Channel] = field(default_factory=list)

    @classmethod
    def of(cls, order: str, inventory: str, payment: str) -> Clients:
        channels = [grpc.aio.insecure_channel(address) for address in (order, inventory, payment)]
        return cls(
            order_pb2_grpc.OrderServiceStub(channels[0]),
            inventory_pb2_grpc.InventoryServiceStub(channels[1]),
            payment_pb2_grpc.PaymentServiceStub(channels[2]),
            channels,
        )

    async def close(self) -> None:
        for channel in self.channels:
            await channel.close()

    async def set_stock(self, product_id: str, units: int) -> None:
        """Brings a demo product to exactly `units` available (through AdjustStock)."""
        product = (
            await self.inventory.GetProduct(inventory_pb2.GetProductRequest(product_id=product_id))
        ).product
        if product.available != units:
            await self.inventory.AdjustStock(
                inventory_pb2.AdjustStockRequest(
                    product_id=product_id, delta=units - product.available, reason="test"
                )
            )

    async def available(self, product_id: str) -> int:
        reply = await self.inventory.GetProduct(inventory_pb2.GetProductRequest(product_id=product_id))
        return reply.product.available

    async def create_order(
        self, request_id: str, items: Mapping[str, int], token: str = "tok_visa", seconds: float = 20.0
    ) -> order_pb2.Order:
        request = order_pb2.CreateOrderRequest(
            request_id=request_id,
            customer_id="customer-1",
            items=[
                order_pb2.OrderItem(product_id=product, quantity=units) for product, units in items.items()
            ],
            payment_token=token,
        )
        return (await self.order.CreateOrder(request, timeout=seconds)).order

    async def settled_order(self, order_id: str, seconds: float = 30.0) -> order_pb2.Order:
        """GetOrder until the order has left PENDING (bounded)."""
        async with asyncio.timeout(seconds):
            while True:
                order = (await self.order.GetOrder(order_pb2.GetOrderRequest(order_id=order_id))).order
                if order.status != order_pb2.ORDER_STATUS_PENDING:
                    return order
                await asyncio.sleep(0.2)


class Stack(LaunchedStack):
    """Every declared service as a process, wired together, each with its own database."""

    def __init__(
        self, processes: Mapping[str, LaunchedService], database_urls: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(processes)
        self.database_urls = dict(database_urls or {name: p.database_url for name, p in processes.items()})

    @classmethod
    def launch(cls, state: Path, database_urls: Mapping[str, str] | None = None) -> Stack:
        """Started on free ports (see fixtures.processes.start_stack)."""
        return start_stack(cls, state, database_urls)

    def clients(self) -> Clients:
        return Clients.of(*(self.processes[name].address for name in ("order", "inventory", "payment")))

    def kill(self) -> None:
        for process in self.processes.values():
            process.kill()

    async def rows(self, service: str, query: str) -> list[Any]:
        """Rows of a query on one service's own database (to check its books, not to drive it)."""
        database = Database(self.database_urls[service], service=service)
        try:
            rows = await database.fetch(Statement(query))
        finally:
            await database.dispose()
        if not rows:
            return []
        # Tuples whose columns are attributes too (what books.py reads), from either driver's rows.
        named = collections.namedtuple("Row", list(rows[0].keys()), rename=True)  # type: ignore[misc]
        return [named(*row) for row in rows]

    async def assert_books_agree(self) -> None:
        """The three databases' books agree (books.assert_books_agree)."""
        orders = await self.rows(
            "order", "SELECT order_id, status, step, attempt, total_minor_units FROM orders"
        )
        reservations = dict(await self.rows("inventory", "SELECT reservation_id, status FROM reservations"))
        charges = {
            row[0]: tuple(row[1:])
            for row in await self.rows(
                "payment",
                "SELECT idempotency_key, status, amount_minor_units, refunded_minor_units FROM payments",
            )
        }
        assert_books_agree(orders, reservations, charges)


def status_details(error: grpc.aio.AioRpcError | grpc.RpcError) -> dict[str, Any]:
    """The google.rpc details of a failed call: {"bad_request": ..., "error_info": ...}."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    details: dict[str, Any] = {}
    for detail in [] if status is None else status.details:
        for name, kind in (
            ("bad_request", error_details_pb2.BadRequest),
            ("error_info", error_details_pb2.ErrorInfo),
            ("resource_info", error_details_pb2.ResourceInfo),
        ):
            message = kind()
            if detail.Unpack(message):
                details[name] = message
    return details


@dataclass
class ProxiedOrder:
    """An order process of its own whose calls to inventory and payment pass through proxies
    the test controls; inventory and payment are the session's SQLite stack."""

    process: ServiceProcess
    inventory: HoldingProxy
    payment: HoldingProxy
    clients: Clients
    stack: Stack
    env: dict[str, str]

    async def restart(self) -> None:
        """After the old process died: a new one on the same database, calling the services
        directly (nothing held any more). Its recovery pass runs on start."""
        env = {
            **self.env,
            "SHOPMESH_INVENTORY_TARGET": self.stack.processes["inventory"].address,
            "SHOPMESH_PAYMENT_TARGET": self.stack.processes["payment"].address,
        }
        self.process = ServiceProcess("order", env).start()
        self.stack.processes["order"] = self.process
        await asyncio.to_thread(self.process.wait_serving)
        await self.clients.close()
        self.clients = Clients.of(
            self.process.address,
            self.stack.processes["inventory"].address,
            self.stack.processes["payment"].address,
        )
