"""A pod's probes, as the kubelet runs them: read from its Deployment, judged with its thresholds.

`pod_probes(objects, instance)` reads the app container's startupProbe, readinessProbe and
livenessProbe from the rendered Deployment (Kubernetes' defaults for what a probe leaves out:
core/v1 `Probe`, timeoutSeconds 1, periodSeconds 10, successThreshold 1, failureThreshold 3,
initialDelaySeconds 0). A `ProbeWorker` is one probe of one container's run, with the kubelet
prober's rules (pkg/kubelet/prober/worker.go `doProbe`):

- nothing is probed before `initialDelaySeconds` have passed since the container started;
- readiness starts as failure, liveness as success, startup as unknown (worker.go
  `newWorker`'s `initialValue`); readiness and liveness are not probed before startup succeeded;
- a result changes what is reported only after `successThreshold` (resp. `failureThreshold`)
  equal results in a row;
- a liveness or startup failure at threshold kills the container; the kubelet then restarts it
  (on CrashLoopBackOff's schedule, shopmesh.localmesh.backoff).

Probes run where the injected Istio agent runs the rewritten ones (istio
pkg/kube/inject/app_probe.go): on the pod, straight at the app, not through the sidecar, so no
AuthorizationPolicy has to admit the kubelet. The local app listens on its own loopback port,
so a probe's `port` (the container port) is taken to mean the app's address.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from grpc_health.v1 import health_pb2

from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.readiness import health_status
from shopmesh.localmesh.placement import Instance
from shopmesh.localmesh.translate import TranslationError
from shopmesh.manifests.model import MeshObjects


class Kind(enum.Enum):
    STARTUP = "startup"
    READINESS = "readiness"
    LIVENESS = "liveness"


@dataclass(frozen=True)
class ProbeSpec:
    """One probe of a container spec, with Kubernetes' defaults filled in."""

    kind: Kind
    action: str  # "grpc" or "tcpSocket": what the local kubelet can run
    service: str = ""  # grpc.service: the health service name asked for ("" = the server)
    initial_delay: float = 0.0
    period: float = 10.0
    timeout: float = 1.0
    success_threshold: int = 1
    failure_threshold: int = 3

    @classmethod
    def parse(cls, kind: Kind, raw: Mapping[str, Any], where: str) -> ProbeSpec:
        actions = [key for key in ("grpc", "tcpSocket", "httpGet", "exec") if key in raw]
        if len(actions) != 1:
            raise TranslationError(f"{where}: {kind.value}Probe needs exactly one action, got {actions}")
        action = actions[0]
        if action not in ("grpc", "tcpSocket"):
            # An httpGet or exec probe needs the container's filesystem or an HTTP port this
            # mesh does not run; refused by name rather than silently passed.
            raise TranslationError(f"{where}: {kind.value}Probe {action} is not run by the local mesh")
        spec = cls(
            kind=kind,
            action=action,
            service=str((raw.get("grpc") or {}).get("service") or ""),
            initial_delay=float(raw.get("initialDelaySeconds", 0)),
            period=float(raw.get("periodSeconds", 10)),
            timeout=float(raw.get("timeoutSeconds", 1)),
            success_threshold=int(raw.get("successThreshold", 1)),
            failure_threshold=int(raw.get("failureThreshold", 3)),
        )
        if spec.period < 1 or spec.timeout < 1 or spec.failure_threshold < 1 or spec.success_threshold < 1:
            raise TranslationError(f"{where}: {kind.value}Probe values below Kubernetes' minimum of 1")
        if kind is not Kind.READINESS and spec.success_threshold != 1:
            # core/v1 validation: "must be 1" for liveness and startup probes
            raise TranslationError(f"{where}: {kind.value}Probe successThreshold must be 1")
        return spec


def pod_probes(objects: MeshObjects, instance: Instance) -> dict[Kind, ProbeSpec]:
    """The probes of the instance's app container: the one serving its gRPC ports (else the first)."""
    deployment = next(
        d
        for d in objects.of_kind("Deployment")
        if d.name == instance.deployment and d.namespace == instance.namespace
    )
    containers = deployment["spec"]["template"]["spec"].get("containers") or []
    container = next(
        (
            c
            for c in containers
            if any(int(p.get("containerPort", 0)) in instance.ports for p in c.get("ports") or [])
        ),
        containers[0] if containers else {},
    )
    where = f"Deployment {instance.namespace}/{instance.deployment} container {container.get('name', '?')}"
    return {
        kind: ProbeSpec.parse(kind, container[f"{kind.value}Probe"], where)
        for kind in Kind
        if container.get(f"{kind.value}Probe")
    }


def check(spec: ProbeSpec, address: str) -> bool:
    """One probe of the app at `address`: a gRPC probe succeeds on SERVING only (kubelet's
    prober/grpc: any other status, an error or the timeout is a failure); a tcpSocket probe
    when a connection is accepted. A fresh connection each time, as the kubelet dials."""
    if spec.action == "tcpSocket":
        return accepts_connections(address, timeout=spec.timeout)
    status = health_status(address, spec.service, spec.timeout)
    return status is not None and status == int(health_pb2.HealthCheckResponse.SERVING)


class ProbeWorker:
    """One probe over one run of a container: when it is due, and what it reports."""

    def __init__(self, spec: ProbeSpec, started_at: float) -> None:
        self.spec = spec
        self.started_at = started_at
        # worker.go newWorker: readiness starts failed, liveness succeeded, startup unknown
        self.result: bool | None = {Kind.READINESS: False, Kind.LIVENESS: True, Kind.STARTUP: None}[spec.kind]
        self._last: bool | None = None
        self._run = 0
        self.next_at = started_at  # the first probe runs at once, then every period

    def due(self, now: float) -> bool:
        return now >= self.next_at and now - self.started_at >= self.spec.initial_delay

    def record(self, outcome: bool, now: float) -> bool | None:
        """Count one probe's outcome; returns the reported result (changed only at threshold)."""
        self.next_at = now + self.spec.period
        if outcome == self._last:
            self._run += 1
        else:
            self._last, self._run = outcome, 1
        threshold = self.spec.success_threshold if outcome else self.spec.failure_threshold
        if self._run >= threshold:
            self.result = outcome
        return self.result

    def trigger(self, now: float) -> None:
        """Probe at the next tick: what the kubelet does to readiness once startup succeeded
        (prober_manager.go UpdatePodStatus, the worker's manualTriggerCh)."""
        self.next_at = now
