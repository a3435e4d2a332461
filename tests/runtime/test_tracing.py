"""Spans leave the process only when the standard OTEL_* variables say so.

The export check uses OTEL_TRACES_EXPORTER=console: in this environment the OTLP exporter
cannot be imported (xds-protos overwrites opentelemetry-proto's generated files with older
ones; reported to the lead), and the runtime then logs an error and serves without export.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from pathlib import Path

import grpc
import pytest

from services.runtime.tracing import _exporter
from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
TRACE = "5b8aa5a2d2c872e8321cf37308d69df2"
FAILED_TRACE = "6c9bb6b3e3d983f9432d048419e7ae03"
PARENT = "00f067aa0ba902b7"


def test_no_exporter_unless_configured() -> None:
    assert _exporter({}) is None
    assert _exporter({"OTEL_TRACES_EXPORTER": "none", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://x:4317"}) is None
    assert _exporter({"OTEL_TRACES_EXPORTER": "console"}) is not None


async def test_configured_export_carries_the_callers_trace(launch_service) -> None:
    service = await asyncio.to_thread(
        launch_service,
        "payment",
        {
            "PYTHONPATH": str(REPO / "tests"),
            "SHOPMESH_MIGRATE_ON_START": "false",
            "OTEL_TRACES_EXPORTER": "console",
        },
        command=[sys.executable, "-m", "runtime.probe_service"],
    )
    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        await stub.Charge(
            pb.ChargeRequest(payment_token="tok_visa"),
            metadata=[("traceparent", f"00-{TRACE}-{PARENT}-01")],
            timeout=5,
        )
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.Charge(
                pb.ChargeRequest(payment_token="tok_unavailable"),
                metadata=[("traceparent", f"00-{FAILED_TRACE}-{PARENT}-01")],
                timeout=5,
            )
    service.signal(signal.SIGTERM)  # shutdown flushes the batch of spans
    assert await asyncio.to_thread(service.wait, 15) == 0
    spans = [span for span in _console_spans(service.logs()) if span["context"]["trace_id"] == f"0x{TRACE}"]
    assert [span["name"] for span in spans] == ["/shop.payment.v1.PaymentService/Charge"]
    assert spans[0]["parent_id"] == f"0x{PARENT}"
    assert spans[0]["kind"] == "SpanKind.SERVER"
    assert spans[0]["resource"]["attributes"]["service.name"] == "payment"
    # A mapped domain error reaches the span as its status (UNAVAILABLE is an error on a server).
    failed = [
        span for span in _console_spans(service.logs()) if span["context"]["trace_id"] == f"0x{FAILED_TRACE}"
    ]
    assert failed[0]["status"]["status_code"] == "ERROR"
    assert failed[0]["attributes"]["rpc.grpc.status_code"] == grpc.StatusCode.UNAVAILABLE.value[0]


def _console_spans(output: str) -> list[dict]:
    """ConsoleSpanExporter writes each span as indented JSON; pick those objects out."""
    decoder = json.JSONDecoder()
    spans, position = [], 0
    while (start := output.find("{\n", position)) != -1:
        try:
            value, position = decoder.raw_decode(output, start)
        except json.JSONDecodeError:
            position = start + 1
            continue
        if isinstance(value, dict) and "context" in value:
            spans.append(value)
    return spans
