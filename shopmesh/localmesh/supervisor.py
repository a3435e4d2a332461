"""Brings the whole local mesh up and down: control plane, every pod (app + sidecar), ingress,
and the Prometheus that scrapes them (unless settings.prometheus is None).

    mesh = LocalMesh(MeshSettings.for_project(Path.cwd()))
    mesh.start()             # returns once every process serves
    print(describe(mesh))    # shopmesh.localmesh.report
    mesh.stop()              # nothing left: every process stopped, every port closed

While it runs, the local kubelet (shopmesh.localmesh.kubelet) keeps every pod running and
probed, and the control socket (shopmesh.localmesh.control) takes `shopmesh mesh ps`, `kill`,
`stop-control-plane` and `start-control-plane` from other shells.

Used by `shopmesh mesh up` (and so `scripts/up`) and by tests/localmesh. What each pod's service
is given lives in shopmesh.localmesh.pods; the settings in shopmesh.localmesh.settings.
"""

from __future__ import annotations

import enum
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from services.runtime.registry import declarations
from shopmesh.canary.objects import running
from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.localdatabases import LocalDatabases
from shopmesh.launch.ports import free_port
from shopmesh.launch.processes import ManagedProcess
from shopmesh.launch.readiness import wait_listening, wait_serving
from shopmesh.launch.service import ServiceProcess
from shopmesh.localmesh.bootstrap import write_bootstrap
from shopmesh.localmesh.ca import IdentityFiles
from shopmesh.localmesh.control import ControlError, ControlServer, Handler
from shopmesh.localmesh.flagger import initial_routes
from shopmesh.localmesh.kubelet import Kubelet, PodProcesses
from shopmesh.localmesh.monitoring import mesh_prometheus, prometheus_binaries, scrape_targets
from shopmesh.localmesh.placement import Instance, Placement, autoscaler_floors, place
from shopmesh.localmesh.pods import Pod, app_process
from shopmesh.localmesh.probes import pod_probes
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
        self.kubelet: Kubelet | None = None
        self.control: ControlServer | None = None
        #: Stopped on purpose (`shopmesh mesh stop-control-plane`): not a failure of the mesh.
        self.control_plane_stopped = False
        self._control_plane_lock = threading.Lock()
        self._spawner: ThreadPoolExecutor | None = None

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
        replicas = dict(settings.replicas)
        if settings.autoscaler_floor:
            replicas.update(autoscaler_floors(self.objects))
        self.placement = place(self.objects, subnet=settings.subnet, replicas=replicas)
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
        self.pods = [Pod(instance, f"127.0.0.1:{free_port()}") for instance in self.placement.instances]
        # Before the control plane starts: the pod-status file says no pod is Ready yet.
        kubelet = self.kubelet = Kubelet(
            self.pods,
            {pod.name: pod_probes(self.objects, pod.instance) for pod in self.pods},
            self.start_pod,
            self.state.pod_status_file,
            settings.crash_loop_backoff,
        )
        self._start_control_plane().wait_for_line("READY", timeout)
        for pod in self.pods:
            self.write_bootstrap(pod.instance)
        self.write_bootstrap(self.placement.ingress)

        # The first pod of each service migrates its database; the others wait, so two
        # processes never run the same migration at once.
        first = {pod.instance.app: pod for pod in reversed(self.pods)}
        for process in [self.start_app(pod) for pod in first.values()]:
            process.wait_serving(timeout)
        rest = [self.start_app(pod) for pod in self.pods if first[pod.instance.app] is not pod]
        for pod in self.pods:  # the kubelet probes them from now on: Ready pods become endpoints
            sidecars = self._start_sidecars(pod)
            kubelet.adopt(pod, PodProcesses(self.processes[pod.app_process_name], sidecars))
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
        kubelet.wait_ready(timeout)
        if settings.prometheus and binaries is not None:
            self._start_prometheus(settings.prometheus, binaries, timeout)
        self.control = ControlServer(self.state.control_socket, self.control_handlers())
        self.control.start()

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
        return self._launch(process, Role.APP)

    def start_pod(self, pod: Pod) -> PodProcesses:
        """Starts the pod's app and sidecars (again, for the kubelet's restarts); not waited for."""
        app = self.start_app(pod)
        return PodProcesses(app, self._start_sidecars(pod))

    # -- the control socket's commands --------------------------------------------------------
    def control_handlers(self) -> dict[str, Handler]:
        return {
            "ps": lambda _: self.ps(),
            "kill": lambda request: self.kill(str(request.get("pod", ""))),
            "stop-control-plane": lambda _: self.stop_control_plane(),
            "start-control-plane": lambda _: self.start_control_plane(),
        }

    def ps(self) -> dict[str, Any]:
        assert self.kubelet is not None
        return {
            "pods": [status.as_json() for status in self.kubelet.statuses()],
            "control_plane": {
                "address": self.settings.control_plane,
                "status": "Running" if self.processes["controlplane"].running() else "Stopped",
            },
        }

    def kill(self, pod_name: str) -> dict[str, Any]:
        """SIGKILL the pod's app; the kubelet restarts the pod."""
        assert self.kubelet is not None
        try:
            pid = self.kubelet.worker(pod_name).kill()
        except LookupError as error:
            raise ControlError(str(error)) from error
        return {"pod": pod_name, "pid": pid, "signal": "SIGKILL"}

    def stop_control_plane(self) -> Mapping[str, str]:
        """istiod gone: the data plane keeps its last configuration; a pod restarted meanwhile
        gets none, and is not Ready, until `start_control_plane`."""
        with self._control_plane_lock:
            process = self.processes["controlplane"]
            if not process.running():
                raise ControlError("the control plane is already stopped")
            self.control_plane_stopped = True
            process.stop(timeout=5.0)
        return {"control_plane": "Stopped"}

    def start_control_plane(self, timeout: float = 60.0) -> Mapping[str, str]:
        with self._control_plane_lock:
            if self.processes["controlplane"].running():
                raise ControlError("the control plane is already running")
            try:
                self._start_control_plane().wait_for_line("READY", timeout)
            except RuntimeError as error:
                raise ControlError(str(error).splitlines()[0]) from error
            self.control_plane_stopped = False
        return {"control_plane": "Running"}

    def stopped_unexpectedly(self) -> list[str]:
        """Processes that died and that nothing restarts: the pods' have the kubelet, the
        control plane may be stopped on purpose."""
        pod_processes = {name for pod in self.pods for name in self._pod_process_names(pod)}
        with self._control_plane_lock:  # not while it is being stopped or started
            return [
                process.name
                for process in list(self.processes.values())
                if process.name not in pod_processes
                and not process.running()
                and not (process.name == "controlplane" and self.control_plane_stopped)
            ]

    @staticmethod
    def _pod_process_names(pod: Pod) -> list[str]:
        return [pod.app_process_name, *map(pod.sidecar_process_name, range(len(pod.sidecar_addresses)))]

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

    def _start_sidecars(self, pod: Pod) -> list[ManagedProcess]:
        sidecars = []
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
            sidecars.append(self._spawn(pod.sidecar_process_name(index), Role.SIDECAR, arguments, bootstrap))
        return sidecars

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
        return self._launch(process, role)

    def _launch(self, process: P, role: Role) -> P:
        """Track and start it, on the spawner thread: a child's parent-death signal follows the
        thread that started it (shopmesh.launch.processes), and the kubelet's and the control
        socket's threads come and go."""
        if self._spawner is None:
            self._spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mesh-spawner")
        self._track(process, role)
        self._spawner.submit(process.start).result()
        return process

    def _track(self, process: P, role: Role) -> P:
        self.processes[process.name] = process
        self.roles[process.name] = role
        return process

    # -- stop --------------------------------------------------------------------------------
    def stop(self) -> None:
        """Every process by role (see Role): each SIGTERM, SIGKILL if it lingers."""
        if self.control is not None:
            self.control.stop()
            self.control = None
        if self.kubelet is not None:  # first: nothing may restart what is being stopped
            self.kubelet.stop()
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
        if self._spawner is not None:
            self._spawner.shutdown()
            self._spawner = None
        self.databases.close()  # after every process that used them
