"""AuthorizationPolicy, parsed once into Istio's own model. The authorization matrix and the lint
evaluate it (`WorkloadPolicies.allows`); the local mesh's translator turns the very same model
into Envoy RBAC (shopmesh/localmesh/translate/rbac.py), as istiod's grpcgen does with its one
authz model. Every rule below is istio/istio's:

- Which policies apply to a workload (pilot/pkg/model/authorization.go
  ListAuthorizationPolicies, policyattachment.go ShouldAttachPolicy): those of the root
  namespace and of the workload's namespace whose selector is absent or a subset of the pod's
  labels. A root-namespace policy with a selector therefore applies to matching pods in every
  namespace. A policy with `targetRef(s)` binds gateways and waypoints, never a sidecar.
- A rule (pilot/pkg/security/authz/model/model.go New) is a list of principals, one per `from`
  entry, and a list of permissions, one per `to` entry; each is an AND of conditions, the
  `when` conditions joining the side they constrain (source attributes and request headers the
  principals, the others the permissions). No `from` (`to`): one principal (permission) of the
  `when` conditions alone, which matches anything when there are none. A rule matches when one
  of its principals and one of its permissions match.
- A condition (generatePrincipal/generatePermission) holds when one of its values matches and
  none of its not-values does.
- Strings (authz/matcher/string.go StringMatcherWithPrefix, header.go): `*` matches any value
  that is there, `*suffix` a suffix, `prefix*` a prefix, anything else exactly (checked in that
  order); hosts ignore case. Namespaces match inside the peer's SPIFFE id, `*` anywhere.
- The decision (builder.go, Envoy's RBAC filters in that order): a matching DENY policy denies;
  then a workload with any ALLOW policy accepts only what one of their rules matches; a policy
  without rules matches nothing (rbacPolicyMatchNever), so `spec: {}` denies all. AUDIT only
  logs; `istio.io/dry-run: "true"` policies are only evaluated in shadow. CUSTOM needs its
  external authorizer: `allows` leaves it out (the translator refuses it).
- An HTTP-only attribute (paths, methods, hosts, request headers, request principals) on a TCP
  connection (checkError): the whole rule is dropped from an ALLOW policy (it allows less) and
  the attribute alone from a DENY or AUDIT rule (it denies more).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from shopmesh.manifests.mesh import ROOT_NAMESPACE, SPIFFE_PREFIX
from shopmesh.manifests.model import MeshObjects, Resource, selects

DRY_RUN_ANNOTATION = "istio.io/dry-run"


class PolicyError(ValueError):
    """An AuthorizationPolicy the model cannot represent; names the policy and the field."""


class Action(StrEnum):
    ALLOW = "ALLOW"
    DENY = "DENY"
    AUDIT = "AUDIT"
    CUSTOM = "CUSTOM"


class Attribute(StrEnum):
    """What a condition looks at, by Istio's attribute names (authz/model/model.go)."""

    SOURCE_PRINCIPAL = "source.principal"
    REQUEST_PRINCIPAL = "request.auth.principal"
    SOURCE_SERVICE_ACCOUNT = "source.serviceAccount"
    SOURCE_TRUST_DOMAIN = "source.trustDomain"
    SOURCE_NAMESPACE = "source.namespace"
    REMOTE_IP = "remote.ip"
    SOURCE_IP = "source.ip"
    REQUEST_AUDIENCES = "request.auth.audiences"
    REQUEST_PRESENTER = "request.auth.presenter"
    REQUEST_CLAIMS = "request.auth.claims"  # with the claim's name
    REQUEST_HEADER = "request.headers"  # with the header's name
    HOST = "host"
    METHOD = "method"
    PATH = "path"
    DESTINATION_PORT = "destination.port"
    DESTINATION_IP = "destination.ip"
    SNI = "connection.sni"
    ENVOY_FILTER = "experimental.envoy.filters"  # with the filter's metadata key

    @property
    def on_principal(self) -> bool:
        """Whether Istio puts it in an RBAC principal (else in a permission)."""
        return self.value.startswith(("source.", "remote.", "request."))

    @property
    def http_only(self) -> bool:
        return self.value.startswith("request.") or self in (Attribute.HOST, Attribute.METHOD, Attribute.PATH)


#: `source` and `operation` fields, in the order Istio's model lists them (model.go New
#: inserts each at the front, so the last inserted comes first).
SOURCE_FIELDS = (
    ("principals", Attribute.SOURCE_PRINCIPAL),
    ("requestPrincipals", Attribute.REQUEST_PRINCIPAL),
    ("serviceAccounts", Attribute.SOURCE_SERVICE_ACCOUNT),
    ("trustDomains", Attribute.SOURCE_TRUST_DOMAIN),
    ("namespaces", Attribute.SOURCE_NAMESPACE),
    ("remoteIpBlocks", Attribute.REMOTE_IP),
    ("ipBlocks", Attribute.SOURCE_IP),
)
OPERATION_FIELDS = (
    ("hosts", Attribute.HOST),
    ("methods", Attribute.METHOD),
    ("paths", Attribute.PATH),
    ("ports", Attribute.DESTINATION_PORT),
)
#: The `when` keys that carry a name in brackets, e.g. `request.headers[x-tenant]`.
NAMED_WHEN_KEYS = (Attribute.REQUEST_HEADER, Attribute.REQUEST_CLAIMS, Attribute.ENVOY_FILTER)
#: The `when` keys without a name (operation-only attributes have none).
WHEN_KEYS = {
    attribute.value: attribute
    for attribute in Attribute
    if attribute not in (*NAMED_WHEN_KEYS, Attribute.HOST, Attribute.METHOD, Attribute.PATH)
}
_NAMED_KEY = re.compile(r"^(?P<attribute>[a-z.]+)\[(?P<name>.+)\]$")


def negated(field_name: str) -> str:
    return f"not{field_name[0].upper()}{field_name[1:]}"  # principals -> notPrincipals


@dataclass(frozen=True)
class Pattern:
    """Istio's authorization string rule: `*` (any value present), `*suffix`, `prefix*`, exact."""

    kind: str  # "any", "suffix", "prefix" or "exact"
    text: str  # without the `*`

    @classmethod
    def of(cls, value: str) -> Pattern:
        if value == "*":
            return cls("any", "")
        if value.startswith("*"):
            return cls("suffix", value[1:])
        if value.endswith("*"):
            return cls("prefix", value[:-1])
        return cls("exact", value)

    def matches(self, value: str, *, ignore_case: bool = False) -> bool:
        text = self.text.lower() if ignore_case else self.text
        value = value.lower() if ignore_case else value
        if self.kind == "any":
            return True
        if self.kind == "suffix":
            return value.endswith(text)
        if self.kind == "prefix":
            return value.startswith(text)
        return value == text


def namespace_regex(value: str) -> str:
    """The regex Istio matches a source namespace with, on the peer's SPIFFE id
    (generator.go srcNamespaceGenerator): every `*` is `.*`."""
    return ".*/ns/{}/.*".format(".*".join(re.escape(part) for part in value.split("*")))


@dataclass(frozen=True)
class Request:
    """What a policy is evaluated on. `principal` is the peer identity mTLS proved
    (`cluster.local/ns/shop/sa/order`), None for plaintext; `path` None is a TCP connection,
    with no HTTP attribute at all. Attributes left None are unknown to the question asked."""

    principal: str | None
    port: int
    path: str | None = None
    method: str = "POST"
    headers: Mapping[str, str] = field(default_factory=dict)
    host: str | None = None

    @property
    def is_tcp(self) -> bool:
        return self.path is None


@dataclass(frozen=True)
class Condition:
    """One attribute's constraint: one of `values` (if any), and none of `not_values`."""

    attribute: Attribute
    values: tuple[str, ...] = ()
    not_values: tuple[str, ...] = ()
    name: str = ""  # the header, claim or metadata key of a named attribute

    def holds(self, request: Request) -> bool | None:
        """Whether the request meets it; None when the request does not carry the attribute
        this model would need (its source IP, say)."""
        test = self._test(request)
        if test is None:
            return None
        return (not self.values or any(map(test, self.values))) and not any(map(test, self.not_values))

    def _test(self, request: Request) -> Callable[[str], bool] | None:
        attribute = self.attribute
        if attribute is Attribute.SOURCE_PRINCIPAL:
            peer = request.principal
            return lambda value: peer is not None and Pattern.of(value).matches(peer)
        if attribute is Attribute.SOURCE_NAMESPACE:
            spiffe = None if request.principal is None else SPIFFE_PREFIX + request.principal
            return lambda value: (
                spiffe is not None and re.fullmatch(namespace_regex(value), spiffe) is not None
            )
        if attribute is Attribute.DESTINATION_PORT:
            return lambda value: int(value) == request.port
        if attribute is Attribute.PATH and request.path is not None and not self.has_template:
            path = request.path
            return lambda value: Pattern.of(value).matches(path)
        if attribute is Attribute.METHOD:
            return lambda value: Pattern.of(value).matches(request.method)
        if attribute is Attribute.REQUEST_HEADER:
            header = request.headers.get(self.name)
            return lambda value: header is not None and Pattern.of(value).matches(header)
        if attribute is Attribute.HOST and request.host is not None:
            host = request.host
            return lambda value: Pattern.of(value).matches(host, ignore_case=True)
        return None  # IPs, SNI, JWT claims, trust domains, ...: not in this request model

    @property
    def has_template(self) -> bool:
        """A path template (`/{*}/x`): Istio matches it with Envoy's uri_template, unmodelled."""
        return any("{" in value for value in (*self.values, *self.not_values))


#: One principal or permission: conditions that must all hold.
Clause = tuple[Condition, ...]


@dataclass(frozen=True)
class Rule:
    principals: tuple[Clause, ...]  # any one
    permissions: tuple[Clause, ...]  # any one

    @property
    def conditions(self) -> Iterable[Condition]:
        for clause in (*self.principals, *self.permissions):
            yield from clause

    @property
    def http_only(self) -> bool:
        return any(condition.attribute.http_only for condition in self.conditions)

    def matches(self, request: Request, action: Action) -> bool:
        """For a TCP request Istio drops an ALLOW rule with HTTP attributes, and drops those
        attributes from a DENY rule; an attribute this model cannot know takes the safe side
        the same way (the ALLOW rule does not match, the DENY condition does)."""
        permissive = action is not Action.ALLOW
        if request.is_tcp and self.http_only and not permissive:
            return False

        def clause_holds(clause: Clause) -> bool:
            for condition in clause:
                if request.is_tcp and condition.attribute.http_only:
                    continue  # a DENY rule without it
                holds = condition.holds(request)
                if holds is False or (holds is None and not permissive):
                    return False
            return True

        return any(map(clause_holds, self.principals)) and any(map(clause_holds, self.permissions))


@dataclass(frozen=True)
class AuthorizationPolicy:
    resource: Resource = field(compare=False)  # what it was parsed from
    namespace: str
    name: str
    action: Action
    selector: Mapping[str, str] | None  # None: no selector at all
    target_refs: tuple[Mapping[str, Any], ...]
    rules: tuple[Rule, ...]
    dry_run: bool = False

    @classmethod
    def of(cls, resource: Resource) -> AuthorizationPolicy:
        where = f"AuthorizationPolicy {resource.namespace}/{resource.name}"
        spec = resource.spec
        try:
            action = Action(str(spec.get("action", "ALLOW")))
        except ValueError:
            raise PolicyError(f"{where}: unknown action {spec.get('action')!r}") from None
        raw_selector = spec.get("selector")
        selector = None if raw_selector is None else dict((raw_selector or {}).get("matchLabels") or {})
        target_refs = tuple(spec.get("targetRefs") or ([spec["targetRef"]] if spec.get("targetRef") else []))
        rules = tuple(
            _rule(rule or {}, f"{where} rule {index}") for index, rule in enumerate(spec.get("rules") or [])
        )
        dry_run = str(resource.annotations.get(DRY_RUN_ANNOTATION, "")).lower() == "true"
        return cls(resource, resource.namespace, resource.name, action, selector, target_refs, rules, dry_run)

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"

    @property
    def mesh_wide(self) -> bool:
        return self.namespace == ROOT_NAMESPACE

    def applies_to(self, namespace: str, labels: Mapping[str, str]) -> bool:
        """Whether it applies to a sidecar workload (ShouldAttachPolicy, non-gateway branch)."""
        if self.target_refs or self.namespace not in (ROOT_NAMESPACE, namespace):
            return False
        return selects(self.selector, labels)

    def matches(self, request: Request) -> bool:
        return any(rule.matches(request, self.action) for rule in self.rules)


def _conditions(entry: Mapping[str, Any], fields: Sequence[tuple[str, Attribute]], where: str) -> Clause:
    known = {name for name, _ in fields} | {negated(name) for name, _ in fields}
    unknown = sorted(set(entry) - known)
    if unknown:
        raise PolicyError(f"{where}: fields {unknown} are not modelled")
    return tuple(
        Condition(attribute, _strings(entry.get(name)), _strings(entry.get(negated(name))))
        for name, attribute in fields
        if entry.get(name) or entry.get(negated(name))
    )


def _strings(values: Any) -> tuple[str, ...]:
    return tuple(str(value) for value in values or ())


def _when(condition: Mapping[str, Any], where: str) -> Condition:
    key = str(condition.get("key", ""))
    values, not_values = _strings(condition.get("values")), _strings(condition.get("notValues"))
    if key in WHEN_KEYS:
        return Condition(WHEN_KEYS[key], values, not_values)
    if key.startswith(Attribute.ENVOY_FILTER.value + "."):
        return Condition(Attribute.ENVOY_FILTER, values, not_values, key)
    named = _NAMED_KEY.match(key)
    if named and named.group("attribute") == Attribute.REQUEST_HEADER.value:
        return Condition(Attribute.REQUEST_HEADER, values, not_values, named.group("name").lower())
    if named and named.group("attribute") == Attribute.REQUEST_CLAIMS.value:
        return Condition(Attribute.REQUEST_CLAIMS, values, not_values, named.group("name"))
    raise PolicyError(f"{where}: unknown condition key {key!r}")


def _rule(rule: Mapping[str, Any], where: str) -> Rule:
    when = [_when(condition, where) for condition in rule.get("when") or []]
    on_principal = tuple(c for c in when if c.attribute.on_principal)
    on_permission = tuple(c for c in when if not c.attribute.on_principal)
    principals = tuple(
        _conditions(entry.get("source") or {}, SOURCE_FIELDS, where) + on_principal
        for entry in rule.get("from") or []
    ) or (on_principal,)
    permissions = tuple(
        _conditions(entry.get("operation") or {}, OPERATION_FIELDS, where) + on_permission
        for entry in rule.get("to") or []
    ) or (on_permission,)
    for condition in (c for clause in (*principals, *permissions) for c in clause):
        _validate(condition, where)
    return Rule(principals, permissions)


def _validate(condition: Condition, where: str) -> None:
    for value in (*condition.values, *condition.not_values):
        attribute = condition.attribute
        if attribute is Attribute.DESTINATION_PORT and not value.isdigit():
            raise PolicyError(f"{where}: port {value!r} is not a number")
        if attribute in (Attribute.SOURCE_IP, Attribute.REMOTE_IP, Attribute.DESTINATION_IP):
            try:
                ipaddress.ip_network(value, strict=False)
            except ValueError:
                raise PolicyError(f"{where}: {value!r} is not an IP address or CIDR block") from None


def authorization_policies(objects: MeshObjects, *, skip_invalid: bool = False) -> list[AuthorizationPolicy]:
    """Every AuthorizationPolicy of a render, parsed once. An invalid one raises PolicyError,
    or is left out with `skip_invalid` (what the lint does: it reports it as IST0106)."""
    parsed = []
    for resource in objects.of_kind("AuthorizationPolicy"):
        try:
            parsed.append(AuthorizationPolicy.of(resource))
        except PolicyError:
            if not skip_invalid:
                raise
    return parsed


@dataclass(frozen=True)
class WorkloadPolicies:
    """The policies that apply to one workload, by action, as the builder groups them."""

    custom: tuple[AuthorizationPolicy, ...] = ()
    audit: tuple[AuthorizationPolicy, ...] = ()
    deny: tuple[AuthorizationPolicy, ...] = ()
    allow: tuple[AuthorizationPolicy, ...] = ()

    @classmethod
    def select(
        cls, policies: Iterable[AuthorizationPolicy], namespace: str, labels: Mapping[str, str]
    ) -> WorkloadPolicies:
        applying = [p for p in policies if p.applies_to(namespace, labels)]

        def of(action: Action) -> tuple[AuthorizationPolicy, ...]:
            return tuple(p for p in applying if p.action is action)

        return cls(of(Action.CUSTOM), of(Action.AUDIT), of(Action.DENY), of(Action.ALLOW))

    def allows(self, request: Request) -> bool:
        if any(p.matches(request) for p in self.deny if not p.dry_run):
            return False
        enforced = [p for p in self.allow if not p.dry_run]
        return not enforced or any(p.matches(request) for p in enforced)
