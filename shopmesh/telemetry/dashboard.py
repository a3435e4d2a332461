"""The Grafana dashboard "shopmesh gRPC", and the extraction of every panel's query.

Three rows: the services' own metrics (go-grpc-prometheus: rate, errors, duration per service
and method); the mesh as Istio's destination proxies see it (per service and gRPC status, every
edge, the SLO ratios); the canary, v1 and v2 side by side by `destination_version`.

`dashboard()` builds the JSON (k8s/monitoring/dashboards/, shipped as a ConfigMap for Grafana's
dashboard sidecar); `panel_queries()` reads any dashboard JSON back into runnable PromQL, with
the template variables substituted, so tests can run every panel against a real Prometheus.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopmesh.telemetry import rules, slo

UID = "shopmesh-grpc"
_DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
_GRID_WIDTH = 24
_PANEL_HEIGHT = 8
_PANEL_WIDTH = _GRID_WIDTH // 2

#: Istio's gRPC calls into the namespace, as the destination's proxy reports them.
_NAMESPACE_OF_DESTINATION = 'destination_workload_namespace="$namespace"'
_MESH = f'reporter="destination", request_protocol="grpc", {_NAMESPACE_OF_DESTINATION}'
_CANARY = f'{_MESH}, destination_canonical_service="$canary"'
_BUDGET_CODES = "|".join(str(code) for code in sorted(slo.SERVER_FAULT_CODES))


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str


@dataclass(frozen=True)
class Panel:
    title: str
    unit: str
    queries: tuple[Query, ...]
    description: str = ""


def _rate(selector: str, by: str, metric: str = "istio_requests_total") -> str:
    return f"sum by ({by}) (rate({metric}{{{selector}}}[$__rate_interval]))"


def _quantile(q: float, metric: str, selector: str, by: str) -> str:
    return f"histogram_quantile({q}, sum by ({by}, le) (rate({metric}{{{selector}}}[$__rate_interval])))"


def _error_ratio(selector: str, by: str) -> str:
    failed = f'{selector}, grpc_response_status=~"{_BUDGET_CODES}"'
    return f"{_rate(failed, by)}\n/\n{_rate(selector, by)}"


_SERVICES = 'namespace="$namespace"'
_METHOD = "grpc_service, grpc_method"

ROWS: tuple[tuple[str, tuple[Panel, ...]], ...] = (
    (
        "Services: their own metrics (go-grpc-prometheus)",
        (
            Panel(
                "Requests/s by method",
                "reqps",
                (
                    Query(
                        _rate(_SERVICES, _METHOD, "grpc_server_handled_total"),
                        "{{grpc_service}}/{{grpc_method}}",
                    ),
                ),
            ),
            Panel(
                "Errors/s by method and code",
                "reqps",
                (
                    Query(
                        _rate(
                            f'{_SERVICES}, grpc_code!="OK"',
                            f"{_METHOD}, grpc_code",
                            "grpc_server_handled_total",
                        ),
                        "{{grpc_method}} {{grpc_code}}",
                    ),
                ),
            ),
            Panel(
                "Duration by method (p50, p95)",
                "s",
                tuple(
                    Query(
                        _quantile(q, "grpc_server_handling_seconds_bucket", _SERVICES, _METHOD),
                        f"{{{{grpc_method}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95)
                ),
            ),
        ),
    ),
    (
        "Mesh: Istio's standard metrics at the destination proxies",
        (
            Panel(
                "Requests/s by service and gRPC status",
                "reqps",
                (
                    Query(
                        _rate(_MESH, "destination_canonical_service, grpc_response_status"),
                        "{{destination_canonical_service}} grpc-status {{grpc_response_status}}",
                    ),
                ),
                "A failed gRPC call is still HTTP 200: only grpc_response_status shows it.",
            ),
            Panel(
                "Mesh edges by gRPC status",
                "reqps",
                (
                    Query(
                        _rate(
                            _MESH,
                            "source_workload, source_version, destination_workload, destination_version, "
                            "grpc_response_status",
                        ),
                        "{{source_workload}} {{source_version}} → {{destination_workload}} "
                        "{{destination_version}}: {{grpc_response_status}}",
                    ),
                ),
                "Every caller → callee pair, as Kiali's graph draws it, split by gRPC status.",
            ),
            Panel(
                "Duration by service (p50, p95, p99)",
                "ms",
                tuple(
                    Query(
                        _quantile(
                            q,
                            "istio_request_duration_milliseconds_bucket",
                            _MESH,
                            "destination_canonical_service",
                        ),
                        f"{{{{destination_canonical_service}}}} p{round(q * 100)}",
                    )
                    for q in (0.5, 0.95, 0.99)
                ),
            ),
            Panel(
                "SLO: share of calls spending the error budget (5m)",
                "percentunit",
                tuple(
                    Query(
                        f'{rules.RATIO}5m{{slo="{objective.slo}", {_NAMESPACE_OF_DESTINATION}}}',
                        f"{{{{destination_canonical_service}}}} {objective.slo}",
                    )
                    for objective in (slo.AVAILABILITY, slo.LATENCY)
                ),
                "The recorded SLO ratios (docs/observability.md): availability budget "
                f"{slo.AVAILABILITY.error_budget:g}, latency budget {slo.LATENCY.error_budget:g}.",
            ),
        ),
    ),
    (
        "Canary: $canary v1 and v2 side by side (destination_version)",
        (
            Panel(
                "Requests/s by version",
                "reqps",
                (Query(_rate(_CANARY, "destination_version"), "{{destination_version}}"),),
            ),
            Panel(
                "Error ratio by version",
                "percentunit",
                (Query(_error_ratio(_CANARY, "destination_version"), "{{destination_version}}"),),
                "Calls failing with a code that spends the availability budget.",
            ),
            Panel(
                "Duration p95 by version",
                "ms",
                (
                    Query(
                        _quantile(
                            0.95, "istio_request_duration_milliseconds_bucket", _CANARY, "destination_version"
                        ),
                        "{{destination_version}} p95",
                    ),
                ),
            ),
            Panel(
                "Service-side calls/s by version and code",
                "reqps",
                (
                    Query(
                        _rate(
                            f'{_SERVICES}, app="$canary"', "version, grpc_code", "grpc_server_handled_total"
                        ),
                        "{{version}} {{grpc_code}}",
                    ),
                ),
                "The service's own count, by its pods' version label.",
            ),
        ),
    ),
)


def _custom_variable(name: str, value: str, label: str) -> dict[str, Any]:
    return {
        "name": name,
        "label": label,
        "type": "custom",
        "query": value,
        "current": {"text": value, "value": value},
        "options": [{"text": value, "value": value, "selected": True}],
    }


def _panel_json(panel: Panel, panel_id: int, x: int, y: int) -> dict[str, Any]:
    return {
        "id": panel_id,
        "type": "timeseries",
        "title": panel.title,
        "description": panel.description,
        "datasource": _DATASOURCE,
        "gridPos": {"h": _PANEL_HEIGHT, "w": _PANEL_WIDTH, "x": x, "y": y},
        "fieldConfig": {"defaults": {"unit": panel.unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True}},
        "targets": [
            {
                "datasource": _DATASOURCE,
                "refId": chr(ord("A") + index),
                "expr": q.expr,
                "legendFormat": q.legend,
            }
            for index, q in enumerate(panel.queries)
        ],
    }


def dashboard() -> dict[str, Any]:
    panels: list[dict[str, Any]] = []
    y = 0
    for title, row in ROWS:
        panels.append(
            {
                "id": len(panels) + 1,
                "type": "row",
                "title": title,
                "collapsed": False,
                "panels": [],
                "gridPos": {"h": 1, "w": _GRID_WIDTH, "x": 0, "y": y},
            }
        )
        y += 1
        for index, panel in enumerate(row):  # two side by side per line
            x = (index % 2) * _PANEL_WIDTH
            panels.append(_panel_json(panel, len(panels) + 1, x, y + (index // 2) * _PANEL_HEIGHT))
        y += (len(row) + 1) // 2 * _PANEL_HEIGHT
    return {
        "uid": UID,
        "title": "shopmesh gRPC",
        "description": "gRPC rate, errors and duration of shopmesh's services, from their own metrics and "
        "Istio's; the mesh's edges; the canary. Generated by scripts/gen-monitoring.",
        "tags": ["shopmesh", "grpc", "istio"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {
            "list": [
                {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus"},
                _custom_variable("namespace", slo.NAMESPACE, "Namespace"),
                _custom_variable("canary", "order", "Canary service"),
            ]
        },
        "panels": panels,
    }


# -- reading panel queries back ------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{(\w+)(?::\w+)?\}|\[\[(\w+)\]\]|\$(\w+)")


@dataclass(frozen=True)
class PanelQuery:
    panel: str
    ref_id: str
    expr: str  # runnable: every template variable substituted


def load_dashboard(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.read_text())
    return loaded


def panel_queries(
    board: Mapping[str, Any], *, rate_interval: str = "1m", variables: Mapping[str, str] | None = None
) -> list[PanelQuery]:
    """Every panel's PromQL with the variables substituted: each custom variable's current
    value (or `variables`), and Grafana's `$__rate_interval`/`$__interval`/`$__range`. A variable
    nobody defines is an error naming the panel, so a typo never hides as an empty panel."""
    values = {
        variable["name"]: str(variable.get("current", {}).get("value", ""))
        for variable in board.get("templating", {}).get("list", [])
        if variable.get("type") != "datasource"
    }
    values.update({"__rate_interval": rate_interval, "__interval": rate_interval, "__range": rate_interval})
    values.update(variables or {})
    found = []
    for panel in _panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            expr, title = str(target.get("expr", "")), str(panel.get("title", "?"))

            def substitute(match: re.Match[str], title: str = title) -> str:
                name = next(group for group in match.groups() if group)
                if name not in values:
                    raise ValueError(f"panel {title!r}: unknown variable ${name}")
                return values[name]

            found.append(PanelQuery(title, str(target.get("refId", "")), _VARIABLE.sub(substitute, expr)))
    return found


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """Panels in order, those inside (collapsed) rows included."""
    for panel in panels:
        if panel.get("type") == "row":
            yield from _panels(panel.get("panels", []))
        else:
            yield panel
