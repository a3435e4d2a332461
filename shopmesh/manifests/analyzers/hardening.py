"""What the design promises of every gRPC workload (SHM03xx): the Online Boutique hardening,
plus what it lacks (app/version labels, a grace period longer than the drain, appProtocol).
Only Deployments of the three services are held to all of it; every workload to the
security context.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from services.runtime.health import LIVENESS
from services.runtime.registry import declarations
from shopmesh.manifests.authz import served_contract
from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.model import Workload

PROMETHEUS_ANNOTATIONS = ("prometheus.io/scrape", "prometheus.io/port", "prometheus.io/path")
#: The services' defaults (services/runtime/config.py: SHOPMESH_DRAIN_SECONDS 5, SHOPMESH_GRACE_SECONDS 10).
DEFAULT_DRAIN_SECONDS, DEFAULT_GRACE_SECONDS = 5, 10
#: The health service name each probe must ask for: readiness follows the database, liveness only
#: that the process answers (services/runtime/health.py says why).
_PROBED_SERVICES = {"startupProbe": "", "readinessProbe": "", "livenessProbe": LIVENESS}
_MEANING = {"": "the server as a whole", LIVENESS: "alive whatever its database does"}


def _hardening_gaps(workload: Workload, container: Mapping[str, Any]) -> list[str]:
    pod = workload.pod_spec.get("securityContext") or {}
    own = container.get("securityContext") or {}
    gaps = []
    if own.get("runAsNonRoot", pod.get("runAsNonRoot")) is not True:
        gaps.append("runAsNonRoot: true")
    if own.get("readOnlyRootFilesystem") is not True:
        gaps.append("readOnlyRootFilesystem: true")
    if own.get("allowPrivilegeEscalation") is not False:
        gaps.append("allowPrivilegeEscalation: false")
    if "ALL" not in ((own.get("capabilities") or {}).get("drop") or []):
        gaps.append("capabilities.drop: [ALL]")
    seccomp = own.get("seccompProfile") or pod.get("seccompProfile") or {}
    if seccomp.get("type") != "RuntimeDefault":
        gaps.append("seccompProfile RuntimeDefault")
    return gaps


def security_contexts(inventory: Inventory) -> None:
    """SHM0301: every container, init containers included."""
    for workload in inventory.workloads:
        for container in workload.containers():
            gaps = _hardening_gaps(workload, container)
            if gaps:
                inventory.report(
                    "SHM0301", workload.owner, f"container {container.get('name')} lacks {', '.join(gaps)}"
                )


def _grpc_servers(inventory: Inventory) -> list[Workload]:
    return [w for w in inventory.workloads if w.owner.kind == "Deployment" and w.app in declarations()]


def _env(container: Mapping[str, Any], name: str) -> str | None:
    for variable in container.get("env") or []:
        if variable.get("name") == name:
            return str(variable.get("value"))
    return None


def _grpc_port(container: Mapping[str, Any]) -> int | None:
    for port in container.get("ports") or []:
        if port.get("name") == "grpc":
            return int(port["containerPort"])
    return None


def app_version_labels(inventory: Inventory) -> None:
    """SHM0304: every pod carries `app` and `version` (Kiali's graph, Istio's canonical
    service and revision, and the DestinationRule subsets need them)."""
    for workload in inventory.workloads:
        missing = [label for label in ("app", "version") if label not in workload.labels]
        if missing:
            inventory.report("SHM0304", workload.owner, f"pod template lacks labels {missing}")


def grpc_servers(inventory: Inventory) -> None:
    """SHM0302 probes, SHM0303 resources, SHM0305 grace period, SHM0306
    service account, SHM0308 scrape annotations: what each gRPC server Deployment needs."""
    for workload in _grpc_servers(inventory):
        owner = workload.owner
        if (
            workload.service_account != workload.app
            or workload.pod_spec.get("automountServiceAccountToken") is not False
        ):
            inventory.report(
                "SHM0306",
                owner,
                f"pods must run as ServiceAccount {workload.app!r} without an automounted token "
                f"(serviceAccountName {workload.service_account!r})",
            )
        missing_annotations = [a for a in PROMETHEUS_ANNOTATIONS if a not in workload.annotations]
        if missing_annotations:
            inventory.report("SHM0308", owner, f"pod template lacks {missing_annotations}")
        for container in workload.containers():
            requests = (container.get("resources") or {}).get("requests") or {}
            limits = (container.get("resources") or {}).get("limits") or {}
            if not {"cpu", "memory"} <= requests.keys() or "memory" not in limits:
                inventory.report(
                    "SHM0303",
                    owner,
                    f"container {container.get('name')} needs cpu/memory requests and a memory limit",
                )
        for container in workload.containers(init=False):
            port = _grpc_port(container)
            for probe, service in _PROBED_SERVICES.items():
                grpc = (container.get(probe) or {}).get("grpc") or {}
                if port is None or grpc.get("port") != port or grpc.get("service", "") != service:
                    inventory.report(
                        "SHM0302",
                        owner,
                        f"container {container.get('name')} needs a native gRPC {probe} on its grpc port "
                        f'(service "{service}", {_MEANING[service]})',
                    )
            drain = int(_env(container, "SHOPMESH_DRAIN_SECONDS") or DEFAULT_DRAIN_SECONDS)
            grace = int(_env(container, "SHOPMESH_GRACE_SECONDS") or DEFAULT_GRACE_SECONDS)
            period = int(workload.pod_spec.get("terminationGracePeriodSeconds", 30))
            if period <= drain + grace:
                inventory.report(
                    "SHM0305",
                    owner,
                    f"terminationGracePeriodSeconds {period} must exceed drain {drain} s + grace {grace} s",
                )


def grpc_service_ports(inventory: Inventory) -> None:
    """SHM0307: a Service in front of a gRPC server declares `appProtocol: grpc` and a
    `grpc…` port name, so Istio (and Kiali) treat it as gRPC without sniffing."""
    for service in inventory.of_kind("Service"):
        if served_contract(inventory, service) is None:
            continue
        for port in service.spec.get("ports") or []:
            if port.get("appProtocol") != "grpc" or not str(port.get("name", "")).startswith("grpc"):
                inventory.report(
                    "SHM0307", service, f"port {port.get('port')} needs a name grpc-… and appProtocol: grpc"
                )


def committed_secrets(inventory: Inventory) -> None:
    """SHM0309: a Secret with values in the manifests is a committed password; the
    credentials come from scripts/gen-db-secret instead."""
    for secret in inventory.of_kind("Secret"):
        if secret.doc.get("data") or secret.doc.get("stringData"):
            inventory.report("SHM0309", secret, "Secret values are committed; generate them at deploy time")


ANALYZERS = (security_contexts, app_version_labels, grpc_servers, grpc_service_ports, committed_secrets)
