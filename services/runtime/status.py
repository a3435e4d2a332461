"""Domain errors to gRPC statuses (AIP-193) with google.rpc details, via grpcio-status.

The status goes out as a Trailers-Only response because it is sent before any initial metadata
or message (see interceptor.py): Envoy's outlier detection and `retryOn` only see a status
there. Strings are truncated so a status always fits the peer's header size limit.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2, duration_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status

from services.runtime import errors

MAX_MESSAGE_CHARS = 300
MAX_FIELD_CHARS = 120
MAX_VIOLATIONS = 20

_CODES: dict[type[errors.ShopError], int] = {
    errors.InvalidArgument: code_pb2.INVALID_ARGUMENT,
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    errors.AlreadyExists: code_pb2.ALREADY_EXISTS,
    errors.Aborted: code_pb2.ABORTED,
    errors.Unavailable: code_pb2.UNAVAILABLE,
    errors.DeadlineExceeded: code_pb2.DEADLINE_EXCEEDED,
}


def error_domain(service: str) -> str:
    """ErrorInfo.domain of a service's errors, e.g. "payment.shop"."""
    return f"{service}.shop"


def to_grpc_status(error: errors.ShopError, *, service: str) -> grpc.Status:
    code = next((code for kind, code in _CODES.items() if isinstance(error, kind)), code_pb2.INTERNAL)
    status = status_pb2.Status(code=code, message=_clip(error.message, MAX_MESSAGE_CHARS))
    for detail in _details(error, service):
        packed = any_pb2.Any()
        packed.Pack(detail)
        status.details.append(packed)
    return rpc_status.to_status(status)


def internal_status() -> grpc.Status:
    """For an unexpected exception: no internals leak to the caller (they are logged)."""
    return rpc_status.to_status(status_pb2.Status(code=code_pb2.INTERNAL, message="internal error"))


def _details(error: errors.ShopError, service: str) -> list[message.Message]:
    if isinstance(error, errors.InvalidArgument):
        violations = [
            error_details_pb2.BadRequest.FieldViolation(
                field=_clip(violation.field, MAX_FIELD_CHARS),
                description=_clip(violation.description, MAX_FIELD_CHARS),
            )
            for violation in error.violations[:MAX_VIOLATIONS]
        ]
        return [error_details_pb2.BadRequest(field_violations=violations)]
    if isinstance(error, errors.NotFound):
        return [
            error_details_pb2.ResourceInfo(
                resource_type=_clip(error.resource_type, MAX_FIELD_CHARS),
                resource_name=_clip(error.resource_name, MAX_FIELD_CHARS),
                description=_clip(error.message, MAX_FIELD_CHARS),
            )
        ]
    if isinstance(error, errors.ReasonedError):
        info = error_details_pb2.ErrorInfo(
            reason=error.reason,
            domain=error_domain(service),
            metadata={_clip(key, 64): _clip(value, MAX_FIELD_CHARS) for key, value in error.metadata.items()},
        )
        details: list[message.Message] = [info]
        if isinstance(error, errors.Unavailable) and error.retry_after_seconds is not None:
            delay = duration_pb2.Duration()
            delay.FromMilliseconds(int(error.retry_after_seconds * 1000))
            details.append(error_details_pb2.RetryInfo(retry_delay=delay))
        return details
    return []


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
