"""Istio's durations (`10s`, `1.5s`, `500ms`, `1m`, `1h`) as protobuf Durations."""

from __future__ import annotations

from google.protobuf import duration_pb2

from shopmesh.localmesh.translate import TranslationError

_UNITS = (("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0))


def parse_duration(value: str | None, where: str) -> duration_pb2.Duration | None:
    if value is None:
        return None
    text = str(value).strip()
    for suffix, scale in _UNITS:
        if text.endswith(suffix) and not (suffix == "s" and text.endswith("ms")):
            try:
                seconds = float(text[: -len(suffix)]) * scale
            except ValueError:
                break
            duration = duration_pb2.Duration()
            duration.FromNanoseconds(round(seconds * 1e9))
            return duration
    raise TranslationError(f"{where}: {value!r} is not a duration")
