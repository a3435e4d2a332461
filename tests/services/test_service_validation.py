"""Property: a malformed request to any RPC is INVALID_ARGUMENT naming exactly the broken fields.

For every RPC of the three services, hypothesis starts from a valid request, breaks a non-empty
set of its fields in ways the contract's comments forbid, and sends it to the real servers. The
answer must be INVALID_ARGUMENT with a google.rpc.BadRequest whose field violations are exactly
the fields it broke — never UNKNOWN or INTERNAL, and never a call that went through.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from shop_stack import Stack, status_details

from shop.inventory.v1 import inventory_pb2 as inv
from shop.inventory.v1 import inventory_pb2_grpc
from shop.money.v1.money_pb2 import Money
from shop.order.v1 import order_pb2 as order
from shop.order.v1 import order_pb2_grpc
from shop.payment.v1 import payment_pb2 as pay
from shop.payment.v1 import payment_pb2_grpc

IDENTIFIER = re.compile(r"[A-Za-z0-9._-]{1,64}")
TOKEN = re.compile(r"[A-Za-z0-9_]{1,128}")

bad_identifiers = st.one_of(
    st.just(""),
    st.text(alphabet="abc123", min_size=65, max_size=300),
    st.text(max_size=40).filter(lambda value: not IDENTIFIER.fullmatch(value)),
)
bad_tokens = st.one_of(
    st.just(""),
    st.text(alphabet="tok_", min_size=129, max_size=300),
    st.text(max_size=40).filter(lambda value: not TOKEN.fullmatch(value)),
)
bad_quantities = st.one_of(st.integers(-(2**31), 0), st.integers(1001, 2**31 - 1))
long_texts = st.text(min_size=201, max_size=400)
bad_page_tokens = st.text(min_size=1, max_size=80)
bad_currencies = st.text(max_size=5).filter(lambda value: not re.fullmatch(r"[A-Z]{3}", value))

#: A breaker changes a request in place and returns the field paths it made invalid.
Breaker = Callable[[Any, st.DataObject], set[str]]


def _set(field: str, values: st.SearchStrategy[Any]) -> Breaker:
    def breaker(request: Any, data: st.DataObject) -> set[str]:
        setattr(request, field, data.draw(values))
        return {field}

    return breaker


def _items_breakers(item_type: type) -> dict[str, Breaker]:
    """The ways to break a list of (product_id, quantity) lines; at most one applies at a time."""

    def empty(request: Any, data: st.DataObject) -> set[str]:
        del request.items[:]
        return {"items"}

    def too_many(request: Any, data: st.DataObject) -> set[str]:
        del request.items[:]
        request.items.extend(item_type(product_id=f"sku-{n}", quantity=1) for n in range(51))
        return {"items"}

    def bad_product(request: Any, data: st.DataObject) -> set[str]:
        request.items[1].product_id = data.draw(bad_identifiers)
        return {"items[1].product_id"}

    def bad_quantity(request: Any, data: st.DataObject) -> set[str]:
        request.items[0].quantity = data.draw(bad_quantities)
        return {"items[0].quantity"}

    def duplicate(request: Any, data: st.DataObject) -> set[str]:
        request.items[1].product_id = request.items[0].product_id
        return {"items[1]"}

    return {"items:empty": empty, "items:too_many": too_many, "items:product": bad_product,
            "items:quantity": bad_quantity, "items:duplicate": duplicate}  # fmt: skip


def _charge_amount(request: Any, data: st.DataObject) -> set[str]:
    choice = data.draw(st.sampled_from(["unset", "currency", "low", "high"]))
    if choice == "unset":
        request.ClearField("amount")
        return {"amount"}
    if choice == "currency":
        request.amount.currency_code = data.draw(bad_currencies)
        return {"amount.currency_code"}
    request.amount.minor_units = data.draw(
        st.integers(-(2**63), 0) if choice == "low" else st.integers(10**8 + 1, 2**63 - 1)
    )
    return {"amount.minor_units"}


def _refund_target(request: Any, data: st.DataObject) -> set[str]:
    choice = data.draw(st.sampled_from(["none", "payment_id", "charge_idempotency_key"]))
    if choice == "none":
        request.ClearField("payment_id")
        return {"payment_id"}
    setattr(request, choice, data.draw(bad_identifiers))
    return {choice}


def _refund_amount(request: Any, data: st.DataObject) -> set[str]:
    if data.draw(st.booleans()):
        request.amount.CopyFrom(Money(currency_code=data.draw(bad_currencies), minor_units=100))
        return {"amount.currency_code"}
    request.amount.CopyFrom(Money(currency_code="USD", minor_units=data.draw(st.integers(-(2**63), 0))))
    return {"amount.minor_units"}


def _adjust_delta(request: Any, data: st.DataObject) -> set[str]:
    request.delta = data.draw(
        st.one_of(st.just(0), st.integers(-(2**63), -1_000_001), st.integers(1_000_001, 2**63 - 1))
    )
    return {"delta"}


@dataclass(frozen=True)
class Rpc:
    service: str  # which process serves it
    method: str
    valid: Callable[[], Any]
    breakers: dict[str, Breaker]

    @property
    def id(self) -> str:
        return self.method


def _order_items() -> list[order.OrderItem]:
    return [order.OrderItem(product_id="sku-a", quantity=1), order.OrderItem(product_id="sku-b", quantity=2)]


def _stock_items() -> list[inv.StockRequest]:
    return [
        inv.StockRequest(product_id="sku-a", quantity=1),
        inv.StockRequest(product_id="sku-b", quantity=2),
    ]


def _money() -> Money:
    return Money(currency_code="USD", minor_units=100)


RPCS = [
    Rpc("order", "CreateOrder",
        lambda: order.CreateOrderRequest(request_id="r-1", customer_id="c-1", items=_order_items(),
                                         payment_token="tok_visa"),
        {"request_id": _set("request_id", bad_identifiers),
         "customer_id": _set("customer_id", bad_identifiers),
         "payment_token": _set("payment_token", bad_tokens), **_items_breakers(order.OrderItem)}),
    Rpc("order", "GetOrder", lambda: order.GetOrderRequest(order_id="o-1"),
        {"order_id": _set("order_id", bad_identifiers)}),
    Rpc("order", "ListOrders", lambda: order.ListOrdersRequest(customer_id="c-1", page_size=10),
        {"customer_id": _set("customer_id", bad_identifiers),
         "page_size": _set("page_size", st.integers(-(2**31), -1)),
         "page_token": _set("page_token", bad_page_tokens)}),
    Rpc("order", "CancelOrder", lambda: order.CancelOrderRequest(order_id="o-1", reason="changed my mind"),
        {"order_id": _set("order_id", bad_identifiers), "reason": _set("reason", long_texts)}),
    Rpc("order", "WatchOrder", lambda: order.WatchOrderRequest(order_id="o-1"),
        {"order_id": _set("order_id", bad_identifiers)}),
    Rpc("inventory", "ListProducts", lambda: inv.ListProductsRequest(page_size=5),
        {"page_size": _set("page_size", st.integers(-(2**31), -1)),
         "page_token": _set("page_token", bad_page_tokens)}),
    Rpc("inventory", "GetProduct", lambda: inv.GetProductRequest(product_id="sku-a"),
        {"product_id": _set("product_id", bad_identifiers)}),
    Rpc("inventory", "ReserveStock",
        lambda: inv.ReserveStockRequest(reservation_id="o-1", items=_stock_items()),
        {"reservation_id": _set("reservation_id", bad_identifiers), **_items_breakers(inv.StockRequest)}),
    Rpc("inventory", "ReleaseReservation", lambda: inv.ReleaseReservationRequest(reservation_id="o-1"),
        {"reservation_id": _set("reservation_id", bad_identifiers)}),
    Rpc("inventory", "CommitReservation", lambda: inv.CommitReservationRequest(reservation_id="o-1"),
        {"reservation_id": _set("reservation_id", bad_identifiers)}),
    Rpc("inventory", "AdjustStock",
        lambda: inv.AdjustStockRequest(product_id="sku-a", delta=5, reason="count"),
        {"product_id": _set("product_id", bad_identifiers), "delta": _adjust_delta,
         "reason": _set("reason", st.one_of(st.just(""), st.just("   "), long_texts))}),
    Rpc("payment", "Charge",
        lambda: pay.ChargeRequest(idempotency_key="k-1", amount=_money(), payment_token="tok_visa",
                                  order_id="o-1"),
        {"idempotency_key": _set("idempotency_key", bad_identifiers), "amount": _charge_amount,
         "payment_token": _set("payment_token", bad_tokens), "order_id": _set("order_id", bad_identifiers)}),
    Rpc("payment", "Refund", lambda: pay.RefundRequest(idempotency_key="k-1", payment_id="p-1"),
        {"idempotency_key": _set("idempotency_key", bad_identifiers), "target": _refund_target,
         "amount": _refund_amount, "reason": _set("reason", long_texts)}),
    Rpc("payment", "GetPayment", lambda: pay.GetPaymentRequest(payment_id="p-1"),
        {"payment_id": _set("payment_id", bad_identifiers)}),
]  # fmt: skip

STUBS = {
    "order": order_pb2_grpc.OrderServiceStub,
    "inventory": inventory_pb2_grpc.InventoryServiceStub,
    "payment": payment_pb2_grpc.PaymentServiceStub,
}


@pytest.fixture(scope="module")
def channels(sqlite_stack: Stack) -> Iterator[dict[str, grpc.Channel]]:
    opened = {
        name: grpc.insecure_channel(process.address) for name, process in sqlite_stack.processes.items()
    }
    yield opened
    for channel in opened.values():
        channel.close()


def test_every_rpc_is_covered() -> None:
    from services.runtime.registry import declarations

    declared = [method.name for service in declarations().values() for method in service.methods]
    assert sorted(declared) == sorted(rpc.method for rpc in RPCS)


def _call(method: Any, request: Any, *, streaming: bool) -> None:
    reply = method(request, timeout=10)
    if streaming:  # a server stream's status comes with its first read
        next(iter(reply))


@pytest.mark.parametrize("rpc", RPCS, ids=lambda rpc: rpc.id)
def test_malformed_request_is_invalid_argument(rpc: Rpc, channels: dict[str, grpc.Channel]) -> None:
    method = getattr(STUBS[rpc.service](channels[rpc.service]), rpc.method)

    @settings(max_examples=12, deadline=None, database=None)
    @given(data=st.data())
    def check(data: st.DataObject) -> None:
        names = sorted(rpc.breakers)
        chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, max_size=len(names), unique=True))
        items = [name for name in chosen if name.startswith("items:")]
        chosen = [name for name in chosen if not name.startswith("items:")] + items[:1]  # one list breakage
        request = rpc.valid()
        broken: set[str] = set()
        for name in chosen:
            broken |= rpc.breakers[name](request, data)
        with pytest.raises(grpc.RpcError) as caught:
            _call(method, request, streaming=rpc.method == "WatchOrder")
        error = caught.value
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, (error.code(), error.details(), request)
        reported = {violation.field for violation in status_details(error)["bad_request"].field_violations}
        assert reported == broken, request

    check()
