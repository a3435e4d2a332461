"""Channels to the services this one calls: deadline, request id and trace passed on, no retries.

One channel per dependency, opened once. Each outgoing call
- finishes no later than the incoming call it serves (timeout = min(explicit, remaining), never
  extended), or within DEFAULT_TIMEOUT_SECONDS when no incoming deadline applies;
- carries the incoming `x-request-id` and the trace context (`traceparent`/`tracestate`, `b3`,
  `x-b3-*`, `baggage`: services/runtime/tracing.py), with a CLIENT span when spans are recorded.
The channel applies this to each call as it is made (`PropagatingChannel`), not through grpc's
client interceptors, whose per-call task and wrapper objects cost more than the call's own
bookkeeping.

Retries and circuit breaking are the mesh's job, so the code configures none. grpc's retry
support stays on because the only retry policy a channel can get is the mesh's own: behind an
Envoy sidecar none is ever configured (no service config), while in a proxyless mesh (`xds:///`
targets) the client library *is* the data plane and applies the VirtualService's `retries`
pushed over xDS. Turning it off would silently drop those. A failed call's AIP-193 details are read
here too (`error_reason`), so a service tells a refusal from an outage without parsing them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import grpc
import grpc.experimental  # insecure_channel_credentials: the xDS fallback (not in grpc.* in 1.85)
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

from services.runtime.callcontext import REQUEST_ID_HEADER, current_call
from services.runtime.config import Settings
from services.runtime.tracing import end_span, tracing

#: Budget of a call made outside any incoming call (start-up recovery, background work).
DEFAULT_TIMEOUT_SECONDS = 10.0


def open_channel(target: str, settings: Settings) -> grpc.aio.Channel:
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    if settings.channel_credentials == "xds":
        # Proxyless mesh: certificates from the xDS server when it sends them, plaintext otherwise.
        credentials = grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
        return PropagatingChannel(grpc.aio.secure_channel(target, credentials, options=options))
    return PropagatingChannel(grpc.aio.insecure_channel(target, options=options))


def outgoing(
    timeout: float | None, metadata: Sequence[tuple[str, Any]] | None, trace_span: str | None = None
) -> tuple[float, list[tuple[str, Any]]]:
    """The timeout and metadata an outgoing call gets from the incoming call being handled."""
    call = current_call()
    remaining = call.remaining() if call is not None else None
    if remaining is None:
        remaining = DEFAULT_TIMEOUT_SECONDS
    bounded = remaining if timeout is None else min(timeout, remaining)
    headers = list(metadata or ())
    if call is not None:
        if call.request_id and all(key != REQUEST_ID_HEADER for key, _ in headers):
            headers.append((REQUEST_ID_HEADER, call.request_id))
        if call.trace is not None:
            headers += tracing().headers(call.trace, trace_span)
    return bounded, headers


def propagated(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """The call details with the incoming call's deadline, request id and trace applied."""
    timeout, metadata = outgoing(details.timeout, list(details.metadata or ()))
    return grpc.aio.ClientCallDetails(
        details.method, timeout, grpc.aio.Metadata(*metadata), details.credentials, details.wait_for_ready
    )


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed outgoing call (AIP-193), or "" if it has none."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in [] if status is None else status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def reraise_lost_cancellation(error: grpc.aio.AioRpcError) -> None:
    """Raises CancelledError, from `error`, if the running task is being cancelled.

    grpc.aio (1.85) loses a cancellation that lands just as a unary call's reply arrives: the
    call's inner task swallows the CancelledError, and awaiting the call raises an AioRpcError
    with status OK instead (grpc/grpc#43502). A loop that counts failed calls and goes on would
    then run to its own end, whoever cancelled it (Ctrl-C, a timeout). Call this first in the
    `except AioRpcError` of such a loop.
    """
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError from error


class _Propagating:
    """A multi-callable whose calls get `outgoing`'s timeout and metadata (and a CLIENT span)."""

    __slots__ = ("_method", "_multicallable")

    def __init__(self, multicallable: Any, method: str) -> None:
        self._multicallable = multicallable
        self._method = method

    def __call__(
        self, request: Any, *, timeout: float | None = None, metadata: Any = None, **options: Any
    ) -> Any:
        call_context = current_call()
        trace = None if call_context is None else call_context.trace
        span = None if trace is None else tracing().client_span(self._method, trace)
        span_id = None if span is None else f"{span.get_span_context().span_id:016x}"
        bounded, headers = outgoing(timeout, metadata, span_id)
        call = self._multicallable(request, timeout=bounded, metadata=headers, **options)
        if span is not None:
            call.add_done_callback(lambda done: end_span(span, done.code().value[0], server=False))
        return call


class PropagatingChannel(grpc.aio.Channel):
    """A grpc.aio channel whose calls carry the incoming call's deadline, request id and trace."""

    def __init__(self, channel: grpc.aio.Channel) -> None:
        self._channel = channel

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Propagating(self._channel.unary_unary(method, *args, **kwargs), method)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Propagating(self._channel.unary_stream(method, *args, **kwargs), method)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Propagating(self._channel.stream_unary(method, *args, **kwargs), method)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return _Propagating(self._channel.stream_stream(method, *args, **kwargs), method)

    async def close(self, grace: float | None = None) -> None:
        await self._channel.close(grace)

    def get_state(self, try_to_connect: bool = False) -> grpc.ChannelConnectivity:
        return self._channel.get_state(try_to_connect)

    async def wait_for_state_change(self, last_observed_state: grpc.ChannelConnectivity) -> None:
        await self._channel.wait_for_state_change(last_observed_state)

    async def channel_ready(self) -> None:
        await self._channel.channel_ready()

    async def __aenter__(self) -> PropagatingChannel:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close(None)
