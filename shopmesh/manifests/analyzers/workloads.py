"""Namespaces, Services, pods and the Istio objects that select pods.

Upstream: istio/istio pkg/config/analysis/analyzers/{injection,service,deployment,sidecar,
authz,telemetry}/.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping

from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.mesh import ROOT_NAMESPACE
from shopmesh.manifests.model import UNSUPPORTED_PROTOCOL, MeshObjects, Resource, Service, Workload, selects

#: Namespaces istioctl analyze never reports on (util.IsSystemNamespace).
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease", "local-path-storage"})
#: The sidecar's own UID (deployment/pod.go UserID), and the containers that may use it.
SIDECAR_UID = 1337
PROXY_CONTAINERS = frozenset({"istio-proxy", "istio-operator"})
#: Services Istio's own controllers make for gateways, waypoints and east-west gateways
#: (label gateway.istio.io/managed; pkg/config/constants): their ports (a waypoint's `mesh`
#: port speaks HBONE) follow no sidecar naming rule.
MANAGED_GATEWAY_LABEL = "gateway.istio.io/managed"
MANAGED_GATEWAY_VALUES = frozenset(
    {"istio.io-gateway-controller", "istio.io-mesh-controller", "istio.io-eastwest-controller"}
)
AMBIENT_MODE_LABEL, AMBIENT = "istio.io/dataplane-mode", "ambient"
INJECTION_LABEL, SIDECAR_INJECT = "istio-injection", "sidecar.istio.io/inject"
AMBIENT_REDIRECTION = "ambient.istio.io/redirection"


def is_istio_control_plane(resource: Resource) -> bool:
    """util.IsIstioControlPlane: labelled `istio=*` or `release=istio`."""
    return "istio" in resource.labels or resource.labels.get("release") == "istio"


def in_mesh(workload: Workload, namespaces: Mapping[str, Resource]) -> bool:
    """util/in_mesh.go inMesh: an `istio-proxy` container; else the pod's
    `sidecar.istio.io/inject` label, then annotation; else its Namespace's `istio-injection:
    enabled` (a Namespace not rendered counts as not injected)."""
    if any(c.get("name") == "istio-proxy" and c.get("image") for c in workload.containers()):
        return True
    for source in (workload.labels, workload.annotations):
        if SIDECAR_INJECT in source:
            return str(source[SIDECAR_INJECT]) == "true"
    namespace = namespaces.get(workload.namespace)
    return namespace is not None and namespace.labels.get(INJECTION_LABEL) == "enabled"


def in_ambient(workload: Workload) -> bool:
    """util/in_mesh.go PodInAmbientMode: istio-cni's `ambient.istio.io/redirection: enabled`."""
    return workload.annotations.get(AMBIENT_REDIRECTION) == "enabled"


def mesh_pods(objects: MeshObjects) -> list[Workload]:
    """The pods an authorization policy can select (authorizationpolicies.go initPodLabelsMap):
    those in the mesh or ambient. Unlike istioctl's file mode, pod templates count as the pods
    they create (model.py), so a Deployment is not "nothing running"."""
    namespaces = {n.name: n for n in objects.of_kind("Namespace")}
    return [w for w in objects.workloads if in_mesh(w, namespaces) or in_ambient(w)]


LOCALHOST_PREFIXES = ("127.", "localhost:", "[::1]:")


def namespace_injection(inventory: Inventory) -> None:
    """IST0102 for a namespace with neither `istio-injection` nor `istio.io/rev`, unless it is
    an ambient namespace (injection/injection.go)."""
    for namespace in inventory.of_kind("Namespace"):
        if namespace.name in SYSTEM_NAMESPACES | {ROOT_NAMESPACE}:
            continue
        if namespace.labels.get(AMBIENT_MODE_LABEL) == AMBIENT:
            continue  # ambient: no sidecars to inject (injection.go returns before IST0102)
        if "istio-injection" not in namespace.labels and "istio.io/rev" not in namespace.labels:
            inventory.report(
                "IST0102",
                namespace,
                "The namespace is not enabled for Istio injection. Run 'kubectl label namespace "
                f"{namespace.name} istio-injection=enabled' to enable it, or 'kubectl label namespace "
                f"{namespace.name} istio-injection=disabled' to explicitly mark it as not needing injection.",
            )


def service_port_names(inventory: Inventory) -> None:
    """IST0118 for a Service port whose protocol Istio cannot tell (service/portname.go), except
    on Istio's own Services: the control plane's, and the gateways and waypoints its
    controllers manage (a waypoint's HBONE port has no sidecar protocol name)."""
    for service in inventory.of_kind("Service"):
        if service.namespace in SYSTEM_NAMESPACES or is_istio_control_plane(service):
            continue
        if service.labels.get(MANAGED_GATEWAY_LABEL) in MANAGED_GATEWAY_VALUES:
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
    users += [
        (c.get("securityContext") or {}).get("runAsUser")
        for c in workload.containers(init=False)
        if c.get("name") not in PROXY_CONTAINERS
    ]
    return [u for u in users if u is not None]


def application_uid(inventory: Inventory) -> None:
    """IST0144 for a Pod or Deployment that runs as the sidecar's UID 1337, at pod level or in
    a container other than the proxy's (deployment/pod.go ApplicationUIDAnalyzer: Pods and
    Deployments only, the control plane's own left out)."""
    for workload in inventory.workloads:
        if workload.owner.kind not in ("Pod", "Deployment") or is_istio_control_plane(workload.owner):
            continue
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
    """IST0127 for an AuthorizationPolicy that selects no pod of the mesh
    (authz/authorizationpolicies.go analyzeNoMatchingWorkloads). In the root namespace a
    policy applies mesh-wide: without a selector it is never reported, with one it needs a
    matching pod in any namespace. Elsewhere a policy without a selector needs a pod in its
    namespace, one with a selector (`selector: {}` included) a matching pod there. A
    `targetRef` policy has no selector. Pods count when in the mesh or ambient."""
    pods = mesh_pods(inventory)
    for policy in inventory.of_kind("AuthorizationPolicy"):
        raw = policy.spec.get("selector")
        selector = None if raw is None else dict((raw or {}).get("matchLabels") or {})
        if policy.namespace == ROOT_NAMESPACE:
            if selector is None:
                continue
            candidates = pods
        else:
            candidates = [p for p in pods if p.namespace == policy.namespace]
        if not any(selects(selector, p.labels) for p in candidates):
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
    """KIA1301 for a workload no AuthorizationPolicy covers (Kiali business/checkers/workloads
    uncovered_workload_checker.go hasCoveringAuthPolicy: a policy of its namespace or of the
    root namespace whose selector is absent or matches)."""
    policies = inventory.of_kind("AuthorizationPolicy")
    for workload in inventory.workloads:
        if not any(
            policy.namespace in (workload.namespace, ROOT_NAMESPACE)
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
