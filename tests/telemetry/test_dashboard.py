"""The Grafana dashboard: its panels' queries come back out runnable, and each one parses in a
real Prometheus (a later test runs them after mesh traffic and requires data)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from shopmesh.telemetry import generate
from shopmesh.telemetry.dashboard import load_dashboard, panel_queries
from shopmesh.telemetry.prometheus import LocalPrometheus

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def board() -> dict[str, Any]:
    return load_dashboard(ROOT / generate.DASHBOARD)


def test_every_panel_has_queries_with_every_variable_substituted(board: dict[str, Any]) -> None:
    queries = panel_queries(board)
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert {q.panel for q in queries} == {p["title"] for p in panels}
    assert len(queries) == sum(len(p["targets"]) for p in panels)
    for query in queries:
        assert "$" not in query.expr, query
        assert "[[" not in query.expr, query
    edges = next(q.expr for q in queries if q.panel == "Mesh edges by gRPC status")
    assert 'destination_workload_namespace="shop"' in edges
    assert "[1m]" in edges


def test_the_panels_cover_services_mesh_and_canary(board: dict[str, Any]) -> None:
    exprs = "\n".join(q.expr for q in panel_queries(board))
    for needed in (
        "grpc_server_handled_total",  # rate and errors per method, the services' own
        "grpc_server_handling_seconds_bucket",  # their duration
        "by (destination_canonical_service, grpc_response_status)",  # Istio's, per service
        "by (source_workload, source_version, destination_workload, destination_version, grpc_response_status)",  # noqa: E501
        "by (destination_version)",  # canary v1 against v2
        "istio_request_duration_milliseconds_bucket",
    ):
        assert needed in exprs, needed


def test_extraction_reads_rows_and_refuses_unknown_variables() -> None:
    board = {
        "templating": {"list": [{"name": "ns", "type": "custom", "current": {"value": "shop"}}]},
        "panels": [
            {
                "type": "row",
                "title": "collapsed",
                "panels": [
                    {"title": "inner", "targets": [{"refId": "A", "expr": 'up{namespace="${ns}"}[$__range]'}]}
                ],
            },
            {"title": "outer", "targets": [{"refId": "B", "expr": 'rate(x{ns="[[ns]]"}[$__rate_interval])'}]},
        ],
    }
    queries = panel_queries(board, rate_interval="30s", variables={"ns": "other"})
    assert [(q.panel, q.ref_id, q.expr) for q in queries] == [
        ("inner", "A", 'up{namespace="other"}[30s]'),
        ("outer", "B", 'rate(x{ns="other"}[30s])'),
    ]
    board["panels"].append(
        {"title": "typo", "targets": [{"refId": "C", "expr": 'up{namespace="$namspace"}'}]}
    )
    with pytest.raises(ValueError, match=r"panel 'typo': unknown variable \$namspace"):
        panel_queries(board)


def test_every_panel_query_parses_in_prometheus(
    board: dict[str, Any], start_prometheus: Callable[..., LocalPrometheus]
) -> None:
    client = start_prometheus().client
    for query in panel_queries(board):
        client.query(query.expr)  # QueryError (with Prometheus' parse message) fails the test
