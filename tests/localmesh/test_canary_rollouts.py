"""`shopmesh canary order`, Flagger's analysis, rehearsed on a running local mesh of the flagger
stack (order-primary serving, order the canary), with real calls: customers through the
ingress (`--load`), the Canary's MetricTemplates run verbatim on the mesh's Prometheus, the
weights pushed live by the control plane.

"v2 has a fault" is said the way a user says it in Istio: a route of payment's
VirtualService, first, for the calls whose `sourceLabels` are the canary's pods
(`app.kubernetes.io/name: order`; the primary's pods carry `order-primary`), with a `fault`,
added by a patch in istio/overlays/flagger (docs/canary.md shows it).
So the canary's own Charge and Refund calls fail or wait, and order answers its callers
accordingly: its sidecar (`reporter="destination"`, `destination_workload="order"`) sees what
a broken revision would show.

Every rollout starts from the same ground: no fault but its own, and a Prometheus without
data, since the checks read the last minute (the manifest's metric interval) and a rehearsal's
whole run fits in it. The analysis interval is shortened to 3 s (`--interval`), Prometheus
scrapes every second; the rest is the manifest's: steps of 10 % up to 50 %, 5 failed checks.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from localmesh.conftest import ROOT, mesh_settings
from shopmesh.localmesh.supervisor import LocalMesh

pytestmark = pytest.mark.slow  # a whole mesh, and the rehearsals run as processes

INTERVAL = "3s"
#: Customers a second through the ingress: at 10 % the canary gets about one a second (an
#: order and, once confirmed, its cancellation), enough for every check to have data.
LOAD = 12
CANARY_PODS = {"app.kubernetes.io/name": "order"}  # the primary's pods say order-primary
PUSH_TIMEOUT_SECONDS = 20.0


@pytest.fixture(scope="module")
def flagger_mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    settings = mesh_settings(tmp_path_factory.mktemp("flagger"), "flagger")
    settings.scrape_interval = 1.0
    local_mesh = LocalMesh(settings)
    local_mesh.start(timeout=120)
    try:
        yield local_mesh
    finally:
        local_mesh.stop()


@dataclass
class Rollout:
    exit_code: int
    output: str
    report: dict[str, Any]

    def events(self) -> list[str]:
        return [event["message"] for tick in self.report["ticks"] for event in tick["events"]]

    def values(self, metric: str) -> list[float]:
        return [tick["values"][metric] for tick in self.report["ticks"] if metric in tick["values"]]

    def assert_rolled_back(self) -> None:
        """Exit 1, after Flagger's rollback events: the threshold, then the canary's scale-down."""
        assert self.exit_code == 1, self.output
        assert self.report["outcome"] == "rolled back"
        events = self.events()
        assert events[-2:] == [
            "Rolling back order.shop failed checks threshold reached 5",
            "Canary failed! Scaling down order.shop",
        ], self.output

    @property
    def highest_weight(self) -> int:
        return max(tick["canary_weight"] for tick in self.report["ticks"])


def _project(mesh: LocalMesh) -> Path:
    return mesh.settings.sources[0].parents[2]


def _pushes(mesh: LocalMesh) -> int:
    return mesh.processes["controlplane"].logs(tail=10_000_000).count("pushed new config")


def rehearsal_fault(fault: dict[str, Any]) -> dict[str, Any]:
    """A patch of payment's VirtualService (istio/base/payment.yaml): a first route, for the
    canary's calls, as payment's API route but with `fault`."""
    documents = yaml.safe_load_all((ROOT / "istio" / "base" / "payment.yaml").read_text())
    service = next(d for d in documents if d["kind"] == "VirtualService")
    route = {
        **service["spec"]["http"][0],
        "name": "canary-rehearsal",
        "match": [{"sourceLabels": CANARY_PODS}],
    }
    operation = [{"op": "add", "path": "/spec/http/0", "value": {**route, "fault": fault}}]
    return {"target": {"kind": "VirtualService", "name": "payment"}, "patch": yaml.safe_dump(operation)}


def _serve_payment(mesh: LocalMesh, fault: dict[str, Any] | None) -> None:
    """The flagger overlay of the mesh's copy, with the fault patch (None: as in the project)."""
    path = mesh.settings.sources[1] / "kustomization.yaml"
    original = (ROOT / "istio" / "overlays" / "flagger" / "kustomization.yaml").read_text()
    wanted = original
    if fault is not None:
        kustomization = yaml.safe_load(original)
        kustomization["patches"].append(rehearsal_fault(fault))
        wanted = yaml.safe_dump(kustomization, sort_keys=False)
    if path.read_text() == wanted:
        return
    before = _pushes(mesh)
    path.write_text(wanted)
    deadline = time.monotonic() + PUSH_TIMEOUT_SECONDS
    while _pushes(mesh) == before:
        assert time.monotonic() < deadline, mesh.processes["controlplane"].logs()
        time.sleep(0.05)


def _fresh_prometheus(mesh: LocalMesh) -> None:
    """A Prometheus without the earlier rollouts' samples of the canary."""
    prometheus = mesh.prometheus
    assert prometheus is not None
    prometheus.stop()
    shutil.rmtree(prometheus.data_directory)
    prometheus.start()
    assert prometheus.process is not None
    mesh.processes["prometheus"] = prometheus.process


def rollout(mesh: LocalMesh, tmp_path: Path, *, fault: dict[str, Any] | None, load: bool = True) -> Rollout:
    _serve_payment(mesh, fault)
    _fresh_prometheus(mesh)
    assert mesh.prometheus is not None
    report = tmp_path / "rollout.json"
    command = [
        sys.executable, "-m", "shopmesh.cli", "canary", "order",
        "--root", str(_project(mesh)), "--state", str(mesh.settings.state),
        "--prometheus", mesh.prometheus.url, "--ingress", mesh.settings.ingress,
        "--interval", INTERVAL, "--timeout", "120", "--report", str(report),
        *(["--load", str(LOAD)] if load else []),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=240, check=False, cwd=ROOT)
    assert report.exists(), done.stdout + done.stderr
    return Rollout(done.returncode, done.stdout, json.loads(report.read_text()))


def test_a_healthy_canary_is_promoted_and_no_customer_call_fails(
    flagger_mesh: LocalMesh, tmp_path: Path
) -> None:
    run = rollout(flagger_mesh, tmp_path, fault=None)
    assert run.exit_code == 0, run.output
    assert run.report["outcome"] == "promoted"
    events = run.events()
    for weight in (10, 20, 30, 40, 50):
        assert f"Advance order.shop canary weight {weight}" in events, run.output
    assert events[-3:] == [
        "Copying order.shop template spec to order-primary.shop",
        "Routing all traffic to primary",
        "Promotion completed! Scaling down order.shop",
    ]
    # the canary was judged on its own calls, and they were good
    assert len(run.values("grpc-success-rate")) >= 5
    assert min(run.values("grpc-success-rate")) == 100.0
    assert run.report["load"]["errors"] == 0, run.report["load"]["first_errors"]
    assert run.report["load"]["calls"]["CreateOrder"]["ok"] > 0


def test_a_canary_failing_a_tenth_of_its_calls_is_rolled_back_where_the_stock_check_would_promote(
    flagger_mesh: LocalMesh, tmp_path: Path
) -> None:
    abort = {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 10}}}
    run = rollout(flagger_mesh, tmp_path, fault=abort)
    run.assert_rolled_back()
    assert run.highest_weight < 50, run.output  # before maxWeight
    # Side by side, on the same ticks and window: the gRPC check fails, the stock one passes.
    judged = [
        (tick["values"]["grpc-success-rate"], tick["stock_request_success_rate"])
        for tick in run.report["ticks"]
        if "grpc-success-rate" in tick["values"]
    ]
    failing = [(grpc, stock) for grpc, stock in judged if grpc < 99]
    assert failing, run.output
    assert all(isinstance(stock, float) and stock >= 99 for _, stock in failing), failing
    assert any(
        "grpc-success-rate" in line and "stock request-success-rate" in line and "would pass" in line
        for line in run.output.splitlines()
    ), run.output
    assert any(e.startswith("Halt order.shop advancement grpc-success-rate ") for e in run.events())
    # customers who met the canary saw its failures
    assert run.report["load"]["calls"]["CreateOrder"]["errors"].get("UNAVAILABLE", 0) > 0


def test_a_canary_delaying_half_its_calls_by_500ms_is_rolled_back_by_the_latency_check(
    flagger_mesh: LocalMesh, tmp_path: Path
) -> None:
    delay = {"delay": {"fixedDelay": "500ms", "percentage": {"value": 50}}}
    run = rollout(flagger_mesh, tmp_path, fault=delay)
    run.assert_rolled_back()
    halts = [e for e in run.events() if e.startswith("Halt order.shop advancement")]
    assert halts, run.output
    assert all(" grpc-request-duration-p99 " in e and " > 500" in e for e in halts), halts
    assert max(run.values("grpc-request-duration-p99")) > 500
    assert min(run.values("grpc-success-rate")) >= 99  # nothing failed: it was slow
    assert run.report["load"]["errors"] == 0, run.report["load"]["first_errors"]


def test_without_traffic_the_analysis_halts_and_never_promotes(
    flagger_mesh: LocalMesh, tmp_path: Path
) -> None:
    run = rollout(flagger_mesh, tmp_path, fault=None, load=False)
    run.assert_rolled_back()
    events = run.events()
    no_values = "Halt advancement no values found for custom metric: grpc-success-rate: no values found"
    assert events.count(no_values) == 5, run.output
    assert not any(e.startswith("Copying") or e.startswith("Promotion completed") for e in events)
    assert run.highest_weight == 10  # the first step is taken before any check, as Flagger does


def test_a_rehearsal_without_a_running_mesh_says_so_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shopmesh.cli", "canary", "order", "--state", str(tmp_path / "none")],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr.count("\n") == 1, done.stderr
    assert "no local mesh with Canary shop/order" in done.stderr
    assert "shopmesh mesh up --overlay flagger" in done.stderr


def test_a_rehearsal_without_prometheus_says_so_in_one_line(flagger_mesh: LocalMesh) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "shopmesh.cli", "canary", "order", "--root", str(_project(flagger_mesh)),
         "--state", str(flagger_mesh.settings.state), "--prometheus", "http://127.0.0.1:9"],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip
    assert done.returncode == 3
    assert done.stderr == (
        "shopmesh canary: no Prometheus answers at http://127.0.0.1:9: the local mesh starts one unless "
        "--no-prometheus (--prometheus names another)\n"
    )
