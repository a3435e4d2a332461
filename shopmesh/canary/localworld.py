"""The world Flagger's scheduler acts on, played by the running local mesh (`shopmesh canary`).

What Flagger does in a cluster, and what happens here:
- SetRoutes writes the VirtualService and istiod pushes it: here the Canary's routes file
  (shopmesh.localmesh.flagger) is rewritten, the control plane watches it and pushes it, and
  the rehearsal waits until the control plane's log says it did. GetRoutes: the weights last
  written.
- The metric queries go to the MetricTemplate's provider: here the same queries go to the
  local Prometheus, whatever address the template names (a cluster's).
- Readiness of the primary and canary Deployments: here, each of their pods' sidecars
  accepts connections.
- Webhooks are POSTed (webhook.go CallWebhook: an answer ≤ 202 is success, else its body is
  the error): the same here, except a URL whose host does not resolve (a cluster's name, such
  as the load tester's), which is not posted, counted as accepted, and said so.
- Scaling the canary to zero and up, copying its pod template to the primary: nothing here.
  The local mesh runs both Deployments throughout, with the same code; what weight 0 means
  (no traffic through the routes) holds.
"""

from __future__ import annotations

import hashlib
import json
import socket
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from shopmesh.canary.checks import QueryError, flagger_value
from shopmesh.canary.spec import Canary, Webhook, go_duration_seconds
from shopmesh.canary.status import Phase, Readiness
from shopmesh.launch.listeners import accepts_connections
from shopmesh.localmesh.flagger import NOT_APPLIED, PUSHED, routes_file, write_routes
from shopmesh.localmesh.placement import Placement
from shopmesh.localmesh.state import MeshState
from shopmesh.manifests.model import MeshObjects
from shopmesh.telemetry import query as prometheus

#: webhook.go: a hook without a timeout (or a shorter text than "1s") gets 10 s.
DEFAULT_WEBHOOK_SECONDS = 10.0
#: A webhook's answer is read up to this size (its body is the error text Flagger reports).
MAX_WEBHOOK_REPLY_BYTES = 64 * 1024


class RehearsalError(RuntimeError):
    """The rehearsal cannot go on: the mesh stopped pushing, a route file cannot be written."""


def revision(objects: MeshObjects, namespace: str, deployment: str) -> str:
    """canary/spec.go ComputeHash: a hash of the Deployment's pod template."""
    found = [r for r in objects.of_kind("Deployment") if r.namespace == namespace and r.name == deployment]
    template = found[0].spec.get("template") if found else None
    return hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class LocalMeshWorld:
    canary: Canary
    stack: MeshObjects  # the render as Flagger runs it (shopmesh.canary.objects.running)
    state: MeshState
    placement: Placement
    routes_path: Path
    prometheus: prometheus.PrometheusClient
    push_timeout: float = 15.0
    weights: tuple[int, int] = (100, 0)
    #: what Flagger would have done that the local mesh does not need to (said once each)
    notes: list[str] = field(default_factory=list)
    queries: list[str] = field(default_factory=list)  # every metric query run

    # -- the Deployments ---------------------------------------------------------------------

    def target_revision(self) -> str:
        return revision(self.stack, self.canary.namespace, self.canary.target_name)

    def make_primary(self) -> None:
        """The primary runs since the mesh started (the supervisor placed Flagger's objects)."""

    def _readiness(self, deployment: str) -> Readiness:
        pods = [
            i
            for i in self.placement.instances
            if i.namespace == self.canary.namespace and i.deployment == deployment
        ]
        ready = [i for i in pods if i.ports and all(accepts_connections(f"{i.address}:{p}") for p in i.ports)]
        if pods and len(ready) == len(pods):
            return Readiness()
        return Readiness(
            f"waiting for rollout to finish: {len(ready)} of {len(pods)} (readyThreshold 100%) "
            "updated replicas are available"
        )

    def primary_ready(self) -> Readiness:
        return self._readiness(self.canary.primary_workload)

    def canary_ready(self) -> Readiness:
        return self._readiness(self.canary.target_name)

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def scale_to_zero(self) -> None:
        self._note(
            f"{self.canary.target_ref} is not scaled to zero locally: its pods keep running, "
            "with no route to them"
        )

    def scale_from_zero(self) -> None:
        self._note(f"{self.canary.target_ref} runs since the mesh started: nothing to scale up")

    def promote(self) -> None:
        self._note(
            f"{self.canary.primary_workload} runs the same code as {self.canary.target_name} locally: "
            "nothing to copy"
        )

    # -- the routes --------------------------------------------------------------------------

    def routes(self) -> tuple[int, int]:
        return self.weights

    def set_routes(self, primary: int, canary: int) -> None:
        log = self.state.log_file("controlplane")
        before = _pushes(log, self.routes_path)
        write_routes(self.routes_path, self.canary, primary, canary)
        self.weights = (primary, canary)
        deadline = time.monotonic() + self.push_timeout
        while time.monotonic() < deadline:
            pushed, refused = _pushes(log, self.routes_path)
            if pushed > before[0]:
                return
            if refused > before[1]:
                raise RehearsalError(f"the control plane refused {self.routes_path}: see {log}")
            time.sleep(0.05)
        raise RehearsalError(
            f"the control plane did not push {self.routes_path} within {self.push_timeout:g} s "
            f"(is the local mesh still running? see {log})"
        )

    # -- webhooks ----------------------------------------------------------------------------

    def call_webhook(self, hook: Webhook, phase: Phase) -> str | None:
        """webhook.go CallWebhook: POST the payload; None when the answer is ≤ 202."""
        host = urllib.parse.urlsplit(hook.url).hostname or ""
        try:
            socket.getaddrinfo(host, None)
        except (socket.gaierror, UnicodeError):
            self._note(
                f"webhook {hook.name} ({hook.runs_as}) not posted: {host!r} is a cluster's name, it does not "
                "resolve here; counted as accepted"
            )
            return None
        payload = {
            "name": self.canary.name,
            "namespace": self.canary.namespace,
            "phase": phase.value,
            "checksum": self.target_revision(),
            "metadata": dict(hook.metadata),
        }
        timeout = go_duration_seconds(hook.timeout) if len(hook.timeout) >= 2 else None
        request = urllib.request.Request(
            hook.url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or DEFAULT_WEBHOOK_SECONDS) as reply:
                if reply.status <= 202:
                    return None
                return str(reply.read(MAX_WEBHOOK_REPLY_BYTES).decode(errors="replace"))
        except urllib.error.HTTPError as error:
            return str(error.read(MAX_WEBHOOK_REPLY_BYTES).decode(errors="replace")) or f"status {error.code}"
        except (urllib.error.URLError, OSError) as error:
            return f"error sending webhook: {getattr(error, 'reason', error)}"

    # -- metrics -----------------------------------------------------------------------------

    def query(self, address: str | None, promql: str) -> float:
        """The query against the local Prometheus (a template's address is a cluster's), read
        as providers/prometheus.go RunQuery reads the answer."""
        self.queries.append(promql)
        try:
            samples = self.prometheus.query(promql)
        except (prometheus.PrometheusUnavailable, prometheus.QueryError) as error:
            raise QueryError(str(error)) from error
        return flagger_value([sample.value for sample in samples])


def _pushes(log: Path, source: Path) -> tuple[int, int]:
    """(pushes of a change of `source`, refused changes) the control plane's log records."""
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return 0, 0
    pushed = sum(1 for line in text.splitlines() if PUSHED in line and str(source) in line)
    return pushed, text.count(NOT_APPLIED)


def _control_plane(state: MeshState) -> str | None:
    """The control plane's address, as the mesh's pods were told it (their xDS bootstraps)."""
    for path in sorted((state.root / "bootstrap").glob("*.json")):
        try:
            servers = json.loads(path.read_text())["xds_servers"]
            return str(servers[0]["server_uri"])
        except (OSError, ValueError, KeyError, IndexError, TypeError):
            continue
    return None


def connect(stack: MeshObjects, canary: Canary, state: MeshState, prometheus_url: str) -> LocalMeshWorld:
    """The world of a Canary on the local mesh running under `state`, with its Prometheus;
    RehearsalError, with one line saying what to do, when either is not running."""
    start = "start it with `shopmesh mesh up --overlay flagger`"
    path = routes_file(state, canary)
    control_plane = _control_plane(state)
    if not path.exists() or not state.placement_file.exists() or control_plane is None:
        raise RehearsalError(
            f"no local mesh with Canary {canary.namespace}/{canary.name} under {state.root}: {start}"
        )
    if not accepts_connections(control_plane):
        raise RehearsalError(
            f"the local mesh under {state.root} is not running (its control plane {control_plane} does not "
            f"answer): {start}"
        )
    client = prometheus.PrometheusClient(prometheus_url)
    if not client.ready():
        raise RehearsalError(
            f"no Prometheus answers at {prometheus_url}: the local mesh starts one unless --no-prometheus "
            "(--prometheus names another)"
        )
    return LocalMeshWorld(canary, stack, state, Placement.load(state.placement_file), path, client)
