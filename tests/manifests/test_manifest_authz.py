"""The authorization matrix Istio computes from istio/ equals the intended one, written out
here by hand from the design, every caller x every method. (The evaluation rules themselves:
test_manifest_policy.py.)"""

from __future__ import annotations

from typing import Any

from services.runtime.registry import declarations
from shopmesh.manifests.authz import callers, grpc_paths, matrix, service_order
from shopmesh.manifests.findings import Inventory

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


def test_the_intended_matrix_decides_every_path_of_every_declared_service() -> None:
    # A method or service added to the contracts must be given its intended callers here.
    served = {(service, path) for service in declarations() for path in grpc_paths(service)}
    assert set(INTENDED) == served


def test_callers_are_the_identities_the_manifests_name(default_inventory: Inventory) -> None:
    assert tuple(c.name for c in callers(default_inventory)) == CALLER_NAMES
    by_name = {c.name: c.principal for c in callers(default_inventory)}
    assert by_name["ingress"] == "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"
    assert by_name["operator"] == "cluster.local/ns/shop/sa/operator"
    assert by_name["no-identity"] is None


def test_services_are_ordered_by_call_depth() -> None:
    order = [d.name for d in service_order()]
    for declared in declarations().values():
        for callee in declared.calls:
            assert order.index(declared.name) < order.index(callee)


def test_markdown_in_docs_is_current(repository: Any, default_inventory: Inventory, capsys: Any) -> None:
    from shopmesh.cli import main

    assert main(["authz", str(repository), "--markdown"]) == 0
    assert (repository / "docs" / "authz.md").read_text(encoding="utf-8") == capsys.readouterr().out
