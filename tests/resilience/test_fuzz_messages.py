"""The fuzz's descriptor-driven strategies: every request message of the contracts can be drawn,
with every kind of field filled, and what is drawn is a valid message that survives the wire."""

from __future__ import annotations

from google.protobuf.message import Message
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2
from shopmesh.resilience.fuzz.cases import KNOWN, rpcs
from shopmesh.resilience.fuzz.messages import known_strings, messages

REQUESTS = sorted({rpc.request for rpc in rpcs(("order", "inventory", "payment"))}, key=lambda c: c.__name__)
STRINGS = known_strings(KNOWN)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_drawn_requests_round_trip(data: st.DataObject) -> None:
    request_class = data.draw(st.sampled_from(REQUESTS))
    message: Message = data.draw(messages(request_class, STRINGS))
    assert request_class.FromString(message.SerializeToString()) == message


@settings(max_examples=200)
@given(messages(payment_pb2.RefundRequest, STRINGS))
def test_at_most_one_field_of_a_oneof(message: payment_pb2.RefundRequest) -> None:
    assert (message.payment_id != "") + (message.charge_idempotency_key != "") <= 1


def test_every_field_kind_gets_drawn() -> None:
    seen: set[str] = set()

    @settings(max_examples=200, database=None)
    @given(messages(order_pb2.CreateOrderRequest, STRINGS))
    def draw(message: order_pb2.CreateOrderRequest) -> None:
        if message.items:
            seen.add("repeated message")
            if any(item.quantity < 0 for item in message.items):
                seen.add("negative int32")
        if message.payment_token in KNOWN:
            seen.add("a known value")
        if len(message.customer_id) > 64:
            seen.add("an oversized string")

    draw()
    assert seen == {"repeated message", "negative int32", "a known value", "an oversized string"}
