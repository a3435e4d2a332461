#!/usr/bin/env python3
"""A typed example client of all three services, using only the generated stubs.

    scripts/example_client.py [--order HOST:PORT] [--inventory HOST:PORT] [--payment HOST:PORT]

Lists the catalog, orders one unit of the first product, watches the order to its end and
looks up the payment. Point it at `scripts/up`'s services (the defaults), or at the mesh's
ingress. It is also the project's proof that the stubs type-check: the tests run
`mypy --strict` on this file.
"""

from __future__ import annotations

import argparse
import asyncio
import uuid

import grpc

from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.money.v1 import money_pb2
from shop.order.v1 import order_pb2, order_pb2_grpc
from shop.payment.v1 import payment_pb2, payment_pb2_grpc

TIMEOUT_SECONDS = 5.0


def show(money: money_pb2.Money) -> str:
    return f"{money.minor_units / 100:.2f} {money.currency_code}"


async def first_product(inventory: inventory_pb2_grpc.InventoryServiceAsyncStub) -> inventory_pb2.Product:
    page = await inventory.ListProducts(
        inventory_pb2.ListProductsRequest(page_size=5), timeout=TIMEOUT_SECONDS
    )
    for product in page.products:
        print(f"  {product.product_id:<24} {show(product.price):>12}  {product.available} available")
    if not page.products:
        raise SystemExit("the catalog is empty")
    return page.products[0]


async def place_order(orders: order_pb2_grpc.OrderServiceAsyncStub, product_id: str) -> order_pb2.Order:
    request = order_pb2.CreateOrderRequest(
        request_id=str(uuid.uuid4()),  # the idempotency key: a retry with it cannot order twice
        customer_id="example-customer",
        items=[order_pb2.OrderItem(product_id=product_id, quantity=1)],
        payment_token="tok_visa",
    )
    reply = await orders.CreateOrder(request, timeout=TIMEOUT_SECONDS)
    return reply.order


async def watch(orders: order_pb2_grpc.OrderServiceAsyncStub, order_id: str) -> None:
    stream = orders.WatchOrder(order_pb2.WatchOrderRequest(order_id=order_id), timeout=TIMEOUT_SECONDS)
    async for update in stream:
        print(f"  watch: {order_pb2.OrderStatus.Name(update.order.status)}")


async def main(order_target: str, inventory_target: str, payment_target: str) -> None:
    async with (
        grpc.aio.insecure_channel(order_target) as order_channel,
        grpc.aio.insecure_channel(inventory_target) as inventory_channel,
        grpc.aio.insecure_channel(payment_target) as payment_channel,
    ):
        # The generated *Stub classes serve both channel kinds; given an aio channel, the typed
        # stubs (.pyi) say they return the *AsyncStub type, which exists only for type checkers.
        inventory = inventory_pb2_grpc.InventoryServiceStub(inventory_channel)
        orders = order_pb2_grpc.OrderServiceStub(order_channel)
        payments = payment_pb2_grpc.PaymentServiceStub(payment_channel)

        print("catalog:")
        product = await first_product(inventory)
        order = await place_order(orders, product.product_id)
        status = order_pb2.OrderStatus.Name(order.status)
        print(f"order {order.order_id}: {status} total {show(order.total)} {order.rejection_reason}")
        await watch(orders, order.order_id)
        if order.payment_id:
            payment = await payments.GetPayment(
                payment_pb2.GetPaymentRequest(payment_id=order.payment_id), timeout=TIMEOUT_SECONDS
            )
            payment_status = payment_pb2.PaymentStatus.Name(payment.payment.status)
            print(f"payment {payment.payment.payment_id}: {payment_status}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--order", default="127.0.0.1:50051")
    parser.add_argument("--inventory", default="127.0.0.1:50052")
    parser.add_argument("--payment", default="127.0.0.1:50053")
    args = parser.parse_args()
    asyncio.run(main(args.order, args.inventory, args.payment))
