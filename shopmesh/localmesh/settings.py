"""What a local mesh is made of and where it runs: its sources, state directory, addresses."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from shopmesh.launch.localdatabases import PostgresMode
from shopmesh.launch.ports import free_port
from shopmesh.localmesh.backoff import BackOffPolicy
from shopmesh.localmesh.placement import free_subnet
from shopmesh.telemetry.targets import DEFAULT_SCRAPE_INTERVAL

#: Replicas run locally, by Deployment; others run their `replicas` (default 1, HPAs aside).
#: payment runs two so that outlier detection has a replica to eject and one to keep. Flagger's
#: load tester does not run: `shopmesh canary --load` drives a rehearsal's traffic.
LOCAL_REPLICAS = {"payment": 2, "flagger-loadtester": 0}


@dataclass
class MeshSettings:
    root: Path  # the project: the services run from here
    sources: list[Path]  # what the control plane renders and watches
    state: Path  # certificates, bootstraps, logs, embedded databases
    subnet: int = 10  # pods get 127.<subnet>.x.y
    control_plane: str = "127.0.0.1:15010"
    ingress: str = "127.0.0.1:50051"
    #: Where the ingress gateway serves its Istio metrics (a sidecar serves them on its pod's
    #: address, at Envoy's port 15090: shopmesh.localmesh.pods).
    ingress_stats: str = "127.0.0.1:15090"
    #: The local Prometheus that scrapes the mesh; None: none is started.
    prometheus: str | None = "127.0.0.1:9090"
    #: How often Prometheus scrapes every target, in seconds.
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL
    replicas: Mapping[str, int] = field(default_factory=lambda: dict(LOCAL_REPLICAS))
    #: Each Deployment an autoscaler scales runs its minReplicas instead (`mesh up
    #: --autoscaler-floor`), as a cluster runs it at least: a killed pod then leaves another to
    #: retry on, as the chaos experiments need. Off by default: more pods than 2 cores want.
    autoscaler_floor: bool = False
    #: Identities the control plane issues certificates for besides the workloads' (test clients).
    extra_identities: Sequence[str] = ()
    certificate_lifetime: float = 3600.0
    #: The services' databases: None, an SQLite file per service in state/db; else one local
    #: PostgreSQL with a database per service (`scripts/up --postgres`).
    postgresql: PostgresMode | None = None
    #: CrashLoopBackOff's delays; Kubernetes' (10 s doubling to 300 s) unless a test shortens them.
    crash_loop_backoff: BackOffPolicy = field(default_factory=BackOffPolicy)

    @classmethod
    def for_project(cls, root: Path, overlay: str = "canary") -> MeshSettings:
        """The canary stack by default (order v1 and v2), as `scripts/up` runs it."""
        sources = [root / "k8s" / "overlays" / overlay, root / "istio" / "overlays" / overlay]
        if not all((source / "kustomization.yaml").exists() for source in sources):
            sources = [root / "k8s", root / "istio"]
        return cls(root=root, sources=sources, state=root / "var" / "mesh")

    def on_free_addresses(self) -> MeshSettings:
        """The same mesh on a loopback subnet and ports nobody uses, so it runs beside others
        (a developer's `scripts/up`, tests, benchmarks, experiments); a Prometheus only if this
        one has one."""

        def free() -> str:
            return f"127.0.0.1:{free_port()}"

        return dataclasses.replace(
            self,
            subnet=free_subnet(),
            control_plane=free(),
            ingress=free(),
            ingress_stats=free(),
            prometheus=free() if self.prometheus else None,
        )
