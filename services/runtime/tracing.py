"""Trace context: W3C and B3 propagation always; spans recorded only when their export is
configured.

Propagation is always on because the mesh needs it: Envoy joins its spans into the app's trace
only if the app forwards the headers. Every incoming call gets a trace context — the caller's
trace (`traceparent`, else `b3`, else `x-b3-*`) or a new one — and a span id of its own, which
the logs carry (`trace_id`, `span_id`) and the outgoing calls send on as their parent, in every
format (`traceparent`/`tracestate`, `b3`, `x-b3-*`; `baggage` passes through). That costs a few
microseconds a call: the headers are read and written here, not through OpenTelemetry's
context and propagator machinery.

Spans are recorded only when the standard variables ask for their export (OTEL_TRACES_EXPORTER,
or an OTEL_EXPORTER_OTLP_*ENDPOINT). Then OpenTelemetry's SDK records a SERVER span per incoming
call and a CLIENT span per outgoing one, sampled by the SDK's sampler (OTEL_TRACES_SAMPLER,
OTEL_TRACES_SAMPLER_ARG; default parentbased_always_on), and exports them in batches; its
sampling decision is the flag the outgoing calls carry. Without export nothing is recorded and
the SDK is never imported; the sampled flag is passed on as it came (a call that starts a trace
marks it sampled, as the default sampler would). OTEL_PROPAGATORS (default: tracecontext,
baggage, b3, b3multi) chooses the formats read and written; `none` turns propagation off.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from services.runtime.config import ConfigError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter
    from opentelemetry.trace import Span, Tracer

log = logging.getLogger(__name__)

TRACE_HEADERS = frozenset(
    {
        "traceparent",
        "tracestate",
        "baggage",
        "b3",
        "x-b3-traceid",
        "x-b3-spanid",
        "x-b3-sampled",
        "x-b3-flags",
    }
)
PROPAGATORS = ("tracecontext", "baggage", "b3", "b3multi")
_TRACEPARENT = re.compile(r"([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?")
_HEX = re.compile(r"[0-9a-f]+")
_INVALID_TRACE = "0" * 32
_INVALID_SPAN = "0" * 16
#: Untrusted: longer tracestate/baggage values are dropped, not forwarded.
MAX_PASSED_ON_LENGTH = 8192
#: gRPC status codes that make a SERVER span an error (OpenTelemetry's RPC conventions).
SERVER_ERROR_CODES = frozenset({2, 4, 12, 13, 14, 15})


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The trace of the call being handled: its ids as lower-case hex, and what passes on."""

    trace_id: str  # 32 hex digits
    span_id: str  # 16 hex digits: this call's span, the parent of the calls it makes
    sampled: bool
    tracestate: str = ""
    baggage: str = ""
    span: Span | None = None  # the recorded SERVER span, when spans are recorded


@dataclass(frozen=True, slots=True)
class _Parent:
    trace_id: str
    span_id: str
    sampled: bool


class Tracing:
    """How this process propagates and records: set once by `configure_tracing`."""

    def __init__(self, propagators: frozenset[str] = frozenset(PROPAGATORS)) -> None:
        self.propagators = propagators
        self.provider: TracerProvider | None = None
        self.tracer: Tracer | None = None

    # -- incoming -------------------------------------------------------------------------------
    def server_call(self, path: str, headers: Mapping[str, str]) -> TraceContext:
        """The trace context of an incoming call with `headers` (the trace ones, lower-case)."""
        parent = self._parent(headers)
        tracestate = _passed_on(headers.get("tracestate", "")) if "tracecontext" in self.propagators else ""
        baggage = _passed_on(headers.get("baggage", "")) if "baggage" in self.propagators else ""
        if self.tracer is not None:
            return self._record_server(path, parent, tracestate, baggage)
        if parent is None:
            return TraceContext(_new_id(16), _new_id(8), True, tracestate, baggage)
        return TraceContext(parent.trace_id, _new_id(8), parent.sampled, tracestate, baggage)

    def _parent(self, headers: Mapping[str, str]) -> _Parent | None:
        if "tracecontext" in self.propagators and (parent := _from_traceparent(headers.get("traceparent"))):
            return parent
        if "b3" in self.propagators and (parent := _from_b3(headers.get("b3"))):
            return parent
        if "b3multi" in self.propagators:
            return _from_b3_multi(headers)
        return None

    # -- outgoing -------------------------------------------------------------------------------
    def headers(
        self, trace: TraceContext, span_id: str | None = None, sampled: bool | None = None
    ) -> list[tuple[str, str]]:
        """The headers an outgoing call carries: `trace`, with `span_id` (a CLIENT span's, when
        recorded) as the callee's parent."""
        span = span_id or trace.span_id
        flag = trace.sampled if sampled is None else sampled
        headers: list[tuple[str, str]] = []
        if "tracecontext" in self.propagators:
            headers.append(("traceparent", f"00-{trace.trace_id}-{span}-{'01' if flag else '00'}"))
            if trace.tracestate:
                headers.append(("tracestate", trace.tracestate))
        if "baggage" in self.propagators and trace.baggage:
            headers.append(("baggage", trace.baggage))
        if "b3" in self.propagators:
            headers.append(("b3", f"{trace.trace_id}-{span}-{'1' if flag else '0'}"))
        if "b3multi" in self.propagators:
            headers += [
                ("x-b3-traceid", trace.trace_id),
                ("x-b3-spanid", span),
                ("x-b3-sampled", "1" if flag else "0"),
            ]
        return headers

    # -- recording (only with an exporter) --------------------------------------------------------
    def _record_server(
        self, path: str, parent: _Parent | None, tracestate: str, baggage: str
    ) -> TraceContext:
        from opentelemetry import trace
        from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags, TraceState

        assert self.tracer is not None
        context = None
        if parent is not None:
            remote = SpanContext(
                int(parent.trace_id, 16),
                int(parent.span_id, 16),
                is_remote=True,
                trace_flags=TraceFlags(TraceFlags.SAMPLED if parent.sampled else TraceFlags.DEFAULT),
                trace_state=TraceState.from_header([tracestate]) if tracestate else None,
            )
            context = trace.set_span_in_context(NonRecordingSpan(remote))
        span = self.tracer.start_span(
            path, context=context, kind=SpanKind.SERVER, attributes=_rpc_attributes(path)
        )
        ids = span.get_span_context()
        return TraceContext(
            f"{ids.trace_id:032x}",
            f"{ids.span_id:016x}",
            ids.trace_flags.sampled,
            tracestate,
            baggage,
            span,
        )

    def client_span(self, path: str, trace: TraceContext) -> Span | None:
        """A CLIENT span for an outgoing call, child of `trace`'s span; None unless recording."""
        if self.tracer is None or trace.span is None:
            return None
        from opentelemetry import trace as api
        from opentelemetry.trace import SpanKind

        context = api.set_span_in_context(trace.span)
        span: Span = self.tracer.start_span(
            path, context=context, kind=SpanKind.CLIENT, attributes=_rpc_attributes(path)
        )
        return span

    def flush(self) -> None:
        if self.provider is not None:
            self.provider.force_flush(timeout_millis=2000)


def end_span(span: Span, code: int, details: str = "", *, server: bool) -> None:
    """Ends a recorded span with the call's gRPC status code."""
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute("rpc.grpc.status_code", code)
    if code != 0 and (not server or code in SERVER_ERROR_CODES):
        span.set_status(Status(StatusCode.ERROR, details[:200] or None))
    span.end()


def _rpc_attributes(path: str) -> dict[str, str]:
    service, _, method = path.lstrip("/").rpartition("/")
    return {"rpc.system": "grpc", "rpc.service": service, "rpc.method": method}


def _new_id(size: int) -> str:
    return secrets.token_bytes(size).hex()


def _passed_on(value: str) -> str:
    return value if len(value) <= MAX_PASSED_ON_LENGTH and value.isprintable() else ""


def _from_traceparent(value: str | None) -> _Parent | None:
    match = _TRACEPARENT.fullmatch(value or "")
    if match is None:
        return None
    version, trace_id, span_id, flags, rest = match.groups()
    # Version ff is invalid; version 00 has nothing after the flags (W3C Trace Context §3.2).
    if (
        version == "ff"
        or (version == "00" and rest)
        or trace_id == _INVALID_TRACE
        or span_id == _INVALID_SPAN
    ):
        return None
    return _Parent(trace_id, span_id, bool(int(flags, 16) & 1))


def _from_b3(value: str | None) -> _Parent | None:
    """`b3: {trace}-{span}[-{sampled}[-{parent}]]` (a sampling-only `b3: 0` carries no ids)."""
    parts = (value or "").split("-")
    if len(parts) < 2 or len(parts) > 4:
        return None
    sampled = parts[2] if len(parts) > 2 else "1"
    return _b3_parent(parts[0], parts[1], sampled)


def _from_b3_multi(headers: Mapping[str, str]) -> _Parent | None:
    sampled = "d" if headers.get("x-b3-flags") == "1" else headers.get("x-b3-sampled", "1")
    return _b3_parent(headers.get("x-b3-traceid", ""), headers.get("x-b3-spanid", ""), sampled)


def _b3_parent(trace_id: str, span_id: str, sampled: str) -> _Parent | None:
    trace_id, span_id = trace_id.lower(), span_id.lower()
    if len(trace_id) not in (16, 32) or len(span_id) != 16 or not _HEX.fullmatch(trace_id + span_id):
        return None
    trace_id = trace_id.rjust(32, "0")  # a 64-bit B3 trace id, widened as W3C wants it
    if trace_id == _INVALID_TRACE or span_id == _INVALID_SPAN:
        return None
    return _Parent(trace_id, span_id, sampled.lower() in ("1", "d", "true"))


_tracing = Tracing()


def tracing() -> Tracing:
    return _tracing


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> Tracing:
    """Once per process: the propagators and, if export is configured, the recording SDK."""
    global _tracing
    if _tracing.provider is not None:
        return _tracing
    env = os.environ if environ is None else environ
    configured = Tracing(_propagators(env))
    exporter = _exporter(env)
    if exporter is not None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        # The sampler comes from OTEL_TRACES_SAMPLER / OTEL_TRACES_SAMPLER_ARG (the SDK reads them).
        configured.provider = TracerProvider(resource=Resource.create({"service.name": service}))
        configured.provider.add_span_processor(BatchSpanProcessor(exporter))
        configured.tracer = configured.provider.get_tracer("shopmesh.runtime")
    _tracing = configured
    return _tracing


def _propagators(env: Mapping[str, str]) -> frozenset[str]:
    raw = env.get("OTEL_PROPAGATORS", "").strip()
    if not raw:
        return frozenset(PROPAGATORS)
    names = {name.strip().lower() for name in raw.split(",") if name.strip()}
    if names == {"none"}:
        return frozenset()
    unknown = sorted(names - set(PROPAGATORS))
    if unknown:
        raise ConfigError(
            "OTEL_PROPAGATORS", f"{', '.join(unknown)} not supported (use {', '.join(PROPAGATORS)} or none)"
        )
    return frozenset(names)


def _exporter(env: Mapping[str, str]) -> SpanExporter | None:
    name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if name == "none" or (not name and not endpoint):
        return None
    if name == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        return ConsoleSpanExporter()
    if name not in ("", "otlp"):
        raise ConfigError("OTEL_TRACES_EXPORTER", f"{name!r} is not one of otlp, console, none")
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as error:
        # Telemetry must not take the service down. (Seen: xds-protos installed after
        # opentelemetry-proto overwrites its *_pb2 files with older ones.)
        log.error("OTLP trace export is configured but unavailable, spans are not exported: %s", error)
        return None
    return OTLPSpanExporter()  # endpoint, headers, TLS: from the OTEL_EXPORTER_OTLP_* variables


def flush_tracing() -> None:
    _tracing.flush()


def trace_headers(metadata: Iterable[tuple[str, Any]]) -> dict[str, str]:
    """The trace headers among a call's metadata (binary values and others skipped)."""
    return {key: value for key, value in metadata if key in TRACE_HEADERS and isinstance(value, str)}
