"""Strict validation of custom resources against vendored CustomResourceDefinitions.

    validator = vendored()                       # every CRD in shopmesh/manifests/crds/
    validator.errors(podmonitor)                 # [] or ["spec.podMetricsEndpoints[0].intervall:
                                                 #      unknown field (did you mean 'interval'?)"]

A CRD's served version carries an OpenAPI v3 schema; the API server validates a custom resource
against it and, with kubectl's default `--validate=strict`, refuses fields the schema does not
declare. This does the same with jsonschema:

- every object in the schema's structural tree that declares neither `additionalProperties`
  nor `x-kubernetes-preserve-unknown-fields` refuses undeclared fields;
- `nullable: true` admits null, `x-kubernetes-int-or-string` an integer or a string;
- `x-kubernetes-list-type: set` items must be unique, `map` items unique by their map keys;
- `metadata` is validated as Kubernetes' ObjectMeta (kubernetes-validate's strict schema), and
  `apiVersion`/`kind` must name a served version of a vendored CRD.

Not evaluated: CEL rules (`x-kubernetes-validations`) and string formats (`int32`,
`date-time`…), which need the API server.
"""

from __future__ import annotations

import copy
import difflib
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]
import yaml
from kubernetes_validate import utils as kubernetes_schemas  # type: ignore[import-untyped]
from referencing import Registry
from referencing import Resource as SchemaResource

from shopmesh.manifests.schema import KUBERNETES_VERSION

CRDS_DIRECTORY = Path(__file__).parent / "crds"
_OBJECT_META = (
    "https://kubernetes.io/api/_definitions.json#/$defs/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
)
#: metadata.name: a DNS subdomain (RFC 1123), as the API server requires of most kinds.
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_MAX_MESSAGE = 240
#: Keywords whose subschemas only constrain fields the structural tree already declares.
_CONSTRAINTS = ("allOf", "anyOf", "oneOf", "not")


class CrdError(ValueError):
    """A CRD file that is not a usable CustomResourceDefinition."""


def _unique_by_map_keys(validator: Any, keys: list[str], instance: Any, schema: Any) -> Iterator[Any]:
    if not isinstance(instance, list) or schema.get("x-kubernetes-list-type") != "map":
        return
    seen: dict[tuple[Any, ...], int] = {}
    for index, item in enumerate(instance):
        if not isinstance(item, dict):
            continue
        key = tuple(item.get(name) for name in keys)
        if key in seen:
            described = ", ".join(f"{name}={value!r}" for name, value in zip(keys, key, strict=True))
            yield jsonschema.ValidationError(f"items {seen[key]} and {index} have the same {described}")
        seen.setdefault(key, index)


_Validator = jsonschema.validators.extend(
    jsonschema.validators.Draft202012Validator, {"x-kubernetes-list-map-keys": _unique_by_map_keys}
)


def strict_schema(openapi: Mapping[str, Any], *, structural: bool = True) -> dict[str, Any]:
    """A CRD's OpenAPI v3 schema as a JSON schema that refuses undeclared fields."""
    schema: dict[str, Any] = {key: copy.deepcopy(value) for key, value in openapi.items()}
    if schema.pop("nullable", False) and "type" in schema:
        schema["type"] = [schema["type"], "null"]
    if schema.get("x-kubernetes-int-or-string") and not any(k in schema for k in ("type", "anyOf", "oneOf")):
        schema["anyOf"] = [{"type": "integer"}, {"type": "string"}]
    if schema.get("x-kubernetes-list-type") == "set":
        schema["uniqueItems"] = True
    for name, child in list(schema.get("properties", {}).items()):
        schema["properties"][name] = strict_schema(child, structural=structural)
    if isinstance(schema.get("items"), dict):
        schema["items"] = strict_schema(schema["items"], structural=structural)
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = strict_schema(schema["additionalProperties"], structural=structural)
    for keyword in _CONSTRAINTS:
        if isinstance(schema.get(keyword), list):
            schema[keyword] = [strict_schema(s, structural=False) for s in schema[keyword]]
        elif isinstance(schema.get(keyword), dict):
            schema[keyword] = strict_schema(schema[keyword], structural=False)
    open_object = schema.get("x-kubernetes-preserve-unknown-fields") or "additionalProperties" in schema
    if structural and schema.get("type") in ("object", ["object", "null"]) and not open_object:
        schema["additionalProperties"] = False
    return schema


class CrdValidator:
    """Validates custom resources of the kinds the given CRDs define (their served versions)."""

    def __init__(self, definitions: Iterable[Mapping[str, Any]]) -> None:
        self._schemas: dict[tuple[str, str], dict[str, Any]] = {}
        for crd in definitions:
            spec = crd.get("spec") or {}
            group, kind = spec.get("group"), (spec.get("names") or {}).get("kind")
            if crd.get("kind") != "CustomResourceDefinition" or not group or not kind:
                raise CrdError(f"not a CustomResourceDefinition with a group and kind: {crd.get('metadata')}")
            for version in spec.get("versions") or []:
                openapi = (version.get("schema") or {}).get("openAPIV3Schema")
                if version.get("served") and openapi:
                    self._schemas[(f"{group}/{version['name']}", kind)] = _resource_schema(openapi)

    @classmethod
    def from_files(cls, paths: Iterable[Path]) -> CrdValidator:
        definitions = []
        for path in paths:
            try:
                documents = list(yaml.safe_load_all(path.read_text()))
            except (OSError, yaml.YAMLError) as error:
                raise CrdError(f"{path}: {error}") from None
            definitions += [doc for doc in documents if doc]
        return cls(definitions)

    def kinds(self) -> list[str]:
        return sorted(f"{api_version} {kind}" for api_version, kind in self._schemas)

    def knows(self, api_version: str, kind: str) -> bool:
        return (api_version, kind) in self._schemas

    def errors(self, resource: Mapping[str, Any]) -> list[str]:
        """What is wrong with one custom resource, one line per problem, each naming its field."""
        if not isinstance(resource, Mapping):
            return ["(root): a resource must be a mapping"]
        key = (str(resource.get("apiVersion")), str(resource.get("kind")))
        if key not in self._schemas:
            return [f"(root): no CRD serves {key[1]} in {key[0]} (known: {', '.join(self.kinds())})"]
        found = [
            line for error in _validator(self, key).iter_errors(dict(resource)) for line in _messages(error)
        ]
        name = (resource.get("metadata") or {}).get("name")
        if isinstance(name, str) and not (_DNS_SUBDOMAIN.match(name) and len(name) <= 253):
            found.append(f"metadata.name: {name!r} is not a DNS subdomain (a-z, 0-9, '-' and '.')")
        return sorted(found)

    def schema(self, api_version: str, kind: str) -> dict[str, Any]:
        return self._schemas[(api_version, kind)]


@cache
def _validator(crds: CrdValidator, key: tuple[str, str]) -> Any:
    schema = crds.schema(*key)
    return _Validator(schema, registry=_object_meta_registry())


def _resource_schema(openapi: Mapping[str, Any]) -> dict[str, Any]:
    schema = strict_schema(openapi)
    properties = schema.setdefault("properties", {})
    # What every object has, whether the CRD's schema says so or not.
    properties.setdefault("apiVersion", {"type": "string"})
    properties.setdefault("kind", {"type": "string"})
    properties["metadata"] = {"$ref": _OBJECT_META}
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


@cache
def _object_meta_registry() -> Registry:
    definitions = kubernetes_schemas.schema_contents(
        f"kubernetes-json-schema/v{KUBERNETES_VERSION}-local-strict/_definitions.json", KUBERNETES_VERSION
    )
    return SchemaResource.from_contents(definitions) @ Registry()


def _path(error: Any) -> str:
    text = ""
    for part in error.absolute_path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}"
    return text.lstrip(".") or "(root)"


def _messages(error: Any) -> list[str]:
    path = _path(error)
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        declared = list((error.schema.get("properties") or {}).keys())
        unknown = [field for field in error.instance if field not in declared]
        lines = []
        for field in unknown:
            close = difflib.get_close_matches(field, declared, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            lines.append(f"{'' if path == '(root)' else path + '.'}{field}: unknown field{hint}")
        return lines
    required_only = _required_alternatives(error)
    if required_only is not None:
        choices = "; ".join(", ".join(fields) for fields in required_only)
        quantifier = "exactly one" if error.validator == "oneOf" and not error.context else "one"
        return [f"{path}: needs {quantifier} of these sets of fields: {choices}"]
    message = str(error.message)
    if len(message) > _MAX_MESSAGE:
        message = message[:_MAX_MESSAGE] + "…"
    return [f"{path}: {message}"]


def _required_alternatives(error: Any) -> list[list[str]] | None:
    """For a oneOf/anyOf whose branches only require fields (Flagger's analysis: interval,
    threshold and one of iterations, stepWeight, stepWeights), the branches' field lists;
    jsonschema's own message would print the whole object."""
    if error.validator not in ("oneOf", "anyOf") or not isinstance(error.validator_value, list):
        return None
    branches = error.validator_value
    if not branches or any(not isinstance(b, dict) or set(b) != {"required"} for b in branches):
        return None
    return [[str(field) for field in branch["required"]] for branch in branches]


@cache
def vendored() -> CrdValidator:
    """Every CRD vendored in shopmesh/manifests/crds/ (sources and versions in its README)."""
    return CrdValidator.from_files(sorted(CRDS_DIRECTORY.glob("*.yaml")))
