"""k8s/monitoring renders to objects that pass strict validation: the PodMonitors and the
PrometheusRule against the prometheus-operator's CRDs, the dashboard ConfigMap against
Kubernetes' own schema. (Not part of `shopmesh lint` yet: this test is its check.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shopmesh.manifests import schema
from shopmesh.manifests.crds import vendored
from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.render import kustomize
from shopmesh.telemetry import generate


@pytest.fixture(scope="module")
def monitoring(repository: Path) -> list[dict[str, Any]]:
    return kustomize(repository / "k8s" / "monitoring")


def test_every_object_is_valid(monitoring: list[dict[str, Any]]) -> None:
    custom = [doc for doc in monitoring if vendored().knows(doc["apiVersion"], doc["kind"])]
    native = [doc for doc in monitoring if doc not in custom]
    assert sorted((doc["kind"], doc["metadata"]["name"]) for doc in custom) == [
        ("PodMonitor", "envoy-stats-monitor"),
        ("PodMonitor", "grpc-services"),
        ("PrometheusRule", "shopmesh-slo"),
    ]
    for doc in custom:
        assert vendored().errors(doc) == [], doc["metadata"]["name"]
    assert [doc["kind"] for doc in native] == ["ConfigMap"]
    inventory = Inventory.of(native)
    schema.validate(inventory)
    assert inventory.findings == []
    assert {doc["metadata"]["namespace"] for doc in monitoring} == {"shop"}


def test_the_dashboard_configmap_is_the_generated_json(
    monitoring: list[dict[str, Any]], repository: Path
) -> None:
    [configmap] = [doc for doc in monitoring if doc["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"] == "shopmesh-grafana-dashboards"  # no hash suffix
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(name, content)] = configmap["data"].items()
    assert name == generate.DASHBOARD.name
    assert json.loads(content) == json.loads((repository / generate.DASHBOARD).read_text())


def test_a_misspelt_field_in_the_rendered_podmonitor_is_caught(monitoring: list[dict[str, Any]]) -> None:
    podmonitor = next(doc for doc in monitoring if doc["metadata"]["name"] == "grpc-services")
    podmonitor = json.loads(json.dumps(podmonitor))
    podmonitor["spec"]["podMetricsEndpoints"][0]["metricRelabelings"][0]["sourcelabels"] = ["__name__"]
    assert vendored().errors(podmonitor) == [
        "spec.podMetricsEndpoints[0].metricRelabelings[0].sourcelabels: "
        "unknown field (did you mean 'sourceLabels'?)"
    ]
