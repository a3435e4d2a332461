"""Flagger's events, and Go's formatting of the values in them.

Flagger records every event with reason `Synced` and one of two types: recordEventInfof →
Normal, recordEventWarningf and recordEventErrorf → Warning (pkg/controller/events.go). The
texts are built with Go's fmt: `%v` of a float64 prints its shortest form ("99", "99.5"), `%v`
of a time.Duration its String() ("512ms", "1.5s"), `%.2f` two decimals. The helpers here do
the same, so a message reads exactly as Flagger's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class EventType(StrEnum):
    NORMAL = "Normal"
    WARNING = "Warning"


@dataclass(frozen=True)
class Event:
    type: EventType
    message: str

    def __str__(self) -> str:
        return f"{self.type.value:<7} {self.message}"


def normal(message: str) -> Event:
    return Event(EventType.NORMAL, message)


def warning(message: str) -> Event:
    return Event(EventType.WARNING, message)


def go_value(number: float) -> str:
    """Go's `%v` of a float64 (strconv 'g', shortest): 99 → "99", 99.5 → "99.5", 1e-05."""
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "+Inf" if number > 0 else "-Inf"
    if number == int(number) and abs(number) < 1e21:
        return str(int(number))
    text = repr(number)
    if "e" in text:
        mantissa, exponent = text.split("e")
        sign = "-" if exponent.startswith("-") else "+"
        text = f"{mantissa}e{sign}{abs(int(exponent)):02d}"
    return text


def _units(nanoseconds: int) -> str:
    """Go's Duration.String for less than a second: the largest unit that fits, 3 digits."""
    for unit, size in (("ms", 1_000_000), ("µs", 1_000), ("ns", 1)):
        if nanoseconds >= size:
            return f"{go_value(nanoseconds / size)}{unit}"
    return "0s"


def go_duration(nanoseconds: int) -> str:
    """Go's time.Duration.String(): "512ms", "1.5s", "1m1s", "2h0m0s", "0s"."""
    if nanoseconds == 0:
        return "0s"
    sign = "-" if nanoseconds < 0 else ""
    nanoseconds = abs(nanoseconds)
    if nanoseconds < 1_000_000_000:
        return sign + _units(nanoseconds)
    hours, rest = divmod(nanoseconds, 3_600_000_000_000)
    minutes, rest = divmod(rest, 60_000_000_000)
    seconds = go_value(rest / 1_000_000_000) + "s"
    if hours:
        return f"{sign}{hours}h{minutes}m{seconds}"
    if minutes:
        return f"{sign}{minutes}m{seconds}"
    return sign + seconds


def milliseconds(value: float) -> int:
    """pkg/metrics/observers/istio.go: `time.Duration(int64(value)) * time.Millisecond`, in
    nanoseconds: the fraction of a millisecond is dropped."""
    return int(value) * 1_000_000
