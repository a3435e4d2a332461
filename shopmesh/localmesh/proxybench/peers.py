"""The two peers of the proxy benchmark, each its own process.

    python -m shopmesh.localmesh.proxybench.peers echo ADDRESS
    python -m shopmesh.localmesh.proxybench.peers load TARGET --credentials insecure|xds
                                                --concurrency N --calls N --warmup N --size BYTES
                                                [--rate CALLS_PER_SECOND]

`echo` is the cheapest service there is: a grpc.aio server answering `/bench.Echo/Unary` with
the request it got (raw bytes: no message class, no interceptor, no database), plus gRPC
reflection describing it, as every shopmesh service serves reflection.

`load` makes unary calls to `TARGET` from `--concurrency` tasks of one grpc.aio channel
(an xDS channel with the bootstrap in GRPC_XDS_BOOTSTRAP when `--credentials xds`). It makes
`--warmup` calls, prints `WARM`, waits for a line on stdin, makes `--calls` calls, prints one
JSON line (every latency in seconds, the failures by status) and waits for stdin to close, so
that the benchmark can read its CPU time before it exits.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.experimental
from google.protobuf import descriptor_pb2, descriptor_pool

from services.runtime.outbound import reraise_lost_cancellation
from services.runtime.reflection import enable_reflection

SERVICE = "bench.Echo"
UNARY = f"/{SERVICE}/Unary"
CALL_TIMEOUT_SECONDS = 10.0


def bytes_service_file(
    package: str, service: str, methods: dict[str, tuple[bool, bool]]
) -> descriptor_pb2.FileDescriptorProto:
    """The descriptor of a service whose methods carry raw bytes (a `Bytes` message stands
    for them), for reflection: `methods` maps each name to (client streaming, server streaming)."""
    file = descriptor_pb2.FileDescriptorProto(name=f"{package}/{service.lower()}.proto", package=package)
    file.syntax = "proto3"
    file.message_type.add(name="Bytes").field.add(
        name="value", number=1, type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES
    )
    declared = file.service.add(name=service)
    for name, (client_streaming, server_streaming) in methods.items():
        declared.method.add(
            name=name,
            input_type=f".{package}.Bytes",
            output_type=f".{package}.Bytes",
            client_streaming=client_streaming,
            server_streaming=server_streaming,
        )
    return file


async def serve_echo(address: str) -> None:
    server = grpc.aio.server()

    async def unary(request: bytes, _context: grpc.aio.ServicerContext[bytes, bytes]) -> bytes:
        return request

    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler(SERVICE, {"Unary": grpc.unary_unary_rpc_method_handler(unary)})]
    )
    descriptor_pool.Default().Add(bytes_service_file("bench", "Echo", {"Unary": (False, False)}))
    enable_reflection(server, [SERVICE])
    if server.add_insecure_port(address) == 0:
        raise SystemExit(f"echo: cannot listen on {address}")
    await server.start()
    print(f"STARTED {address}", flush=True)
    await server.wait_for_termination()


def _channel(target: str, credentials: str) -> grpc.aio.Channel:
    if credentials == "xds":
        xds = grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
        return grpc.aio.secure_channel(target, xds)
    return grpc.aio.insecure_channel(target)


async def _calls(
    call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes],
    request: bytes,
    count: int,
    concurrency: int,
    rate: float | None = None,
) -> tuple[list[float], Counter[str]]:
    """`count` calls from `concurrency` tasks; with `rate`, call i starts no earlier than i/rate
    seconds in (an open schedule, as traffic from many clients arrives)."""
    latencies: list[float] = []
    failures: Counter[str] = Counter()
    remaining = iter(range(count))
    origin = time.perf_counter()

    async def worker() -> None:
        for index in remaining:  # one loop: the shared iterator hands out the calls
            if rate is not None:
                await asyncio.sleep(max(0.0, origin + index / rate - time.perf_counter()))
            began = time.perf_counter()
            try:
                await call(request, timeout=CALL_TIMEOUT_SECONDS)
            except grpc.aio.AioRpcError as error:
                reraise_lost_cancellation(error)
                failures[error.code().name] += 1
                continue
            latencies.append(time.perf_counter() - began)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return latencies, failures


async def run_load(arguments: argparse.Namespace) -> None:
    request = bytes(range(256)) * (arguments.size // 256) + bytes(arguments.size % 256)
    async with _channel(arguments.target, arguments.credentials) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(UNARY, None, None)
        await _calls(call, request, arguments.warmup, arguments.concurrency)
        print("WARM", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        began = time.perf_counter()
        latencies, failures = await _calls(
            call, request, arguments.calls, arguments.concurrency, arguments.rate
        )
        report: dict[str, Any] = {
            "seconds": time.perf_counter() - began,
            "latencies": latencies,
            "failures": dict(failures),
        }
        print(json.dumps(report), flush=True)
    await asyncio.to_thread(sys.stdin.read)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shopmesh.localmesh.proxybench.peers")
    roles = parser.add_subparsers(dest="role", required=True)
    echo = roles.add_parser("echo", help="serve the echo")
    echo.add_argument("address")
    load = roles.add_parser("load", help="call the echo")
    load.add_argument("target")
    load.add_argument("--credentials", choices=("insecure", "xds"), default="insecure")
    load.add_argument("--concurrency", type=int, default=1)
    load.add_argument("--calls", type=int, default=1000)
    load.add_argument("--warmup", type=int, default=200)
    load.add_argument("--size", type=int, default=64, help="request bytes")
    load.add_argument("--rate", type=float, help="calls per second (default: as fast as they go)")
    arguments = parser.parse_args(argv)
    if arguments.role == "echo":
        asyncio.run(serve_echo(arguments.address))
    else:
        asyncio.run(run_load(arguments))


if __name__ == "__main__":
    main()
