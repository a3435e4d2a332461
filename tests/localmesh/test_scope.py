"""Sidecar egress scope: a pod sees only the services its Sidecar lists (istio/base/<service>.yaml
lets order reach inventory and payment, and inventory reach only its database)."""

from __future__ import annotations

import pytest

from localmesh.meshcalls import probe, target
from shopmesh.localmesh.supervisor import LocalMesh
from shopmesh.localmesh.translate.scope import egress_scopes, scope_for
from shopmesh.manifests.model import MeshObjects

SIDECARS = """
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: order, namespace: shop}
spec:
  workloadSelector: {labels: {app: order}}
  egress: [{hosts: [./inventory.shop.svc.cluster.local, "istio-system/*"]}]
---
apiVersion: networking.istio.io/v1
kind: Sidecar
metadata: {name: default, namespace: shop}
spec:
  egress: [{hosts: ["./*"]}]
"""


@pytest.mark.parametrize(
    ("labels", "hostname", "visible"),
    [
        ({"app": "order"}, "inventory.shop.svc.cluster.local", True),
        ({"app": "order"}, "payment.shop.svc.cluster.local", False),
        ({"app": "order"}, "istiod.istio-system.svc.cluster.local", True),
        ({"app": "payment"}, "payment.shop.svc.cluster.local", True),  # the namespace default: ./*
        ({"app": "payment"}, "istiod.istio-system.svc.cluster.local", False),
    ],
)
def test_the_most_specific_sidecar_decides(labels: dict[str, str], hostname: str, visible: bool) -> None:
    scope = scope_for(egress_scopes(MeshObjects.from_yaml(SIDECARS)), "shop", labels)
    assert scope is not None
    assert scope.allows(hostname) is visible


def test_no_sidecar_means_the_whole_registry() -> None:
    assert scope_for(egress_scopes(MeshObjects.from_yaml(SIDECARS)), "other", {"app": "x"}) is None


def test_a_pod_cannot_reach_a_service_outside_its_sidecar_scope(mesh: LocalMesh) -> None:
    plan = [{"target": target("payment"), "method": "/shop.payment.v1.PaymentService/Refund", "timeout": 3}]
    (from_inventory,) = probe(mesh.state.bootstrap_file("inventory-0"), plan)
    # No listener is ever served to it: as with istiod, the client waits for one until the
    # call's deadline (gRPC would give up on the resource after 15 s).
    assert from_inventory["code"] == "DEADLINE_EXCEEDED", from_inventory
    assert from_inventory["peer"] == ""
    (from_order,) = probe(mesh.state.bootstrap_file("order-0"), [{**plan[0], "timeout": 15}])
    assert from_order["code"] == "INVALID_ARGUMENT", from_order  # reached payment's service
    assert from_order["peer"].startswith("sidecar~")
