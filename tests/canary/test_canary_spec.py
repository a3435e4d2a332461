"""The Canary as Flagger reads it: defaults, weight arithmetic, and what the model refuses."""

from __future__ import annotations

from typing import Any

import pytest

from canary.fakes import canary_document as _canary
from shopmesh.canary import CanaryError
from shopmesh.canary.spec import go_duration_seconds, read_canary


@pytest.mark.parametrize(
    ("interval", "seconds"),
    [
        ("1m", 60.0),
        ("1m30s", 90.0),
        ("5s", 10.0),
        ("90s", 90.0),
        (None, 60.0),
        ("1 minute", 60.0),
        ("2h", 7200.0),
    ],
)
def test_the_analysis_interval_defaults_to_a_minute_and_is_at_least_ten_seconds(
    interval: str | None, seconds: float
) -> None:
    analysis = {"stepWeight": 10} if interval is None else {"interval": interval, "stepWeight": 10}
    assert read_canary(_canary(analysis)).interval_seconds == seconds


def test_go_durations() -> None:
    assert go_duration_seconds("1.5m") == 90.0
    assert go_duration_seconds("300ms") == 0.3
    assert go_duration_seconds("0") == 0.0
    assert go_duration_seconds("10") is None  # Go needs a unit
    assert go_duration_seconds("10sec") is None


def test_threshold_and_max_weight_defaults() -> None:
    canary = read_canary(_canary({"stepWeight": 10, "threshold": 0}))
    assert (canary.threshold, canary.max_weight()) == (1, 100)
    assert read_canary(_canary({"stepWeights": [5, 150]})).max_weight() == 100


def test_step_weights_follow_flaggers_next_step_weight() -> None:
    canary = read_canary(_canary({"stepWeights": [1, 20, 80]}))
    assert [canary.next_step_weight(w) for w in (0, 1, 20, 80, 33, 100)] == [1, 19, 60, 20, 67, 1]
    assert read_canary(_canary({"interval": "1m"})).next_step_weight(0) == 0  # never advances


def test_names_come_from_the_service_or_the_target() -> None:
    canary = read_canary(_canary({"stepWeight": 10}))
    assert (canary.primary_name, canary.canary_name, canary.primary_workload) == (
        "order-primary",
        "order-canary",
        "order-primary",
    )
    renamed = _canary({"stepWeight": 10})
    renamed["spec"]["service"]["name"] = "orders"
    assert read_canary(renamed).primary_name == "orders-primary"
    assert read_canary(renamed).primary_workload == "order-primary"


def test_skip_analysis_without_an_analysis_or_when_asked() -> None:
    no_analysis = _canary({})
    del no_analysis["spec"]["analysis"]
    assert read_canary(no_analysis).skip_analysis
    assert read_canary(_canary({"stepWeight": 10}, skipAnalysis=True)).skip_analysis
    assert not read_canary(_canary({"stepWeight": 10})).skip_analysis


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({"analysis": {"iterations": 10, "match": [{"headers": {}}]}}, "A/B, blue/green"),
        ({"targetRef": {"apiVersion": "v1", "kind": "Service", "name": "order"}}, "only Deployment"),
        ({"analysis": {"stepWeight": "ten"}}, "spec.analysis.stepWeight: 'ten' is not a whole number"),
        ({"analysis": {"metrics": {"name": "x"}}}, "spec.analysis.metrics: expected a list"),
        (
            {"analysis": {"webhooks": [{"name": "h", "type": "sometimes", "url": "u"}]}},
            "not a Flagger webhook",
        ),
        ({"service": {}}, "spec.service.port is required"),
    ],
)
def test_what_the_model_does_not_run_is_refused_naming_the_field(change: dict[str, Any], error: str) -> None:
    canary = _canary({"stepWeight": 10})
    canary["spec"].update(change)
    with pytest.raises(CanaryError, match=error):
        read_canary(canary)
