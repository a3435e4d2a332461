"""k8s/monitoring's dashboard ConfigMap carries the generated dashboard as it is. (Its objects'
schemas, the PodMonitors and the PrometheusRule against the prometheus-operator's CRDs, are
`shopmesh lint`'s stack `monitoring`.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shopmesh.manifests.render import kustomize
from shopmesh.telemetry import generate


@pytest.fixture(scope="module")
def monitoring(repository: Path) -> list[dict[str, Any]]:
    return kustomize(repository / "k8s" / "monitoring")


def test_the_dashboard_configmap_is_the_generated_json(
    monitoring: list[dict[str, Any]], repository: Path
) -> None:
    [configmap] = [doc for doc in monitoring if doc["kind"] == "ConfigMap"]
    assert configmap["metadata"]["name"] == "shopmesh-grafana-dashboards"  # no hash suffix
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    [(name, content)] = configmap["data"].items()
    assert name == generate.DASHBOARD.name
    assert json.loads(content) == json.loads((repository / generate.DASHBOARD).read_text())
