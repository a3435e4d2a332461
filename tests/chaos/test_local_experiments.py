"""The local experiments (chaos/local/) and scripts/chaos: the six of the issue are there, and a
short run of the machinery on a real local mesh under load — a pod killed and restarted, then
faults applied to payment's VirtualService — meets its bars. (Every experiment also passes
`chaos validate`: tests/chaos/test_experiments.py.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shopmesh.resilience import experiments

ROOT = Path(__file__).resolve().parents[2]


def test_the_six_experiments_of_the_issue_run_locally_too_and_scripts_chaos_runs_them() -> None:
    local = {path.stem for path in (ROOT / "chaos" / "local").glob("*.yaml")}
    cluster = {path.stem for path in (ROOT / "chaos" / "cluster").glob("*.yaml")}
    assert local == cluster == set(experiments.EXPERIMENTS)


def test_scripts_chaos_refuses_an_unknown_experiment(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        experiments.parse(["--experiments", "payment-pod-killed,unplug-the-moon"])
    assert "unplug-the-moon" in capsys.readouterr().err


@pytest.mark.slow
def test_a_short_run_kills_a_pod_and_injects_faults_and_meets_the_bars(tmp_path: Path) -> None:
    names = ["payment-faults", "payment-pod-killed"]
    report_path = tmp_path / "chaos"
    status = experiments.main(["--short", "--experiments", ",".join(names), "--report", str(report_path)])
    report = json.loads(report_path.with_suffix(".json").read_text())
    text = report_path.with_suffix(".txt").read_text()
    assert status == 0, text

    faults = report["experiments"]["payment-faults"]
    outputs = faults["journal"]["outputs"]
    assert outputs["calls-were-aborted"] >= 1  # the fault was served and enforced
    assert outputs["payment-0-not-ejected"] >= 1
    assert outputs["payment-1-not-ejected"] >= 1
    assert set(faults["event"]["codes"]) <= {"UNAVAILABLE"}  # aborted, never INTERNAL
    assert faults["books"]["consistent"]  # every aborted saga compensated

    killed = report["experiments"]["payment-pod-killed"]
    assert killed["pods"]["payment-0"]["restarts"] >= 1
    assert killed["pods"]["payment-0"]["ready_again_at"] < 30
    assert killed["books"]["lost_orders"] == 0
    assert all(bar["met"] for bar in killed["bars"]), text
