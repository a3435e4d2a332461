"""Strict schema validation of every rendered object.

Kubernetes objects: kubernetes-validate with `strict=True` (unknown fields are errors, so a
typo never passes silently). Custom resources of a vendored CRD (Flagger's, the
prometheus-operator's: shopmesh/manifests/crds/): that CRD's schema, strictly (crds.py).
Istio objects: the pydantic models of cloudcoil.models.istio with `strict=True,
extra="forbid"` (without `extra="forbid"` they accept any unknown field).
A failing Istio object is Istio's IST0106 SchemaValidationError; any other failing object our
SHM0001 (istioctl analyze validates neither Kubernetes kinds nor other custom resources): what
`kubectl apply`, strict by default, would refuse.
"""

from __future__ import annotations

from functools import cache
from importlib import import_module
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import pydantic
from kubernetes_validate import utils as kubernetes_schemas  # type: ignore[import-untyped]
from referencing import Registry
from referencing import Resource as SchemaResource

from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.model import Resource

#: The Kubernetes release whose schemas the manifests must satisfy (native sidecars and gRPC
#: probes are GA there).
KUBERNETES_VERSION = "1.33.0"
_STRICT_SCHEMAS = f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict"

#: Istio API group/version -> the cloudcoil module that models it.
ISTIO_MODULES = {
    "networking.istio.io/v1": "cloudcoil.models.istio.networking.v1",
    "networking.istio.io/v1beta1": "cloudcoil.models.istio.networking.v1beta1",
    "networking.istio.io/v1alpha3": "cloudcoil.models.istio.networking.v1alpha3",
    "security.istio.io/v1": "cloudcoil.models.istio.security.v1",
    "security.istio.io/v1beta1": "cloudcoil.models.istio.security.v1beta1",
    "telemetry.istio.io/v1": "cloudcoil.models.istio.telemetry.v1",
    "telemetry.istio.io/v1alpha1": "cloudcoil.models.istio.telemetry.v1alpha1",
}


@cache
def _istio_model(api_version: str, kind: str) -> Any:
    module_name = ISTIO_MODULES.get(api_version)
    if module_name is None:
        return None
    return getattr(import_module(module_name), kind, None)


def _istio_errors(resource: Resource) -> list[str]:
    model = _istio_model(resource.api_version, resource.kind)
    if model is None:
        return [f"unknown Istio kind {resource.kind} in {resource.api_version}"]
    try:
        model.model_validate(dict(resource.doc), strict=True, extra="forbid")
    except pydantic.ValidationError as error:
        return [
            f"{'.'.join(str(part) for part in detail['loc'])}: {detail['msg']}" for detail in error.errors()
        ]
    return []


@cache
def _definitions() -> Any:
    return SchemaResource.from_contents(
        kubernetes_schemas.schema_contents(f"{_STRICT_SCHEMAS}/_definitions.json", KUBERNETES_VERSION)
    )


@cache
def _kubernetes_validator(api_version: str, kind: str) -> jsonschema.protocols.Validator | None:
    """kubernetes-validate's strict schema for one kind, compiled once.

    `kubernetes_validate.validate` re-reads the (large) shared definitions on every call; this
    is the same schema lookup and validator, kept for the whole run.
    """
    # rbac.authorization.k8s.io/v1 -> rbac-v1, apps/v1 -> apps-v1, v1 -> v1 (as upstream).
    group, _, version = api_version.rpartition("/")
    file_api = f"{group.split('.')[0]}-{version}" if group else version
    try:
        schema = kubernetes_schemas.schema_contents(
            f"{_STRICT_SCHEMAS}/{kind.lower()}-{file_api}.json", KUBERNETES_VERSION
        )
    except FileNotFoundError:
        return None
    registry: Registry = _definitions() @ (SchemaResource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


def _kubernetes_errors(resource: Resource) -> list[str]:
    validator = _kubernetes_validator(resource.api_version, resource.kind)
    if validator is None:
        return [f"no schema for {resource.kind} in {resource.api_version}"]
    errors = sorted(validator.iter_errors(dict(resource.doc)), key=lambda e: list(map(str, e.path)))
    return [f"{'.'.join(str(part) for part in error.path) or '(root)'}: {error.message}" for error in errors]


def validate(inventory: Inventory) -> None:
    # Imported here: crds.py reads this module's KUBERNETES_VERSION.
    from shopmesh.manifests.crds import vendored

    custom = vendored()
    for resource in inventory.resources:
        if resource.is_istio:
            for message in _istio_errors(resource):
                inventory.report("IST0106", resource, f"Schema validation error: {message}")
        elif custom.knows(resource.api_version, resource.kind):
            for message in custom.errors(dict(resource.doc)):
                inventory.report("SHM0001", resource, f"Schema validation error: {message}")
        else:
            for message in _kubernetes_errors(resource):
                inventory.report("SHM0001", resource, f"Schema validation error: {message}")
