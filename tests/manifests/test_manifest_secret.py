"""scripts/gen-db-secret: the only source of database credentials. Its Secret is valid, fresh
on every run, and has exactly the keys the manifests read."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopmesh.manifests import schema
from shopmesh.manifests.model import Inventory

pytestmark = pytest.mark.slow  # runs scripts/gen-db-secret

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen-db-secret"


def _generate() -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(SCRIPT)], capture_output=True, text=True, check=True, timeout=30
    )
    document: dict[str, Any] = yaml.safe_load(completed.stdout)
    return document


def _secret_refs(node: Any) -> Iterator[Mapping[str, str]]:
    if isinstance(node, Mapping):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from _secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _secret_refs(value)


def test_secret_is_valid_and_fresh() -> None:
    first, second = _generate(), _generate()
    inventory = Inventory.of([first])
    schema.validate(inventory)
    assert inventory.findings == []
    assert first["metadata"] == {"name": "postgres-credentials", "namespace": "shop"}
    assert all(len(value) >= 32 for value in first["stringData"].values())
    assert set(first["stringData"].values()).isdisjoint(second["stringData"].values())


def test_secret_has_exactly_the_keys_the_manifests_read(default_docs: list[dict[str, Any]]) -> None:
    refs = list(_secret_refs(default_docs))
    assert refs, "the manifests read no secret"
    assert {ref["name"] for ref in refs} == {"postgres-credentials"}
    assert {ref["key"] for ref in refs} == set(_generate()["stringData"])
