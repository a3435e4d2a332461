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

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
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
        return json.dumps(entry, default=str)


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
