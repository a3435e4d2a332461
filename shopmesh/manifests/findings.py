"""What `shopmesh lint` reports: findings, collected on the objects of one stack."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shopmesh.canary.objects import Initialised
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

    def __init__(
        self,
        resources: Iterable[Resource | Mapping[str, Any] | None],
        flagger: Initialised | None = None,
    ) -> None:
        super().__init__(resources)
        self.findings: list[Finding] = []
        #: What Flagger made of the render's Canaries, when the resources include it
        #: (objects no file holds, the rendered ones it overwrote, the Canaries it could not run).
        self.flagger = flagger or Initialised([], {}, {}, {})

    @classmethod
    def of(cls, docs: Iterable[Mapping[str, Any]]) -> Inventory:
        return cls(docs)

    def report(self, code: str, resource: Resource, message: str) -> None:
        if code not in CATALOG:
            raise KeyError(f"unknown finding code {code}")
        origin = self.flagger.generated.get(resource)
        if origin is not None:
            message = f"{message} (as Flagger makes it for {origin})"
        self.findings.append(Finding(code, resource.ref, message))


def namespace_resource(namespace: str) -> Resource:
    """The Namespace a namespace-wide finding is about (whether or not it is rendered)."""
    return Resource({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
