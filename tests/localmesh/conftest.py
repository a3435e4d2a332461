"""One local mesh for the whole session: the project's canary stack (k8s/ + istio/ overlays,
copied so tests may edit them), every pod with the real services behind real sidecars, and
the Prometheus that scrapes them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopmesh.localmesh.ca import spiffe_id
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.supervisor import LocalMesh

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    project = tmp_path_factory.mktemp("mesh")
    for part in ("k8s", "istio"):
        shutil.copytree(ROOT / part, project / part)
    settings = MeshSettings(
        root=ROOT,
        sources=[project / "k8s" / "overlays" / "canary", project / "istio" / "overlays" / "canary"],
        state=project / "state",
        extra_identities=[spiffe_id("default", "default")],
    ).on_free_addresses()  # another mesh may run alongside
    local_mesh = LocalMesh(settings)
    local_mesh.start(timeout=120)
    try:
        yield local_mesh
    finally:
        local_mesh.stop()


@pytest.fixture(scope="session")
def istio_routes(mesh: LocalMesh) -> Path:
    """The order routes file of the mesh's own copy of istio/ (the canary overlay)."""
    return mesh.settings.sources[1] / "order-routes.yaml"
