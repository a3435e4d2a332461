"""A small client of Prometheus' HTTP API: `/api/v1/query`, `/api/v1/query_range`, `/-/ready`.

Errors say what went wrong and where: `PrometheusUnavailable` when nothing (or nothing ready)
answers at the address, `QueryError` with Prometheus' own message and the query when Prometheus
refuses or fails a query. Queries are POSTed (no URL length limit); replies are read up to
`MAX_REPLY_BYTES`.
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEFAULT_URL = "http://127.0.0.1:9090"
#: A query's reply larger than this is refused rather than held in memory.
MAX_REPLY_BYTES = 32 * 1024 * 1024


class PrometheusUnavailable(ConnectionError):
    """Nothing answers at the address, or Prometheus is not ready yet."""


class QueryError(RuntimeError):
    """Prometheus refused or failed the query (bad syntax, timeout, too many samples…)."""


@dataclass(frozen=True)
class Sample:
    labels: Mapping[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class Series:
    labels: Mapping[str, str]
    points: tuple[tuple[float, float], ...]  # (timestamp, value)


class PrometheusClient:
    def __init__(self, url: str = DEFAULT_URL, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def ready(self) -> bool:
        """True once Prometheus serves queries (`/-/ready` answers 200); never raises."""
        try:
            with urllib.request.urlopen(f"{self.url}/-/ready", timeout=self.timeout) as reply:
                return bool(reply.status == 200)
        except (OSError, ValueError):
            return False

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant query. A scalar comes back as one sample without labels."""
        parameters = {"query": expr} if at is None else {"query": expr, "time": _number(at)}
        data = self._call("/api/v1/query", parameters, expr)
        kind, result = data.get("resultType"), data["result"]
        if kind == "vector":
            return [_sample(item["metric"], item["value"]) for item in result]
        if kind == "scalar":
            return [_sample({}, result)]
        raise QueryError(f"query {expr!r} returned a {kind}, not an instant vector or scalar")

    def query_range(self, expr: str, start: float, end: float, step: float) -> list[Series]:
        if not (step > 0 and end >= start):
            raise ValueError(f"query_range: need start <= end and step > 0 (got {start}, {end}, {step})")
        parameters = {"query": expr, "start": _number(start), "end": _number(end), "step": _number(step)}
        data = self._call("/api/v1/query_range", parameters, expr)
        return [
            Series(
                labels=dict(item["metric"]),
                points=tuple((float(t), _value(v)) for t, v in item["values"]),
            )
            for item in data.get("result", [])
        ]

    def _call(self, path: str, parameters: Mapping[str, str], expr: str) -> dict[str, Any]:
        body = urllib.parse.urlencode(parameters).encode()
        request = urllib.request.Request(
            f"{self.url}{path}",
            data=body,
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as reply:
                text = _read_bounded(reply, expr)
        except urllib.error.HTTPError as error:
            text = _read_bounded(error, expr)
            if error.code == 503 and "error" not in text:
                raise PrometheusUnavailable(f"Prometheus at {self.url} is not ready yet") from None
            raise QueryError(f"query {expr!r}: {_error_message(text, error.code)}") from None
        except (urllib.error.URLError, OSError) as error:
            reason = getattr(error, "reason", error)
            raise PrometheusUnavailable(
                f"no Prometheus at {self.url} ({reason}); is it running? (scripts/up starts one)"
            ) from None
        try:
            envelope = json.loads(text)
        except json.JSONDecodeError:
            raise QueryError(f"query {expr!r}: {self.url} answered something other than JSON") from None
        if envelope.get("status") != "success":
            raise QueryError(f"query {expr!r}: {_error_message(text, 200)}")
        data: dict[str, Any] = envelope["data"]
        return data


def _read_bounded(reply: Any, expr: str) -> str:
    text: bytes = reply.read(MAX_REPLY_BYTES + 1)
    if len(text) > MAX_REPLY_BYTES:
        raise QueryError(f"query {expr!r}: reply larger than {MAX_REPLY_BYTES} bytes; aggregate it")
    return text.decode(errors="replace")


def _error_message(text: str, status: int) -> str:
    try:
        envelope = json.loads(text)
        return f"{envelope.get('errorType', 'error')}: {envelope.get('error', text)}"
    except (json.JSONDecodeError, AttributeError):
        return f"HTTP {status}: {text[:300]}"


def _sample(labels: Mapping[str, str], pair: list[Any]) -> Sample:
    return Sample(labels=dict(labels), value=_value(pair[1]), timestamp=float(pair[0]))


def _value(text: str) -> float:
    return float(text)  # Prometheus writes values as strings: "1.5", "NaN", "+Inf"


def _number(value: float) -> str:
    if not math.isfinite(value):
        raise ValueError(f"not a finite time or step: {value}")
    return repr(float(value))
