"""Bytes that are not the method's request message: InvalidArgument naming the field and why
(services.runtime.decoding), on the generated messages of the services."""

from __future__ import annotations

import pytest
from google.protobuf import struct_pb2

from services.runtime.decoding import MAX_DEPTH, decode_request, missing_request
from services.runtime.errors import FieldViolation, InvalidArgument
from services.runtime.status import to_grpc_status
from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2

NOT_UTF8 = b"\xff\xfe\xc0\x80"


def _refused(message_type: type, data: bytes) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as refused:
        decode_request(message_type.FromString, data)  # type: ignore[attr-defined]
    return refused.value


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: its tag, its length as a varint, its bytes."""
    length, varint = len(payload), bytearray()
    while length > 0x7F:
        varint.append(length & 0x7F | 0x80)
        length >>= 7
    return bytes([number << 3 | 2, *varint, length]) + payload


def test_a_good_request_decodes_as_the_generated_parser_would() -> None:
    request = order_pb2.CreateOrderRequest(
        request_id="r-1", items=[order_pb2.OrderItem(product_id="p", quantity=2)]
    )
    assert decode_request(order_pb2.CreateOrderRequest.FromString, request.SerializeToString()) == request


@pytest.mark.parametrize(
    ("data", "violation"),
    [
        (_field(1, NOT_UTF8), ("payment_id", "is not valid UTF-8")),
        (b"\x0a\x10ab", ("payment_id", "declares a length past the end of the request")),
        (b"\x0f", ("payment_id", "has an invalid field tag (number 0 or wire type 6 or 7)")),
        (b"\x0b", ("payment_id", "is a group: proto3 messages have none")),
        (b"\x10" + b"\xff" * 11, ("#2", "has a varint cut short or longer than 10 bytes")),
        (b"\xff" * 11, ("", "has a field tag cut short or longer than 10 bytes")),
        (b"\x11\x00\x00", ("#2", "is cut short")),
    ],
    ids=["utf8", "length", "wire-type-7", "group", "varint", "tag", "fixed64"],
)
def test_the_violation_names_the_field_and_what_is_wrong(data: bytes, violation: tuple[str, str]) -> None:
    error = _refused(payment_pb2.GetPaymentRequest, data)
    assert [(v.field, v.description) for v in error.violations] == [violation]
    assert error.message.startswith("request does not decode as shop.payment.v1.GetPaymentRequest: ")


def test_a_bad_field_deep_in_a_repeated_message_has_its_whole_path() -> None:
    good = order_pb2.OrderItem(product_id="p", quantity=1).SerializeToString()
    bad = _field(1, NOT_UTF8)  # OrderItem.product_id
    items = order_pb2.CreateOrderRequest.DESCRIPTOR.fields_by_name["items"].number
    data = _field(items, good) + _field(items, bad)
    error = _refused(order_pb2.CreateOrderRequest, data)
    assert error.violations == (FieldViolation("items[1].product_id", "is not valid UTF-8"),)


def test_nesting_deeper_than_protobuf_parses_is_named_not_followed() -> None:
    # google.protobuf.Value nests without end: Value.struct_value (5) -> Struct.fields (1, a map)
    # -> its entry's value (2) -> Value; three messages a level, 60 levels: past protobuf's limit.
    value = struct_pb2.Value(number_value=1).SerializeToString()
    for _ in range(60):
        entry = _field(1, b"a") + _field(2, value)
        value = _field(5, _field(1, entry))
    with pytest.raises(InvalidArgument) as refused:
        decode_request(struct_pb2.Value.FromString, value)
    [violation] = refused.value.violations
    assert violation.description == f"nests messages more than {MAX_DEPTH} deep"
    assert violation.field.startswith("struct_value.fields.value.struct_value.fields.value.")


def test_the_status_is_invalid_argument_with_a_bad_request() -> None:
    status = to_grpc_status(_refused(payment_pb2.GetPaymentRequest, b"\x0f"), service="payment")
    assert status.code.name == "INVALID_ARGUMENT"
    assert "payment_id has an invalid field tag" in status.details


def test_a_missing_request_names_the_method() -> None:
    error = missing_request("/shop.payment.v1.PaymentService/GetPayment")
    assert error.message == "no request message: /shop.payment.v1.PaymentService/GetPayment takes exactly one"
    assert [v.field for v in error.violations] == [""]
