"""`shopmesh lint` as a function: render each stack, validate, analyse, report."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from shopmesh.manifests import analyzers, schema
from shopmesh.manifests.findings import Finding, Inventory
from shopmesh.manifests.messages import Level
from shopmesh.manifests.render import Stack


@dataclass(frozen=True)
class StackReport:
    stack: Stack
    findings: list[Finding]


def lint_inventory(inventory: Inventory) -> list[Finding]:
    schema.validate(inventory)
    analyzers.analyze(inventory)
    return sorted(set(inventory.findings))


def lint(stacks: Iterable[Stack]) -> list[StackReport]:
    return [StackReport(stack, lint_inventory(Inventory.of(stack.render()))) for stack in stacks]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.level is Level.ERROR for f in findings)
