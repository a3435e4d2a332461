"""One local mesh for the whole session: the project's canary stack (k8s/ + istio/ overlays,
copied so tests may edit them), every pod with the real services behind real sidecars, and
the Prometheus that scrapes them. `mesh_settings` makes the settings of any stack's mesh
(test_canary_rollouts.py runs the flagger stack's)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopmesh.localmesh.ca import spiffe_id
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.supervisor import LocalMesh

ROOT = Path(__file__).resolve().parents[2]


def mesh_settings(project: Path, overlay: str) -> MeshSettings:
    """A mesh of the stack `overlay`, from a copy of k8s/ and istio/ under `project` (which
    tests may edit), on addresses of its own."""
    for part in ("k8s", "istio"):
        shutil.copytree(ROOT / part, project / part)
    return MeshSettings(
        root=ROOT,
        sources=[project / "k8s" / "overlays" / overlay, project / "istio" / "overlays" / overlay],
        state=project / "state",
        extra_identities=[spiffe_id("default", "default")],
    ).on_free_addresses()  # another mesh may run alongside


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    local_mesh = LocalMesh(mesh_settings(tmp_path_factory.mktemp("mesh"), "canary"))
    local_mesh.start(timeout=120)
    try:
        yield local_mesh
    finally:
        local_mesh.stop()


@pytest.fixture(scope="session")
def istio_routes(mesh: LocalMesh) -> Path:
    """The order routes file of the mesh's own copy of istio/ (the canary overlay)."""
    return mesh.settings.sources[1] / "order-routes.yaml"
