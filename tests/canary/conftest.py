"""The project's Canary and MetricTemplates as kustomize places them (namespace shop), read
straight from k8s/overlays/flagger: the scheduler's tests start no process."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shopmesh.manifests.model import MeshObjects

HERE = Path(__file__).parent
REPOSITORY = HERE.parents[1]
OVERLAY = REPOSITORY / "k8s" / "overlays" / "flagger"


def overlay_documents() -> list[dict[str, Any]]:
    documents = []
    for name in ("canary.yaml", "metric-templates.yaml"):
        for document in yaml.safe_load_all((OVERLAY / name).read_text(encoding="utf-8")):
            document["metadata"]["namespace"] = "shop"  # the overlay's `namespace: shop`
            documents.append(document)
    return documents


@pytest.fixture
def flagger_objects() -> MeshObjects:
    return MeshObjects(overlay_documents())
