"""The objects Flagger makes for a Canary of a Deployment on Istio, as plain documents.

`generate(objects, canary)` returns what Flagger makes for one Canary, and `initialised(objects)`
what a cluster holds once Flagger initialised every Canary of a render
(scheduler.go advanceCanary steps "create primary workload", "change the apex service pod
selector to primary", "take over an existing virtual service"), for `shopmesh lint` to analyse
with the rendered manifests and for the local mesh's control plane to serve as a source:

- Deployment `<target>-primary` (pkg/canary/deployment_controller.go createPrimaryDeployment):
  the target's pod template with the selector label (the first of Flagger's
  `-selector-labels`, default `app,name,app.kubernetes.io/name`, found in the target's
  `spec.selector.matchLabels`) set to `<value>-primary` (util.go makePrimaryLabels), a
  `flagger-id` pod annotation, ConfigMap and Secret references renamed to their `-primary`
  copies (config_tracker.go ApplyPrimaryConfigs), and metadata labels only that one label
  (the default `-include-label-prefix` is empty);
- Services `<service>-canary` (selecting `<value>`), `<service>-primary` and the apex
  `<service>` (both selecting `<value>-primary`), one port each
  (pkg/router/kubernetes_default.go reconcileService); an apex Service that already exists and
  is not Flagger's keeps its metadata, only its selector and ports change;
- DestinationRules `<service>-primary` and `<service>-canary`, host the short name, the
  Canary's `service.trafficPolicy` (pkg/router/istio.go reconcileDestinationRule);
- VirtualService `<service>`: the Canary's hosts plus the apex name, its gateways (`mesh` when
  none), one HTTP route with the Canary's match/rewrite/timeout/retries/corsPolicy/headers to
  the primary (weight 100) and the canary (weight 0) (istio.go reconcileVirtualService).

Not generated: the `-primary` copies of ConfigMaps and Secrets (their content is the
cluster's), the primary's autoscaler, and the Flagger-owned metadata (ownerReferences).
"""

from __future__ import annotations

import copy
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shopmesh.canary import CanaryError
from shopmesh.canary.spec import API_VERSION, Canary, read_canary
from shopmesh.manifests.model import MeshObjects, Resource

#: Flagger's `-selector-labels` default (cmd/flagger/main.go).
SELECTOR_LABELS = ("app", "name", "app.kubernetes.io/name")
#: What Flagger's router puts on the objects it manages so Flux leaves them alone (router/util.go).
TOOLKIT_ANNOTATIONS = {
    "kustomize.toolkit.fluxcd.io/reconcile": "disabled",
    "helm.toolkit.fluxcd.io/driftDetection": "disabled",
}
TOOLKIT_MARKER = "toolkit.fluxcd.io"
ISTIO_API = "networking.istio.io/v1beta1"  # the version Flagger's Istio client writes


def selector_label(deployment: Resource, labels: Sequence[str] = SELECTOR_LABELS) -> tuple[str, str]:
    """deployment_controller.go getSelectorLabel: the first of `labels` in the selector."""
    match_labels = (deployment.spec.get("selector") or {}).get("matchLabels") or {}
    for label in labels:
        if label in match_labels:
            return label, str(match_labels[label])
    raise CanaryError(
        f"deployment {deployment.name}.{deployment.namespace} spec.selector.matchLabels must contain "
        f"one of {list(labels)}"
    )


def _without_toolkit(values: Mapping[str, str]) -> dict[str, str]:
    return {k: v for k, v in values.items() if TOOLKIT_MARKER not in k}


def primary_labels(labels: Mapping[str, str], value: str, label: str) -> dict[str, str]:
    """util.go makePrimaryLabels: every label but Flux's, the selector label set to `value`."""
    return {**_without_toolkit(labels), label: value}


def _rename_config_references(pod_spec: dict[str, Any]) -> None:
    """config_tracker.go ApplyPrimaryConfigs, for every reference (every referenced ConfigMap,
    and Secret of the types Flagger tracks, is copied as `<name>-primary`)."""
    for volume in pod_spec.get("volumes") or []:
        if "configMap" in volume:
            volume["configMap"]["name"] += "-primary"
        if "secret" in volume:
            volume["secret"]["secretName"] += "-primary"
        for source in (volume.get("projected") or {}).get("sources") or []:
            for kind in ("configMap", "secret"):
                if kind in source:
                    source[kind]["name"] += "-primary"
    for container in [*(pod_spec.get("containers") or []), *(pod_spec.get("initContainers") or [])]:
        for env in container.get("env") or []:
            for ref in ("configMapKeyRef", "secretKeyRef"):
                if ref in (env.get("valueFrom") or {}):
                    env["valueFrom"][ref]["name"] += "-primary"
        for env_from in container.get("envFrom") or []:
            for ref in ("configMapRef", "secretRef"):
                if ref in env_from:
                    env_from[ref]["name"] += "-primary"


def flagger_id(pod_template: Mapping[str, Any]) -> str:
    """The `flagger-id` annotation. Flagger draws a random UUID; here it is derived from the
    template, so the same revision always generates the same objects."""
    digest = hashlib.sha256(json.dumps(pod_template, sort_keys=True).encode()).digest()
    return str(uuid.UUID(bytes=digest[:16], version=4))


def primary_deployment(
    target: Resource, canary: Canary, labels: Sequence[str] = SELECTOR_LABELS
) -> dict[str, Any]:
    label, value = selector_label(target, labels)
    primary_value = f"{value}-primary"
    template = copy.deepcopy(dict(target.spec.get("template") or {}))
    metadata = template.setdefault("metadata", {})
    metadata["labels"] = primary_labels(metadata.get("labels") or {}, primary_value, label)
    metadata["annotations"] = {
        **{k: v for k, v in (metadata.get("annotations") or {}).items() if k != "flagger-id"},
        "flagger-id": flagger_id(target.spec.get("template") or {}),
    }
    _rename_config_references(template.setdefault("spec", {}))
    replicas = target.spec.get("replicas")
    spec: dict[str, Any] = {
        "replicas": replicas if isinstance(replicas, int) and replicas > 0 else 1,
        "selector": {"matchLabels": {label: primary_value}},
        "template": template,
    }
    for copied in ("progressDeadlineSeconds", "minReadySeconds", "revisionHistoryLimit", "strategy"):
        if copied in target.spec:
            spec[copied] = copy.deepcopy(target.spec[copied])
    deployment_metadata: dict[str, Any] = {
        "name": canary.primary_workload,
        "namespace": canary.namespace,
        "labels": {label: primary_value},
    }
    if target.annotations:
        deployment_metadata["annotations"] = _without_toolkit(target.annotations)
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": deployment_metadata, "spec": spec}


def _service_spec(canary: Canary, label: str, selected: str) -> dict[str, Any]:
    service = canary.service
    port: dict[str, Any] = {
        "name": str(service.get("portName") or "http"),
        "protocol": "TCP",
        "port": canary.port,
        "targetPort": service.get("targetPort") or canary.port,
    }
    if service.get("appProtocol"):
        port["appProtocol"] = str(service["appProtocol"])
    spec: dict[str, Any] = {"type": "ClusterIP", "selector": {label: selected}, "ports": [port]}
    if service.get("headless"):
        spec["clusterIP"] = "None"
    return spec


def _custom_metadata(canary: Canary, which: str) -> tuple[dict[str, str], dict[str, str]]:
    custom = canary.service.get(which) or {}
    return dict(custom.get("labels") or {}), dict(custom.get("annotations") or {})


def service(canary: Canary, name: str, which: str, label: str, selected: str) -> dict[str, Any]:
    """A Service Flagger creates (`which`: apex, primary or canary custom metadata)."""
    labels, annotations = _custom_metadata(canary, which)
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": canary.namespace,
            "labels": {**labels, label: name},
            "annotations": {**annotations, **TOOLKIT_ANNOTATIONS},
        },
        "spec": _service_spec(canary, label, selected),
    }


def apex_service(canary: Canary, existing: Resource | None, label: str, selected: str) -> dict[str, Any]:
    """The apex Service: created like the others, or an existing one (not Flagger's) with
    its selector and ports replaced and all else kept."""
    if existing is None:
        return service(canary, canary.service_name, "apex", label, selected)
    document = copy.deepcopy(dict(existing.doc))
    spec = _service_spec(canary, label, selected)
    document.setdefault("spec", {}).update(selector=spec["selector"], ports=spec["ports"])
    return document


def destination_rule(canary: Canary, host: str) -> dict[str, Any]:
    spec: dict[str, Any] = {"host": host}
    if canary.service.get("trafficPolicy"):
        spec["trafficPolicy"] = copy.deepcopy(canary.service["trafficPolicy"])
    return {
        "apiVersion": ISTIO_API,
        "kind": "DestinationRule",
        "metadata": {"name": host, "namespace": canary.namespace},
        "spec": spec,
    }


#: The Canary's service fields Flagger copies into its one HTTP route.
ROUTE_FIELDS = ("match", "rewrite", "timeout", "retries", "corsPolicy", "headers")


def virtual_service(canary: Canary, primary_weight: int = 100, canary_weight: int = 0) -> dict[str, Any]:
    service_spec = canary.service
    hosts = [str(h) for h in service_spec.get("hosts") or []]
    if not any(h in (canary.service_name, "*") for h in hosts):
        hosts.append(canary.service_name)
    gateways = [str(g) for g in service_spec.get("gateways") or []] or ["mesh"]
    route: dict[str, Any] = {}
    for name in ROUTE_FIELDS:
        if service_spec.get(name):
            route[name] = copy.deepcopy(service_spec[name])
    route["route"] = [
        {"destination": {"host": canary.primary_name}, "weight": primary_weight},
        {"destination": {"host": canary.canary_name}, "weight": canary_weight},
    ]
    labels, annotations = _custom_metadata(canary, "apex")
    metadata: dict[str, Any] = {
        "name": canary.service_name,
        "namespace": canary.namespace,
        "annotations": {**annotations, **TOOLKIT_ANNOTATIONS},
    }
    if labels:
        metadata["labels"] = labels
    return {
        "apiVersion": ISTIO_API,
        "kind": "VirtualService",
        "metadata": metadata,
        "spec": {"hosts": hosts, "gateways": gateways, "http": [route]},
    }


def set_routes(canary: Canary, primary_weight: int, canary_weight: int) -> dict[str, Any]:
    """istio.go SetRoutes for a canary without A/B match or mirroring: the VirtualService
    rewritten with the new weights."""
    return virtual_service(canary, primary_weight, canary_weight)


def routes(canary: Canary, document: Mapping[str, Any]) -> tuple[int, int]:
    """istio.go GetRoutes: the (primary, canary) weights of the VirtualService's first route."""
    weights = {canary.primary_name: 0, canary.canary_name: 0}
    for destination in document["spec"]["http"][0]["route"]:
        weights[str(destination["destination"]["host"])] = int(destination.get("weight", 0))
    return weights[canary.primary_name], weights[canary.canary_name]


@dataclass(frozen=True)
class Generated:
    """What Flagger made for one Canary."""

    canary: Canary
    documents: tuple[dict[str, Any], ...]


def generate(objects: MeshObjects, canary: Canary, labels: Sequence[str] = SELECTOR_LABELS) -> Generated:
    target = _find(objects, "Deployment", canary.namespace, canary.target_name)
    if target is None:
        raise CanaryError(
            f"deployment {canary.target_name}.{canary.namespace} not found (spec.targetRef of Canary "
            f"{canary.namespace}/{canary.name})"
        )
    label, value = selector_label(target, labels)
    existing = _find(objects, "Service", canary.namespace, canary.service_name)
    documents = (
        primary_deployment(target, canary, labels),
        service(canary, canary.canary_name, "canary", label, value),
        service(canary, canary.primary_name, "primary", label, f"{value}-primary"),
        apex_service(canary, existing, label, f"{value}-primary"),
        destination_rule(canary, canary.canary_name),
        destination_rule(canary, canary.primary_name),
        virtual_service(canary),
    )
    return Generated(canary, documents)


def _find(objects: MeshObjects, kind: str, namespace: str, name: str) -> Resource | None:
    return next((r for r in objects.of_kind(kind) if r.namespace == namespace and r.name == name), None)


@dataclass(frozen=True)
class Initialised:
    """A render as a cluster runs it once Flagger initialised every Canary in it."""

    resources: list[Resource]
    #: each generated object -> the Canary it was made for (`Canary/<namespace>/<name>`)
    generated: dict[Resource, str]
    #: each rendered object Flagger overwrote (same kind and name) -> what replaced it
    replaced: dict[Resource, Resource]
    #: Canaries Flagger could not initialise -> why
    failed: dict[Resource, str]


def initialised(objects: MeshObjects) -> Initialised:
    """Every rendered object, where Flagger made an object of the same kind and name (the apex
    Service it re-points, a VirtualService or DestinationRule it takes over) replaced by
    Flagger's, and every other object Flagger makes added."""
    result = Initialised([], {}, {}, {})
    made: list[tuple[Resource, Resource]] = []  # (generated, its Canary)
    for candidate in objects.of_kind("Canary"):
        if candidate.api_version != API_VERSION:
            continue
        try:
            generated = generate(objects, read_canary(candidate))
        except CanaryError as error:
            result.failed[candidate] = str(error)
            continue
        made += [(Resource(document), candidate) for document in generated.documents]
    by_key = {(g.kind, g.namespace, g.name): g for g, _ in made}
    for resource in objects:
        replacement = by_key.get((resource.kind, resource.namespace, resource.name))
        if replacement is None:
            result.resources.append(resource)
        else:
            result.replaced[resource] = replacement
    for generated_resource, canary in made:
        result.resources.append(generated_resource)
        result.generated[generated_resource] = canary.ref
    return result


def served(
    objects: MeshObjects, weights: Mapping[str, tuple[int, int]] | None = None
) -> list[dict[str, Any]]:
    """The documents a local control plane serves for a render as Flagger runs it: `initialised`,
    each Canary's VirtualService at its (primary, canary) weights in `weights` (by
    `Canary/<namespace>/<name>`; 100/0 when absent), as Flagger's SetRoutes writes them. Written
    to a file, they are a source the control plane watches: rewriting it moves the traffic."""
    cluster = initialised(objects)
    canaries_by_ref = {
        resource.ref: read_canary(resource)
        for resource in objects.of_kind("Canary")
        if resource.api_version == API_VERSION and resource not in cluster.failed
    }
    documents = []
    for resource in cluster.resources:
        origin = cluster.generated.get(resource)
        if origin is not None and resource.kind == "VirtualService" and weights and origin in weights:
            documents.append(set_routes(canaries_by_ref[origin], *weights[origin]))
        else:
            documents.append(dict(resource.doc))
    return documents


def running(objects: MeshObjects) -> MeshObjects:
    """A render as a cluster runs it under Flagger: `served`, each Canary's VirtualService at
    the weights Flagger last wrote into it. Flagger's reconcile of an existing VirtualService
    ignores a difference in weights only (istio.go reconcileVirtualService), so the weights
    live in the VirtualService itself: a VirtualService of the Canary's service among `objects`
    (what Flagger wrote, e.g. `shopmesh canary`'s routes file) gives them. A render without a
    Canary is returned as it is."""
    canaries_here = [r for r in objects.of_kind("Canary") if r.api_version == API_VERSION]
    if not canaries_here:
        return objects
    weights: dict[str, tuple[int, int]] = {}
    for resource in canaries_here:
        try:
            canary = read_canary(resource)
        except CanaryError:
            continue  # initialised() reports it, and serves the rest
        written = _find(objects, "VirtualService", canary.namespace, canary.service_name)
        if written is not None and flaggers_routes(canary, written):
            weights[resource.ref] = routes(canary, written)
    return MeshObjects(served(objects, weights))


def flaggers_routes(canary: Canary, virtual_service_document: Mapping[str, Any]) -> bool:
    """Whether a VirtualService is Flagger's for this Canary: its first route is the weighted
    pair of the primary and the canary."""
    http = (virtual_service_document.get("spec") or {}).get("http") or []
    hosts = (
        {str((d.get("destination") or {}).get("host")) for d in (http[0].get("route") or [])}
        if http
        else set()
    )
    return hosts == {canary.primary_name, canary.canary_name}
