"""shopmesh's service level objectives: the one source of its recording and alerting rules.

Both SLOs are measured where Istio measures every call, at the destination's proxy
(`istio_requests_total` and `istio_request_duration_milliseconds`, `reporter="destination"`,
`request_protocol="grpc"`), per destination service (`destination_canonical_service`, which
puts order v1 and v2 together: the canary spends order's budget).

**Availability**: the share of gRPC calls that fail for a reason of ours. A gRPC failure is an
HTTP 200 with a `grpc-status` trailer, so only `grpc_response_status` tells it (response_code
is 200 either way). Codes that count are those where the server, or the mesh in front of it,
failed a call that was fine (`SERVER_FAULT_CODES`); codes that are the caller's own doing or a
business answer do not (`CALLER_CODES`). Each with its reason below; docs/observability.md
shows the table.

**Latency**: the share of gRPC calls slower than the service's threshold. The threshold is one
of Envoy's default bucket bounds, so the ratio is exact, not interpolated.

Alerts follow the SRE workbook's multi-window, multi-burn-rate pattern (chapter 5, "Alerting on
SLOs", table 5-8, for a 30-day budget): a burn rate is how many times faster than "exactly
used up in 30 days" the budget goes; an alert needs both a long window (enough budget spent to
matter) and a short one (still burning now, so it resets soon after a fix).
"""

from __future__ import annotations

from dataclasses import dataclass
from types import MappingProxyType

#: The namespace whose services these objectives cover (k8s/base: `namespace: shop`).
NAMESPACE = "shop"

#: gRPC codes that spend the availability budget, by number (Istio's `grpc_response_status`).
SERVER_FAULT_CODES = MappingProxyType(
    {
        2: "UNKNOWN: an unexpected failure (also what Envoy answers for an upstream error it cannot map)",
        4: "DEADLINE_EXCEEDED: we did not answer in time (a route timeout, a slow dependency)",
        8: "RESOURCE_EXHAUSTED: we ran out of capacity (connections, memory, concurrency); "
        "no per-caller quota exists in shopmesh, so it is never a caller being throttled",
        10: "ABORTED: a concurrency conflict inside the service (AIP-193: retry the whole sequence)",
        12: "UNIMPLEMENTED: every caller uses stubs generated from proto/, so a method missing "
        "where a route sends it is a deployment or routing fault (a rollback to a version "
        "without the method, Envoy's 404 'no route' local reply, which maps to 12)",
        13: "INTERNAL: a bug or broken invariant on our side",
        14: "UNAVAILABLE: the service, a dependency or the mesh could not serve (Envoy's 503s: no "
        "healthy upstream, overflow, reset)",
        15: "DATA_LOSS: unrecoverable loss or corruption",
    }
)

#: gRPC codes that do not: the call was wrong, not allowed, or answered as designed.
CALLER_CODES = MappingProxyType(
    {
        0: "OK",
        1: "CANCELLED: the caller gave up (its own cancellation; a slow reply is DEADLINE_EXCEEDED)",
        3: "INVALID_ARGUMENT: the request is malformed (BadRequest details say which field)",
        5: "NOT_FOUND: the resource asked for does not exist",
        6: "ALREADY_EXISTS: the caller repeated a create with other content",
        7: "PERMISSION_DENIED: the caller is not allowed (an AuthorizationPolicy said no)",
        9: "FAILED_PRECONDITION: the resource is not in a state for this call (e.g. refunding "
        "more than was charged)",
        11: "OUT_OF_RANGE: the caller asked past the end (a page token beyond the data)",
        16: "UNAUTHENTICATED: the caller presented no valid credentials",
    }
)


@dataclass(frozen=True)
class BurnRateAlert:
    """One multi-window condition: both windows burn faster than `factor`."""

    long_window: str
    short_window: str
    factor: float
    severity: str  # "page" wakes someone; "ticket" waits for working hours

    @property
    def name(self) -> str:
        return self.long_window  # alerts are named by their long window: …BurnRate1h


#: Table 5-8 of the SRE workbook: 2 % of the budget in 1 h, 5 % in 6 h (page), 10 % in 3 days
#: (ticket). The short windows are 1/12 of the long ones, as the workbook recommends.
BURN_RATE_ALERTS = (
    BurnRateAlert(long_window="1h", short_window="5m", factor=14.4, severity="page"),
    BurnRateAlert(long_window="6h", short_window="30m", factor=6, severity="page"),
    BurnRateAlert(long_window="3d", short_window="6h", factor=1, severity="ticket"),
)


@dataclass(frozen=True)
class Objective:
    slo: str  # the `slo` label of its recorded ratios and alerts
    alert_prefix: str
    target: float  # the share of good calls promised over 30 days
    description: str

    @property
    def error_budget(self) -> float:
        return round(1 - self.target, 10)


AVAILABILITY = Objective(
    slo="grpc-availability",
    alert_prefix="GrpcAvailability",
    target=0.999,
    description="99.9 % of gRPC calls do not fail for a reason of ours",
)
LATENCY = Objective(
    slo="grpc-latency",
    alert_prefix="GrpcLatency",
    target=0.99,
    description="99 % of gRPC calls end within their service's threshold",
)

#: Per service, the call duration (ms, at the destination's proxy) within which a call is
#: fast enough. Each is one of Envoy's default histogram bounds (0.5, 1, 5, 10, 25, 50, 100,
#: 250, 500, 1000, 2500, …). Order's CreateOrder is a saga of three downstream calls and at
#: least seven transactions; inventory and payment answer from one or two. Istio's metric has
#: no method label: order's streaming WatchOrder counts with its whole stream's duration.
LATENCY_THRESHOLDS_MS = MappingProxyType({"inventory": 250, "order": 1000, "payment": 250})
