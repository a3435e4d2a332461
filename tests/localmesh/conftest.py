"""One local mesh for the whole session: the project's canary stack (k8s/ + istio/ overlays,
copied so tests may edit them), every pod with the real services behind real sidecars, and
the Prometheus that scrapes them."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from shopmesh.launch.listeners import unused_subnet
from shopmesh.launch.readiness import free_port
from shopmesh.localmesh.ca import spiffe_id
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.supervisor import LocalMesh

ROOT = Path(__file__).resolve().parents[2]


def isolated_settings(project: Path, state: Path, *, prometheus: bool = True) -> MeshSettings:
    """The canary stack of `project` (its k8s/ and istio/), its state in `state`, with pods on
    their own 127.<subnet>/16 and ports of its own: another mesh may run alongside."""
    return MeshSettings(
        root=ROOT,
        sources=[project / "k8s" / "overlays" / "canary", project / "istio" / "overlays" / "canary"],
        state=state,
        subnet=unused_subnet(range(100, 251)),
        control_plane=f"127.0.0.1:{free_port()}",
        ingress=f"127.0.0.1:{free_port()}",
        ingress_stats=f"127.0.0.1:{free_port()}",
        prometheus=f"127.0.0.1:{free_port()}" if prometheus else None,
        extra_identities=[spiffe_id("default", "default")],
    )


@pytest.fixture(scope="session")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalMesh]:
    project = tmp_path_factory.mktemp("mesh")
    for part in ("k8s", "istio"):
        shutil.copytree(ROOT / part, project / part)
    local_mesh = LocalMesh(isolated_settings(project, project / "state"))
    local_mesh.start(timeout=120)
    try:
        yield local_mesh
    finally:
        local_mesh.stop()


@pytest.fixture(scope="session")
def istio_routes(mesh: LocalMesh) -> Path:
    """The order routes file of the mesh's own copy of istio/ (the canary overlay)."""
    return mesh.settings.sources[1] / "order-routes.yaml"
