"""OrderService over gRPC: validate, call the use case, map to proto. Nothing else."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

import grpc

from services.order.domain import Item, Order
from services.order.orders import NewOrder, Orders
from services.runtime.messages import timestamp
from services.runtime.pagination import cut_page, read_page_token
from services.runtime.validation import Violations, check_items, require_identifier
from shop.order.v1 import order_pb2 as pb
from shop.order.v1 import order_pb2_grpc

_STATUS = {
    "PENDING": pb.ORDER_STATUS_PENDING,
    "CONFIRMED": pb.ORDER_STATUS_CONFIRMED,
    "REJECTED": pb.ORDER_STATUS_REJECTED,
    "CANCELLED": pb.ORDER_STATUS_CANCELLED,
    "FAILED": pb.ORDER_STATUS_FAILED,
}


def order_message(order: Order) -> pb.Order:
    if order.lines:
        items = [
            pb.LineItem(
                product_id=line.product_id,
                product_name=line.product_name,
                quantity=line.quantity,
                unit_price=line.unit_price.to_proto(),
                line_total=line.line_total.to_proto(),
            )
            for line in order.lines
        ]
    else:  # not priced yet (or no longer: a retried order)
        items = [pb.LineItem(product_id=item.product_id, quantity=item.quantity) for item in order.items]
    total = order.total
    return pb.Order(
        order_id=order.order_id,
        request_id=order.request_id,
        customer_id=order.customer_id,
        status=_STATUS[order.status.value],
        items=items,
        total=None if total is None else total.to_proto(),
        rejection_reason=order.rejection_reason if order.status.value in ("REJECTED", "FAILED") else "",
        payment_id=order.payment_id,
        create_time=timestamp(order.create_time),
        update_time=timestamp(order.update_time),
    )


def _listing_scope(customer_id: str) -> str:
    return f"customers/{customer_id}/orders"


def _position(violations: Violations, token: str, customer_id: str) -> tuple[datetime, str] | None:
    """The (create_time, order_id) after which the page starts; None for the first page."""
    key = read_page_token(violations, "page_token", token, _listing_scope(customer_id))
    if key is None:
        return None
    moment, _, order_id = key.partition("|")
    try:
        return datetime.fromisoformat(moment), order_id
    except ValueError:
        violations.add("page_token", "is not a page token issued for this listing")
        return None


class OrderServicer(order_pb2_grpc.OrderServiceServicer):
    def __init__(self, orders: Orders) -> None:
        self.orders = orders

    async def CreateOrder(
        self,
        request: pb.CreateOrderRequest,
        context: grpc.aio.ServicerContext[pb.CreateOrderRequest, pb.CreateOrderResponse],
    ) -> pb.CreateOrderResponse:
        violations = Violations()
        violations.identifier("request_id", request.request_id)
        violations.identifier("customer_id", request.customer_id)
        check_items(violations, "items", request.items)
        violations.token("payment_token", request.payment_token)
        violations.raise_if_any()
        order = await self.orders.create(
            NewOrder(
                request_id=request.request_id,
                customer_id=request.customer_id,
                items=[Item(item.product_id, item.quantity) for item in request.items],
                payment_token=request.payment_token,
            )
        )
        return pb.CreateOrderResponse(order=order_message(order))

    async def GetOrder(
        self,
        request: pb.GetOrderRequest,
        context: grpc.aio.ServicerContext[pb.GetOrderRequest, pb.GetOrderResponse],
    ) -> pb.GetOrderResponse:
        order = await self.orders.get(require_identifier("order_id", request.order_id))
        return pb.GetOrderResponse(order=order_message(order))

    async def ListOrders(
        self,
        request: pb.ListOrdersRequest,
        context: grpc.aio.ServicerContext[pb.ListOrdersRequest, pb.ListOrdersResponse],
    ) -> pb.ListOrdersResponse:
        violations = Violations()
        violations.identifier("customer_id", request.customer_id)
        page_size = violations.page_size("page_size", request.page_size)
        before = _position(violations, request.page_token, request.customer_id)
        violations.raise_if_any()
        orders = await self.orders.list(request.customer_id, before, page_size + 1)
        page, token = cut_page(
            orders, page_size, _listing_scope(request.customer_id),
            lambda order: f"{order.create_time.isoformat()}|{order.order_id}",
        )  # fmt: skip
        return pb.ListOrdersResponse(orders=[order_message(order) for order in page], next_page_token=token)

    async def CancelOrder(
        self,
        request: pb.CancelOrderRequest,
        context: grpc.aio.ServicerContext[pb.CancelOrderRequest, pb.CancelOrderResponse],
    ) -> pb.CancelOrderResponse:
        violations = Violations()
        violations.identifier("order_id", request.order_id)
        violations.text("reason", request.reason, max_length=200)
        violations.raise_if_any()
        order = await self.orders.cancel(request.order_id, request.reason)
        return pb.CancelOrderResponse(order=order_message(order))

    async def WatchOrder(
        self,
        request: pb.WatchOrderRequest,
        context: grpc.aio.ServicerContext[pb.WatchOrderRequest, pb.WatchOrderResponse],
    ) -> AsyncIterator[pb.WatchOrderResponse]:
        async for order in self.orders.watch(require_identifier("order_id", request.order_id)):
            yield pb.WatchOrderResponse(order=order_message(order))
