"""The experiments' steady state, judged for real by `chaos run`: the hypothesis and the strict
control of chaos/cluster/payment-pod-killed.yaml (taken from the file, not restated), its
Prometheus probe against a real Prometheus scraping an ingress gateway's Istio metrics at a
chosen mix of statuses, its books probe against real (migrated, SQLite) databases.

No cluster runs here: the method is left empty (or made to fail), which is what the steady state
and the control are judged on.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml
from fixtures.eventually import eventually

from shopmesh.chaos.hypothesis import ingress_success_ratio
from shopmesh.telemetry.prometheus import LocalPrometheus

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
CHAOS = Path(sys.executable).with_name("chaos")
SERVICES = ("order", "inventory", "payment")
HEALTHY = {"0": 199, "3": 1}  # one INVALID_ARGUMENT in 200: the caller's mistake, not a failure
FAILING_ACTION = {
    "type": "action",
    "name": "a-fault-that-could-not-be-injected",
    "provider": {
        "type": "python",
        "module": "shopmesh.chaos.probes",
        "func": "at_most",
        "arguments": {"query": "vector(1)", "maximum": 0},
    },
}


@pytest.fixture(scope="module")
def books(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three empty databases at their newest schema (`shopmesh migrate`): books that agree."""
    directory = tmp_path_factory.mktemp("books")
    for service in SERVICES:
        subprocess.run(
            [sys.executable, "-m", "shopmesh.cli", "migrate", service],
            env={**os.environ, "SHOPMESH_DATABASE_URL": f"sqlite+aiosqlite:///{directory / f'{service}.db'}"},
            capture_output=True,
            timeout=120,
            check=True,
        )
    return directory


def orphan_charge(directory: Path) -> None:
    with sqlite3.connect(directory / "payment.db") as payment:
        payment.execute(
            "INSERT INTO payments VALUES ('p-1', 'manual-1', 'o-1', 'USD', 500, 0, 'APPROVED', '', 'f', "
            "'2026-01-01 00:00:00', '2026-01-01 00:00:00')"
        )


def run(
    experiment: dict[str, Any], prometheus: LocalPrometheus, books: Path, tmp_path: Path
) -> tuple[int, dict[str, Any]]:
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(experiment))
    journal = tmp_path / "journal.json"
    variables = {
        "prometheus_base_url": prometheus.settings.url,
        **{f"{s}_database_url": f"sqlite+aiosqlite:///{books / f'{s}.db'}" for s in SERVICES},
    }
    result = subprocess.run(
        [str(CHAOS), "--no-version-check", "--no-log-file", "run", "--journal-path", str(journal)]
        + [f"--var={key}={value}" for key, value in variables.items()]
        + [str(path)],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
        check=False,
    )
    assert journal.exists(), result.stdout + result.stderr
    return result.returncode, json.loads(journal.read_text())


def the_hypothesis(method: list[dict[str, Any]] | None = None, strict: bool = True) -> dict[str, Any]:
    experiment: dict[str, Any] = yaml.safe_load((ROOT / "chaos/cluster/payment-pod-killed.yaml").read_text())
    experiment["method"] = method or []
    experiment["rollbacks"] = []
    experiment["steady-state-hypothesis"]["probes"][1]["provider"]["arguments"]["wait_seconds"] = 0
    if not strict:
        experiment["controls"] = []
    return experiment


def ready(prometheus: LocalPrometheus) -> LocalPrometheus:
    """Once the success ratio has a value (two scrapes in the window)."""
    eventually(lambda: bool(prometheus.client.query(ingress_success_ratio())), 20, "the ratio computed")
    return prometheus


@pytest.mark.parametrize(
    ("mix", "met"),
    [
        pytest.param(HEALTHY, True, id="all-answered"),
        pytest.param({"0": 996, "14": 4}, True, id="99.6-percent"),
        pytest.param({"0": 99, "14": 1}, False, id="99-percent"),
        pytest.param({"0": 99, "13": 1}, False, id="internal-counts"),
    ],
)
def test_the_ingress_half_is_met_at_99_5_percent_and_more(
    mix: Mapping[str, int],
    met: bool,
    ingress_metrics: Callable[[Mapping[str, int]], str],
    prometheus_of: Callable[[str | None], LocalPrometheus],
    books: Path,
    tmp_path: Path,
) -> None:
    prometheus = ready(prometheus_of(ingress_metrics(mix)))
    status, journal = run(the_hypothesis(), prometheus, books, tmp_path)
    assert journal["steady_states"]["before"]["steady_state_met"] is met
    assert (status, journal["status"]) == ((0, "completed") if met else (1, "failed"))


def test_no_traffic_is_no_steady_state(
    prometheus_of: Callable[[str | None], LocalPrometheus], books: Path, tmp_path: Path
) -> None:
    status, journal = run(the_hypothesis(), prometheus_of(None), books, tmp_path)
    assert (status, journal["status"]) == (1, "failed")
    [probe] = journal["steady_states"]["before"]["probes"]
    assert probe["output"]["data"]["result"] == []


def test_books_that_disagree_are_no_steady_state(
    ingress_metrics: Callable[[Mapping[str, int]], str],
    prometheus_of: Callable[[str | None], LocalPrometheus],
    books: Path,
    tmp_path: Path,
) -> None:
    damaged = tmp_path / "damaged"
    damaged.mkdir()
    for service in SERVICES:
        with (
            sqlite3.connect(books / f"{service}.db") as source,
            sqlite3.connect(damaged / f"{service}.db") as copy,
        ):
            source.backup(copy)
    orphan_charge(damaged)
    prometheus = ready(prometheus_of(ingress_metrics(HEALTHY)))
    status, journal = run(the_hypothesis(), prometheus, damaged, tmp_path)
    assert (status, journal["status"]) == (1, "failed")
    report = journal["steady_states"]["before"]["probes"][1]["output"]
    assert report["consistent"] is False
    assert report["counts"]["orphan_charge"] == 1


def test_without_the_strict_control_chaos_would_call_that_a_success(
    ingress_metrics: Callable[[Mapping[str, int]], str],
    prometheus_of: Callable[[str | None], LocalPrometheus],
    books: Path,
    tmp_path: Path,
) -> None:
    """Why the control exists: Chaos Toolkit itself exits 0 when the steady state is not met
    before the method, or when the method's action fails."""
    prometheus = ready(prometheus_of(ingress_metrics({"0": 99, "14": 1})))
    status, journal = run(the_hypothesis(strict=False), prometheus, books, tmp_path)
    assert journal["steady_states"]["before"]["steady_state_met"] is False
    assert (status, journal["status"]) == (0, "completed")


def test_a_method_that_failed_fails_the_run(
    ingress_metrics: Callable[[Mapping[str, int]], str],
    prometheus_of: Callable[[str | None], LocalPrometheus],
    books: Path,
    tmp_path: Path,
) -> None:
    prometheus = ready(prometheus_of(ingress_metrics(HEALTHY)))
    lenient, journal = run(the_hypothesis([FAILING_ACTION], strict=False), prometheus, books, tmp_path)
    assert (lenient, journal["status"], journal["run"][0]["status"]) == (0, "completed", "failed")
    strict, journal = run(the_hypothesis([FAILING_ACTION]), prometheus, books, tmp_path)
    assert (strict, journal["status"]) == (1, "failed")
    assert journal["steady_states"]["after"]["steady_state_met"] is True
