"""A local mesh of the benchmarks' own: the project's canary stack (as `scripts/up` runs it), in
a state directory of its own, on a random 127.x subnet and free ports, so that it runs beside a
`scripts/up` or a test's mesh. The one module here that knows the supervisor's API.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shopmesh.check.reading import DatabaseUrls
from shopmesh.launch.service import ROOT
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.supervisor import LocalMesh, Role

START_TIMEOUT_SECONDS = 180.0


@dataclass
class RunningMesh:
    mesh: LocalMesh

    @property
    def ingress(self) -> str:
        return self.mesh.settings.ingress

    def apps(self) -> dict[str, str]:
        """Each service's plaintext address, straight at its process (no sidecar): the first pod's."""
        addresses: dict[str, str] = {}
        for pod in self.mesh.pods:
            addresses.setdefault(pod.instance.app, pod.app_address)
        return addresses

    def pids(self) -> dict[str, int]:
        """Every process of the mesh that runs, by name."""
        return {
            name: process.pid
            for name, process in self.mesh.processes.items()
            if process.pid is not None and process.running()
        }

    def roles(self) -> dict[str, str]:
        return {name: Role(role).name.lower() for name, role in self.mesh.roles.items()}

    def dead(self) -> list[str]:
        """The processes that were started and have exited."""
        return sorted(name for name, process in self.mesh.processes.items() if not process.running())

    def databases(self) -> DatabaseUrls:
        return DatabaseUrls.sqlite_files(self.mesh.settings.state / "db")


@contextmanager
def local_mesh(state: Path, root: Path = ROOT) -> Iterator[RunningMesh]:
    """The mesh, started (every process serving); stopped on leaving, whatever happened."""
    settings = MeshSettings.for_project(root).on_free_addresses()
    settings.state = state
    mesh = LocalMesh(settings)
    mesh.start(timeout=START_TIMEOUT_SECONDS)
    try:
        yield RunningMesh(mesh)
    finally:
        mesh.stop()
