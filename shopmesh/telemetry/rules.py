"""The recording and alerting rules, built from the objectives in `slo`.

One recorded family, `destination_canonical_service:slo_errors_per_request:ratio_rate<window>`
(the workbook's `job:slo_errors_per_request:ratio_rate<window>`, per destination service),
labelled `slo="grpc-availability"` or `slo="grpc-latency"`: the share of calls that spent the
budget over that window. Each alert compares two of them with its burn rate.

`rule_groups()` is the content of both shipped files: the plain rules file any Prometheus
loads (`groups:`) and the prometheus-operator PrometheusRule (`spec.groups`).
"""

from __future__ import annotations

from typing import Any

from shopmesh.telemetry import slo
from shopmesh.telemetry.slo import BurnRateAlert, Objective

#: The SRE workbook's budget period, which its burn rates assume.
SLO_PERIOD_DAYS = 30
RATIO = "destination_canonical_service:slo_errors_per_request:ratio_rate"
#: Each destination service of the namespace, as a Kiali app node (versions together).
BY = "destination_workload_namespace, destination_canonical_service"
#: What the destination's proxy reports about a gRPC call to the namespace's services.
CALLS = f'reporter="destination", request_protocol="grpc", destination_workload_namespace="{slo.NAMESPACE}"'


def windows() -> list[str]:
    """Every window an alert reads, shortest first."""
    found = {w for alert in slo.BURN_RATE_ALERTS for w in (alert.long_window, alert.short_window)}
    return sorted(found, key=_seconds)


def availability_ratio(window: str) -> str:
    codes = "|".join(str(code) for code in sorted(slo.SERVER_FAULT_CODES))
    return (
        f'sum by ({BY}) (rate(istio_requests_total{{{CALLS}, grpc_response_status=~"{codes}"}}[{window}]))\n'
        f"/\nsum by ({BY}) (rate(istio_requests_total{{{CALLS}}}[{window}]))"
    )


def latency_ratio(service: str, threshold_ms: float, window: str) -> str:
    calls = f'{CALLS}, destination_canonical_service="{service}"'
    return (
        f"1 - (\n"
        f"  sum by ({BY}) (rate(istio_request_duration_milliseconds_bucket{{{calls}, "
        f'le=~"{le_pattern(threshold_ms)}"}}[{window}]))\n'
        f"  /\n"
        f"  sum by ({BY}) (rate(istio_request_duration_milliseconds_count{{{calls}}}[{window}]))\n"
        f")"
    )


def le_pattern(bound: float) -> str:
    """A bucket bound as Envoy writes it ("1000", `%.32g`) or as Prometheus 3 normalises it
    ("1000.0"): the same `le` selector then works in both Prometheus 2 and 3."""
    text = f"{bound:.32g}"
    escaped = text.replace(".", "\\\\.")
    return escaped if "." in text or "e" in text else f"{escaped}(\\\\.0)?"


def recording_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    for window in windows():
        rules.append(
            {
                "record": f"{RATIO}{window}",
                "expr": availability_ratio(window),
                "labels": {"slo": slo.AVAILABILITY.slo},
            }
        )
        for service, threshold in sorted(slo.LATENCY_THRESHOLDS_MS.items()):
            rules.append(
                {
                    "record": f"{RATIO}{window}",
                    "expr": latency_ratio(service, threshold, window),
                    # The service as a rule label too: each rule's own, so promtool sees
                    # no two rules recording the same series.
                    "labels": {
                        "slo": slo.LATENCY.slo,
                        "destination_canonical_service": service,
                        "threshold_ms": f"{threshold:g}",
                    },
                }
            )
    return rules


def alert_name(objective: Objective, alert: BurnRateAlert) -> str:
    return f"{objective.alert_prefix}BurnRate{alert.name}"


def alerting_rules() -> list[dict[str, Any]]:
    rules = []
    for objective, what in ((slo.AVAILABILITY, "availability"), (slo.LATENCY, "latency")):
        budget = f"{objective.error_budget:g}"
        for alert in slo.BURN_RATE_ALERTS:
            threshold = f"({alert.factor:g} * {budget})"
            selector = f'{{slo="{objective.slo}"}}'
            windows = f"the last {alert.long_window} and the last {alert.short_window}"
            rules.append(
                {
                    "alert": alert_name(objective, alert),
                    "expr": (
                        f"{RATIO}{alert.long_window}{selector} > {threshold}\n"
                        f"and\n{RATIO}{alert.short_window}{selector} > {threshold}"
                    ),
                    "labels": {"severity": alert.severity},
                    # No $value in the text: an alert's annotations stay the same while it fires.
                    "annotations": {
                        "summary": (
                            f"{{{{ $labels.destination_canonical_service }}}}: gRPC {what} error budget "
                            f"burning {alert.factor:g}x too fast over {alert.long_window}"
                        ),
                        "description": (
                            f"{objective.description} (SLO {objective.slo}): more than {alert.factor:g} x "
                            f"{budget} of the calls spent the budget over {windows}; at that rate a 30-day "
                            f"budget lasts {_days(alert.factor)}. See docs/observability.md."
                        ),
                    },
                }
            )
    return rules


def _days(burn_rate: float) -> str:
    return f"{SLO_PERIOD_DAYS / burn_rate:.2g} days"


def rule_groups() -> list[dict[str, Any]]:
    """One group: a group's rules run in order at one evaluation time, so each alert reads the
    ratios recorded at that same time (across groups, in no set order, it could read the
    previous evaluation's)."""
    return [{"name": "shopmesh-slo", "rules": recording_rules() + alerting_rules()}]


def _seconds(duration: str) -> int:
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(duration[:-1]) * units[duration[-1]]
