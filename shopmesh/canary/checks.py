"""The metric checks of one analysis, with Flagger's events (pkg/controller/scheduler_metrics.go
runBuiltinMetricChecks, then runMetricChecks).

Order: the builtin Istio checks and inline queries, in the Canary's order; then the template
metrics, in order; the first that fails ends the analysis. A query that finds nothing (an empty
result, or NaN: a rate of no calls) fails its check with "no values found", as Flagger does
(providers/prometheus.go RunQuery: the last sample of the vector is the value). Bounds are
strict: a value equal to its bound passes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from shopmesh.canary.events import Event, go_duration, go_value, milliseconds, warning
from shopmesh.canary.spec import Canary, Metric, MetricTemplate
from shopmesh.canary.templates import MetricModel, TemplateError, render, trim

#: The mesh provider's name in Flagger's events (the builtin checks are Istio's here).
MESH_PROVIDER = "istio"

#: pkg/metrics/observers/istio.go istioQueries, verbatim.
ISTIO_QUERIES = {
    "request-success-rate": """
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
	* 100""",
    "request-duration": """
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
	)""",
}


class NoValuesFound(Exception):
    """providers/errors.go ErrNoValuesFound."""

    def __init__(self) -> None:
        super().__init__("no values found")


class QueryError(Exception):
    """The metrics server failed the query (unreachable, an error status, a bad query)."""


class MetricsSource(Protocol):
    def query(self, address: str | None, promql: str) -> float:
        """The value of an instant query at `address` (None: the metrics server Flagger itself
        is configured with, which the builtin checks use); NoValuesFound or QueryError."""
        ...


def flagger_value(samples: Sequence[float]) -> float:
    """RunQuery's reading of an instant vector: the last sample; none, or NaN, is no value."""
    if not samples or math.isnan(samples[-1]):
        raise NoValuesFound
    return samples[-1]


@dataclass
class Analysis:
    """What one run of the metric checks found."""

    passed: bool = True
    events: list[Event] = field(default_factory=list)
    values: dict[str, float] = field(default_factory=dict)  # flagger_canary_metric_analysis

    def fail(self, event: Event) -> Analysis:
        self.passed = False
        self.events.append(event)
        return self


def _bound_failure(canary: Canary, metric: Metric, value: float, what: str) -> str | None:
    """The Halt message of a value outside its bounds (custom and inline metrics)."""
    if metric.has_range:
        if metric.threshold_min is not None and value < metric.threshold_min:
            return f"Halt {canary.ref} advancement {what} {value:.2f} < {go_value(metric.threshold_min)}"
        if metric.threshold_max is not None and value > metric.threshold_max:
            return f"Halt {canary.ref} advancement {what} {value:.2f} > {go_value(metric.threshold_max)}"
        return None
    if value > metric.threshold:
        return f"Halt {canary.ref} advancement {what} {value:.2f} > {go_value(metric.threshold)}"
    return None


def _success_rate(canary: Canary, metric: Metric, value: float) -> str | None:
    halt = f"Halt {canary.ref} advancement success rate {value:.2f}%"
    if metric.has_range:
        if metric.threshold_min is not None and value < metric.threshold_min:
            return f"{halt} < {go_value(metric.threshold_min)}%"
        if metric.threshold_max is not None and value > metric.threshold_max:
            return f"{halt} > {go_value(metric.threshold_max)}%"
        return None
    if metric.threshold > value:
        return f"{halt} < {go_value(metric.threshold)}%"
    return None


def _duration(canary: Canary, metric: Metric, value: float) -> str | None:
    measured = milliseconds(value)
    halt = f"Halt {canary.ref} advancement request duration {go_duration(measured)}"
    if metric.has_range:
        if metric.threshold_min is not None and measured < milliseconds(metric.threshold_min):
            return f"{halt} < {go_duration(milliseconds(metric.threshold_min))}"
        if metric.threshold_max is not None and measured > milliseconds(metric.threshold_max):
            return f"{halt} > {go_duration(milliseconds(metric.threshold_max))}"
        return None
    if measured > milliseconds(metric.threshold):
        return f"{halt} > {go_duration(milliseconds(metric.threshold))}"
    return None


def _judged(result: Analysis, metric: Metric, value: float, halt: str | None) -> bool:
    """Record the value (flagger_canary_metric_analysis); a Halt message fails the analysis."""
    result.values[metric.name] = value
    if halt is not None:
        result.fail(warning(halt))
        return False
    return True


def _builtin(canary: Canary, metric: Metric, source: MetricsSource, result: Analysis) -> bool:
    query = render(ISTIO_QUERIES[metric.name], MetricModel.of(canary, metric))
    try:
        value = source.query(None, trim(query))
    except NoValuesFound as error:
        detail = f": running query failed: {error}" if metric.name == "request-success-rate" else ""
        result.fail(
            warning(
                f"Halt advancement no values found for {MESH_PROVIDER} metric {metric.name} probably "
                f"{canary.target_ref} is not receiving traffic{detail}"
            )
        )
        return False
    except QueryError as error:
        result.fail(warning(f"Prometheus query failed: running query failed: {error}"))
        return False
    check = _success_rate if metric.name == "request-success-rate" else _duration
    return _judged(result, metric, value, check(canary, metric, value))


def _inline(canary: Canary, metric: Metric, source: MetricsSource, result: Analysis) -> bool:
    try:
        value = source.query(None, trim(render(metric.query, MetricModel.of(canary, metric))))
    except NoValuesFound:
        result.fail(warning(f"Halt advancement no values found for metric: {metric.name}"))
        return False
    except (QueryError, TemplateError) as error:
        result.fail(warning(f"Prometheus query failed for {metric.name}: {error}"))
        return False
    return _judged(result, metric, value, _bound_failure(canary, metric, value, metric.name))


def _templated(
    canary: Canary,
    metric: Metric,
    templates: Mapping[tuple[str, str], MetricTemplate],
    source: MetricsSource,
    result: Analysis,
) -> bool:
    assert metric.template is not None
    namespace, name = metric.template
    template = templates.get(metric.template)
    if template is None:
        result.fail(
            warning(
                f'Metric template {name}.{namespace} error: metrictemplate.flagger.app "{name}" not found'
            )
        )
        return False
    try:
        query = render(template.query, MetricModel.of(canary, metric))
    except TemplateError as error:
        result.fail(warning(f"Metric template {name}.{namespace} query render error: {error}"))
        return False
    try:
        value = source.query(template.address or None, trim(query))
    except NoValuesFound as error:
        result.fail(warning(f"Halt advancement no values found for custom metric: {metric.name}: {error}"))
        return False
    except QueryError as error:
        result.fail(warning(f"Metric query failed for {metric.name}: {error}"))
        return False
    return _judged(result, metric, value, _bound_failure(canary, metric, value, metric.name))


def run_metric_checks(
    canary: Canary, templates: Mapping[tuple[str, str], MetricTemplate], source: MetricsSource
) -> Analysis:
    result = Analysis()
    for metric in canary.metrics:  # runBuiltinMetricChecks: builtin names and inline queries
        if metric.name in ISTIO_QUERIES and not _builtin(canary, metric, source, result):
            return result
        if metric.query and not _inline(canary, metric, source, result):
            return result
    for metric in canary.metrics:  # runMetricChecks: templates
        if metric.template is not None:
            if not _templated(canary, metric, templates, source, result):
                return result
        elif metric.name not in ISTIO_QUERIES and not metric.query:
            return result.fail(
                warning("Metric query failed for no usable metrics template and query were configured")
            )
    return result
