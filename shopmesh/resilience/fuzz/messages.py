"""Hypothesis strategies for protobuf messages, from their descriptors (works on protobuf 7).

Every field of the message is drawn: scalars over their whole range, enums (their values, and
numbers no value has), nested messages to a bounded depth, repeated fields and maps, at most one
field of each oneof. Strings mix arbitrary text with values the services know (the demo
catalog's product ids, Stripe's test tokens, empty and blank strings, oversized and unusual
text), so a generated request can reach past validation into the services' logic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from hypothesis import strategies as st

MAX_DEPTH = 3
MAX_ITEMS = 4
_I32 = st.integers(-(2**31), 2**31 - 1)
_I64 = st.integers(-(2**63), 2**63 - 1)
_U32 = st.integers(0, 2**32 - 1)
_U64 = st.integers(0, 2**64 - 1)
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    FieldDescriptor.TYPE_DOUBLE: st.floats(allow_nan=True),
    FieldDescriptor.TYPE_FLOAT: st.floats(width=32, allow_nan=True),
    FieldDescriptor.TYPE_INT32: _I32,
    FieldDescriptor.TYPE_SINT32: _I32,
    FieldDescriptor.TYPE_SFIXED32: _I32,
    FieldDescriptor.TYPE_INT64: _I64,
    FieldDescriptor.TYPE_SINT64: _I64,
    FieldDescriptor.TYPE_SFIXED64: _I64,
    FieldDescriptor.TYPE_UINT32: _U32,
    FieldDescriptor.TYPE_FIXED32: _U32,
    FieldDescriptor.TYPE_UINT64: _U64,
    FieldDescriptor.TYPE_FIXED64: _U64,
    FieldDescriptor.TYPE_BOOL: st.booleans(),
    FieldDescriptor.TYPE_BYTES: st.binary(max_size=64),
}


def known_strings(values: Sequence[str]) -> st.SearchStrategy[str]:
    """Arbitrary text, or a value the services know, or an edge of what they accept."""
    edges = [
        "",
        " ",
        "\t\n",
        "x" * 64,
        "x" * 65,
        "x" * 201,
        "é" * 100,
        "\x00",
        "a\x00b",
        "../../etc/passwd",
        "%s%n",
    ]
    return st.one_of(st.text(max_size=40), st.sampled_from([*values, *edges]))


def messages(
    message_class: type[Message], strings: st.SearchStrategy[str], depth: int = MAX_DEPTH
) -> st.SearchStrategy[Message]:
    """Messages of `message_class`, every field drawn (strings from `strings`)."""
    descriptor = message_class.DESCRIPTOR
    if depth <= 0:
        return st.just(message_class())

    @st.composite
    def build(draw: st.DrawFn) -> Message:
        message = message_class()
        chosen = {
            oneof.name: draw(st.sampled_from([None, *(field.name for field in oneof.fields)]))
            for oneof in descriptor.oneofs
        }
        for field in descriptor.fields:
            oneof = field.containing_oneof
            if oneof is not None and chosen[oneof.name] != field.name:
                continue
            # types-protobuf types descriptor.fields as the pure-Python or the upb class; same API.
            _fill(message, cast(FieldDescriptor, field), draw, strings, depth)
        return message

    return build()


def _fill(
    message: Message, field: FieldDescriptor, draw: st.DrawFn, strings: st.SearchStrategy[str], depth: int
) -> None:
    target = getattr(message, field.name)
    entry = field.message_type
    if entry is not None and entry.GetOptions().map_entry:
        key, value = entry.fields_by_name["key"], entry.fields_by_name["value"]
        drawn = draw(
            st.dictionaries(_value(key, strings, depth), _value(value, strings, depth), max_size=MAX_ITEMS)
        )
        for map_key, map_value in drawn.items():
            if value.type == FieldDescriptor.TYPE_MESSAGE:
                target[map_key].CopyFrom(map_value)
            else:
                target[map_key] = map_value
    elif field.is_repeated:
        items = draw(st.lists(_value(field, strings, depth), max_size=MAX_ITEMS))
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            target.extend(items)
        else:
            target[:] = items
    elif field.type == FieldDescriptor.TYPE_MESSAGE:
        if draw(st.booleans()):
            target.CopyFrom(draw(_value(field, strings, depth)))
    else:
        setattr(message, field.name, draw(_value(field, strings, depth)))


def _value(field: FieldDescriptor, strings: st.SearchStrategy[str], depth: int) -> st.SearchStrategy[Any]:
    if field.type == FieldDescriptor.TYPE_ENUM:
        assert field.enum_type is not None
        numbers = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(numbers), _I32)  # open enums keep unknown numbers
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        assert field.message_type is not None
        return messages(GetMessageClass(field.message_type), strings, depth - 1)
    if field.type == FieldDescriptor.TYPE_STRING:
        return strings
    return _SCALARS[field.type]
