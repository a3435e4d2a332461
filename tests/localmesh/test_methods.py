"""Which methods stream (shopmesh.localmesh.methods): from the declared contracts, and from a
real server's reflection — v1, v1alpha only, or none at all."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from fixtures.eventually import eventually
from google.protobuf import descriptor_pool
from grpc_reflection.v1alpha import reflection

from services.runtime.contracts import Method
from services.runtime.reflection import enable_reflection
from shopmesh.localmesh.methods import KnownMethods, declared_methods, reflected_methods
from shopmesh.localmesh.proxybench.peers import bytes_service_file

ECHO_FILE = bytes_service_file(
    "methodtest", "Echo", {"Unary": (False, False), "Watch": (False, True), "Chat": (True, True)}
)


def _shapes(methods: list[Method]) -> dict[str, tuple[bool, bool]]:
    return {m.path: (m.client_streaming, m.server_streaming) for m in methods}


def test_the_declared_contracts_and_grpcs_own_services_are_known() -> None:
    shapes = _shapes(declared_methods())
    assert shapes["/shop.order.v1.OrderService/CreateOrder"] == (False, False)
    assert shapes["/shop.order.v1.OrderService/WatchOrder"] == (False, True)
    assert shapes["/shop.inventory.v1.InventoryService/ListProducts"] == (False, False)
    assert shapes["/grpc.health.v1.Health/Check"] == (False, False)
    assert shapes["/grpc.health.v1.Health/Watch"] == (False, True)
    assert shapes["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] == (True, True)
    assert shapes["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"] == (True, True)


@pytest.fixture(scope="module")
def reflecting_server() -> Iterator[str]:
    """A grpc.aio server as the services run it: reflection v1 and v1alpha
    (services/runtime/reflection.py), the echo's descriptor in the default pool."""
    descriptor_pool.Default().Add(ECHO_FILE)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    address: list[str] = []

    async def serve() -> grpc.aio.Server:
        server = grpc.aio.server()
        enable_reflection(server, ["methodtest.Echo"])
        address.append(f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}")
        await server.start()
        return server

    server = loop.run_until_complete(serve())
    thread = threading.Thread(target=lambda: (ready.set(), loop.run_forever()), daemon=True)
    thread.start()
    ready.wait()
    try:
        yield address[0]
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(0), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_reflection_v1_tells_every_method_of_every_listed_service(reflecting_server: str) -> None:
    with grpc.insecure_channel(reflecting_server) as channel:
        shapes = _shapes(reflected_methods(channel))
    assert shapes["/methodtest.Echo/Unary"] == (False, False)
    assert shapes["/methodtest.Echo/Watch"] == (False, True)
    assert shapes["/methodtest.Echo/Chat"] == (True, True)
    assert shapes["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"] == (True, True)


def test_a_server_with_v1alpha_reflection_only_is_asked_with_v1alpha() -> None:
    pool = descriptor_pool.DescriptorPool()
    pool.Add(ECHO_FILE)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    reflection.enable_server_reflection(("methodtest.Echo", reflection.SERVICE_NAME), server, pool=pool)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            shapes = _shapes(reflected_methods(channel))
    finally:
        server.stop(0)
    assert shapes["/methodtest.Echo/Watch"] == (False, True)


def test_a_server_without_reflection_teaches_nothing_and_says_so() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel, pytest.raises(grpc.RpcError) as failed:
            reflected_methods(channel)
    finally:
        server.stop(0)
    assert failed.value.code() == grpc.StatusCode.UNIMPLEMENTED


class FlakySource:
    """Fails `failures` times (as an app not up yet would), then answers."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.asked = 0

    def __call__(self) -> list[Method]:
        self.asked += 1
        if self.asked <= self.failures:
            raise _Unavailable()
        return [Method("x.Y", "Z", client_streaming=False, server_streaming=False)]


class _Unavailable(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    def code(self) -> grpc.StatusCode:
        return grpc.StatusCode.UNAVAILABLE

    def details(self) -> str:
        return "not up yet"


def test_learning_retries_until_the_source_answers() -> None:
    source = FlakySource(failures=2)
    known = KnownMethods(source=source)
    known.start_learning(retry_seconds=0.01)
    eventually(lambda: known.get("/x.Y/Z") is not None, 5.0, "learned after the failures", every=0.01)
    assert source.asked == 3


def test_a_miss_asks_again_at_most_once_per_interval() -> None:
    source = FlakySource(failures=1)
    known = KnownMethods(source=source, relearn_after=60.0)
    assert known.get("/x.Y/Z") is None  # first miss: asks (and fails)
    eventually(lambda: source.asked == 1, 5.0, "asked once", every=0.01)
    time.sleep(0.05)
    assert known.get("/x.Y/Z") is None  # within the interval: does not ask again
    time.sleep(0.05)
    assert source.asked == 1
