"""grpc.health.v1 for "" and every full service name; reflection under v1alpha (real grpcurl
1.8.6) and v1 (a client compiled here from its own copy of the v1 contract)."""

from __future__ import annotations

import asyncio
import subprocess
from pathlib import Path
from types import SimpleNamespace

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
GRPCURL = REPO / ".venv" / "bin" / "grpcurl"
PAYMENT = "shop.payment.v1.PaymentService"


@pytest.mark.parametrize("name", ["", PAYMENT])
async def test_health_answers_for_the_server_and_each_service(probe_server, name: str) -> None:
    async with probe_server.channel() as channel:
        reply = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=name), timeout=5
        )
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_of_an_unknown_service_is_not_found(probe_server) -> None:
    async with probe_server.channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service="shop.nope.v1.Nope"), timeout=5
            )
    assert failure.value.code() is grpc.StatusCode.NOT_FOUND


async def test_health_watch_streams_the_status(probe_server) -> None:
    async with probe_server.channel() as channel:
        call = health_pb2_grpc.HealthStub(channel).Watch(
            health_pb2.HealthCheckRequest(service=PAYMENT), timeout=5
        )
        first = await call.read()
        call.cancel()
    assert first.status == health_pb2.HealthCheckResponse.SERVING


async def grpcurl(*args: str) -> str:
    process = await asyncio.create_subprocess_exec(
        str(GRPCURL), "-plaintext", "-max-time", "10", *args,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    out, err = await process.communicate()
    assert process.returncode == 0, err.decode()
    return out.decode()


@pytest.mark.slow  # runs grpcurl
async def test_grpcurl_lists_services_over_v1alpha(probe_server) -> None:
    listed = (await grpcurl(probe_server.address, "list")).split()
    assert PAYMENT in listed
    assert "grpc.health.v1.Health" in listed
    assert "grpc.reflection.v1alpha.ServerReflection" in listed
    assert "grpc.reflection.v1.ServerReflection" in listed


@pytest.mark.slow  # runs grpcurl
async def test_grpcurl_describes_methods_and_messages(probe_server) -> None:
    methods = await grpcurl(probe_server.address, "list", PAYMENT)
    assert methods.split() == [f"{PAYMENT}.Charge", f"{PAYMENT}.GetPayment", f"{PAYMENT}.Refund"]
    described = await grpcurl(probe_server.address, "describe", "shop.payment.v1.ChargeRequest")
    assert "idempotency_key" in described
    assert ".shop.money.v1.Money amount" in described
    assert "ServerReflectionInfo" in await grpcurl(
        probe_server.address, "describe", "grpc.reflection.v1.ServerReflection"
    )


@pytest.fixture(scope="module")
def reflection_v1(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """The v1 client's messages, compiled from tests/runtime/reflection_v1_client.proto into a
    pool of their own (the process's default pool holds the server's copy of the same names)."""
    from grpc_tools import protoc

    out = tmp_path_factory.mktemp("reflection_v1") / "v1.pb"
    source = Path(__file__).with_name("reflection_v1_client.proto")
    assert protoc.main(["protoc", f"-I{source.parent}", f"--descriptor_set_out={out}", str(source)]) == 0
    pool = descriptor_pool.DescriptorPool()
    for file in descriptor_pb2.FileDescriptorSet.FromString(out.read_bytes()).file:
        pool.Add(file)
    return SimpleNamespace(
        **{
            name: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"grpc.reflection.v1.{name}"))
            for name in ("ServerReflectionRequest", "ServerReflectionResponse")
        }
    )


async def test_reflection_v1_lists_and_serves_file_descriptors(probe_server, reflection_v1) -> None:
    messages = reflection_v1
    async with probe_server.channel() as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=messages.ServerReflectionRequest.SerializeToString,
            response_deserializer=messages.ServerReflectionResponse.FromString,
        )
        requests = [
            messages.ServerReflectionRequest(list_services=""),
            messages.ServerReflectionRequest(file_containing_symbol=PAYMENT),
        ]
        replies = [reply async for reply in info(iter(requests), timeout=5)]
    assert PAYMENT in [service.name for service in replies[0].list_services_response.service]
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in replies[1].file_descriptor_response.file_descriptor_proto
    ]
    payment = next(f for f in files if f.package == "shop.payment.v1")
    assert [m.name for m in payment.service[0].method] == ["Charge", "Refund", "GetPayment"]
