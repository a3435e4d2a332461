"""One declared service as a process: its environment derived from its declaration, in one place.

Whoever starts a service — the plain run, the benchmark, the local mesh (a pod's app), the tests —
says where it runs (gRPC and metrics addresses, database) and where its dependencies are; the
rest follows from `services/<name>/declaration.py`: which SHOPMESH_<NAME>_TARGET variables it
needs (its `calls`), and the seed data it loads into an empty database (its `seed`).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from services.runtime.config import target_variable
from services.runtime.declaration import ServiceDeclaration
from services.runtime.registry import declaration
from shopmesh.launch.processes import ManagedProcess
from shopmesh.launch.readiness import health_status, wait_serving

#: The project's root: services run from here (`python -m services.<name>`).
ROOT = Path(__file__).resolve().parents[2]


def sqlite_url(path: Path) -> str:
    """The SQLAlchemy URL of an embedded SQLite database file."""
    return f"sqlite+aiosqlite:///{path}"


def service_environment(
    declared: ServiceDeclaration,
    *,
    address: str,
    metrics_address: str,
    database_url: str,
    targets: Mapping[str, str],
    base: Mapping[str, str],
    settings: Mapping[str, str] | None = None,
    seed: bool = True,
) -> dict[str, str]:
    """The environment that runs `declared`: `base`, then where it runs, its dependencies'
    targets (one for each service it calls, no more), its declared seed (unless `seed` is
    False), then `settings` (other SHOPMESH_* variables, which win)."""
    missing = [name for name in declared.calls if name not in targets]
    if missing:
        raise ValueError(f"{declared.name} calls {', '.join(missing)}: give a target for each")
    env = dict(base)
    env.update(
        SHOPMESH_LISTEN_ADDRESS=address,
        SHOPMESH_METRICS_ADDRESS=metrics_address,
        SHOPMESH_DATABASE_URL=database_url,
        PYTHONUNBUFFERED="1",  # its log file shows each line as it is written
    )
    env.update({target_variable(name): targets[name] for name in declared.calls})
    # The seed is the declaration's, never the caller's: a service refuses a seed it lacks.
    env.pop("SHOPMESH_SEED", None)
    if seed and declared.seed is not None:
        env["SHOPMESH_SEED"] = declared.seed
    env.update(settings or {})
    return env


class ServiceProcess(ManagedProcess):
    """`python -m services.<service>` (or `command`), configured by `service_environment`."""

    def __init__(
        self,
        service: str,
        *,
        address: str,
        metrics_address: str,
        database_url: str,
        targets: Mapping[str, str],
        log_file: Path,
        base: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
        seed: bool = True,
        name: str | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.declaration = declaration(service)
        self.address = address
        self.metrics_address = metrics_address
        self.database_url = database_url
        env = service_environment(
            self.declaration,
            address=address,
            metrics_address=metrics_address,
            database_url=database_url,
            targets=targets,
            base=os.environ if base is None else base,
            settings=settings,
            seed=seed,
        )
        argv = command or [sys.executable, "-m", f"services.{service}"]
        super().__init__(name or service, argv, env, log_file, ROOT)

    @property
    def metrics_url(self) -> str:
        return f"http://{self.metrics_address}/metrics"

    def wait_serving(self, timeout: float, service: str = "") -> None:
        """Until its health says SERVING for `service` ("" for the whole server); see readiness."""
        wait_serving(self, self.address, timeout, service)

    def health(self, service: str = "", timeout: float = 0.5) -> int | None:
        """Its health status for `service` now, or None if it does not answer."""
        return health_status(self.address, service, timeout)
