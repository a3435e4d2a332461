"""Python probes for the local experiments (chaos/local/): what the local mesh's pods do, asked
of the running mesh through its control socket (what `shopmesh mesh ps` asks), and read from
its state directory.

A pod is *Ready* as `kubectl get pods` says it (its readinessProbe passes, so its endpoint is
in EDS). Each probe bounds its own time (Chaos Toolkit gives Python probes none) and raises
`ProbeFailed` saying what it saw when what it asserts does not hold.
"""

from __future__ import annotations

import datetime
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509

from shopmesh.chaos.probes import ProbeFailed
from shopmesh.localmesh.ca import CERT_CHAIN_FILE
from shopmesh.localmesh.control import CLIENT_TIMEOUT_SECONDS, ControlError, request
from shopmesh.localmesh.state import MeshState

POLL_SECONDS = 0.5
#: How long `ps` may take: the supervisor answers from memory, so a slow answer is a sick mesh.
PS_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class PodStatus:
    name: str
    ready: bool
    restarts: int
    ready_since: float | None  # when it last became Ready (epoch seconds)


def _command(mesh_state: str, command: str, timeout: float = PS_TIMEOUT_SECONDS) -> Any:
    """One command to the mesh running on `mesh_state`, through its control socket (a probe
    polls `ps` every half second: a `shopmesh` process each time would cost a CPU core's
    second); its result. A refusal, or no mesh there, fails the probe."""
    try:
        return request(MeshState(Path(mesh_state)).control_socket, command, timeout=timeout)
    except ControlError as error:
        raise ProbeFailed(f"shopmesh mesh {command}: {error}") from error


def pod_statuses(mesh_state: str) -> dict[str, PodStatus]:
    """Every pod of the mesh by name, as `shopmesh mesh ps --json` reports it now."""
    return {
        str(row["name"]): PodStatus(
            str(row["name"]),
            row["ready"] is True,
            int(row["restarts"]),
            float(row["ready_since"]) if row["ready_since"] is not None else None,
        )
        for row in _command(mesh_state, "ps")["pods"]
    }


def ready_within(pods: list[str], seconds: float, mesh_state: str) -> dict[str, Any]:
    """Waits until every one of `pods` is Ready; how long that took and their restart counts.
    Raises when one is still not Ready after `seconds`."""
    started = time.monotonic()
    while True:
        statuses = pod_statuses(mesh_state)
        missing = [pod for pod in pods if pod not in statuses]
        if missing:
            raise ProbeFailed(f"no pod named {', '.join(missing)} in the mesh")
        waiting = [pod for pod in pods if not statuses[pod].ready]
        elapsed = time.monotonic() - started
        if not waiting:
            return {"seconds": round(elapsed, 1), "restarts": {pod: statuses[pod].restarts for pod in pods}}
        if elapsed > float(seconds):
            raise ProbeFailed(f"{', '.join(waiting)} not Ready after {float(seconds):g} s")
        time.sleep(POLL_SECONDS)


def ready_again(pod: str, seconds: float, mesh_state: str, noticed_within: float = 10.0) -> dict[str, Any]:
    """Right after `pod` was killed: waits until the mesh has noticed (the pod is not Ready, or
    its restart count went up), then until it is Ready again; the seconds since this probe
    began (the kill's MTTR, within the time `mesh ps` takes). Raises after `seconds`."""
    started = time.monotonic()
    first = pod_statuses(mesh_state).get(pod)
    if first is None:
        raise ProbeFailed(f"no pod named {pod} in the mesh")
    noticed = not first.ready
    while True:
        status = pod_statuses(mesh_state)[pod]
        elapsed = time.monotonic() - started
        noticed = noticed or not status.ready or status.restarts > first.restarts
        if noticed and status.ready:
            return {"pod": pod, "seconds": round(elapsed, 1), "restarts": status.restarts}
        if not noticed and elapsed > float(noticed_within):
            raise ProbeFailed(
                f"{pod} stayed Ready, never restarted, for {float(noticed_within):g} s: not killed?"
            )
        if elapsed > float(seconds):
            raise ProbeFailed(f"{pod} not Ready again after {float(seconds):g} s")
        time.sleep(POLL_SECONDS)


def not_ready_for(pod: str, seconds: float, mesh_state: str, noticed_within: float = 10.0) -> dict[str, Any]:
    """Right after `pod` was killed: waits until the mesh has noticed (the pod not Ready, or its
    restart count up), then asserts that it stays not Ready until `seconds` have passed since
    this probe began (it waits for something: its database, the control plane); raises the
    moment it is Ready."""
    started = time.monotonic()
    first = pod_statuses(mesh_state).get(pod)
    if first is None:
        raise ProbeFailed(f"no pod named {pod} in the mesh")
    noticed = not first.ready
    while time.monotonic() - started < float(seconds):
        status = pod_statuses(mesh_state)[pod]
        elapsed = time.monotonic() - started
        if not noticed:
            noticed = not status.ready or status.restarts > first.restarts
            if not noticed and elapsed > float(noticed_within):
                raise ProbeFailed(f"{pod} stayed Ready for {float(noticed_within):g} s")
        elif status.ready:
            raise ProbeFailed(f"{pod} was Ready again after {elapsed:.1f} s")
        time.sleep(POLL_SECONDS)
    if not noticed:
        raise ProbeFailed(f"{pod} stayed Ready")
    return {"pod": pod, "not_ready_seconds": float(seconds)}


def certificates_renewed(within_seconds: float, mesh_state: str) -> dict[str, str]:
    """Asserts that every pod holds a certificate issued in the last `within_seconds`; each
    pod's certificate serial number."""
    pods = MeshState(Path(mesh_state)).identities_directory / "pods"
    now = datetime.datetime.now(datetime.UTC)
    serials, stale = {}, []
    for chain in sorted(pods.glob(f"*/*/{CERT_CHAIN_FILE}")):
        certificate = x509.load_pem_x509_certificate(chain.read_bytes())
        pod = chain.parent.name
        serials[pod] = format(certificate.serial_number, "x")
        # The CA backdates each certificate 30 s (shopmesh.localmesh.ca).
        issued = certificate.not_valid_before_utc + datetime.timedelta(seconds=30)
        if (now - issued).total_seconds() > float(within_seconds):
            stale.append(f"{pod} (issued {issued:%H:%M:%S})")
    if not serials:
        raise ProbeFailed(f"no pod certificate under {pods}")
    if stale:
        raise ProbeFailed(f"not renewed in the last {float(within_seconds):g} s: {', '.join(stale)}")
    return serials


def control_plane_running(mesh_state: str) -> str:
    """Starts the mesh's control plane unless it runs: a rollback that may follow a method that
    started it already, or one that stopped before it could."""
    status = _command(mesh_state, "ps")["control_plane"]["status"]
    if status == "Running":
        return "it was running"
    _command(mesh_state, "start-control-plane", timeout=CLIENT_TIMEOUT_SECONDS)
    return "started"
