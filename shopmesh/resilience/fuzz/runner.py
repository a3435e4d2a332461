"""Sends every case to every target and judges how each call ended.

A call must end (no hang: a gRPC call within its deadline, a raw request within the same time)
and never with INTERNAL or UNKNOWN: a malformed request is the caller's mistake and must be
answered as one (INVALID_ARGUMENT, UNIMPLEMENTED, RESOURCE_EXHAUSTED, ...), or refused at the
HTTP/2 level (RST_STREAM, GOAWAY, closing the connection). After each family, the target must
still answer its health check SERVING; at the end, no process may have died. Raw bytes that
leave the server waiting for more (a frame announced and never sent) are not a hang: the server
is right to wait; the connection is closed after a moment and the health check follows.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health_pb2

from shopmesh.resilience.fuzz.cases import HEALTH, Case, cases, rpcs
from shopmesh.resilience.fuzz.causes import cause_of
from shopmesh.resilience.fuzz.wire import End, request, send_bytes

FORBIDDEN = frozenset({"INTERNAL", "UNKNOWN"})
CALL_TIMEOUT_SECONDS = 5.0
#: How long a target may take to answer its health check after a family.
HEALTH_TIMEOUT_SECONDS = 10.0
#: Raw bytes get this long before the connection is given up (the server may rightly wait).
BYTES_TIMEOUT_SECONDS = 2.0
#: Reproducers kept per cause of failure and target.
KEPT = 5


@dataclass(frozen=True)
class Target:
    name: str  # "ingress", or the service it is
    address: str
    services: tuple[str, ...]  # whose methods it is sent


@dataclass
class TargetReport:
    target: Target
    timeout: float  # each call's, in seconds
    outcomes: dict[str, Counter[str]] = field(
        default_factory=lambda: defaultdict(Counter)
    )  # family -> outcome
    examples: list[dict[str, Any]] = field(default_factory=list)  # failures, up to KEPT per cause
    unhealthy_after: list[str] = field(default_factory=list)  # families after which it did not serve
    slow_to_serve: dict[str, float] = field(default_factory=dict)  # family -> seconds until SERVING
    sent: int = 0
    hang_count: int = 0
    forbidden_count: int = 0
    causes: Counter[str] = field(default_factory=Counter)  # failures by cause (shopmesh...causes)
    not_sent: Counter[str] = field(default_factory=Counter)  # refused by our own gRPC client
    slowest: tuple[float, str] = (0.0, "")

    def record(self, case: Case, end: End) -> None:
        if end.outcome.startswith("not sent:"):
            self.not_sent[end.outcome] += 1
            return
        self.sent += 1
        self.outcomes[case.family][end.outcome] += 1
        self.slowest = max(self.slowest, (end.seconds, f"{case.family}: {case.name}"))
        forbidden, hung = end.outcome in FORBIDDEN, is_hang(case, end, self.timeout)
        if not (forbidden or hung):
            return
        cause = cause_of(case, end)
        self.causes[cause] += 1
        self.forbidden_count += forbidden
        self.hang_count += hung
        if self.causes[cause] <= KEPT:
            self.examples.append(
                {
                    "cause": cause,
                    "outcome": end.outcome,
                    "message": end.grpc_message,
                    "seconds": round(end.seconds, 3),
                    **case.describe(),
                }
            )

    def failures(self) -> int:
        counts = (count for per_family in self.outcomes.values() for count in per_family.items())
        return (
            sum(n for outcome, n in counts if outcome in FORBIDDEN)
            + self.hang_count
            + len(self.unhealthy_after)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "address": self.target.address,
            "sent": self.sent,
            "not_sent_by_our_client": dict(self.not_sent),
            "outcomes": {family: dict(counts.most_common()) for family, counts in self.outcomes.items()},
            "forbidden": self.forbidden_count,
            "hangs": self.hang_count,
            "failures_by_cause": dict(self.causes.most_common()),
            "examples": self.examples,
            "unhealthy_after": self.unhealthy_after,
            "seconds_until_serving_after": self.slow_to_serve,
            "slowest": {"seconds": round(self.slowest[0], 3), "case": self.slowest[1]},
        }


def is_hang(case: Case, end: End, timeout: float) -> bool:
    """A call (not raw bytes: the server may rightly wait for the rest) that did not end in time."""
    if case.transport == "bytes":
        return False
    return end.outcome == "no answer" or (end.outcome == "DEADLINE_EXCEEDED" and end.seconds >= timeout * 0.9)


def fuzz(
    targets: Sequence[Target],
    scale: float,
    seed: int,
    progress: Callable[[str], None],
    timeout: float = CALL_TIMEOUT_SECONDS,
) -> list[TargetReport]:
    """Every target its cases (shopmesh...cases), each call given `timeout` seconds to end."""
    reports = []
    for target in targets:
        report = TargetReport(target, timeout)
        with grpc.insecure_channel(target.address) as channel:
            family = ""
            for case in cases(rpcs(target.services), scale, seed):
                if case.family != family:
                    if family:
                        _check_health(channel, report, family)
                    family = case.family
                    progress(f"{target.name}: {family}")
                report.record(case, send(case, target.address, channel, timeout))
            _check_health(channel, report, family)
        reports.append(report)
    return reports


def send(case: Case, address: str, channel: grpc.Channel, timeout: float) -> End:
    began = time.monotonic()
    if case.raw is not None:
        return send_bytes(address, case.raw, min(timeout, BYTES_TIMEOUT_SECONDS))
    if case.headers is not None:
        return request(address, case.headers, case.data, timeout)
    try:
        _call(channel, case, timeout)
    except grpc.RpcError as error:
        code: grpc.StatusCode = error.code()
        details: str = error.details() or ""
        return End(code.name, time.monotonic() - began, details[:200])
    except (ValueError, TypeError) as error:  # our client refuses to send it (invalid metadata)
        return End(f"not sent: {type(error).__name__}", time.monotonic() - began)
    return End("OK", time.monotonic() - began)


def _call(channel: grpc.Channel, case: Case, timeout: float) -> None:
    """One call with the case's bytes as its request, whatever the method's shape."""
    client_streaming, server_streaming = case.streaming
    options: dict[str, Any] = {"timeout": timeout, "metadata": case.metadata}
    raw = (None, None)  # no serializers: the bytes go as they are, replies come back as bytes
    if client_streaming:
        for _ in channel.stream_stream(case.path, *raw)(iter([case.body]), **options):
            pass
    elif server_streaming:
        for _ in channel.unary_stream(case.path, *raw)(case.body, **options):
            pass
    else:
        channel.unary_unary(case.path, *raw)(case.body, **options)


def _check_health(channel: grpc.Channel, report: TargetReport, family: str) -> None:
    """SERVING within HEALTH_TIMEOUT_SECONDS, asked every 0.2 s; a target that took longer than
    a second is noted with the time it took, one that never did is unhealthy."""
    check = channel.unary_unary(
        HEALTH.path,
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    began = time.monotonic()
    while time.monotonic() - began < HEALTH_TIMEOUT_SECONDS:
        try:
            reply = check(
                health_pb2.HealthCheckRequest(), timeout=HEALTH_TIMEOUT_SECONDS, wait_for_ready=True
            )
            if reply.status == health_pb2.HealthCheckResponse.SERVING:
                waited = time.monotonic() - began
                if waited > 1.0:
                    report.slow_to_serve[family] = round(waited, 1)
                return
        except grpc.RpcError:
            pass
        time.sleep(0.2)
    report.unhealthy_after.append(family)


def totals(reports: Iterable[TargetReport]) -> dict[str, Any]:
    reports = list(reports)
    by_outcome: Counter[str] = Counter()
    by_cause: Counter[str] = Counter()
    for report in reports:
        by_cause.update(report.causes)
        for counts in report.outcomes.values():
            by_outcome.update(counts)
    return {
        "sent": sum(report.sent for report in reports),
        "outcomes": dict(by_outcome.most_common()),
        "forbidden": sum(report.forbidden_count for report in reports),
        "hangs": sum(report.hang_count for report in reports),
        "failures_by_cause": dict(by_cause.most_common()),
        "unhealthy": sum(len(report.unhealthy_after) for report in reports),
    }
