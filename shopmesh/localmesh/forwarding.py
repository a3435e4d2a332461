"""The relay both proxies run: any method, as raw bytes, through grpcio's synchronous API.

What Envoy's router does for a gRPC call, for the sidecar and the ingress alike: messages are
never decoded (the proxy knows no .proto), request metadata and the remaining deadline go
upstream, and the upstream's response headers, messages, status code, message and trailers —
`grpc-status-details-bin` included — come back unchanged.

How a call is relayed depends only on its method's shape (shopmesh.localmesh.methods):
- unary (nearly every call): a unary handler and one blocking upstream call — the handler's
  pool thread waits in grpc-core for the answer, and nothing else runs for the call;
- server streaming: a unary-stream handler, the upstream stream read on the same thread;
- anything else, and methods not known: a bidirectional stream, whose request iterator
  grpcio's client consumes on a thread of its own (the wire is the same either way).

An upstream reply without response headers (Trailers-Only: how gRPC servers answer errors)
is relayed as Trailers-Only where grpc-core allows it, the proxy's own response headers going
into the trailers as Envoy's do. grpcio 1.85's xDS-enabled server (the sidecar's) aborts the
whole process (`pipe.h:85 Check failed: has_value()`) when a Python handler — unary or
streaming, by `abort()` or by returning with a status — ends a call without response
headers: there the proxy sends its response headers before the status. A caller's gRPC
retry policy therefore never applies to a failure relayed by a sidecar (gRPC retries only
calls that got no response headers); through the ingress it does.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias

import grpc
import grpc.experimental

from shopmesh.localmesh.methods import KnownMethods
from shopmesh.localmesh.observation import CallObserver, Metadata, RelayedCall, VerifiedPeer

log = logging.getLogger("shopmesh.localmesh.forwarding")

#: Istio's metadata exchange names the serving pod in this response header (the id part only:
#: the full `x-envoy-peer-metadata` is a telemetry blob nothing here reads).
PEER_ID = "x-envoy-peer-metadata-id"

#: Request headers not to copy: HTTP/2 and gRPC transport headers, which the upstream call
#: sets itself (`grpc-timeout` becomes the upstream deadline instead).
_TRANSPORT_HEADERS = frozenset({"te", "content-type", "user-agent", "host", "connection"})

#: A deadline further away than this is no deadline (the sync server reports "none" as huge).
_NO_DEADLINE = 10 * 365 * 24 * 3600.0

#: Proxies do not limit message sizes; the services do (SHOPMESH_MAX_MESSAGE_BYTES).
UNLIMITED_MESSAGES = [("grpc.max_receive_message_length", -1), ("grpc.max_send_message_length", -1)]
#: Upstream channel options: server streams are read on the relaying thread, not handed over
#: from the channel's own polling thread.
UPSTREAM_OPTIONS = [*UNLIMITED_MESSAGES, (grpc.experimental.ChannelOptions.SingleThreadedUnaryStream, 1)]

#: Adds request headers for the upstream (the sidecar's `x-forwarded-client-cert`, the
#: ingress's `x-request-id`) and returns the caller's verified certificate, if it has one.
Inbound: TypeAlias = Callable[[list[tuple[str, str | bytes]], grpc.ServicerContext], VerifiedPeer | None]

#: Relayed methods carry raw bytes: the handler types stay open. (grpc's classes are generic
#: only in grpc-stubs, not at run time: hence the quotes.)
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
if TYPE_CHECKING:
    _GenericRpcHandler = grpc.GenericRpcHandler[Any, Any]
else:
    _GenericRpcHandler = grpc.GenericRpcHandler


def forwardable(metadata: Sequence[tuple[str, str | bytes]]) -> list[tuple[str, str | bytes]]:
    return [
        (key, value)
        for key, value in metadata
        if not key.startswith((":", "grpc-")) and key not in _TRANSPORT_HEADERS
    ]


def _timeout(context: grpc.ServicerContext) -> float | None:
    remaining = context.time_remaining()
    return remaining if remaining is not None and remaining < _NO_DEADLINE else None


def _peer_of(*metadata_sets: Metadata | None) -> str:
    for metadata in metadata_sets:
        for key, value in metadata or ():
            if key == PEER_ID:
                return value if isinstance(value, str) else value.decode(errors="replace")
    return ""


class CallTally:
    """One relayed call as its observer will see it: kept by the relay while the call runs."""

    __slots__ = ("caller", "received", "request_bytes", "requests", "response_bytes", "responses", "started")

    def __init__(self, received: Metadata, caller: VerifiedPeer | None) -> None:
        self.started = time.perf_counter()
        self.received = received
        self.caller = caller
        self.requests = self.request_bytes = self.responses = self.response_bytes = 0

    def counted_requests(self, requests: Iterator[bytes]) -> Iterator[bytes]:
        for request in requests:
            self.requests += 1
            self.request_bytes += len(request)
            yield request

    def report(
        self,
        observer: CallObserver,
        path: str,
        code: grpc.StatusCode,
        headers: Metadata | None,
        trailers: Metadata | None,
    ) -> None:
        """Hands the ended call to `observer`; an observer's failure is logged, not raised."""
        observed = RelayedCall(
            method=path,
            caller=self.caller,
            request_headers=self.received,
            code=code,
            request_messages=self.requests,
            request_bytes=self.request_bytes,
            response_messages=self.responses,
            response_bytes=self.response_bytes,
            duration=time.perf_counter() - self.started,
            upstream_peer=_peer_of(headers, trailers),
        )
        try:
            observer.observe(observed)
        except Exception:  # an observer's bug must not fail the call it watched
            log.exception("call observer failed")


class Relay(_GenericRpcHandler):
    """Relays every method to `upstream`.

    `response_headers` go back with every answer (the sidecar's `x-envoy-peer-metadata-id`);
    `observer` sees every relayed call once it has ended; `trailers_only` says whether the
    server may end a call without response headers (see the module's docstring).
    """

    def __init__(
        self,
        upstream: grpc.Channel,
        methods: KnownMethods,
        *,
        inbound: Inbound | None = None,
        response_headers: Metadata = (),
        observer: CallObserver | None = None,
        trailers_only: bool = True,
    ) -> None:
        self._upstream = upstream
        self._methods = methods
        self._inbound = inbound
        self._response_headers = tuple(response_headers)
        self._observer = observer
        self._trailers_only = trailers_only
        #: Handlers of known methods (a bounded set), built once each.
        self._handlers: dict[str, Handler] = {}

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Handler | None:
        path = handler_call_details.method
        handler = self._handlers.get(path)
        if handler is not None:
            return handler
        method = self._methods.get(path)
        if method is None or method.client_streaming:
            return self._stream_stream(path)  # not kept: callers choose unknown names freely
        handler = self._unary_stream(path) if method.server_streaming else self._unary_unary(path)
        self._handlers[path] = handler
        return handler

    # -- per call ------------------------------------------------------------------------
    def _begin(self, context: grpc.ServicerContext) -> tuple[CallTally, Metadata]:
        received: Metadata = tuple(context.invocation_metadata())
        metadata = forwardable(received)
        caller = self._inbound(metadata, context) if self._inbound is not None else None
        return CallTally(received, caller), tuple(metadata)

    def _end(
        self,
        path: str,
        call: CallTally,
        code: grpc.StatusCode,
        headers: Metadata | None,
        trailers: Metadata | None,
    ) -> None:
        if self._observer is not None:
            call.report(self._observer, path, code, headers, trailers)

    def _send_headers(self, context: grpc.ServicerContext, headers: Metadata | None) -> None:
        context.send_initial_metadata((*(headers or ()), *self._response_headers))

    def _fail(
        self,
        path: str,
        call: CallTally,
        context: grpc.ServicerContext,
        failure: grpc.RpcError,
        headers_sent: bool,
    ) -> None:
        """Hands the upstream's failure (or the proxy's own, e.g. UNAVAILABLE: no upstream)
        back as it came: headers if the upstream sent any, else Trailers-Only if allowed."""
        failed: grpc.Call = failure  # type: ignore[assignment]
        headers, trailers = failed.initial_metadata(), failed.trailing_metadata()
        self._finish(context, headers_sent, headers, trailers)
        self._end(path, call, failed.code(), headers, trailers)
        context.abort(failed.code(), failed.details() or "")

    def _finish(
        self,
        context: grpc.ServicerContext,
        headers_sent: bool,
        headers: Metadata | None,
        trailers: Metadata | None,
    ) -> None:
        """Sends the response headers unless sent or Trailers-Only is due, and sets the
        trailers (with the proxy's own headers in them in a Trailers-Only reply)."""
        if headers_sent or headers or not self._trailers_only:
            if not headers_sent:
                self._send_headers(context, headers)
            context.set_trailing_metadata(trailers or ())
        else:
            context.set_trailing_metadata((*(trailers or ()), *self._response_headers))

    # -- handlers by shape -----------------------------------------------------------------
    def _unary_unary(self, path: str) -> Handler:
        upstream = self._upstream.unary_unary(path, None, None)  # raw bytes both ways

        def relay(request: bytes, context: grpc.ServicerContext) -> bytes:
            call, metadata = self._begin(context)
            call.requests, call.request_bytes = 1, len(request)
            try:
                response, answered = upstream.with_call(request, timeout=_timeout(context), metadata=metadata)
            except grpc.RpcError as failure:
                self._fail(path, call, context, failure, headers_sent=False)
                raise  # not reached: abort raised
            headers, trailers = answered.initial_metadata(), answered.trailing_metadata()
            self._send_headers(context, headers)  # with a message to send: never Trailers-Only
            self._finish(context, True, headers, trailers)
            call.responses, call.response_bytes = 1, len(response)
            self._end(path, call, grpc.StatusCode.OK, headers, trailers)
            return response  # type: ignore[no-any-return]

        return grpc.unary_unary_rpc_method_handler(relay)

    def _unary_stream(self, path: str) -> Handler:
        upstream = self._upstream.unary_stream(path, None, None)  # raw bytes both ways

        def relay(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            call, metadata = self._begin(context)
            call.requests, call.request_bytes = 1, len(request)
            answers = upstream(request, timeout=_timeout(context), metadata=metadata)
            yield from self._relay_answers(path, call, context, answers)

        return grpc.unary_stream_rpc_method_handler(relay)

    def _stream_stream(self, path: str) -> Handler:
        upstream = self._upstream.stream_stream(path, None, None)  # raw bytes both ways

        def relay(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            call, metadata = self._begin(context)
            answers = upstream(call.counted_requests(requests), timeout=_timeout(context), metadata=metadata)
            yield from self._relay_answers(path, call, context, answers)

        return grpc.stream_stream_rpc_method_handler(relay)

    def _relay_answers(
        self, path: str, call: CallTally, context: grpc.ServicerContext, answers: Any
    ) -> Iterator[bytes]:
        """The upstream's side of a streaming call: headers once it sends any (or with its
        first message), each message as it comes, then its status and trailers."""
        context.add_callback(answers.cancel)  # the caller went away: cancel upstream too
        headers_sent = False
        try:
            headers = answers.initial_metadata()  # returns at its headers, or at its end
            if headers:
                self._send_headers(context, headers)
                headers_sent = True
            for message in answers:
                if not headers_sent:
                    self._send_headers(context, headers)
                    headers_sent = True
                call.responses += 1
                call.response_bytes += len(message)
                yield message
        except grpc.RpcError as failure:
            self._fail(path, call, context, failure, headers_sent)
        trailers = answers.trailing_metadata()
        self._finish(context, headers_sent, headers, trailers)
        self._end(path, call, grpc.StatusCode.OK, headers, trailers)


def serve_until_signalled(
    server: grpc.Server, banner: str, on_stop: Callable[[], None] | None = None
) -> None:
    """Start, print `STARTED <banner>` (what the supervisor waits for), serve until SIGTERM or
    SIGINT, then (after `on_stop`) stop with a short grace for the calls in flight."""
    server.start()
    print(f"STARTED {banner}", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    stopping.wait()
    if on_stop is not None:
        on_stop()
    server.stop(grace=1).wait()
