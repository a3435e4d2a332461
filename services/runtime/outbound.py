"""Channels to the services this one calls: deadline and request id passed on, no retries.

One channel per dependency, opened once. Its interceptors make each outgoing call
- finish no later than the incoming call it serves (timeout = min(explicit, remaining), never
  extended), or within DEFAULT_TIMEOUT_SECONDS when no incoming deadline applies;
- carry the incoming `x-request-id`, and the trace context (`traceparent`/`tracestate`, `b3`,
  `x-b3-*`) which OpenTelemetry's client interceptor writes from the current span.
Retries and circuit breaking are the mesh's job, so the code configures none. grpc's retry
support stays on because the only retry policy a channel can get is the mesh's own: behind an
Envoy sidecar none is ever configured (no service config), while in a proxyless mesh (`xds:///`
targets) the client library *is* the data plane and applies the VirtualService's `retries`
pushed over xDS. Turning it off would silently drop those. A failed call's AIP-193 details are read
here too (`error_reason`), so a service tells a refusal from an outage without parsing them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import grpc
import grpc.experimental  # insecure_channel_credentials: the xDS fallback (not in grpc.* in 1.85)
from google.rpc import error_details_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status
from opentelemetry.instrumentation.grpc import aio_client_interceptors

from services.runtime.callcontext import REQUEST_ID_HEADER, current_call
from services.runtime.config import Settings

#: Budget of a call made outside any incoming call (start-up recovery, background work).
DEFAULT_TIMEOUT_SECONDS = 10.0


def open_channel(target: str, settings: Settings) -> grpc.aio.Channel:
    options = [
        ("grpc.max_receive_message_length", settings.max_message_bytes),
        ("grpc.max_send_message_length", settings.max_message_bytes),
    ]
    interceptors: list[Any] = [*(kind() for kind in _INTERCEPTOR_TYPES), *aio_client_interceptors()]
    if settings.channel_credentials == "xds":
        # Proxyless mesh: certificates from the xDS server when it sends them, plaintext otherwise.
        credentials = grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials())
        return grpc.aio.secure_channel(target, credentials, options=options, interceptors=interceptors)
    return grpc.aio.insecure_channel(target, options=options, interceptors=interceptors)


def propagated(details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
    """The call details with the incoming call's deadline and request id applied."""
    call = current_call()
    remaining = call.remaining() if call is not None else None
    if remaining is None:
        remaining = DEFAULT_TIMEOUT_SECONDS
    timeout = remaining if details.timeout is None else min(details.timeout, remaining)
    metadata = grpc.aio.Metadata(*(details.metadata or ()))
    if call is not None and call.request_id and REQUEST_ID_HEADER not in metadata:
        metadata.add(REQUEST_ID_HEADER, call.request_id)
    return grpc.aio.ClientCallDetails(
        details.method, timeout, metadata, details.credentials, details.wait_for_ready
    )


def error_reason(error: grpc.aio.AioRpcError) -> str:
    """The ErrorInfo reason of a failed outgoing call (AIP-193), or "" if it has none."""
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    for detail in [] if status is None else status.details:
        info = error_details_pb2.ErrorInfo()
        if detail.Unpack(info):
            return str(info.reason)
    return ""


def _propagating(base: type, method: str) -> type:
    """A `base` interceptor whose `method` applies `propagated` and calls on. grpc.aio files
    each interceptor under exactly one call type, hence one small class per type."""

    async def intercept(
        self: Any, continuation: Callable[..., Awaitable[Any]], details: Any, request: Any
    ) -> Any:
        return await continuation(propagated(details), request)

    return type(f"Propagating{base.__name__}", (base,), {method: intercept})


_INTERCEPTOR_TYPES = (
    _propagating(grpc.aio.UnaryUnaryClientInterceptor, "intercept_unary_unary"),
    _propagating(grpc.aio.UnaryStreamClientInterceptor, "intercept_unary_stream"),
    _propagating(grpc.aio.StreamUnaryClientInterceptor, "intercept_stream_unary"),
    _propagating(grpc.aio.StreamStreamClientInterceptor, "intercept_stream_stream"),
)
