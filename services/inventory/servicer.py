"""InventoryService over gRPC: validate, call the use case, map to proto. Nothing else."""

from __future__ import annotations

import grpc

from services.inventory.domain import Product, Reservation, StockRequest
from services.inventory.stock import Stock
from services.runtime.messages import timestamp
from services.runtime.pagination import cut_page, read_page_token
from services.runtime.validation import Violations, check_items, require_identifier
from shop.inventory.v1 import inventory_pb2 as pb
from shop.inventory.v1 import inventory_pb2_grpc

_STATUS = {
    "RESERVED": pb.RESERVATION_STATUS_RESERVED,
    "COMMITTED": pb.RESERVATION_STATUS_COMMITTED,
    "RELEASED": pb.RESERVATION_STATUS_RELEASED,
}
_PRODUCTS_SCOPE = "products"


def product_message(product: Product) -> pb.Product:
    return pb.Product(
        product_id=product.product_id,
        name=product.name,
        price=product.price.to_proto(),
        available=product.available,
    )


def reservation_message(reservation: Reservation) -> pb.Reservation:
    total = reservation.total
    return pb.Reservation(
        reservation_id=reservation.reservation_id,
        status=_STATUS[reservation.status.value],
        lines=[
            pb.ReservedLine(
                product_id=line.product_id,
                product_name=line.product_name,
                quantity=line.quantity,
                unit_price=line.unit_price.to_proto(),
            )
            for line in reservation.lines
        ],
        total=None if total is None else total.to_proto(),
        create_time=timestamp(reservation.create_time),
        update_time=timestamp(reservation.update_time),
    )


class InventoryServicer(inventory_pb2_grpc.InventoryServiceServicer):
    def __init__(self, stock: Stock) -> None:
        self.stock = stock

    async def ListProducts(
        self,
        request: pb.ListProductsRequest,
        context: grpc.aio.ServicerContext[pb.ListProductsRequest, pb.ListProductsResponse],
    ) -> pb.ListProductsResponse:
        violations = Violations()
        page_size = violations.page_size("page_size", request.page_size)
        after = read_page_token(violations, "page_token", request.page_token, _PRODUCTS_SCOPE)
        violations.raise_if_any()
        products = await self.stock.list_products(after, page_size + 1)
        page, token = cut_page(products, page_size, _PRODUCTS_SCOPE, lambda product: product.product_id)
        return pb.ListProductsResponse(products=[product_message(p) for p in page], next_page_token=token)

    async def GetProduct(
        self,
        request: pb.GetProductRequest,
        context: grpc.aio.ServicerContext[pb.GetProductRequest, pb.GetProductResponse],
    ) -> pb.GetProductResponse:
        require_identifier("product_id", request.product_id)
        return pb.GetProductResponse(
            product=product_message(await self.stock.get_product(request.product_id))
        )

    async def ReserveStock(
        self,
        request: pb.ReserveStockRequest,
        context: grpc.aio.ServicerContext[pb.ReserveStockRequest, pb.ReserveStockResponse],
    ) -> pb.ReserveStockResponse:
        violations = Violations()
        violations.identifier("reservation_id", request.reservation_id)
        check_items(violations, "items", request.items)
        violations.raise_if_any()
        items = [StockRequest(item.product_id, item.quantity) for item in request.items]
        reservation = await self.stock.reserve(request.reservation_id, items)
        return pb.ReserveStockResponse(reservation=reservation_message(reservation))

    async def ReleaseReservation(
        self,
        request: pb.ReleaseReservationRequest,
        context: grpc.aio.ServicerContext[pb.ReleaseReservationRequest, pb.ReleaseReservationResponse],
    ) -> pb.ReleaseReservationResponse:
        reservation = await self.stock.release(require_identifier("reservation_id", request.reservation_id))
        return pb.ReleaseReservationResponse(reservation=reservation_message(reservation))

    async def CommitReservation(
        self,
        request: pb.CommitReservationRequest,
        context: grpc.aio.ServicerContext[pb.CommitReservationRequest, pb.CommitReservationResponse],
    ) -> pb.CommitReservationResponse:
        reservation = await self.stock.commit(require_identifier("reservation_id", request.reservation_id))
        return pb.CommitReservationResponse(reservation=reservation_message(reservation))

    async def AdjustStock(
        self,
        request: pb.AdjustStockRequest,
        context: grpc.aio.ServicerContext[pb.AdjustStockRequest, pb.AdjustStockResponse],
    ) -> pb.AdjustStockResponse:
        violations = Violations()
        violations.identifier("product_id", request.product_id)
        if request.delta == 0:
            violations.add("delta", "must not be zero")
        else:
            violations.int_range("delta", request.delta, -1_000_000, 1_000_000)
        violations.text("reason", request.reason, max_length=200, required=True)
        violations.raise_if_any()
        product = await self.stock.adjust(request.product_id, request.delta, request.reason)
        return pb.AdjustStockResponse(product=product_message(product))
