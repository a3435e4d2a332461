"""Domain errors: plain exceptions the domain raises, with no knowledge of gRPC.

Each class names what the caller may do about it (AIP-193): fix the request (InvalidArgument),
look elsewhere (NotFound), change the state first (FailedPrecondition), use another key
(AlreadyExists), retry later (Unavailable, Aborted), or give it more time (DeadlineExceeded).
`services.runtime.status` turns them into gRPC statuses with `google.rpc` details; the
ErrorInfo domain ("<service>.shop") is added there, from the serving service's name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class FieldViolation:
    """One bad field: `field` is a path like "items[2].quantity" (google.rpc.BadRequest), or ""
    for the request as a whole (bytes that are no message at all, a missing message)."""

    field: str
    description: str


class ShopError(Exception):
    """Base of every domain error; `message` is safe to show to the caller."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidArgument(ShopError):
    """The request is malformed: INVALID_ARGUMENT with one BadRequest violation per field."""

    def __init__(self, violations: Sequence[FieldViolation], message: str | None = None) -> None:
        if not violations:
            raise ValueError("InvalidArgument needs at least one violation")
        self.violations = tuple(violations)
        if message is None:
            # The message names a few fields; the BadRequest detail lists them all.
            fields = ", ".join(violation.field for violation in self.violations[:5])
            more = f" and {len(self.violations) - 5} more" if len(self.violations) > 5 else ""
            message = f"invalid request: {fields}{more}"
        super().__init__(message)


class NotFound(ShopError):
    """The named resource does not exist: NOT_FOUND with google.rpc.ResourceInfo."""

    def __init__(self, resource_type: str, resource_name: str) -> None:
        self.resource_type = resource_type
        self.resource_name = resource_name
        super().__init__(f"{resource_type} {resource_name!r} not found")


class ReasonedError(ShopError):
    """An error with an ErrorInfo: a stable UPPER_SNAKE `reason` and string metadata."""

    def __init__(self, reason: str, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.metadata: dict[str, str] = dict(metadata or {})


class FailedPrecondition(ReasonedError):
    """The current state refuses the call; retrying the same call will not help."""


class AlreadyExists(ReasonedError):
    """The key is taken by a different request (e.g. an idempotency key reused)."""


class Aborted(ReasonedError):
    """A concurrency conflict (e.g. a serialization failure); retry the whole operation."""


class Unavailable(ReasonedError):
    """A dependency (the database, another service) cannot be reached; safe to retry."""

    def __init__(
        self,
        reason: str,
        message: str,
        metadata: Mapping[str, str] | None = None,
        *,
        retry_after_seconds: float | None = None,
    ) -> None:
        super().__init__(reason, message, metadata)
        self.retry_after_seconds = retry_after_seconds


class DeadlineExceeded(ReasonedError):
    """The work could not finish in the caller's time (e.g. a dependency ran out of it)."""
