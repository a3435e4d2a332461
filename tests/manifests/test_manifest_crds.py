"""The vendored-CRD validator: custom resources are validated strictly (unknown fields are
errors) against their CRD's served schema, with messages that name the field."""

from __future__ import annotations

import copy
import hashlib
import re
from pathlib import Path
from typing import Any

import pytest

from shopmesh.manifests.crds import CRDS_DIRECTORY, CrdError, CrdValidator, vendored

CANARY: dict[str, Any] = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "order", "namespace": "shop"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "order"},
        "service": {"port": 50051, "appProtocol": "grpc"},
        "analysis": {
            "interval": "1m",
            "threshold": 5,
            "maxWeight": 50,
            "stepWeight": 10,
            "metrics": [
                {"name": "grpc-success-rate", "templateRef": {"name": "grpc-success-rate"}, "interval": "1m"}
            ],
        },
    },
}
POD_MONITOR: dict[str, Any] = {
    "apiVersion": "monitoring.coreos.com/v1",
    "kind": "PodMonitor",
    "metadata": {"name": "grpc-services", "namespace": "shop", "labels": {"team": "shop"}},
    "spec": {
        "selector": {"matchLabels": {"app": "order"}},
        "podMetricsEndpoints": [{"port": "metrics", "interval": "15s"}],
    },
}


def _with(document: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A copy with the dotted `path` set (list items by index)."""
    changed = copy.deepcopy(document)
    *parents, last = [int(part) if part.isdigit() else part for part in path.split(".")]
    node: Any = changed
    for part in parents:
        node = node[part]
    node[last] = value
    return changed


def test_vendored_files_are_the_releases_named_in_the_readme() -> None:
    readme = (CRDS_DIRECTORY / "README.md").read_text()
    rows = re.findall(r"^\| `([^`]+)` \|.*\| `([0-9a-f]{64})` \|$", readme, flags=re.MULTILINE)
    files = sorted(path.name for path in CRDS_DIRECTORY.glob("*.yaml"))
    assert sorted(name for name, _ in rows) == files
    for name, digest in rows:
        assert hashlib.sha256((CRDS_DIRECTORY / name).read_bytes()).hexdigest() == digest, name


def test_the_served_kinds() -> None:
    assert vendored().kinds() == [
        "flagger.app/v1beta1 AlertProvider",
        "flagger.app/v1beta1 Canary",
        "flagger.app/v1beta1 MetricTemplate",
        "monitoring.coreos.com/v1 PodMonitor",
        "monitoring.coreos.com/v1 PrometheusRule",
    ]


def test_valid_resources_pass() -> None:
    assert vendored().errors(CANARY) == []
    assert vendored().errors(POD_MONITOR) == []


def test_a_misspelt_canary_field_and_a_bad_interval_are_named() -> None:
    canary = _with(CANARY, "spec.analysis.maxWeigth", 50)
    del canary["spec"]["analysis"]["maxWeight"]
    canary = _with(canary, "spec.analysis.interval", "1 minute")
    assert vendored().errors(canary) == [
        "spec.analysis.interval: '1 minute' does not match '^[0-9]+(m|s)'",
        "spec.analysis.maxWeigth: unknown field (did you mean 'maxWeight'?)",
    ]
    bad_metric = _with(CANARY, "spec.analysis.metrics.0.interval", "60")
    assert vendored().errors(bad_metric) == [
        "spec.analysis.metrics[0].interval: '60' does not match '^[0-9]+(m|s)'"
    ]


def test_podmonitor_errors_name_the_field() -> None:
    misspelt = _with(POD_MONITOR, "spec.podMetricsEndpoints.0.intervall", "15s")
    assert vendored().errors(misspelt) == [
        "spec.podMetricsEndpoints[0].intervall: unknown field (did you mean 'interval'?)"
    ]
    wrong_type = _with(POD_MONITOR, "spec.podMetricsEndpoints.0.honorLabels", "yes")
    assert vendored().errors(wrong_type) == [
        "spec.podMetricsEndpoints[0].honorLabels: 'yes' is not of type 'boolean'"
    ]
    no_selector = copy.deepcopy(POD_MONITOR)
    del no_selector["spec"]["selector"]
    assert vendored().errors(no_selector) == ["spec: 'selector' is a required property"]


def test_metadata_is_validated_as_object_meta() -> None:
    assert vendored().errors(_with(POD_MONITOR, "metadata.labelz", {})) == [
        "metadata.labelz: unknown field (did you mean 'labels'?)"
    ]
    assert vendored().errors(_with(POD_MONITOR, "metadata.labels.team", 7)) == [
        "metadata.labels.team: 7 is not of type 'string', 'null'"
    ]
    assert vendored().errors(_with(POD_MONITOR, "metadata.name", "Grpc_Services")) == [
        "metadata.name: 'Grpc_Services' is not a DNS subdomain (a-z, 0-9, '-' and '.')"
    ]
    nameless = copy.deepcopy(POD_MONITOR)
    del nameless["metadata"]
    assert vendored().errors(nameless) == ["(root): 'metadata' is a required property"]


def test_unknown_kinds_and_versions_are_named() -> None:
    [error] = vendored().errors(_with(POD_MONITOR, "apiVersion", "monitoring.coreos.com/v1alpha1"))
    assert error.startswith("(root): no CRD serves PodMonitor in monitoring.coreos.com/v1alpha1 (known: ")
    assert vendored().errors([]) == ["(root): a resource must be a mapping"]  # type: ignore[arg-type]


def _crd(schema: dict[str, Any], served: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": "widgets.example.com"},
        "spec": {
            "group": "example.com",
            "names": {"kind": "Widget"},
            "versions": [
                {"name": "v1", "served": served, "schema": {"openAPIV3Schema": schema}},
                {"name": "v0", "served": False, "schema": {"openAPIV3Schema": {"type": "object"}}},
            ],
        },
    }


def test_kubernetes_schema_extensions() -> None:
    spec = {
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True},
            "note": {"type": "string", "nullable": True},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            "tags": {"type": "array", "items": {"type": "string"}, "x-kubernetes-list-type": "set"},
            "ports": {
                "type": "array",
                "x-kubernetes-list-type": "map",
                "x-kubernetes-list-map-keys": ["name"],
                "items": {
                    "type": "object",
                    "properties": {"name": {"type": "string"}, "number": {"type": "integer"}},
                },
            },
        },
    }
    validator = CrdValidator([_crd({"type": "object", "properties": {"spec": spec}})])
    assert validator.kinds() == ["example.com/v1 Widget"]  # v0 is not served

    def errors(**fields: Any) -> list[str]:
        return validator.errors(
            {"apiVersion": "example.com/v1", "kind": "Widget", "metadata": {"name": "w"}, "spec": fields}
        )

    assert (
        errors(port=8080, note=None, free={"any": {"thing": 1}}, tags=["a", "b"], ports=[{"name": "a"}]) == []
    )
    assert errors(port="grpc") == []
    assert errors(port=1.5) == ["spec.port: 1.5 is not valid under any of the given schemas"]
    assert errors(tags=["a", "a"]) == ["spec.tags: ['a', 'a'] has non-unique elements"]
    assert errors(ports=[{"name": "a", "number": 1}, {"name": "a", "number": 2}]) == [
        "spec.ports: items 0 and 1 have the same name='a'"
    ]
    assert errors(ports=[{"name": "a", "numbr": 1}]) == [
        "spec.ports[0].numbr: unknown field (did you mean 'number'?)"
    ]


def test_files_that_are_not_crds_are_refused(tmp_path: Path) -> None:
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("kind: [")
    with pytest.raises(CrdError, match=r"bad\.yaml"):
        CrdValidator.from_files([bad_yaml])
    not_a_crd = tmp_path / "deployment.yaml"
    not_a_crd.write_text("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n")
    with pytest.raises(CrdError, match="not a CustomResourceDefinition"):
        CrdValidator.from_files([not_a_crd])
