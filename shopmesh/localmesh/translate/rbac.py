"""AuthorizationPolicy → the RBAC HTTP filters of a workload's inbound listener.

Follows istiod (pilot/pkg/security/authz/builder and model, grpcgen/lds.go buildRBAC): the
policies selecting a workload become two filters, DENY first then ALLOW, each policy rule an
RBAC policy named `<namespace>-<name>-<rule index>`; a rule's `from` entries are ORed
principals, its `to` entries ORed permissions, every field inside one entry ANDed, and `when`
conditions ANDed onto the side they constrain.

One deliberate difference from grpcgen: an ALLOW policy with no rules (the `spec: {}` deny-all
baseline) yields an ALLOW filter with no policies, which denies everything. That is what Istio
documents and what its Envoy builder generates; grpcgen skips empty filters, which would let a
proxyless server accept every call under a deny-all baseline.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2 as rbac_config
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter
from envoy.type.matcher.v3 import path_pb2, regex_pb2, string_pb2
from google.protobuf import wrappers_pb2

from shopmesh.localmesh.translate.matching import istio_string
from shopmesh.localmesh.translate.objects import (
    ROOT_NAMESPACE,
    MeshObjects,
    Object,
    TranslationError,
    labels_match,
    name_of,
    namespace_of,
)

SPIFFE_PREFIX = "spiffe://"
Principal: TypeAlias = rbac_config.Principal
Permission: TypeAlias = rbac_config.Permission


@dataclass(frozen=True)
class WorkloadPolicies:
    deny: list[Object]
    allow: list[Object]


def policies_for(objects: MeshObjects, namespace: str, labels: Mapping[str, str]) -> WorkloadPolicies:
    """The AuthorizationPolicies that select a workload (PushContext.AuthzPolicies semantics).

    Root-namespace policies without a selector apply mesh-wide; others apply in their own
    namespace, to every workload or to those their `selector.matchLabels` picks.
    """
    deny: list[Object] = []
    allow: list[Object] = []
    for policy in objects.of_kind("AuthorizationPolicy"):
        policy_namespace = namespace_of(policy)
        spec = policy.get("spec") or {}
        if "targetRef" in spec or "targetRefs" in spec:
            raise TranslationError(f"AuthorizationPolicy {name_of(policy)}: targetRef is for waypoints")
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if policy_namespace == ROOT_NAMESPACE and not selector:
            applies = True
        else:
            applies = policy_namespace == namespace and labels_match(selector, labels)
        if not applies:
            continue
        action = spec.get("action", "ALLOW")
        if action == "ALLOW":
            allow.append(policy)
        elif action == "DENY":
            deny.append(policy)
        elif action == "AUDIT":
            continue  # audit only logs in Istio; nothing to enforce
        else:
            raise TranslationError(
                f"AuthorizationPolicy {name_of(policy)}: action {action} needs an external authorizer"
            )
    return WorkloadPolicies(deny=deny, allow=allow)


def rbac_filters(policies: WorkloadPolicies) -> list[tuple[str, rbac_filter.RBAC]]:
    """(filter name, config) for the DENY then ALLOW filter; none when no policy applies."""
    filters: list[tuple[str, rbac_filter.RBAC]] = []
    if policies.deny:
        filters.append(("envoy.filters.http.rbac.DENY", _rbac(rbac_config.RBAC.DENY, policies.deny)))
    if policies.allow:
        filters.append(("envoy.filters.http.rbac", _rbac(rbac_config.RBAC.ALLOW, policies.allow)))
    return filters


def _rbac(action: int, policies: Sequence[Object]) -> rbac_filter.RBAC:
    rules = rbac_config.RBAC(action=action)
    for policy in policies:
        for index, rule in enumerate((policy.get("spec") or {}).get("rules") or []):
            where = f"AuthorizationPolicy {namespace_of(policy)}/{name_of(policy)} rule {index}"
            rules.policies[f"{namespace_of(policy)}-{name_of(policy)}-{index}"].CopyFrom(
                _policy(rule or {}, where)
            )
    return rbac_filter.RBAC(rules=rules)


def _policy(rule: Mapping[str, Any], where: str) -> rbac_config.Policy:
    source_conditions: list[Principal] = []
    destination_conditions: list[Permission] = []
    for condition in rule.get("when") or []:
        principal, permission = _condition(condition, where)
        if principal is not None:
            source_conditions.append(principal)
        if permission is not None:
            destination_conditions.append(permission)

    sources = [_source(entry.get("source") or {}, where) for entry in rule.get("from") or []]
    operations = [_operation(entry.get("operation") or {}, where) for entry in rule.get("to") or []]

    principal_any = Principal(any=True)
    permission_any = Permission(any=True)
    principal = _or_principals(sources) if sources else principal_any
    permission = _or_permissions(operations) if operations else permission_any
    if source_conditions:
        principal = Principal(and_ids=Principal.Set(ids=[principal, *source_conditions]))
    if destination_conditions:
        permission = Permission(and_rules=Permission.Set(rules=[permission, *destination_conditions]))
    return rbac_config.Policy(principals=[principal], permissions=[permission])


def _or_principals(items: Sequence[Principal]) -> Principal:
    return items[0] if len(items) == 1 else Principal(or_ids=Principal.Set(ids=list(items)))


def _or_permissions(items: Sequence[Permission]) -> Permission:
    return items[0] if len(items) == 1 else Permission(or_rules=Permission.Set(rules=list(items)))


def _principal_name(matcher: string_pb2.StringMatcher) -> Principal:
    return Principal(authenticated=Principal.Authenticated(principal_name=matcher))


def _istio_principal(value: str) -> Principal:
    # "cluster.local/ns/shop/sa/order" -> exact "spiffe://cluster.local/ns/shop/sa/order"
    return _principal_name(istio_string(value, prefix=SPIFFE_PREFIX))


def _namespace_principal(value: str) -> Principal:
    # Istio matches a source namespace inside the peer's SPIFFE id: `.*/ns/<ns>/.*`.
    if value == "*":
        return _principal_name(istio_string("*"))
    if value.endswith("*"):
        pattern = f".*/ns/{re.escape(value[:-1])}.*/.*"
    elif value.startswith("*"):
        pattern = f".*/ns/.*{re.escape(value[1:])}/.*"
    else:
        pattern = f".*/ns/{re.escape(value)}/.*"
    return _principal_name(string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=pattern)))


def _ip_principal(value: str) -> Principal:
    network = ipaddress.ip_network(value, strict=False)
    return Principal(
        direct_remote_ip=address_pb2.CidrRange(
            address_prefix=str(network.network_address),
            prefix_len=wrappers_pb2.UInt32Value(value=network.prefixlen),
        )
    )


def _path_permission(value: str) -> Permission:
    return Permission(url_path=path_pb2.PathMatcher(path=istio_string(value)))


def _header_permission(name: str, value: str) -> Permission:
    return Permission(header=_header_matcher(name, value))


def _header_matcher(name: str, value: str) -> route_components_pb2.HeaderMatcher:
    return route_components_pb2.HeaderMatcher(name=name, string_match=istio_string(value))


def _port_permission(value: str) -> Permission:
    return Permission(destination_port=int(value))


def _field(
    values: Sequence[str], negated: Sequence[str], build: Callable[[str], Any], kind: type
) -> list[Any]:
    """One field of a source/operation: ORed values, and a NOT of the ORed `not*` values."""
    out: list[Any] = []
    if values:
        items = [build(str(value)) for value in values]
        out.append(items[0] if len(items) == 1 else _or(kind, items))
    if negated:
        items = [build(str(value)) for value in negated]
        inner = items[0] if len(items) == 1 else _or(kind, items)
        out.append(kind(not_id=inner) if kind is Principal else kind(not_rule=inner))
    return out


def _or(kind: type, items: list[Any]) -> Any:
    return _or_principals(items) if kind is Principal else _or_permissions(items)


_SOURCE_FIELDS: dict[str, Callable[[str], Principal]] = {
    "principals": _istio_principal,
    "namespaces": _namespace_principal,
    "ipBlocks": _ip_principal,
    "remoteIpBlocks": _ip_principal,
}
_OPERATION_FIELDS: dict[str, Callable[[str], Permission]] = {
    "paths": _path_permission,
    "methods": lambda value: _header_permission(":method", value),
    "hosts": lambda value: _header_permission(":authority", value),
    "ports": _port_permission,
}


def _negated(key: str) -> str:
    return f"not{key[0].upper()}{key[1:]}"  # principals -> notPrincipals


def _entry(
    entry: Mapping[str, Any], fields: Mapping[str, Callable[[str], Any]], kind: type, where: str
) -> Any:
    """One `source` or `operation`: each field present (and its `not` twin) ANDed; none → any."""
    unsupported = set(entry) - set(fields) - {_negated(key) for key in fields}
    if unsupported:
        raise TranslationError(f"{where}: fields {sorted(unsupported)} are not enforced locally")
    parts: list[Any] = []
    for key, build in fields.items():
        parts.extend(_field(entry.get(key) or [], entry.get(_negated(key)) or [], build, kind))
    return _single(parts, kind) if parts else kind(any=True)


def _source(source: Mapping[str, Any], where: str) -> Principal:
    return _entry(source, _SOURCE_FIELDS, Principal, where)


def _operation(operation: Mapping[str, Any], where: str) -> Permission:
    return _entry(operation, _OPERATION_FIELDS, Permission, where)


_HEADER_KEY = re.compile(r"^request\.headers\[(?P<name>[^\]]+)\]$")


def _condition(condition: Mapping[str, Any], where: str) -> tuple[Principal | None, Permission | None]:
    """A `when` condition: source-side keys constrain principals, the others permissions."""
    key = str(condition.get("key", ""))
    values = [str(v) for v in condition.get("values") or []]
    negated = [str(v) for v in condition.get("notValues") or []]
    if key == "source.principal":
        return _single(_field(values, negated, _istio_principal, Principal), Principal), None
    if key == "source.namespace":
        return _single(_field(values, negated, _namespace_principal, Principal), Principal), None
    if key in ("source.ip", "remote.ip"):
        return _single(_field(values, negated, _ip_principal, Principal), Principal), None
    if key == "destination.port":
        return None, _single(_field(values, negated, _port_permission, Permission), Permission)
    header = _HEADER_KEY.match(key)
    if header:
        name = header.group("name").lower()
        build = lambda value: _header_permission(name, value)  # noqa: E731
        return None, _single(_field(values, negated, build, Permission), Permission)
    raise TranslationError(f"{where}: condition key {key!r} is not enforced locally")


def _single(items: list[Any], kind: type) -> Any:
    if len(items) == 1:
        return items[0]
    if kind is Principal:
        return rbac_config.Principal(and_ids=rbac_config.Principal.Set(ids=items))
    return rbac_config.Permission(and_rules=rbac_config.Permission.Set(rules=items))
