"""MetricTemplate rendering, the metric checks' values and events, and Go's formatting in them."""

from __future__ import annotations

import re

import pytest
import yaml

from canary.conftest import OVERLAY
from canary.fakes import FakeWorld, canary_document
from shopmesh.canary.checks import ISTIO_QUERIES, NoValuesFound, QueryError, flagger_value, run_metric_checks
from shopmesh.canary.events import go_duration, go_value, milliseconds
from shopmesh.canary.spec import Metric, canaries, metric_templates, read_canary
from shopmesh.canary.templates import MetricModel, TemplateError, render, trim
from shopmesh.manifests.model import MeshObjects
from shopmesh.telemetry.slo import CALLER_CODES

MODEL = MetricModel("order", "shop", "order", "order", "order", "order", "1m", {"direction": "inbound"})


def test_the_functions_render_as_flaggers_template_model() -> None:
    query = "{{ namespace }}/{{target}}/{{ service }}[{{ interval }}] {{ name }} {{ variables.direction }}"
    assert render(query, MODEL) == "shop/order/order[1m] order inbound"
    assert render("a   {{- namespace -}}   b {{/* a comment */}}c", MODEL) == "ashopb c"


@pytest.mark.parametrize(
    ("query", "error"),
    [
        ("{{ .namespace }}", "unsupported template action"),
        ("{{ namespce }}", 'function "namespce" not defined'),
        ("{{ variables.missing }}", 'map has no entry for key "missing"'),
        ("{{ if true }}x{{ end }}", "unsupported template action"),
        ("{{ namespace ", "unclosed action"),
    ],
)
def test_what_go_would_refuse_is_refused(query: str, error: str) -> None:
    with pytest.raises(TemplateError, match=re.escape(error)):
        render(query, MODEL)


def test_queries_go_out_with_whitespace_collapsed() -> None:
    assert trim("sum(\n\t rate(x[1m])\n)") == "sum( rate(x[1m]) )"


def test_the_grpc_success_rate_counts_exactly_the_slos_good_codes_as_successes() -> None:
    """metric-templates.yaml matches the good codes by number: OK and the caller's codes of
    shopmesh/telemetry/slo.py, the availability SLO's rule (a missing label is a failure)."""
    templates = {
        d["metadata"]["name"]: d for d in yaml.safe_load_all((OVERLAY / "metric-templates.yaml").read_text())
    }
    query = templates["grpc-success-rate"]["spec"]["query"]
    (codes,) = re.findall(r'grpc_response_status=~"([0-9|]+)"', query)
    assert {int(code) for code in codes.split("|")} == set(CALLER_CODES)
    assert "response_code" not in query


def test_flaggers_reading_of_a_vector() -> None:
    assert flagger_value([1.0, 99.5]) == 99.5  # the last sample is the value
    for nothing in ([], [float("nan")]):
        with pytest.raises(NoValuesFound, match="no values found"):
            flagger_value(nothing)


@pytest.mark.parametrize(
    ("value", "text"),
    [(99.0, "99"), (99.5, "99.5"), (0.1, "0.1"), (1e-05, "1e-05"), (1e21, "1e+21"), (-3.0, "-3")],
)
def test_go_prints_floats_its_way(value: float, text: str) -> None:
    assert go_value(value) == text


@pytest.mark.parametrize(
    ("ms", "text"),
    [(512, "512ms"), (1500, "1.5s"), (61_000, "1m1s"), (7_200_000, "2h0m0s"), (0, "0s"), (1, "1ms")],
)
def test_go_prints_durations_its_way(ms: int, text: str) -> None:
    assert go_duration(milliseconds(ms)) == text
    assert milliseconds(512.9) == milliseconds(512)  # istio.go drops the fraction


def _canary(metrics: list[dict[str, object]]) -> MeshObjects:
    return MeshObjects(
        [canary_document({"interval": "1m", "threshold": 1, "stepWeight": 10, "metrics": metrics})]
    )


def _checks(metrics: list[dict[str, object]], world: FakeWorld) -> list[str]:
    objects = _canary(metrics)
    (canary,) = canaries(objects)
    return [str(e) for e in run_metric_checks(canary, metric_templates(objects), world).events]


def test_flaggers_builtin_istio_checks_and_their_events() -> None:
    world = FakeWorld(answers={"response_code!~": 97.5, "histogram_quantile": 1500.9})
    success = {"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "30s"}
    assert _checks([success], world) == ["Warning Halt order.shop advancement success rate 97.50% < 99%"]
    (_, query) = world.queries[-1]
    assert query == trim(render(ISTIO_QUERIES["request-success-rate"], MODEL)).replace("[1m]", "[30s]")
    assert 'destination_workload=~"order"' in query
    assert "[30s]" in query
    duration = {"name": "request-duration", "threshold": 500}  # legacy threshold: a maximum, in ms
    assert _checks([duration], world) == ["Warning Halt order.shop advancement request duration 1.5s > 500ms"]
    world.answers = {}
    assert _checks([success], world) == [
        "Warning Halt advancement no values found for istio metric request-success-rate probably "
        "order.shop is not receiving traffic: running query failed: no values found"
    ]
    assert _checks([duration], world) == [
        "Warning Halt advancement no values found for istio metric request-duration probably "
        "order.shop is not receiving traffic"
    ]
    world.answers = {"response_code": QueryError("error response: Status 400 Bad Request: parse error")}
    assert _checks([success], world) == [
        "Warning Prometheus query failed: running query failed: "
        "error response: Status 400 Bad Request: parse error"
    ]


def test_inline_queries_bounds_are_strict_and_the_first_failure_ends_the_analysis() -> None:
    world = FakeWorld(answers={"errors": 1.0})
    inline = {
        "name": "errors",
        "query": 'sum(rate(errors{ns="{{ namespace }}"}[{{ interval }}]))',
        "threshold": 1,
    }
    assert _checks([inline], world) == []  # equal to its bound: passes
    assert world.queries[-1] == (None, 'sum(rate(errors{ns="shop"}[1m]))')
    world.answers["errors"] = 1.5
    assert _checks([inline, {"name": "request-duration", "threshold": 1}], world) == [
        "Warning Halt order.shop advancement errors 1.50 > 1"
    ]
    assert len([q for q in world.queries if "histogram" in q[1]]) == 0


def test_a_missing_template_and_an_unusable_metric_fail_the_analysis() -> None:
    world = FakeWorld()
    assert _checks([{"name": "rate", "templateRef": {"name": "gone"}}], world) == [
        'Warning Metric template gone.shop error: metrictemplate.flagger.app "gone" not found'
    ]
    assert _checks([{"name": "nothing"}], world) == [
        "Warning Metric query failed for no usable metrics template and query were configured"
    ]


def test_defaults_of_a_metric_and_a_canary() -> None:
    canary = read_canary(_canary([{"name": "request-duration"}]).resources[0])
    (metric,) = canary.metrics
    assert metric == Metric(name="request-duration", interval="1m")
    assert (canary.interval_seconds, canary.threshold, canary.max_weight()) == (60.0, 1, 100)
