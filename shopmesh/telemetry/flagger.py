"""Flagger's builtin Istio canary checks, as Flagger renders and sends them, and a gRPC-aware one.

`REQUEST_SUCCESS_RATE` and `REQUEST_DURATION` are Flagger's templates verbatim
(fluxcd/flagger pkg/metrics/observers/istio.go). Flagger fills them with Go's text/template,
`{{ namespace }}`, `{{ target }}` (the Canary's targetRef) and `{{ interval }}` being functions,
and collapses whitespace before the query goes to Prometheus (providers/prometheus.go).

The success rate counts a request as failed only when `response_code` is 5xx. A gRPC call
that fails is HTTP 200 with a `grpc-status` trailer, so on gRPC traffic this check reads 100 %
while calls fail. `GRPC_SUCCESS_RATE` is ours, for a Flagger MetricTemplate: it counts as
failed what spends shopmesh's availability budget (shopmesh.telemetry.slo), as well as 5xx.
"""

from __future__ import annotations

import re

from shopmesh.telemetry import slo

REQUEST_SUCCESS_RATE = """
sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}",
      response_code!~"5.*"
    }[{{ interval }}]
  )
)
/
sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"
    }[{{ interval }}]
  )
)
* 100
"""

REQUEST_DURATION = """
histogram_quantile(
  0.99,
  sum(
    rate(
      istio_request_duration_milliseconds_bucket{
        reporter="destination",
        destination_workload_namespace="{{ namespace }}",
        destination_workload=~"{{ target }}"
      }[{{ interval }}]
    )
  ) by (le)
)
"""

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

_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
#: Flagger's `interval` (the CRD's pattern: a number of seconds or minutes).
_INTERVAL = re.compile(r"^[0-9]+(m|s)$")


def render(template: str, *, namespace: str, target: str, interval: str = "1m") -> str:
    """The query Flagger sends for a Canary whose targetRef is `target` in `namespace`."""
    if not _INTERVAL.match(interval):
        raise ValueError(f"interval {interval!r}: Flagger accepts a number of seconds or minutes (30s, 1m)")
    values = {"namespace": namespace, "target": target, "interval": interval}

    def substitute(match: re.Match[str]) -> str:
        if match.group(1) not in values:
            raise ValueError(f"no value for {{{{ {match.group(1)} }}}}")  # missingkey=error
        return values[match.group(1)]

    return re.sub(r"\s+", " ", _VARIABLE.sub(substitute, template)).strip()
