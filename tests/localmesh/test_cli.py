"""`shopmesh mesh`: the xDS view of the manifests, and a CLI that works without the mesh extra."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shopmesh.cli import main

pytestmark = pytest.mark.slow  # kubectl kustomize renders the manifests

ROOT = Path(__file__).resolve().parents[2]


def test_mesh_xds_lists_what_the_control_plane_would_serve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["mesh", "xds", "--root", str(ROOT)]) == 0
    resources = json.loads(capsys.readouterr().out)
    assert "order.shop.svc.cluster.local:50051" in resources["Listener"]
    assert "outbound|50051|v2|order.shop.svc.cluster.local" in resources["Cluster"]


def test_mesh_xds_dumps_one_resource(capsys: pytest.CaptureFixture[str]) -> None:
    name = "outbound|50053||payment.shop.svc.cluster.local"
    assert main(["mesh", "xds", "--root", str(ROOT), "--name", name]) == 0
    dumped = json.loads(capsys.readouterr().out)
    assert dumped[f"Cluster {name}"]["outlierDetection"]["enforcingFailurePercentage"] == 100
    assert len(dumped[f"ClusterLoadAssignment {name}"]["endpoints"][0]["lbEndpoints"]) == 2


def test_every_other_command_works_without_the_mesh_extra() -> None:
    """The service image has no xds-protos: `shopmesh serve` must not import it."""
    blocked = "import sys; sys.modules['envoy'] = None; from shopmesh.cli import build_parser; build_parser()"
    completed = subprocess.run([sys.executable, "-c", blocked], capture_output=True, text=True, check=False)
    assert completed.returncode == 0, completed.stderr
