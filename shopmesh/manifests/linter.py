"""`shopmesh lint` as a function: render each stack, validate, analyse, report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from shopmesh.canary.objects import initialised
from shopmesh.manifests import analyzers, schema
from shopmesh.manifests.findings import Finding, Inventory
from shopmesh.manifests.messages import Level
from shopmesh.manifests.model import MeshObjects
from shopmesh.manifests.render import Stack


@dataclass(frozen=True)
class StackReport:
    stack: Stack
    findings: list[Finding]


def applied(documents: Iterable[Mapping[str, Any]]) -> Inventory:
    """A stack's objects as a cluster runs them: the render, and what Flagger makes of each
    Canary in it (its primary Deployment, Services, DestinationRules and VirtualService;
    shopmesh/canary/objects.py). A finding on a generated object names its Canary."""
    cluster = initialised(MeshObjects(documents))
    return Inventory(cluster.resources, flagger=cluster)


def lint_inventory(inventory: Inventory) -> list[Finding]:
    schema.validate(inventory)
    analyzers.analyze(inventory)
    return sorted(set(inventory.findings))


def lint(stacks: Iterable[Stack]) -> list[StackReport]:
    return [StackReport(stack, lint_inventory(applied(stack.render()))) for stack in stacks]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.level is Level.ERROR for f in findings)
