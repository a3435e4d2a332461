"""The steady state every experiment states: the ingress answers, and the books agree.

"The ingress answers" is Istio's own measure at the gateway's proxy: of the gRPC calls it
sent into the mesh over the last minute, at least 99.5 % did not fail for a reason of ours.
"For a reason of ours" is the availability SLO's rule (shopmesh.telemetry.slo): a caller's
mistake or a business answer (INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, …) is not a
failure; UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, UNKNOWN, … are. A gateway reports what it
sends as `reporter="source"` with its own workload as the source.

With no call at all in the window the ratio has no value and the hypothesis is not met: an
experiment "under steady load" needs the load (docs/resilience.md says how to run it).
"""

from __future__ import annotations

from shopmesh.telemetry import slo

#: The share of ingress calls that must succeed over the window.
INGRESS_SUCCESS_TARGET = 0.995
INGRESS_WINDOW = "1m"
#: The gateway's calls into the mesh, as its Envoy reports them.
INGRESS_CALLS = 'reporter="source", source_workload="istio-ingressgateway", request_protocol="grpc"'


def fault_codes() -> str:
    """The gRPC codes (numbers) that count as failures, as a Prometheus regular expression."""
    return "|".join(str(code) for code in sorted(slo.SERVER_FAULT_CODES))


def ingress_success_ratio(window: str = INGRESS_WINDOW) -> str:
    """PromQL: the share of the ingress' gRPC calls over `window` that did not fail."""
    calls = f"istio_requests_total{{{INGRESS_CALLS}}}"
    failed = f'istio_requests_total{{{INGRESS_CALLS}, grpc_response_status=~"{fault_codes()}"}}'
    return f"1 - (sum(rate({failed}[{window}])) or vector(0)) / sum(rate({calls}[{window}]))"


def ingress_success_met(window: str = INGRESS_WINDOW, target: float = INGRESS_SUCCESS_TARGET) -> str:
    """PromQL: 1 when the ingress success ratio is at least `target`, 0 when below, no sample
    when there was no call (what chaostoolkit-prometheus' `query` probe is judged on)."""
    return f"({ingress_success_ratio(window)}) >= bool {target:g}"
