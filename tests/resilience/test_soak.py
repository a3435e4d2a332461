"""The soak, short: steady orders through a local mesh's ingress, every process sampled, the
books checked after. The growth verdicts need the benchmark's ten minutes (scripts/soak); here
the machinery runs end to end and nothing fails."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopmesh.resilience.mesh import local_mesh
from shopmesh.resilience.soak import render, soak

pytestmark = pytest.mark.slow


def test_a_short_soak_fails_nothing_and_samples_every_process(tmp_path: Path) -> None:
    with local_mesh(tmp_path / "mesh") as running:
        processes = set(running.pids())
        report = soak(running, duration=20, rate=3, interval=1)
    assert report["verdict"]["errors"] == 0, report["load"]["first_errors"]
    assert report["verdict"]["processes_died"] == []
    assert report["books"]["consistent"] is True, report["books"]
    outcomes = report["load"]["order_outcomes"]
    assert sum(outcomes.values()) >= 50
    # Every confirmed order was cancelled (its unit put back), every other one refused.
    assert report["books"]["orders"] == {
        status: count
        for status, count in {
            "CANCELLED": outcomes.get("CONFIRMED", 0),
            "REJECTED": outcomes.get("REJECTED", 0),
        }.items()
        if count
    }
    assert set(report["processes"]) == processes
    assert all(figures["samples"] >= 15 for figures in report["processes"].values())
    assert {figures["role"] for figures in report["processes"].values()} == {
        "ingress",
        "sidecar",
        "app",
        "control_plane",
        "prometheus",  # `mesh up` runs the local Prometheus beside the mesh: sampled like the rest
    }
    report.update(
        command="scripts/soak --duration 20",
        machine={"nproc": 2, "cpu_model": "x", "load_average_at_start": []},
    )
    report["mesh_startup_seconds"] = 0.0
    assert render(report).startswith("soak: ")
