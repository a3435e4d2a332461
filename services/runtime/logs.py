"""JSON log lines carrying the trace id, span id and request id of the call being handled.

One JSON object a line on stderr, so a log pipeline can join a line to its trace (trace_id)
and to the mesh's access log (request_id, Envoy's x-request-id).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any

from services.runtime.callcontext import current_call


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service
        # Built once: json.dumps(..., default=str) builds a new encoder for every line, and an
        # access line is written for every call.
        self._encoder = json.JSONEncoder(default=str)
        self._second: tuple[int, str] = (-1, "")  # a second and its text

    def _time(self, record: logging.LogRecord) -> str:
        """When `record` was made: ISO 8601 in UTC, to the millisecond. The text up to the second
        is made once a second, not once a line (as nginx and Envoy do for their access logs)."""
        second, text = self._second
        if int(record.created) != second:
            second = int(record.created)
            text = datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (second, text)
        return f"{text}.{int(record.msecs):03d}+00:00"

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": self._time(record),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "message": record.getMessage(),
        }
        call = current_call()
        if call is not None:
            if call.trace is not None:
                entry["trace_id"] = call.trace.trace_id
                entry["span_id"] = call.trace.span_id
            if call.request_id:
                entry["request_id"] = call.request_id
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return self._encoder.encode(entry)


def configure_logging(service: str, level: str) -> None:
    # The lines carry none of the caller's file and line, thread or process: so the records do
    # not collect them either (the logging HOWTO's "Optimization": every call site walks the
    # stack otherwise, and an access line is written for every call).
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
