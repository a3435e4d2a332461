"""The AuthorizationPolicy model follows Istio's rules (shopmesh/manifests/policy.py cites them),
on small policies of its own: which policies apply to a pod, how a rule matches, the decision."""

from __future__ import annotations

from typing import Any

import pytest

from shopmesh.manifests.model import MeshObjects, Resource
from shopmesh.manifests.policy import (
    Action,
    Attribute,
    AuthorizationPolicy,
    Pattern,
    PolicyError,
    Request,
    WorkloadPolicies,
    authorization_policies,
)

ALICE = "cluster.local/ns/shop/sa/alice"
BOB = "cluster.local/ns/shop/sa/bob"
LABELS = {"app": "w", "version": "v1"}


def _policy(name: str, spec: dict[str, Any], namespace: str = "shop", **metadata: Any) -> AuthorizationPolicy:
    return AuthorizationPolicy.of(
        Resource(
            {
                "apiVersion": "security.istio.io/v1",
                "kind": "AuthorizationPolicy",
                "metadata": {"name": name, "namespace": namespace, **metadata},
                "spec": spec,
            }
        )
    )


def _allows(policies: list[AuthorizationPolicy], request: Request, namespace: str = "shop") -> bool:
    return WorkloadPolicies.select(policies, namespace, LABELS).allows(request)


def _grpc(principal: str | None, path: str = "/p.S/M") -> Request:
    return Request(principal, 50051, path)


ALLOW_ALICE = {
    "selector": {"matchLabels": {"app": "w"}},
    "rules": [{"from": [{"source": {"principals": ["*/sa/alice"]}}]}],
}


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("/a/B", "/a/B", True),
        ("/a/B", "/a/Bc", False),
        ("/a/*", "/a/B", True),
        ("/a/*", "/b/B", False),
        ("*/B", "/a/B", True),
        ("*/B", "/a/C", False),
        ("*", "anything", True),
        # matcher/string.go checks the leading `*` first: `*a*` is a suffix match on "a*".
        ("*a*", "xa*", True),
        ("*a*", "xab", False),
    ],
)
def test_istio_string_matching(pattern: str, value: str, expected: bool) -> None:
    assert Pattern.of(pattern).matches(value) is expected


def test_no_policy_allows_everything() -> None:
    assert _allows([], _grpc(None))


def test_any_allow_policy_denies_what_it_does_not_allow() -> None:
    policies = [_policy("a", ALLOW_ALICE)]
    assert _allows(policies, _grpc(ALICE))
    assert not _allows(policies, _grpc(BOB))
    assert not _allows(policies, _grpc(None))


def test_deny_is_evaluated_before_allow() -> None:
    deny = {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/p.S/*"]}}]}]}
    policies = [_policy("a", ALLOW_ALICE), _policy("d", deny)]
    assert not _allows(policies, _grpc(ALICE))
    assert _allows(policies, _grpc(ALICE, "/q.S/M"))


def test_empty_spec_allows_nothing_and_not_principals_match_plaintext() -> None:
    assert not _allows([_policy("deny-all", {})], _grpc(ALICE))
    not_alice = {"rules": [{"from": [{"source": {"notPrincipals": ["*/sa/alice"]}}]}]}
    assert _allows([_policy("n", not_alice)], _grpc(None))
    assert not _allows([_policy("n", not_alice)], _grpc(ALICE))


def test_a_wildcard_principal_needs_an_identity() -> None:
    anyone = {"rules": [{"from": [{"source": {"principals": ["*"]}}]}]}
    assert _allows([_policy("p", anyone)], _grpc(BOB))
    assert not _allows([_policy("p", anyone)], _grpc(None))  # `*` is ".+": a value must be there


def test_policies_apply_in_their_namespace_and_the_root_namespace() -> None:
    assert _allows([_policy("deny-all", {}, namespace="elsewhere")], _grpc(ALICE))
    assert not _allows([_policy("deny-all", {}, namespace="istio-system")], _grpc(ALICE))


def test_a_root_namespace_policy_with_a_selector_applies_in_every_namespace() -> None:
    """policyattachment.go: root-namespace policies are looked up for every workload and
    attached when their selector matches, whatever the workload's namespace."""
    root = _policy("mesh-w", {"selector": {"matchLabels": {"app": "w"}}}, namespace="istio-system")
    assert root.applies_to("shop", LABELS)
    assert root.applies_to("billing", LABELS)
    assert not root.applies_to("shop", {"app": "other"})
    assert not _allows([root], _grpc(ALICE), namespace="billing")
    elsewhere = _policy("w", {"selector": {"matchLabels": {"app": "w"}}}, namespace="billing")
    assert not elsewhere.applies_to("shop", LABELS)


def test_a_target_ref_policy_never_applies_to_a_sidecar() -> None:
    waypoint = _policy(
        "wp", {"targetRefs": [{"kind": "Gateway", "group": "gateway.networking.k8s.io", "name": "w"}]}
    )
    assert not waypoint.applies_to("shop", LABELS)
    assert _allows([waypoint], _grpc(ALICE))


def test_dry_run_and_audit_policies_decide_nothing() -> None:
    dry = _policy("dry", {}, annotations={"istio.io/dry-run": "true"})
    audit = _policy("audit", {"action": "AUDIT", "rules": [{}]})
    assert dry.dry_run
    assert audit.action is Action.AUDIT
    assert _allows([dry, audit], _grpc(ALICE))


def test_from_entries_are_ored_and_fields_anded() -> None:
    rule = {
        "rules": [
            {
                "from": [
                    {"source": {"principals": [ALICE]}},
                    {"source": {"namespaces": ["ops*"], "notPrincipals": ["*/sa/intern"]}},
                ]
            }
        ]
    }
    policies = [_policy("p", rule)]
    assert _allows(policies, _grpc(ALICE))
    assert _allows(policies, _grpc("cluster.local/ns/ops-eu/sa/admin"))
    assert not _allows(policies, _grpc("cluster.local/ns/ops-eu/sa/intern"))
    assert not _allows(policies, _grpc(BOB))


def test_when_conditions_join_the_side_they_constrain() -> None:
    policy = _policy(
        "p",
        {
            "rules": [
                {
                    "from": [{"source": {"principals": [ALICE]}}],
                    "to": [{"operation": {"methods": ["POST"]}}],
                    "when": [
                        {"key": "request.headers[X-Tenant]", "values": ["acme"]},
                        {"key": "destination.port", "values": ["50051"]},
                    ],
                }
            ]
        },
    )
    [rule] = policy.rules
    [principal] = rule.principals
    [permission] = rule.permissions
    # model.go: request headers are a principal's condition, the destination port a permission's.
    assert [c.attribute for c in principal] == [Attribute.SOURCE_PRINCIPAL, Attribute.REQUEST_HEADER]
    assert [c.attribute for c in permission] == [Attribute.METHOD, Attribute.DESTINATION_PORT]
    assert principal[1].name == "x-tenant"
    assert _allows([policy], Request(ALICE, 50051, "/p.S/M", headers={"x-tenant": "acme"}))
    assert not _allows([policy], Request(ALICE, 50051, "/p.S/M"))
    assert not _allows([policy], Request(ALICE, 50052, "/p.S/M", headers={"x-tenant": "acme"}))


def test_http_attributes_on_a_tcp_connection_drop_allow_rules_but_not_deny_rules() -> None:
    tcp = Request(ALICE, 5432)
    with_path = {"rules": [{"to": [{"operation": {"ports": ["5432"], "paths": ["/x"]}}]}]}
    assert not _allows([_policy("allow", with_path)], tcp)  # the ALLOW rule is dropped
    denying = {"action": "DENY", **with_path}
    assert not _allows([_policy("deny", denying)], tcp)  # the path is dropped: DENY still matches
    ports_only = {"rules": [{"to": [{"operation": {"ports": ["5432"]}}]}]}
    assert _allows([_policy("allow", ports_only)], tcp)
    assert not _allows([_policy("allow", ports_only)], Request(ALICE, 5433))


def test_attributes_the_request_does_not_carry_take_the_safe_side() -> None:
    by_ip = {"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.0/8"]}}]}]}
    assert not _allows([_policy("allow", by_ip)], _grpc(ALICE))
    assert not _allows([_policy("deny", {"action": "DENY", **by_ip})], _grpc(ALICE))


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"action": "MAYBE"}, "unknown action"),
        ({"rules": [{"when": [{"key": "request.colour", "values": ["red"]}]}]}, "unknown condition key"),
        ({"rules": [{"to": [{"operation": {"ports": ["http"]}}]}]}, "is not a number"),
        ({"rules": [{"from": [{"source": {"ipBlocks": ["10.0.0.300"]}}]}]}, "not an IP address"),
        ({"rules": [{"from": [{"source": {"principal": ["x"]}}]}]}, "not modelled"),
    ],
)
def test_invalid_policies_are_refused_with_their_name(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(PolicyError, match=f"AuthorizationPolicy shop/bad.*{message}"):
        _policy("bad", spec)


def test_a_render_is_parsed_once_and_invalid_policies_can_be_skipped() -> None:
    objects = MeshObjects(
        [
            {"kind": "AuthorizationPolicy", "metadata": {"name": "ok", "namespace": "shop"}, "spec": {}},
            {"kind": "AuthorizationPolicy", "metadata": {"name": "bad"}, "spec": {"action": "MAYBE"}},
        ]
    )
    with pytest.raises(PolicyError, match="default/bad"):
        authorization_policies(objects)
    assert [p.ref for p in authorization_policies(objects, skip_invalid=True)] == ["shop/ok"]
