"""The authorization matrix Istio computes from istio/ equals the intended one, written out
here by hand from the design, every caller x every method; and the evaluation follows
Istio's rules on small policies of its own."""

from __future__ import annotations

from typing import Any

import pytest

from shopmesh.manifests.authz import CALLERS, Caller, Request, allowed, matrix, string_matches
from shopmesh.manifests.model import Inventory, Workload

CALLER_NAMES = ("ingress", "order", "inventory", "payment", "operator", "other-workload", "no-identity")
R1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
R1A = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
HEALTH = "/grpc.health.v1.Health/Check"
ORDER = "/shop.order.v1.OrderService/"
INVENTORY = "/shop.inventory.v1.InventoryService/"
PAYMENT = "/shop.payment.v1.PaymentService/"

#: (service, path) -> the callers allowed; everyone else is denied. From the design:
#: ingress -> the order API and the public catalog (+ reflection on both);
#: order -> ReserveStock/ReleaseReservation/CommitReservation and Charge/Refund (no reads);
#: operator -> AdjustStock, the read methods and reflection of all three; nobody -> health.
INTENDED: dict[tuple[str, str], set[str]] = {
    ("order", ORDER + "CreateOrder"): {"ingress"},
    ("order", ORDER + "GetOrder"): {"ingress", "operator"},
    ("order", ORDER + "ListOrders"): {"ingress", "operator"},
    ("order", ORDER + "CancelOrder"): {"ingress"},
    ("order", ORDER + "WatchOrder"): {"ingress", "operator"},
    ("order", R1): {"ingress", "operator"},
    ("order", R1A): {"ingress", "operator"},
    ("order", HEALTH): set(),
    ("inventory", INVENTORY + "ListProducts"): {"ingress", "operator"},
    ("inventory", INVENTORY + "GetProduct"): {"ingress", "operator"},
    ("inventory", INVENTORY + "ReserveStock"): {"order"},
    ("inventory", INVENTORY + "ReleaseReservation"): {"order"},
    ("inventory", INVENTORY + "CommitReservation"): {"order"},
    ("inventory", INVENTORY + "AdjustStock"): {"operator"},
    ("inventory", R1): {"ingress", "operator"},
    ("inventory", R1A): {"ingress", "operator"},
    ("inventory", HEALTH): set(),
    ("payment", PAYMENT + "Charge"): {"order"},
    ("payment", PAYMENT + "Refund"): {"order"},
    ("payment", PAYMENT + "GetPayment"): {"operator"},
    ("payment", R1): {"operator"},
    ("payment", R1A): {"operator"},
    ("payment", HEALTH): set(),
}


def test_matrix_equals_the_intended_one(default_inventory: Inventory) -> None:
    computed = {(c.service, c.path, c.caller): c.allowed for c in matrix(default_inventory)}
    intended = {
        (service, path, caller): caller in callers
        for (service, path), callers in INTENDED.items()
        for caller in CALLER_NAMES
    }
    assert computed == intended


def test_callers_are_the_designed_identities() -> None:
    assert tuple(c.name for c in CALLERS) == CALLER_NAMES


def test_markdown_in_docs_is_current(repository: Any, default_inventory: Inventory, capsys: Any) -> None:
    from shopmesh.cli import main

    assert main(["authz", str(repository), "--markdown"]) == 0
    assert (repository / "docs" / "authz.md").read_text(encoding="utf-8") == capsys.readouterr().out


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("/a/B", "/a/B", True),
        ("/a/B", "/a/Bc", False),
        ("/a/*", "/a/B", True),
        ("/a/*", "/b/B", False),
        ("*/B", "/a/B", True),
        ("*/B", "/a/C", False),
        ("*", "", True),
    ],
)
def test_istio_string_matching(pattern: str, value: str, expected: bool) -> None:
    assert string_matches(pattern, value) is expected


def _policy(name: str, spec: dict[str, Any], namespace: str = "shop") -> dict[str, Any]:
    return {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }


WORKLOAD = Workload(
    Inventory.of(
        [
            {
                "kind": "Deployment",
                "metadata": {"name": "w", "namespace": "shop"},
                "spec": {"template": {"metadata": {"labels": {"app": "w"}}}},
            }
        ]
    ).resources[0]
)
ALICE = Caller("alice", "cluster.local/ns/shop/sa/alice")
PLAIN = Caller("plain", None)
ALLOW_ALICE = {
    "selector": {"matchLabels": {"app": "w"}},
    "rules": [{"from": [{"source": {"principals": ["*/sa/alice"]}}]}],
}


def _allowed(policies: list[dict[str, Any]], caller: Caller, path: str = "/p.S/M") -> bool:
    return allowed(Inventory.of(policies).resources, WORKLOAD, Request(caller, path, 1))


def test_no_policy_allows_everything() -> None:
    assert _allowed([], PLAIN)


def test_any_allow_policy_denies_what_it_does_not_allow() -> None:
    policies = [_policy("a", ALLOW_ALICE)]
    assert _allowed(policies, ALICE)
    assert not _allowed(policies, Caller("bob", "cluster.local/ns/shop/sa/bob"))
    assert not _allowed(policies, PLAIN)


def test_deny_is_evaluated_before_allow() -> None:
    deny = {"action": "DENY", "rules": [{"to": [{"operation": {"paths": ["/p.S/*"]}}]}]}
    assert not _allowed([_policy("a", ALLOW_ALICE), _policy("d", deny)], ALICE)
    assert _allowed([_policy("a", ALLOW_ALICE), _policy("d", deny)], ALICE, "/q.S/M")


def test_empty_spec_allows_nothing_and_not_principals_match_plaintext() -> None:
    assert not _allowed([_policy("deny-all", {})], ALICE)
    not_alice = {"rules": [{"from": [{"source": {"notPrincipals": ["*/sa/alice"]}}]}]}
    assert _allowed([_policy("n", not_alice)], PLAIN)
    assert not _allowed([_policy("n", not_alice)], ALICE)


def test_policies_of_other_namespaces_do_not_apply_but_the_root_namespace_does() -> None:
    assert _allowed([_policy("deny-all", {}, namespace="elsewhere")], ALICE)
    assert not _allowed([_policy("deny-all", {}, namespace="istio-system")], ALICE)
