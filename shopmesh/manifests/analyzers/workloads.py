"""Namespaces, Services, pods and the Istio objects that select pods.

Upstream: istio/istio pkg/config/analysis/analyzers/{injection,service,deployment,sidecar,
authz,telemetry}/.
"""

from __future__ import annotations

from collections import defaultdict

from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.model import UNSUPPORTED_PROTOCOL, Service, Workload, selects

#: Namespaces istioctl analyze never reports on (util.IsSystemNamespace).
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
#: The sidecar's own UID (deployment/pod.go UserID).
SIDECAR_UID = 1337
LOCALHOST_PREFIXES = ("127.", "localhost:", "[::1]:")


def namespace_injection(inventory: Inventory) -> None:
    """IST0102 for a namespace with neither `istio-injection` nor `istio.io/rev`
    (injection/injection.go)."""
    for namespace in inventory.of_kind("Namespace"):
        if namespace.name in SYSTEM_NAMESPACES | {"istio-system"}:
            continue
        if "istio-injection" not in namespace.labels and "istio.io/rev" not in namespace.labels:
            inventory.report(
                "IST0102",
                namespace,
                "The namespace is not enabled for Istio injection. Run 'kubectl label namespace "
                f"{namespace.name} istio-injection=enabled' to enable it, or 'kubectl label namespace "
                f"{namespace.name} istio-injection=disabled' to explicitly mark it as not needing injection.",
            )


def service_port_names(inventory: Inventory) -> None:
    """IST0118 for a Service port whose protocol Istio cannot tell (service/portname.go)."""
    for service in inventory.of_kind("Service"):
        if service.namespace in SYSTEM_NAMESPACES:
            continue
        for port in Service.of(service).ports:
            if port.istio_protocol == UNSUPPORTED_PROTOCOL:
                inventory.report(
                    "IST0118",
                    service,
                    f"Port name {port.name} (port: {port.port}, targetPort: "
                    f"{port.target_port}) doesn't follow the naming convention of Istio port.",
                )


def _run_as_users(workload: Workload) -> list[int]:
    users = [(workload.pod_spec.get("securityContext") or {}).get("runAsUser")]
    users += [(c.get("securityContext") or {}).get("runAsUser") for c in workload.containers(init=False)]
    return [u for u in users if u is not None]


def application_uid(inventory: Inventory) -> None:
    """IST0144 for a workload that runs as the sidecar's UID 1337 (deployment/pod.go)."""
    for workload in inventory.workloads:
        if SIDECAR_UID in _run_as_users(workload):
            inventory.report(
                "IST0144", workload.owner, "User ID (UID) 1337 is reserved for the sidecar proxy."
            )


def localhost_listeners(inventory: Inventory) -> None:
    """IST0143 for a Service port whose pods bind it to localhost. Upstream
    (deployment/... LocalhostListener) reads live sockets; here the bind address is the
    SHOPMESH_LISTEN_ADDRESS the pod template sets."""
    for service in inventory.of_kind("Service"):
        selector = service.spec.get("selector")
        if not selector:
            continue
        for workload in inventory.workloads_selected(service.namespace, selector):
            for container in workload.containers(init=False):
                for env in container.get("env") or []:
                    value = str(env.get("value", ""))
                    if env.get("name") == "SHOPMESH_LISTEN_ADDRESS" and value.startswith(LOCALHOST_PREFIXES):
                        inventory.report(
                            "IST0143",
                            service,
                            f"Port {value.rpartition(':')[2]} is exposed in a Service "
                            "but listens on localhost. "
                            "It will not be exposed to other pods.",
                        )


def authorization_policy_workloads(inventory: Inventory) -> None:
    """IST0127 for an AuthorizationPolicy that selects no pod, or a namespace-wide one in a
    namespace without pods (authz/authorizationpolicies.go analyzeNoMatchingWorkloads)."""
    for policy in inventory.of_kind("AuthorizationPolicy"):
        selector = (policy.spec.get("selector") or {}).get("matchLabels")
        if not inventory.workloads_selected(policy.namespace, selector):
            labels = ",".join(f"{k}={v}" for k, v in sorted((selector or {}).items()))
            inventory.report(
                "IST0127",
                policy,
                f"No matching workloads for this resource with the following labels: {labels}",
            )


def sidecar_selectors(inventory: Inventory) -> None:
    """IST0101 for a Sidecar whose workloadSelector matches no pod, IST0110 for a pod two
    Sidecars select, IST0111 for two selector-less Sidecars in a namespace
    (sidecar/selector.go, sidecar/defaultselector.go)."""
    selected: dict[str, list[str]] = defaultdict(list)
    selectorless: dict[str, list[str]] = defaultdict(list)
    sidecars = inventory.of_kind("Sidecar")
    for sidecar in sidecars:
        labels = (sidecar.spec.get("workloadSelector") or {}).get("labels")
        if not labels:
            selectorless[sidecar.namespace].append(sidecar.name)
            continue
        workloads = inventory.workloads_selected(sidecar.namespace, labels)
        if not workloads:
            selector = ",".join(f"{k}={v}" for k, v in sorted(labels.items()))
            inventory.report("IST0101", sidecar, f'Referenced selector not found: "{selector}"')
        for workload in workloads:
            selected[workload.owner.ref].append(sidecar.name)
    for sidecar in sidecars:
        for pod, names in selected.items():
            if len(names) > 1 and sidecar.name in names:
                inventory.report(
                    "IST0110",
                    sidecar,
                    f'The Sidecars {sorted(names)} in namespace "{sidecar.namespace}" select the same '
                    f'workload pod "{pod}", which can lead to undefined behavior.',
                )
        if len(selectorless[sidecar.namespace]) > 1 and sidecar.name in selectorless[sidecar.namespace]:
            inventory.report(
                "IST0111",
                sidecar,
                f"The Sidecars {sorted(selectorless[sidecar.namespace])} in namespace "
                f'"{sidecar.namespace}" have no workload selector, which can lead to undefined behavior.',
            )


def telemetry_selectors(inventory: Inventory) -> None:
    """IST0160 for two selector-less Telemetry objects in one namespace
    (telemetry/default_selector.go)."""
    selectorless: dict[str, list[str]] = defaultdict(list)
    telemetries = inventory.of_kind("Telemetry")
    for telemetry in telemetries:
        if not (telemetry.spec.get("selector") or {}).get("matchLabels"):
            selectorless[telemetry.namespace].append(telemetry.name)
    for telemetry in telemetries:
        names = selectorless[telemetry.namespace]
        if len(names) > 1 and telemetry.name in names:
            inventory.report(
                "IST0160",
                telemetry,
                f'The Telemetries {sorted(names)} in namespace "{telemetry.namespace}" have no workload '
                "selector, which can lead to undefined behavior.",
            )


def telemetry_providers(inventory: Inventory) -> None:
    """IST0157 for access logging without providers (telemetry/providers.go): ignored unless
    the mesh config names default providers, which Istio's default install does not."""
    for telemetry in inventory.of_kind("Telemetry"):
        if any(not entry.get("providers") for entry in telemetry.spec.get("accessLogging") or []):
            inventory.report(
                "IST0157",
                telemetry,
                f'The Telemetry {telemetry.name} in namespace "{telemetry.namespace}" with empty providers '
                "will be ignored.",
            )


def workloads_covered(inventory: Inventory) -> None:
    """KIA1301 for a workload no AuthorizationPolicy applies to (Kiali
    business/checkers/workloads: workload.authorizationpolicy.needstobecovered)."""
    policies = inventory.of_kind("AuthorizationPolicy")
    for workload in inventory.workloads:
        if not any(
            policy.namespace == workload.namespace
            and selects((policy.spec.get("selector") or {}).get("matchLabels"), workload.labels)
            for policy in policies
        ):
            inventory.report(
                "KIA1301", workload.owner, "This workload is not covered by any authorization policy"
            )


ANALYZERS = (
    namespace_injection,
    service_port_names,
    application_uid,
    localhost_listeners,
    authorization_policy_workloads,
    sidecar_selectors,
    telemetry_selectors,
    telemetry_providers,
    workloads_covered,
)
