"""Brings the whole local mesh up and down: control plane, every pod (app + sidecar), ingress,
and the Prometheus that scrapes them (unless settings.prometheus is None).

    mesh = LocalMesh(MeshSettings.for_project(Path.cwd()))
    mesh.start()             # returns once every process serves
    print(describe(mesh))    # shopmesh.localmesh.report
    mesh.stop()              # nothing left: every process stopped, every port closed

Used by `shopmesh mesh up` (and so `scripts/up`) and by tests/localmesh. What each pod's service
is given lives in shopmesh.localmesh.pods; the settings in shopmesh.localmesh.settings.
"""

from __future__ import annotations

import enum
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TypeVar

from services.runtime.registry import declarations
from shopmesh.canary.objects import running
from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.localdatabases import LocalDatabases
from shopmesh.launch.processes import ManagedProcess
from shopmesh.launch.readiness import free_port, wait_listening, wait_serving
from shopmesh.launch.service import ServiceProcess
from shopmesh.localmesh.bootstrap import write_bootstrap
from shopmesh.localmesh.ca import IdentityFiles
from shopmesh.localmesh.flagger import initial_routes
from shopmesh.localmesh.monitoring import mesh_prometheus, prometheus_binaries, scrape_targets
from shopmesh.localmesh.placement import Instance, Placement, place
from shopmesh.localmesh.pods import Pod, app_process
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.state import MeshState
from shopmesh.localmesh.translate.translator import gateway_listener_name
from shopmesh.manifests.model import MeshObjects
from shopmesh.manifests.render import render
from shopmesh.telemetry.prometheus import Binaries, LocalPrometheus
from shopmesh.telemetry.targets import ScrapeTarget

P = TypeVar("P", bound=ManagedProcess)


class Role(enum.IntEnum):
    """What a mesh process is, in the order the mesh stops them: from the front door inwards,
    so that nothing is left sending calls to, or serving configuration for, what has stopped."""

    PROMETHEUS = 0
    INGRESS = 1
    SIDECAR = 2
    APP = 3
    CONTROL_PLANE = 4


class LocalMesh:
    def __init__(self, settings: MeshSettings) -> None:
        self.settings = settings
        self.state = MeshState(settings.state)
        self.objects: MeshObjects | None = None
        self.placement: Placement | None = None
        self.pods: list[Pod] = []
        self.processes: dict[str, ManagedProcess] = {}
        self.roles: dict[str, Role] = {}
        self.gateway_target = ""
        self.prometheus: LocalPrometheus | None = None
        self.databases = LocalDatabases(
            settings.state / "db", settings.postgresql, log_file=self.state.log_file("postgresql")
        )
        #: each Canary's routes file, by `<namespace>/<name>` (shopmesh.localmesh.flagger)
        self.flagger_routes: dict[str, Path] = {}

    # -- start -------------------------------------------------------------------------------
    def start(self, timeout: float = 60.0) -> None:
        try:
            self._start(timeout)
        except BaseException:
            self.stop()
            raise

    def _start(self, timeout: float) -> None:
        settings = self.settings
        for directory in ("bootstrap", "logs", "db"):
            (settings.state / directory).mkdir(parents=True, exist_ok=True)
        rendered = render(settings.sources)
        # A stack with Canaries runs as Flagger runs it: its generated objects, and the routes
        # Flagger writes, in files the control plane watches besides the sources.
        self.flagger_routes = initial_routes(rendered, self.state)
        self.objects = running(rendered)
        self.placement = place(self.objects, subnet=settings.subnet, replicas=settings.replicas)
        self.placement.save(self.state.placement_file)
        gateway = gateway_listener_name(self.objects)
        self.gateway_target = f"xds:///{gateway}" if gateway else ""
        pod_addresses = [f"{i.address}:{port}" for i in self.placement.instances for port in i.ports]
        ours = (settings.control_plane, settings.ingress, settings.ingress_stats, *pod_addresses)
        busy = [address for address in ours if accepts_connections(address)]
        if busy:  # checked first: readiness checks below could not tell our servers from these
            raise RuntimeError(f"already in use: {', '.join(busy)} (another mesh running? see --subnet)")
        # Prometheus missing or its address taken: said now, before anything has started.
        binaries = prometheus_binaries(settings.prometheus) if settings.prometheus else None

        # A database per declared service, as the cluster's Secret has (shopmesh/manifests/dbsecret.py).
        self.databases.open(list(declarations()))
        self._start_control_plane().wait_for_line("READY", timeout)
        self.pods = [Pod(instance, f"127.0.0.1:{free_port()}") for instance in self.placement.instances]
        for pod in self.pods:
            self.write_bootstrap(pod.instance)
        self.write_bootstrap(self.placement.ingress)

        # The first pod of each service migrates its database; the others wait, so two
        # processes never run the same migration at once.
        first = {pod.instance.app: pod for pod in reversed(self.pods)}
        for process in [self.start_app(pod) for pod in first.values()]:
            process.wait_serving(timeout)
        rest = [self.start_app(pod) for pod in self.pods if first[pod.instance.app] is not pod]
        for pod in self.pods:
            self._start_sidecars(pod)
        if self.gateway_target:
            self._start_ingress()
        for process in rest:
            process.wait_serving(timeout)
        for pod in self.pods:
            for index, address in enumerate(pod.sidecar_addresses):
                wait_listening(self.processes[pod.sidecar_process_name(index)], address, timeout)
        if self.gateway_target:
            # its own line first: a port someone else holds would answer the TCP check
            self.processes["ingress"].wait_for_line("STARTED", timeout)
            # SERVING once its mesh channel is ready: a first grpcurl call never meets the
            # channel's initial reconnect backoff.
            wait_serving(self.processes["ingress"], settings.ingress, timeout)
        if settings.prometheus and binaries is not None:
            self._start_prometheus(settings.prometheus, binaries, timeout)

    def scrape_targets(self) -> list[ScrapeTarget]:
        assert self.placement is not None
        return scrape_targets(self.pods, self.placement.ingress, self.settings.ingress_stats)

    def _start_prometheus(self, listen: str, binaries: Binaries, timeout: float) -> None:
        prometheus = mesh_prometheus(
            self.settings.root,
            self.state.prometheus_directory,
            listen,
            self.scrape_targets(),
            binaries,
            self.settings.scrape_interval,
        )
        self.prometheus = prometheus  # stopped with the mesh, even if it fails to start
        prometheus.start(timeout)
        assert prometheus.process is not None
        self._track(prometheus.process, Role.PROMETHEUS)

    def identity_files(self, spiffe_uri: str) -> IdentityFiles:
        """The shared certificate of an identity that runs no pod (a client's, an operator's)."""
        return self.state.identity_files(spiffe_uri)

    def write_bootstrap(self, instance: Instance) -> Path:
        """The xDS bootstrap of a placed pod, with its own certificate, or of another client
        (a test's, an operator's), with its identity's shared one."""
        assert self.placement is not None
        return write_bootstrap(
            self.state.bootstrap_file(instance.name),
            instance,
            self.settings.control_plane,
            self.state.credentials(instance, self.placement),
        )

    def start_app(self, pod: Pod) -> ServiceProcess:
        """Starts the pod's service (again, if it ran before); it serves once `wait_serving`."""
        assert self.objects is not None
        process = app_process(
            pod,
            self.objects,
            self.databases.urls[pod.instance.app],
            self.state.log_file(pod.app_process_name),
            self._environment(self.state.bootstrap_file(pod.name)) | dict(self.databases.service_settings),
        )
        return self._track(process, Role.APP).start()

    @property
    def sources(self) -> list[Path]:
        """What the control plane renders and watches: the settings' sources, and the routes
        Flagger writes for the Canaries among them (shopmesh.localmesh.flagger)."""
        return [*self.settings.sources, *self.flagger_routes.values()]

    def _start_control_plane(self) -> ManagedProcess:
        settings = self.settings
        arguments = [
            "-m", "shopmesh.localmesh.controlplane",
            "--state", str(settings.state),
            "--listen", settings.control_plane,
            "--certificate-lifetime", str(settings.certificate_lifetime),
            *[argument for source in self.sources for argument in ("--source", str(source))],
            *[argument for identity in settings.extra_identities for argument in ("--identity", identity)],
        ]  # fmt: skip
        return self._spawn("controlplane", Role.CONTROL_PLANE, arguments)

    def _start_sidecars(self, pod: Pod) -> None:
        for index, address in enumerate(pod.sidecar_addresses):
            arguments = [
                "-m", "shopmesh.localmesh.sidecar",
                "--listen", address,
                "--app", pod.app_address,
                "--identity", pod.instance.spiffe_id,
                "--node-id", pod.instance.node_id,
                "--stats", pod.stats_address(index),
                "--peer-metadata", str(self.state.peer_metadata_file),
            ]  # fmt: skip
            bootstrap = self.state.bootstrap_file(pod.name)
            self._spawn(pod.sidecar_process_name(index), Role.SIDECAR, arguments, bootstrap)

    def _start_ingress(self) -> None:
        assert self.placement is not None
        arguments = [
            "-m", "shopmesh.localmesh.ingress",
            "--listen", self.settings.ingress,
            "--target", self.gateway_target,
            "--stats", self.settings.ingress_stats,
            "--node-id", self.placement.ingress.node_id,
            "--peer-metadata", str(self.state.peer_metadata_file),
        ]  # fmt: skip
        self._spawn(
            "ingress", Role.INGRESS, arguments, self.state.bootstrap_file(self.placement.ingress.name)
        )

    def _environment(self, bootstrap: Path | None) -> dict[str, str]:
        """This process's environment, with `bootstrap` as the child's xDS bootstrap."""
        env = dict(os.environ)
        env.pop("GRPC_XDS_BOOTSTRAP_CONFIG", None)
        if bootstrap is not None:
            env["GRPC_XDS_BOOTSTRAP"] = str(bootstrap)
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env

    def _spawn(
        self, name: str, role: Role, arguments: Sequence[str], bootstrap: Path | None = None
    ) -> ManagedProcess:
        process = ManagedProcess(
            name,
            [sys.executable, *arguments],
            self._environment(bootstrap),
            self.state.log_file(name),
            self.settings.root,
        )
        return self._track(process, role).start()

    def _track(self, process: P, role: Role) -> P:
        self.processes[process.name] = process
        self.roles[process.name] = role
        return process

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Every process by role (see Role): each SIGTERM, SIGKILL if it lingers."""
        order = sorted(self.processes.values(), key=lambda process: self.roles[process.name])
        for process in order:
            process.signal(15)
        for process in order:
            process.stop(timeout=5.0)
        if self.prometheus is not None:  # one that failed to start is not among the processes
            self.prometheus.stop()
            self.prometheus = None
        self.processes.clear()
        self.roles.clear()
        self.databases.close()  # after every process that used them
