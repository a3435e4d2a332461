"""The runtime's server interceptor: call context and trace, error mapping, metrics, an access log.

It wraps every handler, the service's own and health/reflection alike, once per method (the
wrapped handler is kept), so a call pays for what it does, not for building its wrapper.

Error replies must be Trailers-Only (grpc-status in the one HEADERS frame): nothing here sends
initial metadata, and a domain error is turned into `context.abort(...)` before any
message goes out, which grpc core then sends as a Trailers-Only response.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn, TypeAlias

import grpc

from services.runtime import metrics
from services.runtime.callcontext import (
    MAX_REQUEST_ID_LENGTH,
    REQUEST_ID_HEADER,
    CallContext,
    call_scope,
)
from services.runtime.decoding import decode_request, missing_request
from services.runtime.errors import ShopError
from services.runtime.status import internal_status, to_grpc_status
from services.runtime.tracing import TRACE_HEADERS, end_span, tracing

log = logging.getLogger("shopmesh.rpc")
_PRINTABLE = re.compile(r"[\x21-\x7e]+")
#: Infrastructure services are logged at DEBUG: kubelet probes every few seconds would drown the log.
_QUIET_SERVICES = ("grpc.health.", "grpc.reflection.")

#: The interceptor wraps every service's handlers (its own, health, reflection), so requests and
#: responses are whatever message each method has: the one place the types stay open.
#: grpc's classes are generic only in grpc-stubs, not at run time: hence the quotes and the
#: TYPE_CHECKING base.
Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Decoder: TypeAlias = Callable[[bytes], Any]
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
if TYPE_CHECKING:
    _ServerInterceptor = grpc.aio.ServerInterceptor[Any, Any]
else:
    _ServerInterceptor = grpc.aio.ServerInterceptor


class RuntimeInterceptor(_ServerInterceptor):
    def __init__(self, service: str) -> None:
        self.service = service
        self._wrapped: dict[str, tuple[Handler, Handler]] = {}  # path -> (handler, its wrapper)

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler:
        handler = await continuation(handler_call_details)
        if handler is None:
            return handler  # unknown method: grpc answers UNIMPLEMENTED itself
        path = handler_call_details.method
        known = self._wrapped.get(path)
        if known is not None and known[0] is handler:
            return known[1]
        wrapper = self._wrap(path, handler)
        self._wrapped[path] = (handler, wrapper)
        return wrapper

    def _wrap(self, path: str, handler: Handler) -> Handler:
        """The handler with the runtime around it, registered with a request *stream* whatever
        the method's shape, and decoding requests itself (services.runtime.decoding).

        grpc.aio never answers a unary (or server-streaming) call whose request stream ends
        without a whole message: it drops the call unanswered, and the caller waits out its
        deadline. A stream handler sees the stream end, and the call is answered
        INVALID_ARGUMENT. The wire is the same for every shape: only the server's handling
        differs. Requests stay bytes until the wrapper decodes them, so bytes that are not the
        method's message are INVALID_ARGUMENT too, not grpc's UNKNOWN or INTERNAL."""
        decode, serialize = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary:
            unary = self._method(path, "unary", decode, streaming_request=False)
            return grpc.stream_unary_rpc_method_handler(
                _unary_response(unary, handler.unary_unary), None, serialize
            )
        if handler.stream_unary:
            client_stream = self._method(path, "client_stream", decode, streaming_request=True)
            return grpc.stream_unary_rpc_method_handler(
                _unary_response(client_stream, handler.stream_unary), None, serialize
            )
        if handler.unary_stream:
            server_stream = self._method(path, "server_stream", decode, streaming_request=False)
            return grpc.stream_stream_rpc_method_handler(
                _stream_response(server_stream, handler.unary_stream), None, serialize
            )
        assert handler.stream_stream is not None  # the one kind left
        bidi_stream = self._method(path, "bidi_stream", decode, streaming_request=True)
        return grpc.stream_stream_rpc_method_handler(
            _stream_response(bidi_stream, handler.stream_stream), None, serialize
        )

    def _method(
        self, path: str, grpc_type: str, decode: Decoder | None, *, streaming_request: bool
    ) -> _Method:
        labels = metrics.MethodLabels.of(path, grpc_type)
        quiet = labels.grpc_service.startswith(_QUIET_SERVICES)
        return _Method(self.service, path, metrics.MethodMetrics(labels), quiet, decode, streaming_request)


def _unary_response(
    method: _Method, behavior: Callable[..., Any]
) -> Callable[[AsyncIterator[bytes], Context], Awaitable[Any]]:
    async def handle(requests: AsyncIterator[bytes], context: Context) -> Any:
        call = _ObservedCall(method, context)
        with call_scope(call.context):
            try:
                request = await call.received(requests)
                result = behavior(request, context)
                response = await result if inspect.isawaitable(result) else result
            except BaseException as error:
                await call.fail(error)
            call.succeeded(messages_sent=1)
            return response

    return handle


def _stream_response(
    method: _Method, behavior: Callable[..., Any]
) -> Callable[[AsyncIterator[bytes], Context], AsyncIterator[Any]]:
    async def handle(requests: AsyncIterator[bytes], context: Context) -> AsyncIterator[Any]:
        call = _ObservedCall(method, context)
        with call_scope(call.context):
            try:
                request = await call.received(requests)
                result = behavior(request, context)
                if inspect.isawaitable(result):
                    await result  # a handler that writes with context.write()
                else:
                    async for response in result:
                        method.metrics.sent.inc()
                        yield response
            except BaseException as error:
                await call.fail(error)
            call.succeeded(messages_sent=0)

    return handle


class _Method:
    """What every call of one method shares: its names, metric series, log level, and how its
    requests come (decoded by `decode`, None for bytes; one message, or a stream of them)."""

    __slots__ = ("decode", "metrics", "path", "quiet", "service", "streaming_request")

    def __init__(
        self,
        service: str,
        path: str,
        series: metrics.MethodMetrics,
        quiet: bool,
        decode: Decoder | None,
        streaming_request: bool,
    ) -> None:
        self.service = service
        self.path = path
        self.metrics = series
        self.quiet = quiet
        self.decode = decode
        self.streaming_request = streaming_request


class _ObservedCall:
    """One incoming call from start to status: its context and trace, metrics and log line."""

    __slots__ = ("context", "grpc_context", "method", "started")

    def __init__(self, method: _Method, context: Context) -> None:
        self.method = method
        self.grpc_context = context
        self.started = time.monotonic()
        remaining = context.time_remaining()
        request_id, headers = _read_metadata(context)
        self.context = CallContext(
            request_id=request_id,
            method=method.path,
            deadline=None if remaining is None else self.started + remaining,
            trace=tracing().server_call(method.path, headers),
        )
        method.metrics.started.inc()

    async def received(self, requests: AsyncIterator[bytes]) -> Any:
        """The request stream, decoded and counted message by message; or, for a method that
        takes one message, that message (InvalidArgument if the stream ends without one)."""
        method = self.method
        if method.streaming_request:
            return _decoded_requests(requests, method.decode, method.metrics)
        # The first message, read from the call itself: iterating `requests` would cost an async
        # generator per call, and its finalization. grpc.aio ignores any more messages; so do we.
        raw = await self.grpc_context.read()
        if not isinstance(raw, bytes):  # grpc.aio.EOF: the stream ended without a whole message
            raise missing_request(method.path)
        method.metrics.received.inc()
        return raw if method.decode is None else decode_request(method.decode, raw)

    def succeeded(self, *, messages_sent: int) -> None:
        if messages_sent:
            self.method.metrics.sent.inc(messages_sent)
        self._finish(grpc.StatusCode.OK)

    async def fail(self, error: BaseException) -> NoReturn:
        """Record the call's end and re-raise or abort with the status the error means."""
        if isinstance(error, ShopError):
            status = to_grpc_status(error, service=self.method.service)
            self._finish(status.code, reason=getattr(error, "reason", None), details=status.details)
            await self._abort(status)
        if isinstance(error, grpc.aio.AbortError):  # the handler aborted by itself
            self._finish(self.grpc_context.code() or grpc.StatusCode.UNKNOWN)
            raise error
        if not isinstance(error, Exception):  # cancelled by the client or the deadline
            remaining = self.grpc_context.time_remaining()
            expired = remaining is not None and remaining <= 0
            self._finish(grpc.StatusCode.DEADLINE_EXCEEDED if expired else grpc.StatusCode.CANCELLED)
            raise error
        self._finish(grpc.StatusCode.INTERNAL, error=error)
        await self._abort(internal_status())

    async def _abort(self, status: grpc.Status) -> NoReturn:
        await self.grpc_context.abort(status.code, status.details, status.trailing_metadata)
        raise AssertionError("abort returned")  # pragma: no cover - abort always raises

    def _finish(
        self,
        code: grpc.StatusCode,
        *,
        reason: str | None = None,
        error: BaseException | None = None,
        details: str = "",
    ) -> None:
        elapsed = time.monotonic() - self.started
        series = self.method.metrics
        series.handled(code).inc()
        series.seconds.observe(elapsed)
        trace = self.context.trace
        if trace is not None and trace.span is not None:
            end_span(trace.span, code.value[0], details or (reason or ""), server=True)
        fields: dict[str, Any] = {
            "grpc_method": self.method.path,
            "grpc_code": code.name,
            "duration_ms": round(elapsed * 1000, 1),
        }
        if reason:
            fields["error_reason"] = reason
        if error is not None:
            log.error("unhandled error in %s", self.method.path, exc_info=error, extra={"fields": fields})
            return
        log.log(
            logging.DEBUG if self.method.quiet else logging.INFO,
            "rpc %s %s",
            self.method.path,
            code.name,
            extra={"fields": fields},
        )


def _read_metadata(context: Context) -> tuple[str, dict[str, str]]:
    """The caller's x-request-id (Envoy sets one at the edge; a new one outside a mesh) and
    trace headers, in one pass over the metadata."""
    request_id: str | None = None
    seen_request_id = False
    headers: dict[str, str] = {}
    for key, value in context.invocation_metadata() or ():
        if not isinstance(value, str):
            continue
        if key == REQUEST_ID_HEADER and not seen_request_id:
            seen_request_id = True  # the first one counts; an unusable one is replaced
            if len(value) <= MAX_REQUEST_ID_LENGTH and _PRINTABLE.fullmatch(value):
                request_id = value
        elif key in TRACE_HEADERS:
            headers[key] = value
    return request_id or str(uuid.uuid4()), headers


async def _decoded_requests(
    requests: AsyncIterator[bytes], decode: Decoder | None, series: metrics.MethodMetrics
) -> AsyncIterator[Any]:
    async for raw in requests:
        series.received.inc()
        yield raw if decode is None else decode_request(decode, raw)
