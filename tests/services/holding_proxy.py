"""A gRPC proxy on loopback that forwards every unary call, except the ones a test holds or fails.

It stands between order and one dependency, so a test can freeze the saga at an exact step with
no hook in the service's code: hold a call before it is forwarded (the dependency never sees
it), or after (the dependency acted but order never hears back), or answer it with a status.
"""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import grpc
from fixtures.ports import loopback

from shopmesh.launch.ports import free_port


class Mode(enum.Enum):
    HOLD_REQUEST = "hold the call before forwarding it"
    HOLD_REPLY = "forward the call, then hold its reply"
    UNAVAILABLE = "answer UNAVAILABLE without forwarding"


class HoldingProxy:
    def __init__(self, target: str) -> None:
        self.target = target
        self.rules: dict[str, Mode] = {}  # method path -> what to do with its calls
        self.held = asyncio.Event()  # set once a call is being held
        self.release = asyncio.Event()  # set to let held calls go on
        self.forwarded: list[str] = []
        self.port = free_port()
        self._server: grpc.aio.Server | None = None
        self._channel: grpc.aio.Channel | None = None

    @property
    def address(self) -> str:
        return loopback(self.port)

    async def start(self) -> HoldingProxy:
        self._channel = grpc.aio.insecure_channel(self.target)
        self._server = grpc.aio.server()
        self._server.add_generic_rpc_handlers([_Forwarder(self)])
        self._server.add_insecure_port(self.address)
        await self._server.start()
        return self

    async def stop(self) -> None:
        self.release.set()
        if self._server is not None:
            await self._server.stop(0)
        if self._channel is not None:
            await self._channel.close()

    async def handle(self, method: str, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        mode = self.rules.get(method)
        if mode is Mode.UNAVAILABLE:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "injected by the test proxy")
        if mode is Mode.HOLD_REQUEST:
            await self._hold()
        assert self._channel is not None
        # No serializers: the proxy moves bytes and never needs the messages' types.
        call = self._channel.unary_unary(method)
        try:
            reply: bytes = await call(request, timeout=context.time_remaining())
        except grpc.aio.AioRpcError as error:
            # The trailers carry grpc-status-details-bin: the caller sees the real details.
            await context.abort(error.code(), error.details() or "", error.trailing_metadata() or ())
        self.forwarded.append(method)
        if mode is Mode.HOLD_REPLY:
            await self._hold()
        return reply

    async def _hold(self) -> None:
        self.held.set()
        await self.release.wait()


class _Forwarder(grpc.GenericRpcHandler):
    def __init__(self, proxy: HoldingProxy) -> None:
        self.proxy = proxy

    def service(self, handler_call_details: Any) -> grpc.RpcMethodHandler:
        method: str = handler_call_details.method

        async def forward(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            return await self.proxy.handle(method, request, context)

        return grpc.unary_unary_rpc_method_handler(forward)
