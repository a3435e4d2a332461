"""VirtualService faults, enforced by gRPC's own xDS fault filter (gRFC A33) on a real mesh: the
bench's echo behind its sidecar, STRICT mTLS and RBAC in force, a control plane serving the
manifests file, which each test rewrites (the control plane pushes the edit live).

What is measured: how many of ≥ 1000 calls an abort fails, against the binomial 99.9 % bounds
of its percentage; that a delay is seen by the caller; whether gRPC retries an aborted call
(it does not: the fault filter runs before gRPC's retries, as Envoy's runs before its
router's); and that a `sourceLabels` route holds only for the workload it names.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from localmesh.meshcalls import probe
from localmesh.statistics import binomial_bounds
from shopmesh.localmesh.proxybench.peers import UNARY
from shopmesh.localmesh.proxybench.rig import MANIFESTS, Rig, rig

pytestmark = pytest.mark.slow  # a control plane, the echo, its sidecar and the ingress

PUSH_TIMEOUT_SECONDS = 20.0


@pytest.fixture(scope="module")
def echo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Rig]:
    with rig(tmp_path_factory.mktemp("faults")) as running:
        yield running


def _echo_routes(http: list[dict[str, Any]]) -> str:
    """A mesh VirtualService for the echo with these HTTP routes (YAML, JSON being YAML)."""
    return json.dumps(
        {
            "apiVersion": "networking.istio.io/v1",
            "kind": "VirtualService",
            "metadata": {"name": "echo", "namespace": "shop"},
            "spec": {"hosts": ["echo.shop.svc.cluster.local"], "http": http},
        }
    )


def _serve(running: Rig, http: list[dict[str, Any]]) -> None:
    """Rewrite the manifests with these echo routes and wait until the control plane pushed."""
    control_plane = running.processes["controlplane"]
    pushes = control_plane.logs(tail=1_000_000).count("pushed new config")
    manifests = running.state.root.parent / "manifests.yaml"
    manifests.write_text(MANIFESTS + "---\n" + _echo_routes(http) + "\n")
    deadline = time.monotonic() + PUSH_TIMEOUT_SECONDS
    while control_plane.logs(tail=1_000_000).count("pushed new config") == pushes:
        assert time.monotonic() < deadline, control_plane.logs()
        time.sleep(0.05)


def _calls(bootstrap: Path, target: str, count: int, concurrency: int = 8) -> list[dict[str, Any]]:
    plan = [{"target": target, "method": UNARY, "count": count, "concurrency": concurrency, "timeout": 10.0}]
    return probe(bootstrap, plan, timeout=300.0)


def _labelled_bootstrap(running: Rig, labels: dict[str, str]) -> Path:
    """The bench client's bootstrap (its identity) for a pod with these labels."""
    bootstrap = json.loads(running.client_bootstrap.read_text())
    bootstrap["node"]["metadata"]["LABELS"] = labels
    path = running.client_bootstrap.with_name(f"client-{'-'.join(labels.values())}.json")
    path.write_text(json.dumps(bootstrap))
    return path


ECHO = {"destination": {"host": "echo.shop.svc.cluster.local"}}
NO_RETRIES = {"attempts": 0}


def test_an_abort_fails_its_percentage_of_calls_with_its_grpc_status(echo: Rig) -> None:
    _serve(
        echo,
        [
            {
                "name": "chaos",
                "fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 20}}},
                "route": [ECHO],
                "retries": NO_RETRIES,
            }
        ],
    )
    results = _calls(echo.client_bootstrap, echo.sidecar, 1200)
    codes = Counter(result["code"] for result in results)
    assert set(codes) == {"OK", "UNAVAILABLE"}, codes
    low, high = binomial_bounds(1200, 0.20)
    assert low <= codes["UNAVAILABLE"] <= high, (codes, (low, high))
    aborted = next(r for r in results if r["code"] == "UNAVAILABLE")
    assert aborted["peer"] == ""  # failed in the caller: no sidecar answered it
    assert "Fault injected" in aborted["details"]


def test_an_http_status_abort_reaches_the_caller_as_its_grpc_mapping(echo: Rig) -> None:
    _serve(
        echo,
        [{"fault": {"abort": {"httpStatus": 403, "percentage": {"value": 100}}}, "route": [ECHO]}],
    )
    codes = Counter(r["code"] for r in _calls(echo.client_bootstrap, echo.sidecar, 20))
    assert codes == {"PERMISSION_DENIED": 20}


def test_a_delay_is_seen_by_the_caller_on_its_share_of_calls(echo: Rig) -> None:
    delay = 0.4
    _serve(
        echo,
        [
            {
                "fault": {"delay": {"fixedDelay": f"{int(delay * 1000)}ms", "percentage": {"value": 50}}},
                "route": [ECHO],
            }
        ],
    )
    results = _calls(echo.client_bootstrap, echo.sidecar, 400, concurrency=32)
    assert {r["code"] for r in results} == {"OK"}
    delayed = [r for r in results if r["elapsed"] >= delay]
    low, high = binomial_bounds(400, 0.5)
    assert low <= len(delayed) <= high, len(delayed)
    # A delayed call waited the delay, then went through: about the delay plus one hop.
    assert max(r["elapsed"] for r in delayed) < delay + 2.0
    assert sorted(r["elapsed"] for r in results)[len(results) // 4] < delay  # the others did not wait


def test_grpc_does_not_retry_an_aborted_call(echo: Rig) -> None:
    """The route retries UNAVAILABLE twice. If gRPC retried a fault abort, 50 % aborts would
    fail 12.5 % of the calls (all three attempts aborted); they fail 50 %: the fault filter
    runs before the retries (grpc-core puts the xDS filters of a call before its retry filter,
    as Envoy's fault filter runs before the router that retries)."""
    _serve(
        echo,
        [
            {
                "fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 50}}},
                "route": [ECHO],
                "retries": {"attempts": 2, "retryOn": "unavailable"},
            }
        ],
    )
    codes = Counter(r["code"] for r in _calls(echo.client_bootstrap, echo.sidecar, 1000))
    low, high = binomial_bounds(1000, 0.5)
    assert low <= codes["UNAVAILABLE"] <= high, codes
    assert codes["UNAVAILABLE"] > binomial_bounds(1000, 0.125)[1]


def test_a_source_labels_fault_holds_in_the_named_workloads_proxies_only(echo: Rig) -> None:
    _serve(
        echo,
        [
            {
                "name": "v2-fails",
                "match": [{"sourceLabels": {"app": "order", "version": "v2"}}],
                "fault": {"abort": {"grpcStatus": "UNAVAILABLE", "percentage": {"value": 100}}},
                "route": [ECHO],
            },
            {"name": "echo", "route": [ECHO]},
        ],
    )
    v2 = _labelled_bootstrap(echo, {"app": "order", "version": "v2"})
    v1 = _labelled_bootstrap(echo, {"app": "order", "version": "v1"})
    assert Counter(r["code"] for r in _calls(v2, echo.sidecar, 50)) == {"UNAVAILABLE": 50}
    assert Counter(r["code"] for r in _calls(v1, echo.sidecar, 50)) == {"OK": 50}
    assert Counter(r["code"] for r in _calls(echo.client_bootstrap, echo.sidecar, 50)) == {"OK": 50}
