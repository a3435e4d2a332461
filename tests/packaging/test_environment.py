"""The installed environment is whole: what the README's commands install works together."""

from __future__ import annotations

import importlib


def test_otlp_exporter_imports_beside_the_mesh_protos() -> None:
    """xds-protos overwrites opentelemetry-proto's modules with stale ones (grpc/grpc#42926);
    scripts/lib/venv.sh repairs that. Without the repair, tracing configured by OTEL_* would be
    silently off in any environment that also has the local mesh."""
    importlib.import_module("envoy.config.listener.v3.listener_pb2")
    exporter = importlib.import_module("opentelemetry.exporter.otlp.proto.grpc.trace_exporter")
    common = importlib.import_module("opentelemetry.proto.common.v1.common_pb2")

    assert hasattr(exporter, "OTLPSpanExporter")
    assert hasattr(common, "InstrumentationScope")
