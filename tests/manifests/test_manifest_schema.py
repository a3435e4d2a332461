"""The schema validation lint relies on behaves as assumed: kubernetes-validate's strict schemas
(compiled once by shopmesh.manifests.schema) agree with kubernetes_validate.validate itself, and
cloudcoil's Istio models reject unknown fields only with `extra="forbid"`."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pydantic
import pytest
from cloudcoil.models.istio.networking import v1 as networking

from shopmesh.manifests import schema
from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.model import Resource


def _first(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    return copy.deepcopy(next(doc for doc in docs if doc["kind"] == kind))


def test_compiled_schemas_agree_with_kubernetes_validate(default_docs: list[dict[str, Any]]) -> None:
    deployment = _first(default_docs, "Deployment")
    kubernetes_validate.validate(deployment, schema.KUBERNETES_VERSION, strict=True)
    assert schema._kubernetes_errors(Resource(deployment)) == []

    deployment["spec"]["template"]["spec"]["containers"][0]["imagePullPolcy"] = "Always"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, schema.KUBERNETES_VERSION, strict=True)
    [error] = schema._kubernetes_errors(Resource(deployment))
    assert "imagePullPolcy" in error


def test_istio_models_need_extra_forbid(default_docs: list[dict[str, Any]]) -> None:
    rule = _first(default_docs, "DestinationRule")
    rule["spec"]["trafficPolicy"]["outlierDetection"]["consecutive5XXErrors"] = 5
    # Without extra="forbid" the typo passes: this is why lint passes it.
    networking.DestinationRule.model_validate(rule, strict=True)
    with pytest.raises(pydantic.ValidationError, match="consecutive5XXErrors"):
        networking.DestinationRule.model_validate(rule, strict=True, extra="forbid")


def test_every_rendered_object_is_validated(default_docs: list[dict[str, Any]]) -> None:
    inventory = Inventory.of(default_docs)
    schema.validate(inventory)
    assert inventory.findings == []
    kinds = {r.kind for r in inventory.resources}
    assert {"Deployment", "AuthorizationPolicy", "VirtualService"} <= kinds


def test_unknown_istio_kind_is_a_schema_error() -> None:
    inventory = Inventory.of(
        [
            {
                "apiVersion": "networking.istio.io/v1",
                "kind": "VirtualServise",
                "metadata": {"name": "x", "namespace": "shop"},
            }
        ]
    )
    schema.validate(inventory)
    assert [f.code for f in inventory.findings] == ["IST0106"]
