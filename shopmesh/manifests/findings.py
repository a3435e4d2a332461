"""What `shopmesh lint` reports: findings, collected on the objects of one stack."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shopmesh.manifests.messages import CATALOG, Level
from shopmesh.manifests.model import MeshObjects, Resource


@dataclass(frozen=True, order=True)
class Finding:
    code: str
    ref: str
    message: str

    @property
    def level(self) -> Level:
        return CATALOG[self.code].level

    def __str__(self) -> str:
        return f"{self.code} {self.level.value} {self.ref}: {self.message}"


class Inventory(MeshObjects):
    """The objects of one stack, and what the analyzers found in them."""

    def __init__(self, resources: Iterable[Resource | Mapping[str, Any] | None]) -> None:
        super().__init__(resources)
        self.findings: list[Finding] = []

    @classmethod
    def of(cls, docs: Iterable[Mapping[str, Any]]) -> Inventory:
        return cls(docs)

    def report(self, code: str, resource: Resource, message: str) -> None:
        if code not in CATALOG:
            raise KeyError(f"unknown finding code {code}")
        self.findings.append(Finding(code, resource.ref, message))


def namespace_resource(namespace: str) -> Resource:
    """The Namespace a namespace-wide finding is about (whether or not it is rendered)."""
    return Resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
