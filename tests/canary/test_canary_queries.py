"""The project's MetricTemplates, rendered as Flagger renders them, evaluated by Prometheus's own
engine (`promtool test rules`) on Istio series of a canary that fails a tenth of its calls with
UNAVAILABLE: the gRPC success rate sees it, a call with no response counts against the canary,
the primary's and the callers' series are not the canary's; and Flagger's builtin
request-success-rate, on the same series, reads 100 %."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from canary.conftest import overlay_documents
from shopmesh.canary.checks import ISTIO_QUERIES
from shopmesh.canary.spec import Metric, canaries, metric_templates
from shopmesh.canary.templates import MetricModel, render, trim
from shopmesh.manifests.model import MeshObjects
from shopmesh.telemetry.prometheus import Binaries, find_binaries

#: A Prometheus range over several 1-minute samples.
INTERVAL = "5m"
CANARY = 'reporter="destination",destination_workload_namespace="shop",destination_workload="order"'
GRPC = f'{CANARY},request_protocol="grpc",response_code="200"'
#: Calls a minute at the canary's proxy, by what it answered.
SERIES = {
    f'istio_requests_total{{{GRPC},grpc_response_status="0"}}': 54,
    f'istio_requests_total{{{GRPC},grpc_response_status="14"}}': 6,
    # NOT_FOUND: the caller's doing, counted as served (shopmesh/telemetry/slo.py CALLER_CODES)
    f'istio_requests_total{{{GRPC},grpc_response_status="5"}}': 3,
    # no response at all: no gRPC status to read, so not a success
    f'istio_requests_total{{{CANARY},request_protocol="grpc",response_code="0"}}': 3,
    # the primary's and the caller's own reports of failures are not the canary's
    'istio_requests_total{reporter="destination",destination_workload_namespace="shop",'
    'destination_workload="order-primary",response_code="200",grpc_response_status="14"}': 100,
    'istio_requests_total{reporter="source",destination_workload_namespace="shop",'
    'destination_workload="order",response_code="200",grpc_response_status="14"}': 100,
    # p99 of the canary's durations: all of them within 250 ms
    f'istio_request_duration_milliseconds_bucket{{{CANARY},le="100"}}': 30,
    f'istio_request_duration_milliseconds_bucket{{{CANARY},le="250"}}': 66,
    f'istio_request_duration_milliseconds_bucket{{{CANARY},le="500"}}': 66,
    f'istio_request_duration_milliseconds_bucket{{{CANARY},le="+Inf"}}': 66,
    'istio_request_duration_milliseconds_bucket{reporter="destination",destination_workload_namespace="shop",'
    'destination_workload="order-primary",le="+Inf"}': 500,
}


#: Values are compared rounded to 1/PRECISION, computed as Prometheus's round() computes it.
PRECISION = 10_000


def _rounded(value: float) -> float:
    return math.floor(value * PRECISION + 0.5) / PRECISION


@pytest.fixture(scope="module")
def binaries() -> Binaries:
    return find_binaries()


def _queries() -> dict[str, str]:
    objects = MeshObjects(overlay_documents())
    (canary,) = canaries(objects)
    templates = metric_templates(objects)
    rendered = {}
    for metric in canary.metrics:
        assert metric.template is not None
        model = MetricModel.of(canary, Metric(name=metric.name, interval=INTERVAL))
        rendered[metric.name] = trim(render(templates[metric.template].query, model))
    stock = Metric(name="request-success-rate", interval=INTERVAL)
    rendered[stock.name] = trim(render(ISTIO_QUERIES[stock.name], MetricModel.of(canary, stock)))
    return rendered


def test_the_templates_judge_grpc_statuses_and_the_stock_check_does_not(
    binaries: Binaries, tmp_path: Path
) -> None:
    queries = _queries()
    expected = {
        "grpc-success-rate": 57 / 66 * 100,  # OK 54 and NOT_FOUND 3 of 66 calls
        "grpc-request-duration-p99": 100 + 150 * (0.99 * 66 - 30) / (66 - 30),  # in the 100-250 bucket
        "request-success-rate": 100.0,  # every answer is an HTTP 200 (or none): Flagger would promote
    }
    unit_test = {
        "rule_files": [],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": [
                    {"series": series, "values": f"0+{per_minute}x20"}
                    for series, per_minute in SERIES.items()
                ],
                "promql_expr_test": [
                    {
                        "expr": f"round({queries[name]}, {1 / PRECISION})",
                        "eval_time": "10m",
                        "exp_samples": [{"labels": "{}", "value": _rounded(value)}],
                    }
                    for name, value in expected.items()
                ],
            }
        ],
    }
    path = tmp_path / "metric_templates_test.yaml"
    path.write_text(json.dumps(unit_test, indent=1))
    result = binaries.promtool_run("test", "rules", path.name, cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout
