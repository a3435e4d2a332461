"""docs/topology.svg is what `shopmesh topology` draws from the manifests, byte for byte."""

from __future__ import annotations

from pathlib import Path

from shopmesh.manifests.model import Inventory
from shopmesh.manifests.topology import edges, render_svg


def test_committed_picture_is_regenerated_identically(repository: Path, default_inventory: Inventory) -> None:
    committed = (repository / "docs" / "topology.svg").read_text(encoding="utf-8")
    assert render_svg(default_inventory) == committed, "run: shopmesh topology -o docs/topology.svg"


def test_edges_are_the_allowed_calls(default_inventory: Inventory) -> None:
    drawn = {(e.source, e.target): e.label for e in edges(default_inventory)}
    assert drawn == {
        ("ingress", "inventory"): ("ListProducts", "GetProduct", "reflection"),
        ("ingress", "order"): (
            "CreateOrder",
            "GetOrder",
            "ListOrders",
            "CancelOrder",
            "WatchOrder",
            "reflection",
        ),
        ("inventory", "postgres"): ("tcp 5432",),
        ("operator", "inventory"): ("ListProducts", "GetProduct", "AdjustStock", "reflection"),
        ("operator", "order"): ("GetOrder", "ListOrders", "WatchOrder", "reflection"),
        ("operator", "payment"): ("GetPayment", "reflection"),
        ("order", "inventory"): ("ReserveStock", "ReleaseReservation", "CommitReservation"),
        ("order", "payment"): ("Charge", "Refund"),
        ("order", "postgres"): ("tcp 5432",),
        ("payment", "postgres"): ("tcp 5432",),
    }
