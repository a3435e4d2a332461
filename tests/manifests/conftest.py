"""Rendered manifests, shared by the tests of this folder: kustomize runs once per stack."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.render import project_stack

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def repository() -> Path:
    return REPOSITORY


@pytest.fixture(scope="session")
def default_docs(repository: Path) -> list[dict[str, object]]:
    return project_stack(repository, "default").render()


@pytest.fixture
def default_inventory(default_docs: list[dict[str, object]]) -> Inventory:
    """A fresh Inventory per test (analyzers append findings to it)."""
    return Inventory.of(default_docs)
