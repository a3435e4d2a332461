"""Prometheus metrics with go-grpc-prometheus's names, so the usual gRPC dashboards work as-is.

Business counters (orders, payments, reservations by outcome) are defined by each service in
its own module, on the same default registry, and so appear on the same /metrics page.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any
from wsgiref.simple_server import WSGIServer

import grpc
import prometheus_client
from prometheus_client import Counter, Histogram

from services.runtime.contracts import Method

# go-grpc-prometheus has no *_created series; without them the page matches its output.
prometheus_client.disable_created_metrics()

_METHOD_LABELS = ("grpc_type", "grpc_service", "grpc_method")

STARTED = Counter("grpc_server_started_total", "Total number of RPCs started on the server.", _METHOD_LABELS)
HANDLED = Counter(
    "grpc_server_handled_total",
    "Total number of RPCs completed on the server, regardless of success or failure.",
    (*_METHOD_LABELS, "grpc_code"),
)
HANDLING_SECONDS = Histogram(
    "grpc_server_handling_seconds",
    "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
    _METHOD_LABELS,
)
MSG_RECEIVED = Counter(
    "grpc_server_msg_received_total",
    "Total number of RPC stream messages received on the server.",
    _METHOD_LABELS,
)
MSG_SENT = Counter(
    "grpc_server_msg_sent_total", "Total number of gRPC stream messages sent by the server.", _METHOD_LABELS
)


def code_label(code: grpc.StatusCode) -> str:
    """Go's spelling of a status code (`codes.Code.String()`): "OK", "InvalidArgument", "Canceled"."""
    if code is grpc.StatusCode.OK:
        return "OK"
    if code is grpc.StatusCode.CANCELLED:
        return "Canceled"
    return "".join(part.capitalize() for part in code.name.split("_"))


@dataclass(frozen=True)
class MethodLabels:
    grpc_type: str
    grpc_service: str
    grpc_method: str

    @classmethod
    def of(cls, path: str, grpc_type: str) -> MethodLabels:
        service, _, method = path.lstrip("/").rpartition("/")
        return cls(grpc_type, service, method)

    def values(self) -> tuple[str, str, str]:
        return (self.grpc_type, self.grpc_service, self.grpc_method)


class MethodMetrics:
    """One method's series, looked up once (a `labels()` lookup per call costs more than the count)."""

    def __init__(self, labels: MethodLabels) -> None:
        values = labels.values()
        self.started = STARTED.labels(*values)
        self.received = MSG_RECEIVED.labels(*values)
        self.sent = MSG_SENT.labels(*values)
        self.seconds = HANDLING_SECONDS.labels(*values)
        self._values = values
        self._handled: dict[grpc.StatusCode, Any] = {}

    def handled(self, code: grpc.StatusCode) -> Any:
        """The grpc_server_handled_total series of `code` (prometheus_client's child counter)."""
        series = self._handled.get(code)
        if series is None:
            series = self._handled[code] = HANDLED.labels(*self._values, code_label(code))
        return series


def preregister(methods: list[Method]) -> None:
    """Zero series for every method and code, as go-grpc-prometheus's InitializeMetrics does:
    a rate() over a series that appears only at its first error misses that error."""
    for method in methods:
        labels = (method.grpc_type, method.service, method.name)
        for metric in (STARTED, MSG_RECEIVED, MSG_SENT):
            metric.labels(*labels)
        HANDLING_SECONDS.labels(*labels)
        for code in grpc.StatusCode:
            HANDLED.labels(*labels, code_label(code))


class MetricsServer:
    """/metrics over HTTP on its own port (prometheus_client's threaded server)."""

    def __init__(self, host: str, port: int) -> None:
        server, thread = prometheus_client.start_http_server(port, addr=host)
        self._server: WSGIServer = server
        self._thread: threading.Thread = thread

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
