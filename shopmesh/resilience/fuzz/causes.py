"""Why a call ended INTERNAL or UNKNOWN, or hung: the causes the fuzz has found, each with where
it lies. The report counts every failure by cause; one that matches none is "unexplained" —
a new finding. A cause listed here is still a failure: it is explained, not excused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from shopmesh.resilience.fuzz.cases import Case
from shopmesh.resilience.fuzz.wire import End

REFLECTION_PATH_SUFFIX = "/ServerReflectionInfo"


@dataclass(frozen=True)
class Cause:
    key: str
    where: str  # what would have to change
    what: str
    matches: Callable[[Case, End], bool]


def _whole_message(data: bytes) -> bool:
    """Does `data` hold at least one complete gRPC length-prefixed message?"""
    return len(data) >= 5 and int.from_bytes(data[1:5], "big") <= len(data) - 5


CAUSES = (
    Cause(
        "undecodable-request-unknown",
        "services/runtime/interceptor.py (grpcio's aio server behaviour)",
        "request bytes that do not decode as the method's message end UNKNOWN \"Unexpected "
        "<class 'google.protobuf.message.DecodeError'>\": the generated deserializer, passed on as it "
        "is, raises before any handler runs, and grpc.aio answers UNKNOWN; they should be INVALID_ARGUMENT",
        lambda case, end: end.outcome == "UNKNOWN" and "DecodeError" in end.grpc_message,
    ),
    Cause(
        "undecodable-stream-internal",
        "services/runtime/interceptor.py",
        "undecodable bytes in a client stream (reflection's ServerReflectionInfo) raise DecodeError "
        "while the handler reads its requests; the runtime's error mapping turns it into INTERNAL "
        '"internal error"',
        lambda case, end: (
            end.outcome == "INTERNAL"
            and end.grpc_message == "internal error"
            and case.path.endswith(REFLECTION_PATH_SUFFIX)
        ),
    ),
    Cause(
        "undecodable-request-sync-internal",
        "shopmesh/localmesh/ingress.py (its own health service, on grpcio's sync server)",
        'request bytes that do not decode end INTERNAL "Exception deserializing request!" on a grpcio sync '
        "server's own handler: the local mesh's ingress answers health itself",
        lambda case, end: (
            end.outcome == "INTERNAL" and end.grpc_message == "Exception deserializing request!"
        ),
    ),
    Cause(
        "transport-metadata-internal",
        "grpc-core (before any Python code runs; upstream behaviour)",
        "a malformed grpc-timeout, grpc-encoding or :scheme, a compressed message with no encoding or that "
        "does not decompress, an upper-case header name or control bytes in a header value: grpc-core's "
        "own parsing ends the call INTERNAL",
        lambda case, end: (
            end.outcome == "INTERNAL"
            and any(
                text in end.grpc_message
                for text in (
                    "Error parsing 'grpc-timeout' metadata",
                    "Error parsing 'grpc-encoding' metadata",
                    "Error parsing ':scheme' metadata",
                    "Compression bit set but no encoding configured",
                    "Invalid metadata",
                )
            )
        ),
    ),
    Cause(
        "unary-without-request-hangs",
        "grpcio's aio server (the services' server; upstream behaviour)",
        "a unary call whose request stream ends without one whole gRPC message (none, half a length "
        "prefix, or bytes not framed as gRPC) is never answered: no status, the stream stays open until the "
        "client gives up. Envoy's route timeout ends such a call in a cluster",
        lambda case, end: (
            end.outcome == "no answer" and case.transport == "h2" and not _whole_message(case.data)
        ),
    ),
)


def cause_of(case: Case, end: End) -> str:
    return next((cause.key for cause in CAUSES if cause.matches(case, end)), "unexplained")
