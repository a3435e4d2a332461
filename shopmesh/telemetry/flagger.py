"""Flagger's builtin Istio canary checks, as Flagger renders and sends them, and a gRPC-aware one.

`REQUEST_SUCCESS_RATE` and `REQUEST_DURATION` are Flagger's templates verbatim
(fluxcd/flagger pkg/metrics/observers/istio.go; kept in shopmesh.canary.checks, which runs
them). Flagger fills them with Go's text/template,
`{{ namespace }}`, `{{ target }}` (the Canary's targetRef) and `{{ interval }}` being functions,
and collapses whitespace before the query goes to Prometheus (providers/prometheus.go).

The success rate counts a request as failed only when `response_code` is 5xx. A gRPC call
that fails is HTTP 200 with a `grpc-status` trailer, so on gRPC traffic this check reads 100 %
while calls fail. `GRPC_SUCCESS_RATE` is ours, for a Flagger MetricTemplate: it counts as
failed what spends shopmesh's availability budget (shopmesh.telemetry.slo), as well as 5xx.
"""

from __future__ import annotations

import re

from shopmesh.canary import templates
from shopmesh.canary.checks import ISTIO_QUERIES
from shopmesh.canary.templates import MetricModel, TemplateError, trim
from shopmesh.telemetry import slo

REQUEST_SUCCESS_RATE = ISTIO_QUERIES["request-success-rate"]
REQUEST_DURATION = ISTIO_QUERIES["request-duration"]

_BUDGET_CODES = "|".join(str(code) for code in sorted(slo.SERVER_FAULT_CODES))
GRPC_SUCCESS_RATE = f"""
sum(
  rate(
    istio_requests_total{{
      reporter="destination",
      destination_workload_namespace="{{{{ namespace }}}}",
      destination_workload=~"{{{{ target }}}}",
      response_code!~"5.*",
      grpc_response_status!~"{_BUDGET_CODES}"
    }}[{{{{ interval }}}}]
  )
)
/
sum(
  rate(
    istio_requests_total{{
      reporter="destination",
      destination_workload_namespace="{{{{ namespace }}}}",
      destination_workload=~"{{{{ target }}}}"
    }}[{{{{ interval }}}}]
  )
)
* 100
"""

#: Flagger's `interval` (the CRD's pattern: a number of seconds or minutes).
_INTERVAL = re.compile(r"^[0-9]+(m|s)$")


def render(template: str, *, namespace: str, target: str, interval: str = "1m") -> str:
    """The query Flagger sends for a Canary whose targetRef is `target` in `namespace`
    (shopmesh.canary.templates, Flagger's rendering, with the Canary's name the target's)."""
    if not _INTERVAL.match(interval):
        raise ValueError(f"interval {interval!r}: Flagger accepts a number of seconds or minutes (30s, 1m)")
    model = MetricModel(
        name=target,
        namespace=namespace,
        target=target,
        service=target,
        ingress=target,
        route=target,
        interval=interval,
    )
    try:
        return trim(templates.render(template, model)).strip()
    except TemplateError as error:
        raise ValueError(str(error)) from error
