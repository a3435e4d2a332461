"""The AuthorizationPolicy model (shopmesh/manifests/policy.py, the one the authorization matrix
evaluates) → the RBAC HTTP filters of a workload's inbound listener.

As istiod: grpcgen/lds.go buildRBAC over pilot/pkg/security/authz/model Generate and builder.go.
The policies that apply to a workload become a DENY filter then an ALLOW filter; each policy rule
an RBAC policy named `<namespace>-<name>-<rule index>` whose principals are the rule's
principals and whose permissions its permissions; each of those an AND of its conditions, each
condition an OR of its values and a NOT of the OR of its not-values. A policy without rules
becomes one policy that never matches (builder.go rbacPolicyMatchNever), so `spec: {}` denies
everything. AUDIT policies only log and dry-run ones are only shadowed: neither changes a
decision, so neither is sent. What gRPC cannot enforce here is refused, naming the policy.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeAlias, TypeVar

from envoy.config.core.v3 import address_pb2
from envoy.config.rbac.v3 import rbac_pb2 as rbac_config
from envoy.config.route.v3 import route_components_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter
from envoy.type.matcher.v3 import path_pb2, regex_pb2, string_pb2
from google.protobuf import wrappers_pb2

from shopmesh.localmesh.translate import TranslationError
from shopmesh.localmesh.translate.names import RBAC_DENY_FILTER, RBAC_FILTER
from shopmesh.manifests.mesh import SPIFFE_PREFIX
from shopmesh.manifests.policy import (
    Attribute,
    AuthorizationPolicy,
    Clause,
    Condition,
    Pattern,
    WorkloadPolicies,
    namespace_regex,
)

Principal: TypeAlias = rbac_config.Principal
Permission: TypeAlias = rbac_config.Permission

#: builder.go rbacPolicyMatchNever.
MATCH_NEVER = rbac_config.Policy(
    permissions=[Permission(not_rule=Permission(any=True))],
    principals=[Principal(not_id=Principal(any=True))],
)


def rbac_filters(policies: WorkloadPolicies) -> list[tuple[str, rbac_filter.RBAC]]:
    """(filter name, config): the DENY filter then the ALLOW filter, each only when a policy
    of its action applies (a workload without policies gets none, and allows all)."""
    if policies.custom:
        names = ", ".join(p.ref for p in policies.custom)
        raise TranslationError(f"AuthorizationPolicy {names}: action CUSTOM needs an external authorizer")
    filters: list[tuple[str, rbac_filter.RBAC]] = []
    for name, action, chosen in (
        (RBAC_DENY_FILTER, rbac_config.RBAC.DENY, policies.deny),
        (RBAC_FILTER, rbac_config.RBAC.ALLOW, policies.allow),
    ):
        enforced = [p for p in chosen if not p.dry_run]
        if enforced:
            filters.append((name, rbac_filter.RBAC(rules=_rbac(action, enforced))))
    return filters


def _rbac(action: int, policies: Sequence[AuthorizationPolicy]) -> rbac_config.RBAC:
    rules = rbac_config.RBAC(action=action)
    for policy in policies:
        prefix = f"{policy.namespace}-{policy.name}"
        if not policy.rules:
            rules.policies[f"{prefix}-0"].CopyFrom(MATCH_NEVER)
        for index, rule in enumerate(policy.rules):
            where = f"AuthorizationPolicy {policy.ref} rule {index}"
            rules.policies[f"{prefix}-{index}"].CopyFrom(
                rbac_config.Policy(
                    principals=[PRINCIPALS.clause(clause, where) for clause in rule.principals],
                    permissions=[PERMISSIONS.clause(clause, where) for clause in rule.permissions],
                )
            )
    return rules


T = TypeVar("T")


@dataclass(frozen=True)
class _Side(Generic[T]):
    """How one side of an RBAC policy is built: Principal or Permission, the same algebra."""

    builders: Mapping[Attribute, Callable[[str, Condition], T]]
    any_of: Callable[[list[T]], T]
    all_of: Callable[[list[T]], T]
    negate: Callable[[T], T]
    anything: Callable[[], T]

    def clause(self, clause: Clause, where: str) -> T:
        """model.go generatePrincipal/generatePermission: every condition ANDed, each one
        [OR of its values] and [NOT of the OR of its not-values]; nothing at all: any."""
        terms: list[T] = []
        for condition in clause:
            build = self.builders.get(condition.attribute)
            if build is None or condition.has_template:
                raise TranslationError(f"{where}: {condition.attribute.value} is not enforced locally")
            if condition.values:
                terms.append(self.any_of([build(value, condition) for value in condition.values]))
            if condition.not_values:
                terms.append(
                    self.negate(self.any_of([build(value, condition) for value in condition.not_values]))
                )
        return self.all_of(terms or [self.anything()])


def string_matcher(value: str, *, prefix: str = "", ignore_case: bool = False) -> string_pb2.StringMatcher:
    """Istio's string rule as an Envoy matcher (authz/matcher/string.go StringMatcherWithPrefix):
    `prefix` goes before exact and prefix forms, and before a suffix as a regex."""
    pattern = Pattern.of(value)
    if pattern.kind == "any":
        return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=".+"))
    if pattern.kind == "suffix":
        if prefix:
            return _regex(re.escape(prefix) + ".*" + re.escape(pattern.text))
        return string_pb2.StringMatcher(suffix=pattern.text, ignore_case=ignore_case)
    if pattern.kind == "prefix":
        return string_pb2.StringMatcher(prefix=prefix + pattern.text, ignore_case=ignore_case)
    return string_pb2.StringMatcher(exact=prefix + pattern.text, ignore_case=ignore_case)


def _regex(regex: str) -> string_pb2.StringMatcher:
    return string_pb2.StringMatcher(safe_regex=regex_pb2.RegexMatcher(regex=regex))


def header_matcher(name: str, value: str, *, ignore_case: bool = False) -> route_components_pb2.HeaderMatcher:
    """authz/matcher/header.go HeaderMatcher and HostMatcher: `*` is a presence match."""
    if value == "*":
        return route_components_pb2.HeaderMatcher(name=name, present_match=True)
    return route_components_pb2.HeaderMatcher(
        name=name, string_match=string_matcher(value, ignore_case=ignore_case)
    )


def _authenticated(matcher: string_pb2.StringMatcher) -> Principal:
    return Principal(authenticated=Principal.Authenticated(principal_name=matcher))


def _cidr(value: str) -> address_pb2.CidrRange:
    network = ipaddress.ip_network(value, strict=False)
    return address_pb2.CidrRange(
        address_prefix=str(network.network_address),
        prefix_len=wrappers_pb2.UInt32Value(value=network.prefixlen),
    )


PRINCIPALS = _Side[Principal](
    builders={
        Attribute.SOURCE_PRINCIPAL: lambda v, _: _authenticated(string_matcher(v, prefix=SPIFFE_PREFIX)),
        Attribute.SOURCE_NAMESPACE: lambda v, _: _authenticated(_regex(namespace_regex(v))),
        Attribute.SOURCE_IP: lambda v, _: Principal(direct_remote_ip=_cidr(v)),
        Attribute.REMOTE_IP: lambda v, _: Principal(remote_ip=_cidr(v)),
        Attribute.REQUEST_HEADER: lambda v, c: Principal(header=header_matcher(c.name, v)),
    },
    any_of=lambda items: Principal(or_ids=Principal.Set(ids=items)),
    all_of=lambda items: Principal(and_ids=Principal.Set(ids=items)),
    negate=lambda inner: Principal(not_id=inner),
    anything=lambda: Principal(any=True),
)
PERMISSIONS = _Side[Permission](
    builders={
        Attribute.HOST: lambda v, _: Permission(header=header_matcher(":authority", v, ignore_case=True)),
        Attribute.METHOD: lambda v, _: Permission(header=header_matcher(":method", v)),
        Attribute.PATH: lambda v, _: Permission(url_path=path_pb2.PathMatcher(path=string_matcher(v))),
        Attribute.DESTINATION_PORT: lambda v, _: Permission(destination_port=int(v)),
    },
    any_of=lambda items: Permission(or_rules=Permission.Set(rules=items)),
    all_of=lambda items: Permission(and_rules=Permission.Set(rules=items)),
    negate=lambda inner: Permission(not_rule=inner),
    anything=lambda: Permission(any=True),
)
