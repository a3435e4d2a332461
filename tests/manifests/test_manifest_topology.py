"""docs/topology.svg is what `shopmesh topology` draws from the manifests, byte for byte."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.topology import Edge, edges, nodes, render_svg


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


def test_nodes_are_layered_by_call_depth_callers_left_databases_right(default_inventory: Inventory) -> None:
    placed = {node.key: node for node in nodes(default_inventory, edges(default_inventory))}
    assert {key for key, node in placed.items() if node.external} == {"ingress", "operator"}
    assert placed["ingress"].column == placed["operator"].column == 0
    assert placed["order"].column == 1  # called from outside
    assert placed["inventory"].column == placed["payment"].column == 2  # called by order
    assert placed["postgres"].column == 3  # no gRPC: rightmost
    assert not placed["postgres"].grpc


def test_a_workload_nobody_calls_is_still_drawn(default_docs: list[dict[str, Any]]) -> None:
    lonely = copy.deepcopy(
        next(d for d in default_docs if d["metadata"]["name"] == "payment" and d["kind"] == "Deployment")
    )
    lonely["metadata"]["name"] = "lonely"
    lonely["spec"]["template"]["metadata"]["labels"] = {"app": "lonely", "version": "v1"}
    lonely["spec"]["template"]["spec"]["serviceAccountName"] = "lonely"
    svg = render_svg(Inventory.of([*default_docs, lonely]))
    assert ">lonely</text>" in svg


def test_an_edge_to_no_workload_is_an_error_not_a_silent_drop(default_inventory: Inventory) -> None:
    with pytest.raises(LookupError, match="ghost"):
        nodes(default_inventory, [Edge("ingress", "ghost", ("Get",))])
