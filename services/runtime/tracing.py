"""OpenTelemetry: W3C and B3 propagation always; span export only when configured.

Propagation is always on because the mesh needs it: Envoy joins its spans into the app's trace
only if the app forwards the headers. The SDK tracer provider is always installed too, so every
call has a trace id for the logs; spans leave the process only when the standard variables ask
for it (OTEL_TRACES_EXPORTER, or an OTEL_EXPORTER_OTLP_*ENDPOINT).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from opentelemetry import propagate, trace
from opentelemetry.baggage.propagation import W3CBaggagePropagator
from opentelemetry.propagators.b3 import B3MultiFormat, B3SingleFormat
from opentelemetry.propagators.composite import CompositePropagator
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from services.runtime.config import ConfigError

log = logging.getLogger(__name__)
_configured = False


def configure_tracing(service: str, environ: Mapping[str, str] | None = None) -> None:
    """Once per process (the global provider cannot be replaced)."""
    global _configured
    if _configured:
        return
    env = os.environ if environ is None else environ
    if not env.get("OTEL_PROPAGATORS"):
        # traceparent for W3C tracers, `b3` and `x-b3-*` for Envoy's Zipkin tracer: all three
        # are read from incoming calls and written on outgoing ones.
        propagate.set_global_textmap(
            CompositePropagator(
                [TraceContextTextMapPropagator(), W3CBaggagePropagator(), B3SingleFormat(), B3MultiFormat()]
            )
        )
    provider = TracerProvider(resource=Resource.create({"service.name": service}))
    exporter = _exporter(env)
    if exporter is not None:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    _configured = True


def _exporter(env: Mapping[str, str]) -> SpanExporter | None:
    name = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    endpoint = env.get("OTEL_EXPORTER_OTLP_ENDPOINT") or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    if name == "none" or (not name and not endpoint):
        return None
    if name == "console":
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
    provider = trace.get_tracer_provider()
    if isinstance(provider, TracerProvider):
        provider.force_flush(timeout_millis=2000)
