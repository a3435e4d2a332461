"""The local kubelet: keeps each pod running, probes it, and reports which pods are Ready.

One worker thread per pod, as the kubelet runs a pod worker per pod
(pkg/kubelet/pod_workers.go). A local pod is its app process (the container) and its sidecar
processes (istio-proxy's part). The worker

- notices when one of them has exited (the kubelet's PLEG relists every second; we look every
  TICK_SECONDS), stops the others and restarts the pod on CrashLoopBackOff's schedule
  (shopmesh.localmesh.backoff), counting restarts;
- runs the app container's startupProbe, readinessProbe and livenessProbe from its Deployment
  (shopmesh.localmesh.probes) and kills the pod when startup or liveness fails;
- judges the sidecar ready once it listens on the pod's address, which it does only after its
  Listener came from the control plane (istio-proxy's readiness, /healthz/ready, likewise
  waits for Envoy's configuration). A pod restarted while the control plane is down therefore
  stays not Ready until it is back.

A pod is Ready when all its containers are (the PodReady condition). Every change is written to
the pod-status file (MeshState.pod_status_file), which the control plane reads as the endpoints
controller reads pods: only Ready pods are endpoints in EDS.

Kubernetes restarts only the container that exited, and a pod's Envoy keeps its configuration.
Here the sidecar restarts with the app: the app is itself a proxyless xDS client whose
configuration, like a replacement pod's, comes from the control plane, and the sidecar's
listening is how the kubelet can see that the pod got it (docs/local-mesh.md, "Supervision").
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

from shopmesh.launch.processes import ManagedProcess
from shopmesh.localmesh.backoff import BackOffPolicy, CrashLoopBackOff
from shopmesh.localmesh.pods import Pod
from shopmesh.localmesh.probes import Kind, ProbeSpec, ProbeWorker, check

log = logging.getLogger("shopmesh.localmesh.kubelet")

TICK_SECONDS = 0.1
#: How long a killed pod's app may take to stop after SIGTERM before SIGKILL. The manifests'
#: terminationGracePeriodSeconds is for a draining service; locally the app drains 0 s and
#: stops within a second (shopmesh.localmesh.pods.APP_SETTINGS).
KILL_GRACE_SECONDS = 2.0
#: The sidecar's readiness, checked like istio-proxy's startup probe (/healthz/ready every second).
SIDECAR_READINESS = ProbeSpec(Kind.READINESS, "tcpSocket", period=1.0, failure_threshold=3)
#: 128 + signal number: how a container killed by a signal reports its exit code.
SIGNAL_EXIT_BASE = 128


@dataclass
class PodProcesses:
    app: ManagedProcess
    sidecars: list[ManagedProcess]

    def all(self) -> list[ManagedProcess]:
        return [self.app, *self.sidecars]


@dataclass
class Termination:
    """A container's last state: `Error` (non-zero exit, or killed), `Completed` (exit 0)."""

    reason: str
    exit_code: int
    message: str
    finished_at: float = field(repr=False)  # monotonic


@dataclass(frozen=True)
class PodStatus:
    """One row of `shopmesh mesh ps`, the fields `kubectl get pods` shows and a few more."""

    name: str
    ready: bool
    ready_containers: int
    containers: int
    status: str  # Running, CrashLoopBackOff, Error, Completed, ContainerCreating
    restarts: int
    age_seconds: float
    last_restart_seconds_ago: float | None
    ready_since: float | None  # wall-clock time (epoch seconds) it last became Ready
    back_off_seconds: float | None  # in CrashLoopBackOff: how long until the next start
    last_state: dict[str, object] | None  # the last termination: reason, exit_code, message
    app_pid: int | None

    def as_json(self) -> dict[str, object]:
        return asdict(self)


StartPod = Callable[[Pod], PodProcesses]


class PodWorker:
    """Supervises one pod: its processes, probes, restarts and readiness."""

    def __init__(
        self,
        pod: Pod,
        probes: Mapping[Kind, ProbeSpec],
        start: StartPod,
        policy: BackOffPolicy,
        changed: Callable[[], None],
    ) -> None:
        self.pod = pod
        self.probes = dict(probes)
        self._start = start
        self._changed = changed
        self.back_off = CrashLoopBackOff(policy)
        self.lock = threading.Lock()
        self.created = time.monotonic()
        self.processes: PodProcesses | None = None
        self.restarts = 0
        self.last_restart: float | None = None
        self.last_wait: float | None = None  # how long the last restart waited after the exit
        self.termination: Termination | None = None  # the last one; exited if no processes
        self.ready = False
        self.ready_since: float | None = None
        self.suspended = False
        self._workers: dict[Kind, ProbeWorker] = {}
        self._sidecar: ProbeWorker | None = None
        self._started = False  # the startupProbe succeeded (or there is none)
        self._app_ready = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"kubelet-{pod.name}", daemon=True)

    # -- lifecycle ---------------------------------------------------------------------------
    def adopt(self, processes: PodProcesses) -> None:
        """Supervise a pod whose processes were just started, and start the worker."""
        self._running(processes, time.monotonic())
        self._thread.start()

    def signal_stop(self) -> None:
        self._stop.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)

    def _running(self, processes: PodProcesses, now: float) -> None:
        with self.lock:  # the last termination stays: kubectl's "Last State"
            self.processes = processes
            self._workers = {kind: ProbeWorker(spec, now) for kind, spec in self.probes.items()}
            self._sidecar = ProbeWorker(SIDECAR_READINESS, now)
            self._started = Kind.STARTUP not in self._workers
            self._app_ready = Kind.READINESS not in self._workers
        self._set_ready()

    def _run(self) -> None:
        while not self._stop.wait(TICK_SECONDS):
            if self.suspended:
                continue
            try:
                self._sync(time.monotonic())
            except Exception:  # the worker must outlive any one failure, and say what it was
                log.exception("%s: pod sync failed", self.pod.name)

    def _sync(self, now: float) -> None:
        """One pass of the pod worker (the kubelet's syncPod)."""
        if self.processes is not None:
            exited = [p for p in self.processes.all() if not p.running()]
            if exited:
                self._terminate(exited[0], now)
            else:
                self._probe(now)
        elif self.termination is not None and not self.back_off.in_back_off(  # exited
            self.termination.finished_at, now
        ):
            self._restart(now)

    # -- exits and restarts ------------------------------------------------------------------
    def _terminate(self, exited: ManagedProcess, now: float, reason: str = "") -> None:
        """The pod's processes stopped, all of them, and its last state recorded."""
        processes = self.processes
        assert processes is not None
        for process in processes.all():
            process.stop(timeout=KILL_GRACE_SECONDS)
        code = exited.returncode()
        exit_code = SIGNAL_EXIT_BASE - code if code is not None and code < 0 else (code or 0)
        message = reason or f"{exited.name} exited with code {exit_code}"
        with self.lock:
            self.processes = None
            self.termination = Termination(
                "Completed" if exit_code == 0 and not reason else "Error", exit_code, message, now
            )
        wait = self.back_off.restart_at(now) - now
        log.info("%s: %s; restarting %s", self.pod.name, message, f"in {wait:g} s" if wait else "now")
        self._set_ready()

    def _restart(self, now: float) -> None:
        termination = self.termination
        assert termination is not None
        self.back_off.restarted(termination.finished_at, now)
        try:
            processes = self._start(self.pod)
        except OSError as error:  # could not even spawn: an exit like any other, backed off
            with self.lock:
                self.termination = Termination("Error", 128, f"start failed: {error}", now)
            log.error("%s: start failed: %s", self.pod.name, error)
            return
        with self.lock:
            self.restarts += 1
            self.last_restart = now
            self.last_wait = now - termination.finished_at
        self._running(processes, now)

    def suspend(self) -> None:
        """Stop looking after the pod, as when its node's kubelet is down: nothing probes or
        restarts it, and its last reported readiness stands (until `resume`)."""
        self.suspended = True

    def resume(self) -> None:
        self.suspended = False

    def kill(self) -> int:
        """SIGKILL the pod's app (`shopmesh mesh kill`); its pid. The worker sees it exit."""
        with self.lock:
            processes = self.processes
            pid = processes.app.pid if processes is not None and processes.app.running() else None
        if processes is None or pid is None:
            raise LookupError(f"{self.pod.name} has no running app ({self.status().status})")
        processes.app.signal(9)
        return pid

    # -- probes ------------------------------------------------------------------------------
    def _probe(self, now: float) -> None:
        processes = self.processes
        assert processes is not None
        startup = self._workers.get(Kind.STARTUP)
        if not self._started and startup is not None and startup.due(now):
            result = startup.record(check(startup.spec, self.pod.app_address), time.monotonic())
            if result is False:
                self._terminate(processes.app, now, "startup probe failed")
                return
            if result:
                self._started = True
                readiness = self._workers.get(Kind.READINESS)
                if readiness is not None:
                    readiness.trigger(now)
        if self._started:
            liveness = self._workers.get(Kind.LIVENESS)
            if (
                liveness is not None
                and liveness.due(now)
                and liveness.record(check(liveness.spec, self.pod.app_address), time.monotonic()) is False
            ):
                self._terminate(processes.app, now, "liveness probe failed")
                return
            readiness = self._workers.get(Kind.READINESS)
            if readiness is not None and readiness.due(now):
                self._app_ready = bool(
                    readiness.record(check(readiness.spec, self.pod.app_address), time.monotonic())
                )
        sidecar = self._sidecar
        if sidecar is not None and sidecar.due(now):
            listening = all(check(sidecar.spec, address) for address in self.pod.sidecar_addresses)
            sidecar.record(listening, time.monotonic())
        self._set_ready()

    def _containers_ready(self) -> tuple[int, int]:
        if self.processes is None:
            return 0, 1 + len(self.pod.sidecar_addresses)
        app = int(self._started and self._app_ready)
        sidecars = len(self.pod.sidecar_addresses) if self._sidecar and self._sidecar.result else 0
        return app + sidecars, 1 + len(self.pod.sidecar_addresses)

    def _set_ready(self) -> None:
        with self.lock:
            ready_containers, containers = self._containers_ready()
            ready = ready_containers == containers
            if ready == self.ready:
                return
            self.ready = ready
            self.ready_since = time.time() if ready else None
        log.info(
            "%s: %s (%d/%d containers ready)",
            self.pod.name,
            "Ready" if ready else "not Ready",
            ready_containers,
            containers,
        )
        self._changed()

    # -- status ------------------------------------------------------------------------------
    def status(self) -> PodStatus:
        with self.lock:
            now = time.monotonic()
            ready_containers, containers = self._containers_ready()
            termination = self.termination
            back_off = None
            if self.processes is not None:
                status = "Running"
            elif termination is not None and self.back_off.in_back_off(termination.finished_at, now):
                status = "CrashLoopBackOff"
                back_off = self.back_off.restart_at(termination.finished_at) - now
            elif termination is not None:
                status = termination.reason  # exited, about to be started again
            else:
                status = "ContainerCreating"
            app = self.processes.app if self.processes is not None else None
            return PodStatus(
                name=self.pod.name,
                ready=self.ready,
                ready_containers=ready_containers,
                containers=containers,
                status=status,
                restarts=self.restarts,
                age_seconds=now - self.created,
                last_restart_seconds_ago=None if self.last_restart is None else now - self.last_restart,
                ready_since=self.ready_since,
                back_off_seconds=back_off,
                last_state=None
                if termination is None
                else {
                    "reason": termination.reason,
                    "exit_code": termination.exit_code,
                    "message": termination.message,
                },
                app_pid=app.pid if app is not None else None,
            )


class Kubelet:
    """Every pod's worker, and the pod-status file the control plane reads."""

    def __init__(
        self,
        pods: Sequence[Pod],
        probes: Mapping[str, Mapping[Kind, ProbeSpec]],
        start: StartPod,
        status_file: Path,
        policy: BackOffPolicy,
    ) -> None:
        self.status_file = status_file
        self._write_lock = threading.Lock()
        self.workers = {
            pod.name: PodWorker(pod, probes.get(pod.name, {}), start, policy, self._publish) for pod in pods
        }
        self._publish()  # every pod not Ready yet: no endpoints until probes say so

    def worker(self, name: str) -> PodWorker:
        """The pod's worker; LookupError naming the known pods for another name."""
        if name not in self.workers:
            known = ", ".join(sorted(self.workers))
            raise LookupError(f"no pod named {name!r} (pods: {known})")
        return self.workers[name]

    def adopt(self, pod: Pod, processes: PodProcesses) -> None:
        self.workers[pod.name].adopt(processes)

    def statuses(self) -> list[PodStatus]:
        return [worker.status() for worker in self.workers.values()]

    def wait_ready(self, timeout: float) -> None:
        """Until every pod is Ready; RuntimeError naming those that are not after `timeout`."""
        deadline = time.monotonic() + timeout
        while True:
            waiting = [s for s in self.statuses() if not s.ready]
            if not waiting:
                return
            if time.monotonic() > deadline:
                described = ", ".join(
                    f"{s.name} ({s.status}, {s.ready_containers}/{s.containers})" for s in waiting
                )
                raise RuntimeError(f"pods not Ready within {timeout}s: {described}")
            time.sleep(TICK_SECONDS)

    def stop(self) -> None:
        for worker in self.workers.values():
            worker.signal_stop()
        for worker in self.workers.values():
            worker.stop()

    def _publish(self) -> None:
        """Write every pod's readiness, atomically: the control plane may read at any time."""
        with self._write_lock:
            ready = {name: worker.ready for name, worker in self.workers.items()}
            temporary = self.status_file.with_suffix(".tmp")
            temporary.write_text(json.dumps({"ready": ready}, sort_keys=True))
            os.replace(temporary, self.status_file)
