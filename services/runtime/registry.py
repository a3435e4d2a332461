"""The declared services: every `services/<name>/declaration.py`, found by looking.

Adding a service adds a package with a declaration; nothing here (or anywhere that asks this
module) needs an edit. Importing a declaration is cheap: it names the generated descriptor,
not the service's code.
"""

from __future__ import annotations

import functools
import pkgutil
from collections.abc import Mapping
from importlib import import_module
from types import MappingProxyType

import services
from services.runtime.declaration import ServiceDeclaration

#: Packages under services/ that are not services.
_NOT_SERVICES = frozenset({"runtime"})


@functools.cache
def declarations() -> Mapping[str, ServiceDeclaration]:
    """Every declared service by name, in name order."""
    found: dict[str, ServiceDeclaration] = {}
    for module in sorted(pkgutil.iter_modules(services.__path__), key=lambda m: m.name):
        if not module.ispkg or module.name in _NOT_SERVICES:
            continue
        try:
            declared = import_module(f"services.{module.name}.declaration").DECLARATION
        except ModuleNotFoundError as error:
            if error.name != f"services.{module.name}.declaration":
                raise
            continue  # a package without a declaration is not a service
        if not isinstance(declared, ServiceDeclaration) or declared.name != module.name:
            raise TypeError(f"services.{module.name}.declaration.DECLARATION must declare {module.name!r}")
        found[module.name] = declared
    for declared in found.values():
        unknown = [name for name in declared.calls if name not in found]
        if unknown:
            raise LookupError(f"service {declared.name} calls undeclared {', '.join(unknown)}")
    return MappingProxyType(found)


def declaration(name: str) -> ServiceDeclaration:
    """One service's declaration; LookupError names the declared ones."""
    try:
        return declarations()[name]
    except KeyError:
        raise LookupError(f"unknown service {name!r}; one of {', '.join(declarations())}") from None


def start_order() -> list[ServiceDeclaration]:
    """Every service, each after the services it calls (so its first calls find them serving)."""
    sequence: list[ServiceDeclaration] = []
    visiting: set[str] = set()

    def visit(declared: ServiceDeclaration) -> None:
        if declared in sequence:
            return
        if declared.name in visiting:
            raise LookupError(f"services call each other in a cycle through {declared.name}")
        visiting.add(declared.name)
        for name in declared.calls:
            visit(declarations()[name])
        sequence.append(declared)

    for declared in declarations().values():
        visit(declared)
    return sequence
