"""The SLO rules: generated files in step with their source, valid for promtool, and unit-tested
alert by alert (slo_rules_test.yaml, slo_tickets_test.yaml: written by hand, run by promtool)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import grpc
import pytest
import yaml

from services.runtime.registry import declarations
from shopmesh.telemetry import generate, rules, slo
from shopmesh.telemetry.prometheus import Binaries

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
UNIT_TESTS = [HERE / "slo_rules_test.yaml", HERE / "slo_tickets_test.yaml"]
#: Envoy's default histogram bounds (source/common/stats/histogram_impl.cc).
ENVOY_BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000)


def _load(path: Path) -> Any:
    return yaml.safe_load(path.read_text())


def test_generated_files_match_their_sources() -> None:
    stale = [str(path.relative_to(ROOT)) for path in generate.drifted(ROOT)]
    assert stale == [], f"run scripts/gen-monitoring: {', '.join(stale)} differ from shopmesh/telemetry"


def test_the_prometheus_rule_and_the_plain_file_hold_the_same_rules() -> None:
    plain = _load(ROOT / generate.RULES_FILE)
    operator = _load(ROOT / generate.PROMETHEUS_RULE)
    assert operator["kind"] == "PrometheusRule"
    assert operator["spec"]["groups"] == plain["groups"]
    names = [rule.get("alert") for group in plain["groups"] for rule in group["rules"] if "alert" in rule]
    assert len(names) == 6
    assert len(set(names)) == 6


def test_promtool_checks_both_rule_files(tmp_path: Path, binaries: Binaries) -> None:
    groups_of_the_prometheus_rule = tmp_path / "from-prometheus-rule.yaml"
    groups_of_the_prometheus_rule.write_text(
        yaml.safe_dump({"groups": _load(ROOT / generate.PROMETHEUS_RULE)["spec"]["groups"]})
    )
    for path in (ROOT / generate.RULES_FILE, groups_of_the_prometheus_rule):
        checked = binaries.promtool_run("check", "rules", str(path))
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "SUCCESS: 26 rules found" in checked.stdout


@pytest.mark.parametrize(
    "unit_tests",
    [
        pytest.param(UNIT_TESTS[0], id="ratios-pages"),
        # 3.75 days of samples evaluated every 5 minutes: a few seconds.
        pytest.param(UNIT_TESTS[1], id="tickets", marks=pytest.mark.slow),
    ],
)
def test_promtool_unit_tests_pass(unit_tests: Path, binaries: Binaries) -> None:
    result = binaries.promtool_run("test", "rules", unit_tests.name, cwd=HERE)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_tested_firing_and_quiet() -> None:
    alerts = {
        rule["alert"]
        for group in _load(ROOT / generate.RULES_FILE)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    }
    firing: set[str] = set()
    quiet: set[str] = set()
    for path in UNIT_TESTS:
        for case in _load(path)["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check["exp_alerts"] else quiet).add(check["alertname"])
    assert alerts - firing == set(), "alerts without a case where they fire"
    assert alerts - quiet == set(), "alerts without a case where they stay quiet"


def test_every_grpc_code_is_classified_once_by_its_name() -> None:
    classified = {**slo.SERVER_FAULT_CODES, **slo.CALLER_CODES}
    assert len(classified) == len(slo.SERVER_FAULT_CODES) + len(slo.CALLER_CODES)
    for code in grpc.StatusCode:
        number, name = code.value
        assert classified[number].startswith(name.upper().replace(" ", "_")), number
    assert set(slo.SERVER_FAULT_CODES) == {2, 4, 8, 10, 12, 13, 14, 15}


def test_every_declared_service_has_a_latency_threshold_on_an_envoy_bucket() -> None:
    assert set(slo.LATENCY_THRESHOLDS_MS) == set(declarations())
    for service, threshold in slo.LATENCY_THRESHOLDS_MS.items():
        assert threshold in ENVOY_BUCKETS, service


@pytest.mark.parametrize(
    ("bound", "matching", "not_matching"),
    [
        (250, ["250", "250.0"], ["2500", "25", "250.5", "250.00"]),
        (1000, ["1000", "1000.0"], ["10000", "1e+03"]),
        (0.5, ["0.5"], ["0x5", "0.50", "5"]),
    ],
)
def test_the_le_selector_matches_envoys_and_prometheus_3s_spelling(
    bound: float, matching: list[str], not_matching: list[str]
) -> None:
    promql_string = rules.le_pattern(bound)
    regex = promql_string.replace("\\\\", "\\")  # PromQL's string escapes, then RE2 (anchored)
    for text in matching:
        assert re.fullmatch(regex, text), text
    for text in not_matching:
        assert not re.fullmatch(regex, text), text


def test_docs_tables_say_what_the_source_says() -> None:
    doc = (ROOT / "docs" / "observability.md").read_text()
    codes = re.findall(r"^\| (\d+) \| [A-Z_]+ \| (\*\*yes\*\*|no) \|", doc, flags=re.MULTILINE)
    assert {int(code): counts == "**yes**" for code, counts in codes} == {
        number: number in slo.SERVER_FAULT_CODES for number in range(17)
    }
    thresholds = re.findall(r"^\| (\w+) \| (\d+) ms", doc, flags=re.MULTILINE)
    assert {service: int(ms) for service, ms in thresholds} == dict(slo.LATENCY_THRESHOLDS_MS)
