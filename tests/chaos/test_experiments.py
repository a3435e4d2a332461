"""The Chaos Toolkit experiments under chaos/: each passes `chaos validate` (which imports the
extensions and binds every activity's arguments to the real function signatures, contacting
nothing), states the one steady state of shopmesh, and is made strict."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopmesh.chaos.hypothesis import ingress_success_met

ROOT = Path(__file__).resolve().parents[2]
#: Every experiment file; payment-pod-killed.yaml (the issue's (a)) is a link to pod-killed.yaml,
#: the one experiment of a pod killed, and is validated as that file.
EXPERIMENTS = sorted(path for path in (ROOT / "chaos").glob("*/*.yaml") if not path.is_symlink())
CHAOS = Path(sys.executable).with_name("chaos")


def _load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def validate(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    # kubectl (a process provider's path, which validate looks up) lives beside this Python.
    env = {**os.environ, "PATH": f"{CHAOS.parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run(
        [str(CHAOS), "--no-version-check", "--no-log-file", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env=env,
        check=False,
    )


def test_the_six_cluster_experiments_of_the_issue_are_there() -> None:
    found = {path.stem for path in (ROOT / "chaos" / "cluster").glob("*.yaml")}
    assert found == {
        "payment-pod-killed",  # (a); pod-killed.yaml at its default workload
        "pod-killed",  # (a) for any workload: `--var app=order`
        "order-killed-mid-saga",  # (b)
        "inventory-database-lost",  # (c)
        "control-plane-down",  # (d)
        "payment-faults",  # (e)
        "certificates-rotated",  # (f)
    }


@pytest.mark.slow
@pytest.mark.parametrize("path", EXPERIMENTS, ids=[f"{p.parent.name}/{p.stem}" for p in EXPERIMENTS])
def test_chaos_validate_passes(path: Path, tmp_path: Path) -> None:
    result = validate(path, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "experiment syntax and semantic look valid" in result.stdout + result.stderr


@pytest.mark.slow
@pytest.mark.parametrize(
    ("change", "complaint"),
    [
        (
            lambda e: e["method"][0]["provider"]["arguments"].update(namespace="shop"),
            "not part of the function",
        ),
        (lambda e: e["steady-state-hypothesis"]["probes"][1]["provider"].update(func="books"), "books"),
        (
            lambda e: e["method"][0]["provider"].update(module="chaosk8s.pods.actions"),
            "chaosk8s.pods.actions",
        ),
    ],
    ids=["unknown-argument", "unknown-function", "unknown-module"],
)
def test_chaos_validate_catches_a_broken_experiment(change: Any, complaint: str, tmp_path: Path) -> None:
    experiment = _load(ROOT / "chaos" / "cluster" / "payment-pod-killed.yaml")
    change(experiment)
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump(experiment))
    result = validate(broken, tmp_path)
    assert result.returncode == 1
    assert complaint in result.stdout + result.stderr


@pytest.mark.parametrize("path", EXPERIMENTS, ids=[f"{p.parent.name}/{p.stem}" for p in EXPERIMENTS])
def test_each_experiment_states_the_steady_state_and_is_strict(path: Path) -> None:
    experiment = _load(path)
    assert experiment["configuration"]["ingress_success_met"] == ingress_success_met()
    success, books = experiment["steady-state-hypothesis"]["probes"]
    assert success["provider"] == {
        "type": "python",
        "module": "chaosprometheus.probes",
        "func": "query",
        "arguments": {"query": "${ingress_success_met}", "timeout": 10},
    }
    assert success["tolerance"] == {"type": "jsonpath", "path": "$.data.result[*].value[1]", "expect": "1"}
    assert (books["provider"]["module"], books["provider"]["func"]) == (
        "shopmesh.chaos.probes",
        "books_agree",
    )
    assert books["tolerance"] == {"type": "jsonpath", "path": "$.consistent", "expect": True}
    assert {
        "name": "strict",
        "provider": {"type": "python", "module": "shopmesh.chaos.control"},
    } in experiment["controls"]
    assert experiment["method"], "an experiment does something"
