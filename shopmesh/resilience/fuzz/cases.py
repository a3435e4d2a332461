"""What the fuzz sends: cases in six families, drawn for one target from its methods.

- `generated`: Hypothesis-drawn request messages of the target's methods (shopmesh...messages);
- `wrong_type`: bytes that are not the method's request: another request's, random, truncated,
  invalid UTF-8, wrong wire types, overlong varints, lengths past the end, deep nesting;
- `oversized`: strings and repeated fields far past every bound, a message past the 4 MiB limit;
- `unknown_method`: paths no service has, some not even valid paths (raw HTTP/2);
- `bad_metadata`: huge, numerous or invalid headers, bad grpc-timeout, x-request-id,
  traceparent, content-type, grpc-encoding, and gRPC message framing that lies (raw HTTP/2);
- `frames`: bytes that are not HTTP/2 or HTTP/2 frames no client writes, on a fresh connection.

A case is sent by a gRPC client (`path`, `body`, `metadata`), as a raw HTTP/2 request
(`headers`, `data`) or as raw bytes (`raw`). Everything is drawn from one seed.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.message import Message
from google.protobuf.message_factory import GetMessageClass
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st

from services.runtime.contracts import Method, methods_in
from services.runtime.registry import declaration
from shopmesh.resilience.fuzz.messages import known_strings, messages
from shopmesh.resilience.fuzz.wire import PREFACE, Header, frame, grpc_message

FAMILIES = ("generated", "wrong_type", "oversized", "unknown_method", "bad_metadata", "frames")
#: Cases per family for one target at scale 1 (about 1000 in all).
SIZES = {
    "generated": 500,
    "wrong_type": 200,
    "oversized": 30,
    "unknown_method": 60,
    "bad_metadata": 150,
    "frames": 60,
}
#: Values the services know, so that drawn requests get past "not found" now and then.
KNOWN = [
    "sku-espresso-beans", "sku-grinder", "sku-moka-pot", "sku-milk-jug", "sku-tamper",
    "tok_visa", "tok_chargeDeclined", "tok_unavailable", "USD", "EUR", "order", "inventory", "payment",
]  # fmt: skip
HEALTH = Method("grpc.health.v1.Health", "Check", False, False)
REFLECTION = Method("grpc.reflection.v1alpha.ServerReflection", "ServerReflectionInfo", True, True)


@dataclass(frozen=True)
class Rpc:
    method: Method
    request: type[Message]


@dataclass(frozen=True)
class Case:
    family: str
    name: str
    path: str = ""
    body: bytes = b""
    streaming: tuple[bool, bool] = (False, False)  # client, server
    metadata: tuple[tuple[str, str | bytes], ...] = ()
    headers: tuple[Header, ...] | None = None  # a raw HTTP/2 request ...
    data: bytes = b""  # ... and its DATA
    raw: bytes | None = None  # raw bytes on a fresh connection

    @property
    def transport(self) -> str:
        return "bytes" if self.raw is not None else "h2" if self.headers is not None else "grpc"

    def describe(self) -> dict[str, Any]:
        """Enough to send it again by hand."""
        return {
            "family": self.family,
            "name": self.name,
            "transport": self.transport,
            "path": self.path,
            "body_hex": self.body[:512].hex(),
            "body_bytes": len(self.body),
            "metadata": [(k, v if isinstance(v, str) else v.hex())[:2] for k, v in self.metadata][:10],
            "headers": [
                (k[:200].decode(errors="replace"), v[:200].decode(errors="replace"))
                for k, v in self.headers or ()
            ],
            "data_hex": self.data[:512].hex(),
            "raw_hex": (self.raw or b"")[:512].hex(),
        }


def rpcs(services: Iterable[str]) -> list[Rpc]:
    """Every method of the services' contracts, with health's Check and reflection."""
    found = [
        Rpc(HEALTH, health_pb2.HealthCheckRequest),
        Rpc(REFLECTION, reflection_pb2.ServerReflectionRequest),
    ]
    for service in services:
        contract = declaration(service).contract
        for method in methods_in(contract):
            descriptor = contract.services_by_name[method.service.rsplit(".", 1)[1]].methods_by_name[
                method.name
            ]
            found.append(Rpc(method, GetMessageClass(descriptor.input_type)))
    return found


def cases(targets: Sequence[Rpc], scale: float, seed: int) -> Iterator[Case]:
    """Every family's cases for a target serving `targets`, `scale` times SIZES."""
    randomness = random.Random(seed)
    count = {family: max(1, round(size * scale)) for family, size in SIZES.items()}
    drawn = generated(targets, count["generated"], seed)
    yield from drawn
    bodies = [case.body for case in drawn if case.body]
    yield from _drawn(count["wrong_type"], randomness, lambda: wrong_type(targets, bodies, randomness))
    yield from _drawn(count["oversized"], randomness, lambda: oversized(targets, randomness))
    yield from _drawn(count["unknown_method"], randomness, lambda: unknown_method(targets, randomness))
    yield from _drawn(count["bad_metadata"], randomness, lambda: bad_metadata(targets, randomness))
    yield from _drawn(count["frames"], randomness, lambda: frames(randomness))


def _drawn(count: int, randomness: random.Random, make: Any) -> Iterator[Case]:
    """`count` cases from a family's list of choices, each drawn afresh."""
    for _ in range(count):
        yield randomness.choice(make())


def _grpc(
    family: str, name: str, rpc: Rpc, body: bytes, metadata: Sequence[tuple[str, str | bytes]] = ()
) -> Case:
    streaming = (rpc.method.client_streaming, rpc.method.server_streaming)
    return Case(family, name, rpc.method.path, body, streaming, tuple(metadata))


def generated(targets: Sequence[Rpc], count: int, seed: int) -> list[Case]:
    """`count` Hypothesis-drawn requests, each of one of the methods."""
    drawn: list[Case] = []
    strings = known_strings(KNOWN)
    methods = {rpc.method.path: (rpc, messages(rpc.request, strings)) for rpc in targets}

    @hypothesis_seed(seed)
    @settings(
        max_examples=count,
        phases=[Phase.generate],
        database=None,
        deadline=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(st.data())
    def draw(data: st.DataObject) -> None:
        rpc, strategy = methods[data.draw(st.sampled_from(sorted(methods)))]
        drawn.append(_grpc("generated", rpc.method.name, rpc, data.draw(strategy).SerializeToString()))

    draw()
    return drawn[:count]


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def wrong_type(targets: Sequence[Rpc], bodies: Sequence[bytes], randomness: random.Random) -> list[Case]:
    """One request of a method, in bytes that are not its request (`bodies`: drawn requests of
    every method, so mostly another method's)."""
    rpc = randomness.choice(targets)
    valid = randomness.choice(bodies) if bodies else b"\x0a\x01x"
    nested = b"x"
    for _ in range(200):
        nested = b"\x0a" + _varint(len(nested)) + nested
    choices = {
        "another request's bytes": valid,
        "random bytes": randomness.randbytes(randomness.randrange(1, 256)),
        "truncated message": valid[: max(1, len(valid) // 2)] + b"\x0a\x10",
        "invalid UTF-8 in a string field": b"\x0a\x04\xff\xfe\xc0\x80",
        "wrong wire type (fixed64 for a string)": b"\x09" + randomness.randbytes(8),
        "overlong varint": b"\x08" + b"\xff" * 11,
        "length past the end": b"\x0a\xff\xff\xff\x0f" + b"x" * 4,
        "field number 0": b"\x00\x01",
        "largest field number": _varint((536870911 << 3) | 2) + b"\x01x",
        "nested 200 deep": nested,
        "end group without start": b"\x0c",
    }
    name = randomness.choice(sorted(choices))
    return [_grpc("wrong_type", f"{rpc.method.name}: {name}", rpc, choices[name])]


def oversized(targets: Sequence[Rpc], randomness: random.Random) -> list[Case]:
    rpc = randomness.choice(targets)
    size = randomness.choice([64 * 1024, 1024 * 1024, 5 * 1024 * 1024])
    string = f"\x0a{_varint(size).decode('latin-1')}".encode("latin-1") + b"x" * size
    items = b"".join(
        b"\x1a\x10\x0a\x0asku-grinder\x10\x01" for _ in range(randomness.choice([10_000, 200_000]))
    )
    return [
        _grpc("oversized", f"{rpc.method.name}: field 1 of {size} bytes", rpc, string),
        _grpc("oversized", f"{rpc.method.name}: field 3 repeated {len(items) // 18} times", rpc, items),
        _grpc("oversized", f"{rpc.method.name}: 40000 unknown fields", rpc, b"\xf8\x0f\x01" * 40_000),
    ]


def unknown_method(targets: Sequence[Rpc], randomness: random.Random) -> list[Case]:
    rpc = randomness.choice(targets)
    service = rpc.method.service
    known = rpc.method.path
    junk = "".join(randomness.choice("abcXYZ09._-") for _ in range(randomness.randrange(1, 40)))
    grpc_paths = {
        "a method the service lacks": f"/{service}/{junk}",
        "a service no one has": f"/{junk}.v1.{junk}/{junk}",
        "lower-cased method": known.lower(),
        "no method": f"/{service}/",
        "no service": f"//{rpc.method.name}",
        "path of 8 KiB": "/" + "x" * 8192,
        "a trailing slash": known + "/",
    }
    raw_paths = {
        "no leading slash": known[1:].encode(),
        "empty path": b"",
        "spaces and NUL": b"/a b\x00c/d",
        "non-ASCII": "/ünïcödé/方法".encode(),
        "path of 64 KiB": b"/" + b"x" * 65536,
        "query string": known.encode() + b"?x=1",
        "absolute URL": b"http://example.com" + known.encode(),
    }
    cases = [Case("unknown_method", name, path, b"", (False, False)) for name, path in grpc_paths.items()]
    cases += [
        Case("unknown_method", name, known, headers=grpc_headers(path=path), data=grpc_message(b""))
        for name, path in raw_paths.items()
    ]
    return cases


def grpc_headers(
    path: bytes = b"/grpc.health.v1.Health/Check", **changes: bytes | None
) -> tuple[Header, ...]:
    """A gRPC request's headers, with `changes` (a None value drops the header)."""
    fields: dict[str, bytes | None] = {
        ":method": b"POST",
        ":scheme": b"http",
        ":path": path,
        ":authority": b"shop",
        "content-type": b"application/grpc",
        "te": b"trailers",
    }
    fields.update({name.replace("_", "-"): value for name, value in changes.items()})
    return tuple((name.encode(), value) for name, value in fields.items() if value is not None)


def bad_metadata(targets: Sequence[Rpc], randomness: random.Random) -> list[Case]:
    rpc = randomness.choice([target for target in targets if not target.method.client_streaming])
    body = b""  # the request's defaults: refused by validation, or answered, either way fast
    path = rpc.method.path.encode()
    huge = randomness.choice([1024, 8 * 1024, 64 * 1024, 1024 * 1024])
    control = bytes(randomness.randrange(0, 32) for _ in range(8))
    grpc_cases: dict[str, list[tuple[str, str | bytes]]] = {
        f"x-request-id of {huge} bytes": [("x-request-id", "r" * huge)],
        "600 headers": [(f"x-fuzz-{n}", "v") for n in range(600)],
        "traceparent of garbage": [("traceparent", "00-zz-yy-01")],
        "traceparent all zeros": [("traceparent", "00-" + "0" * 32 + "-" + "0" * 16 + "-01")],
        "b3 of garbage": [("b3", "not-a-b3-header")],
        "binary header of random bytes": [("x-fuzz-bin", randomness.randbytes(64))],
        "grpc-timeout as metadata": [("x-grpc-timeout", "abc")],
    }
    raw_cases: dict[str, tuple[tuple[Header, ...], bytes]] = {
        "grpc-timeout abc": (grpc_headers(path, grpc_timeout=b"abc"), grpc_message(body)),
        "grpc-timeout of 9 digits of hours": (
            grpc_headers(path, grpc_timeout=b"99999999H"),
            grpc_message(body),
        ),
        "grpc-timeout of 10 digits": (grpc_headers(path, grpc_timeout=b"9999999999S"), grpc_message(body)),
        "grpc-timeout negative": (grpc_headers(path, grpc_timeout=b"-5S"), grpc_message(body)),
        "grpc-timeout 0n": (grpc_headers(path, grpc_timeout=b"0n"), grpc_message(body)),
        "grpc-timeout unit x": (grpc_headers(path, grpc_timeout=b"1x"), grpc_message(body)),
        "x-request-id of raw control bytes": (grpc_headers(path, x_request_id=control), grpc_message(body)),
        "x-request-id of 100 KiB": (grpc_headers(path, x_request_id=b"r" * 102400), grpc_message(body)),
        "content-type application/json": (grpc_headers(path, content_type=b"application/json"), b"{}"),
        "content-type application/grpc+json": (
            grpc_headers(path, content_type=b"application/grpc+json"),
            grpc_message(body),
        ),
        "no content-type": (grpc_headers(path, content_type=None), grpc_message(body)),
        "no te": (grpc_headers(path, te=None), grpc_message(body)),
        "method GET": (grpc_headers(path, **{":method": b"GET"}), b""),
        "scheme ftp": (grpc_headers(path, **{":scheme": b"ftp"}), grpc_message(body)),
        "no path": (tuple(h for h in grpc_headers(path) if h[0] != b":path"), grpc_message(body)),
        "upper-case header name": ((*grpc_headers(path), (b"X-Request-Id", b"a")), grpc_message(body)),
        "two paths": ((*grpc_headers(path), (b":path", b"/x/y")), grpc_message(body)),
        "grpc-encoding snappy": (
            grpc_headers(path, grpc_encoding=b"snappy"),
            grpc_message(b"\x01\x02", compressed=True),
        ),
        "gzip flag on garbage": (
            grpc_headers(path, grpc_encoding=b"gzip"),
            grpc_message(b"not gzip", compressed=True),
        ),
        "compressed flag without an encoding": (
            grpc_headers(path),
            grpc_message(b"\x0a\x00", compressed=True),
        ),
        "message length past the end": (grpc_headers(path), grpc_message(b"\x0a\x00", length=1000)),
        "message length 4 GiB": (grpc_headers(path), grpc_message(b"", length=0xFFFFFFFF)),
        "no message for a unary method": (grpc_headers(path), b""),
        "two messages for a unary method": (grpc_headers(path), grpc_message(body) * 2),
        "half a length prefix": (grpc_headers(path), b"\x00\x00\x00"),
        "flag byte 0x80": (grpc_headers(path), b"\x80" + struct.pack(">I", 0)),
    }
    cases = [_grpc("bad_metadata", name, rpc, body, metadata) for name, metadata in grpc_cases.items()]
    cases += [
        Case("bad_metadata", name, rpc.method.path, headers=h, data=d) for name, (h, d) in raw_cases.items()
    ]
    return cases


def frames(randomness: random.Random) -> list[Case]:
    settings_frame = frame(0x4, 0, 0, b"")
    headers_block = b"\x83\x86\x84\x41\x04shop"  # :method POST, :scheme http, :path /, :authority
    random_frames = b"".join(
        frame(
            randomness.randrange(256),
            randomness.randrange(256),
            randomness.randrange(1 << 31),
            randomness.randbytes(randomness.randrange(64)),
        )
        for _ in range(randomness.randrange(1, 20))
    )
    choices = {
        "random bytes, no preface": randomness.randbytes(randomness.randrange(1, 512)),
        "HTTP/1.1 request": b"GET / HTTP/1.1\r\nHost: shop\r\n\r\n",
        "TLS ClientHello on the plaintext port": bytes.fromhex("16030100c4010000c00303")
        + randomness.randbytes(180),
        "preface then random frames": PREFACE + settings_frame + random_frames,
        "preface then random bytes": PREFACE + randomness.randbytes(randomness.randrange(1, 512)),
        "frame length 16 MiB, no payload": PREFACE + settings_frame + frame(0x0, 0, 1, b"", length=0xFFFFFF),
        "HPACK garbage": PREFACE + settings_frame + frame(0x1, 0x5, 1, randomness.randbytes(40)),
        "CONTINUATION without HEADERS": PREFACE + settings_frame + frame(0x9, 0x4, 1, headers_block),
        "CONTINUATION flood": PREFACE
        + settings_frame
        + frame(0x1, 0x0, 1, headers_block)
        + b"".join(frame(0x9, 0, 1, b"\x40\x01a\x01b") for _ in range(20_000)),
        "HEADERS on an even stream": PREFACE + settings_frame + frame(0x1, 0x5, 2, headers_block),
        "SETTINGS ENABLE_PUSH 2": PREFACE + frame(0x4, 0, 0, struct.pack(">HI", 0x2, 2)),
        "SETTINGS window 2^31": PREFACE + frame(0x4, 0, 0, struct.pack(">HI", 0x4, 1 << 31)),
        "SETTINGS max frame 1": PREFACE + frame(0x4, 0, 0, struct.pack(">HI", 0x5, 1)),
        "SETTINGS of 5 bytes": PREFACE + frame(0x4, 0, 0, b"\x00" * 5),
        "SETTINGS ack with payload": PREFACE + settings_frame + frame(0x4, 0x1, 0, b"\x00" * 6),
        "PING of 7 bytes": PREFACE + settings_frame + frame(0x6, 0, 0, b"\x00" * 7),
        "PING flood": PREFACE + settings_frame + frame(0x6, 0, 0, b"\x00" * 8) * 10_000,
        "WINDOW_UPDATE of 0": PREFACE + settings_frame + frame(0x8, 0, 0, struct.pack(">I", 0)),
        "WINDOW_UPDATE overflow": PREFACE
        + settings_frame
        + frame(0x8, 0, 0, struct.pack(">I", 0x7FFFFFFF)) * 2,
        "DATA on stream 0": PREFACE + settings_frame + frame(0x0, 0, 0, b"data"),
        "RST_STREAM on an idle stream": PREFACE + settings_frame + frame(0x3, 0, 7, struct.pack(">I", 8)),
        "PRIORITY on itself": PREFACE + settings_frame + frame(0x2, 0, 3, struct.pack(">IB", 3, 16)),
        "rapid reset: 2000 streams opened and reset": PREFACE
        + settings_frame
        + b"".join(
            frame(0x1, 0x4, stream, b"\x83\x86\x44\x1c/grpc.health.v1.Health/Check\x41\x04shop")
            + frame(0x3, 0, stream, struct.pack(">I", 8))
            for stream in range(1, 4001, 2)
        ),
        "GOAWAY from the client, then a stream": PREFACE
        + settings_frame
        + frame(0x7, 0, 0, struct.pack(">II", 0, 0))
        + frame(0x1, 0x5, 1, headers_block),
    }
    name = randomness.choice(sorted(choices))
    return [Case("frames", name, raw=choices[name])]
