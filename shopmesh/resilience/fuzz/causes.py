"""Why a call ended INTERNAL or UNKNOWN, or hung: the causes the fuzz has found, each with where
it lies. The report counts every failure by cause; one that matches none is "unexplained" —
a new finding. A cause listed here is still a failure: it is explained, not excused.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shopmesh.resilience.fuzz.cases import Case
from shopmesh.resilience.fuzz.wire import End


@dataclass(frozen=True)
class Cause:
    key: str
    where: str  # what would have to change
    what: str
    matches: Callable[[Case, End], bool]


#: grpc-core's own words for a request it refuses while parsing headers and framing.
_TRANSPORT_REFUSALS = re.compile(
    r"Error parsing '[^']+' metadata|Compression bit set but no encoding configured|Invalid metadata"
    r"|Illegal header key|Decompression failed"
)


CAUSES = (
    Cause(
        "transport-metadata-internal",
        "grpc-core (before any Python code runs; upstream behaviour: grpc/grpc#26401)",
        "a malformed grpc-timeout, grpc-encoding or :scheme, a compressed message with no encoding or that "
        "does not decompress, an upper-case header name or control bytes in a header value: grpc-core's "
        "own parsing ends the call INTERNAL",
        lambda case, end: (
            end.outcome == "INTERNAL" and _TRANSPORT_REFUSALS.search(end.grpc_message) is not None
        ),
    ),
)


def cause_of(case: Case, end: End) -> str:
    return next((cause.key for cause in CAUSES if cause.matches(case, end)), "unexplained")
