"""A generic gRPC forwarder: every method, unary or streaming, as raw bytes.

What Envoy's router does for a gRPC call, for the sidecar and the ingress alike: messages are
never decoded (the proxy knows no .proto), request metadata and the remaining deadline go
upstream, and the upstream's response headers, messages, status code, message and trailers —
`grpc-status-details-bin` included — come back unchanged. Every call is forwarded as a
bidirectional stream: on the wire a unary call is just a stream of one message each way, so
the upstream server still sees exactly the call the client made.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc

log = logging.getLogger("shopmesh.localmesh.forwarding")

Metadata = Sequence[tuple[str, str | bytes]]

#: Request headers not to copy: HTTP/2 and gRPC transport headers, which the upstream call
#: sets itself (`grpc-timeout` becomes the upstream deadline instead).
_TRANSPORT_HEADERS = frozenset({"te", "content-type", "user-agent", "host", "connection"})

#: A deadline further away than this is no deadline (the sync server reports "none" as huge).
_NO_DEADLINE = 10 * 365 * 24 * 3600.0

#: Proxies do not limit message sizes; the services do (SHOPMESH_MAX_MESSAGE_BYTES).
UNLIMITED_MESSAGES = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]


def _identity(data: bytes) -> bytes:
    return data


def forwardable(metadata: Metadata) -> list[tuple[str, str | bytes]]:
    return [
        (key, value)
        for key, value in metadata
        if not key.startswith((":", "grpc-")) and key not in _TRANSPORT_HEADERS
    ]


#: Forwarded methods carry raw bytes, a `local` handler its own messages: the handler types stay
#: open. (grpc's classes are generic only in grpc-stubs, not at run time: hence the quotes.)
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
if TYPE_CHECKING:
    _GenericRpcHandler = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericRpcHandler = grpc.GenericRpcHandler


class Forwarder(_GenericRpcHandler):
    """Forwards any method to the channel `route(method)` picks.

    `decorate(metadata, context)` may add request headers (the sidecar's
    `x-forwarded-client-cert`); `local(method)` may answer a method in place (the ingress
    answers reflection itself).
    """

    def __init__(
        self,
        route: Callable[[str], grpc.Channel],
        decorate: Callable[[list[tuple[str, str | bytes]], grpc.ServicerContext], None] | None = None,
        local: Callable[[str], Handler | None] | None = None,
        response_headers: Metadata = (),
    ) -> None:
        self._route = route
        self._decorate = decorate
        self._local = local
        self._response_headers = tuple(response_headers)

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        method = handler_call_details.method
        if self._local is not None:
            handler = self._local(method)
            if handler is not None:
                return handler
        channel = self._route(method)
        upstream = channel.stream_stream(
            method, request_serializer=_identity, response_deserializer=_identity
        )
        incoming = forwardable(handler_call_details.invocation_metadata)

        def forward(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            metadata = list(incoming)
            if self._decorate is not None:
                self._decorate(metadata, context)
            remaining = context.time_remaining()
            timeout = remaining if remaining is not None and remaining < _NO_DEADLINE else None
            call = upstream(requests, timeout=timeout, metadata=tuple(metadata))
            context.add_callback(call.cancel)  # the client went away: cancel upstream too
            # Response headers always go out before the status, even for an upstream
            # Trailers-Only reply: grpc-core's xDS server aborts the process on a
            # Trailers-Only reply from a Python handler (pipe.h "Check failed: has_value()",
            # grpcio 1.85). Clients see the same status, message and trailers either way.
            context.send_initial_metadata(tuple(call.initial_metadata() or ()) + self._response_headers)
            try:
                yield from call
            except grpc.RpcError as error:
                failed: grpc.Call = error  # type: ignore[assignment]
                context.set_trailing_metadata(tuple(failed.trailing_metadata() or ()))
                context.abort(failed.code(), failed.details() or "")
            context.set_trailing_metadata(tuple(call.trailing_metadata() or ()))

        return grpc.stream_stream_rpc_method_handler(
            forward, request_deserializer=_identity, response_serializer=_identity
        )


def serve_until_signalled(server: grpc.Server, banner: str) -> None:
    """Start, print `STARTED <banner>` (what the supervisor waits for), serve until SIGTERM or
    SIGINT, then stop with a short grace for the calls in flight."""
    server.start()
    print(f"STARTED {banner}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    server.stop(grace=1).wait()
