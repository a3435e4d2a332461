"""The shared runtime knows no service and no tool: it names no declared service in its code
(its docstrings and comments may give examples) and imports nothing from `shopmesh`."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from services.runtime.registry import declarations

RUNTIME = Path(__file__).resolve().parents[2] / "services" / "runtime"


def _docstrings(tree: ast.Module) -> set[int]:
    """The ids of the docstring nodes of a module, its classes and functions."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                found.add(id(first.value))
    return found


def _words_in_code(tree: ast.Module) -> Iterator[tuple[int, str]]:
    """(line, text) of every string literal and identifier, docstrings aside."""
    docstrings = _docstrings(tree)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.lineno, node.value
        elif isinstance(node, ast.Name):
            yield node.lineno, node.id
        elif isinstance(node, ast.Attribute):
            yield node.lineno, node.attr
        elif isinstance(node, ast.arg | ast.keyword) and node.arg:
            yield node.lineno, node.arg
        elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            yield node.lineno, node.name
        elif isinstance(node, ast.alias):
            yield node.lineno, node.asname or node.name


def _modules() -> list[tuple[Path, ast.Module]]:
    return [(path, ast.parse(path.read_text(), str(path))) for path in sorted(RUNTIME.rglob("*.py"))]


def test_the_runtime_names_no_service_in_its_code() -> None:
    service = re.compile(rf"\b({'|'.join(map(re.escape, declarations()))})\b", re.IGNORECASE)
    named = [
        f"{path.relative_to(RUNTIME)}:{line}: {text!r}"
        for path, tree in _modules()
        for line, text in _words_in_code(tree)
        if service.search(text)
    ]
    assert named == []


def _imported(node: ast.AST) -> list[str]:
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    return [alias.name for alias in node.names] if isinstance(node, ast.Import) else []


def test_the_runtime_imports_nothing_from_shopmesh() -> None:
    imports = [
        f"{path.relative_to(RUNTIME)}:{node.lineno}: {name}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        for name in _imported(node)
        if name.split(".")[0] == "shopmesh"
    ]
    assert imports == []


def test_the_check_sees_a_service_name_in_code() -> None:
    """The check above can fail: a literal naming a service in code is found, its docstring not."""
    tree = ast.parse('"""order docs."""\ntarget = settings["inventory"]\n')
    assert sorted(text for _, text in _words_in_code(tree)) == ["inventory", "settings", "target"]
