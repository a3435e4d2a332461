"""Request bytes to messages, with a clear error when they are not one.

grpcio decodes a request before any handler runs, and answers bytes that do not decode as its
own failure: UNKNOWN "Unexpected <class DecodeError>" (grpc.aio), INTERNAL "Exception
deserializing request!" (the sync server), INTERNAL from inside a request stream. Bytes that
are not the method's message are the caller's mistake, so the servers here take the request as
bytes and decode it with `decode_request`, which turns a DecodeError into InvalidArgument
(INVALID_ARGUMENT with a google.rpc.BadRequest). protobuf says only *that* the bytes are bad
("Wire format was corrupt", "String field had bad UTF-8"); which field is bad is found by
walking the wire format again, on the failure path only, so a good request pays nothing.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from google.protobuf import descriptor, message

from services.runtime.errors import FieldViolation, InvalidArgument

#: Nesting the walk follows, as deep as protobuf's own parser goes (upb's default limit).
MAX_DEPTH = 100
_VARINT, _FIXED64, _LENGTH_DELIMITED, _START_GROUP, _END_GROUP, _FIXED32 = range(6)
_NOT_UTF8 = "is not valid UTF-8"


def decode_request(deserializer: Callable[[bytes], Any], data: bytes) -> Any:
    """`deserializer(data)` (a generated message's FromString), or InvalidArgument naming the
    field that does not decode and why."""
    try:
        return deserializer(data)
    except message.DecodeError as error:
        raise undecodable(deserializer, data, error) from None


def undecodable(deserializer: Callable[[bytes], Any], data: bytes, error: Exception) -> InvalidArgument:
    message_type = getattr(getattr(deserializer, "__self__", None), "DESCRIPTOR", None)
    if not isinstance(message_type, descriptor.Descriptor):  # not a generated FromString
        return InvalidArgument(
            [FieldViolation("", f"does not decode: {error}")], message="request does not decode"
        )
    located = _bad_field(message_type, memoryview(data), "", MAX_DEPTH)
    field, problem = located or ("", str(error).rpartition(": ")[2] or "does not decode")
    return InvalidArgument(
        [FieldViolation(field, problem)],
        message=f"request does not decode as {message_type.full_name}: {field or 'the message'} {problem}",
    )


def missing_request(method: str) -> InvalidArgument:
    """The request stream of a method that takes one message ended without a whole one."""
    return InvalidArgument(
        [FieldViolation("", "is missing: the stream ended without one whole request message")],
        message=f"no request message: {method} takes exactly one",
    )


def _bad_field(
    message_type: descriptor.Descriptor, data: memoryview, path: str, depth: int
) -> tuple[str, str] | None:
    """The path of the first field of `data` that is not well formed, and what is wrong with it."""
    position = 0
    seen: Counter[int] = Counter()
    while position < len(data):
        tag, position = _varint(data, position)
        if tag is None:
            return path, "has a field tag cut short or longer than 10 bytes"
        number, wire_type = tag >> 3, tag & 7
        field = message_type.fields_by_number.get(number)
        name = _field_path(path, field, seen[number]) if field is not None else _join(path, f"#{number}")
        seen[number] += 1
        if number == 0 or wire_type > _FIXED32:
            return name, "has an invalid field tag (number 0 or wire type 6 or 7)"
        if wire_type in (_START_GROUP, _END_GROUP):
            return name, "is a group: proto3 messages have none"
        if wire_type == _VARINT:
            value, position = _varint(data, position)
            if value is None:
                return name, "has a varint cut short or longer than 10 bytes"
            continue
        if wire_type != _LENGTH_DELIMITED:
            position += 8 if wire_type == _FIXED64 else 4
            if position > len(data):
                return name, "is cut short"
            continue
        length, position = _varint(data, position)
        if length is None or position + length > len(data):
            return name, "declares a length past the end of the request"
        value_bytes, position = data[position : position + length], position + length
        problem = _bad_value(field, value_bytes, name, depth) if field is not None else None
        if problem is not None:
            return problem
    return None


def _bad_value(
    field: descriptor.FieldDescriptor, value: memoryview, name: str, depth: int
) -> tuple[str, str] | None:
    if field.type == descriptor.FieldDescriptor.TYPE_STRING:
        try:
            str(value, "utf-8")
        except UnicodeDecodeError:
            return name, _NOT_UTF8
        return None
    if field.type == descriptor.FieldDescriptor.TYPE_MESSAGE and field.message_type is not None:
        if depth <= 1:
            return name, f"nests messages more than {MAX_DEPTH} deep"
        return _bad_field(field.message_type, value, name, depth - 1)
    return None  # bytes, or packed scalars (protobuf accepts what it cannot read there as unknown)


def _varint(data: memoryview, position: int) -> tuple[int | None, int]:
    """The varint at `position` and the position after it; None if cut short or over 10 bytes."""
    value = shift = 0
    for index in range(position, min(position + 10, len(data))):
        byte = data[index]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, index + 1
        shift += 7
    return None, len(data)


def _field_path(path: str, field: descriptor.FieldDescriptor, index: int) -> str:
    name = _join(path, field.name)
    is_map = field.message_type is not None and field.message_type.GetOptions().map_entry
    return f"{name}[{index}]" if field.is_repeated and not is_map else name


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name
