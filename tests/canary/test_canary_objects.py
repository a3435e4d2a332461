"""The objects Flagger makes for a Canary: on the project's flagger stack (rendered by kustomize)
and on a Deployment that selects on `app`, Flagger's usual case."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml
from google.protobuf import json_format

from shopmesh.canary import CanaryError
from shopmesh.canary.objects import (
    generate,
    initialised,
    routes,
    running,
    selector_label,
    served,
    set_routes,
)
from shopmesh.canary.spec import canaries, read_canary
from shopmesh.localmesh.flagger import write_routes
from shopmesh.localmesh.placement import place
from shopmesh.localmesh.translate import names
from shopmesh.localmesh.translate.translator import translate
from shopmesh.manifests import schema
from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.model import MeshObjects, Resource
from shopmesh.manifests.render import project_stack

REPOSITORY = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def flagger_docs() -> list[dict[str, Any]]:
    """The flagger stack, rendered by kubectl kustomize (so its tests are slow)."""
    return project_stack(REPOSITORY, "flagger").render()


def _by_kind_and_name(documents: tuple[dict[str, Any], ...]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(d["kind"], d["metadata"]["name"]): d for d in documents}


@pytest.mark.slow  # kubectl kustomize
def test_the_projects_canary_generates_flaggers_objects(flagger_docs: list[dict[str, Any]]) -> None:
    objects = MeshObjects(flagger_docs)
    (canary,) = canaries(objects)
    made = _by_kind_and_name(generate(objects, canary).documents)
    assert sorted(made) == [
        ("Deployment", "order-primary"),
        ("DestinationRule", "order-canary"),
        ("DestinationRule", "order-primary"),
        ("Service", "order"),
        ("Service", "order-canary"),
        ("Service", "order-primary"),
        ("VirtualService", "order"),
    ]
    primary = made[("Deployment", "order-primary")]
    pod_labels = primary["spec"]["template"]["metadata"]["labels"]
    assert pod_labels["app.kubernetes.io/name"] == "order-primary"  # the selector label, rewritten
    assert pod_labels["app"] == "order"  # so the policies selecting app: order hold for it
    assert primary["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "order-primary"}}
    assert primary["metadata"]["labels"] == {"app.kubernetes.io/name": "order-primary"}
    assert "flagger-id" in primary["spec"]["template"]["metadata"]["annotations"]
    secrets = {
        env["valueFrom"]["secretKeyRef"]["name"]
        for container in primary["spec"]["template"]["spec"]["containers"]
        for env in container["env"]
        if "secretKeyRef" in env.get("valueFrom", {})
    }
    assert secrets == {"postgres-credentials-primary"}

    assert made[("Service", "order-canary")]["spec"]["selector"] == {"app.kubernetes.io/name": "order"}
    assert made[("Service", "order-primary")]["spec"]["selector"] == {
        "app.kubernetes.io/name": "order-primary"
    }
    apex = made[("Service", "order")]
    assert apex["metadata"]["labels"]["app"] == "order"  # not Flagger's: its metadata is kept
    assert apex["spec"]["ports"] == [
        {"name": "grpc", "protocol": "TCP", "port": 50051, "targetPort": "grpc", "appProtocol": "grpc"}
    ]
    assert apex["spec"]["selector"] == {"app.kubernetes.io/name": "order-primary"}

    policy = canary.service["trafficPolicy"]
    assert made[("DestinationRule", "order-canary")]["spec"] == {
        "host": "order-canary",
        "trafficPolicy": policy,
    }
    virtual_service = made[("VirtualService", "order")]["spec"]
    assert virtual_service["hosts"] == ["shop.example.com", "order"]
    assert virtual_service["gateways"] == ["shop-gateway", "mesh"]
    (route,) = virtual_service["http"]
    assert route["match"] == canary.service["match"]
    assert route["retries"] == canary.service["retries"]
    assert "timeout" not in route
    assert route["route"] == [
        {"destination": {"host": "order-primary"}, "weight": 100},
        {"destination": {"host": "order-canary"}, "weight": 0},
    ]


@pytest.mark.slow  # kubectl kustomize
def test_every_generated_object_passes_its_strict_schema(flagger_docs: list[dict[str, Any]]) -> None:
    objects = MeshObjects(flagger_docs)
    (canary,) = canaries(objects)
    inventory = Inventory.of(generate(objects, canary).documents)
    schema.validate(inventory)
    assert inventory.findings == []


@pytest.mark.slow  # kubectl kustomize
def test_the_local_mesh_serves_flaggers_objects_and_their_weights(flagger_docs: list[dict[str, Any]]) -> None:
    """What a local rehearsal serves: the stack as Flagger runs it, weights moved by rewriting
    its VirtualService. (The load tester is Flagger's, not a service the local mesh runs.)"""
    documents = [
        d
        for d in served(MeshObjects(flagger_docs), {"Canary/shop/order": (90, 10)})
        if d["metadata"]["name"] != "flagger-loadtester"
    ]
    objects = MeshObjects(documents)
    placement = place(objects, subnet=10)
    assert {i.name for i in placement.instances} >= {"order-0", "order-primary-0"}
    snapshot = translate(objects, placement)
    routes_to_order = snapshot.get(names.ROUTE, "outbound|50051||order.shop.svc.cluster.local")
    assert routes_to_order is not None
    (route, *_) = json_format.MessageToDict(routes_to_order)["virtualHosts"][0]["routes"]
    assert route["route"]["weightedClusters"]["clusters"] == [
        {"name": "outbound|50051||order-primary.shop.svc.cluster.local", "weight": 90},
        {"name": "outbound|50051||order-canary.shop.svc.cluster.local", "weight": 10},
    ]
    assignment = snapshot.get(names.ENDPOINT, "outbound|50051||order-canary.shop.svc.cluster.local")
    assert assignment is not None
    endpoints = json_format.MessageToDict(assignment)["endpoints"][0]["lbEndpoints"]
    canary_pods = {e["endpoint"]["address"]["socketAddress"]["address"] for e in endpoints}
    assert canary_pods == {i.address for i in placement.instances if i.name == "order-0"}


def _deployment(selector: dict[str, str]) -> dict[str, Any]:
    labels = {"app": "order", "version": "v1"}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "order", "namespace": "shop", "labels": {"app": "order", "team": "shop"}},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": selector},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "server"}]}},
        },
    }


CANARY = {
    "apiVersion": "flagger.app/v1beta1",
    "kind": "Canary",
    "metadata": {"name": "order", "namespace": "shop"},
    "spec": {
        "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "order"},
        "service": {"port": 50051, "portName": "grpc"},
        "analysis": {"interval": "1m", "threshold": 1, "stepWeight": 10},
    },
}


def test_selecting_on_app_gives_the_primary_app_order_primary() -> None:
    objects = MeshObjects([_deployment({"app": "order"}), CANARY])
    made = _by_kind_and_name(generate(objects, read_canary(CANARY)).documents)
    primary = made[("Deployment", "order-primary")]
    assert primary["spec"]["template"]["metadata"]["labels"] == {"app": "order-primary", "version": "v1"}
    assert primary["metadata"]["labels"] == {"app": "order-primary"}  # no include-label-prefix
    assert primary["spec"]["replicas"] == 3
    assert made[("Service", "order")]["metadata"]["labels"] == {"app": "order"}  # created: named by it
    assert made[("Service", "order-canary")]["spec"]["selector"] == {"app": "order"}
    assert made[("Service", "order-primary")]["spec"]["selector"] == {"app": "order-primary"}
    assert made[("VirtualService", "order")]["spec"]["gateways"] == ["mesh"]  # none given: the mesh
    assert made[("VirtualService", "order")]["spec"]["hosts"] == ["order"]


def test_a_selector_without_flaggers_labels_is_refused() -> None:
    with pytest.raises(CanaryError, match=r"spec\.selector\.matchLabels must contain one of \['app', 'name'"):
        selector_label(Resource(_deployment({"version": "v1"})))


def test_weights_are_written_and_read_back() -> None:
    canary = read_canary(CANARY)
    virtual_service = set_routes(canary, 70, 30)
    assert routes(canary, virtual_service) == (70, 30)


def test_running_keeps_the_weights_flagger_last_wrote(tmp_path: Path) -> None:
    """The local mesh's view of a stack under Flagger: the VirtualService Flagger wrote (here
    the routes file `shopmesh canary` rewrites) keeps its weights; Flagger's other objects are
    made from the Canary."""
    canary = read_canary(CANARY)
    deployment = _deployment({"app": "order"})
    routes_path = tmp_path / "shop-order.virtualservice.yaml"
    write_routes(routes_path, canary, 70, 30)
    written = yaml.safe_load(routes_path.read_text())
    stack = running(MeshObjects([CANARY, deployment, written]))
    (virtual_service,) = stack.of_kind("VirtualService")
    assert routes(canary, virtual_service.doc) == (70, 30)
    assert sorted(d.name for d in stack.of_kind("Deployment")) == ["order", "order-primary"]
    assert sorted(s.name for s in stack.of_kind("Service")) == ["order", "order-canary", "order-primary"]
    # a hand-written VirtualService of the service is not Flagger's: overwritten, at 100/0
    hand_written = copy.deepcopy(written)
    hand_written["spec"]["http"][0]["route"] = [{"destination": {"host": "order", "subset": "v1"}}]
    (virtual_service,) = running(MeshObjects([CANARY, deployment, hand_written])).of_kind("VirtualService")
    assert routes(canary, virtual_service.doc) == (100, 0)
    plain = MeshObjects([deployment])
    assert running(plain) is plain  # no Canary: the render as it is


def test_initialised_replaces_what_flagger_overwrites_and_names_what_it_made() -> None:
    hand_written = {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": "order", "namespace": "shop"},
        "spec": {"hosts": ["order"], "http": [{"route": [{"destination": {"host": "order"}}]}]},
    }
    broken = copy.deepcopy(CANARY)
    broken["metadata"]["name"] = "payment"
    broken["spec"]["targetRef"]["name"] = "paymnt"
    cluster = initialised(MeshObjects([_deployment({"app": "order"}), CANARY, hand_written, broken]))
    (replaced,) = cluster.replaced
    assert replaced.doc is hand_written
    assert cluster.replaced[replaced].api_version == "networking.istio.io/v1beta1"
    assert set(cluster.generated.values()) == {"Canary/shop/order"}
    assert len(cluster.generated) == 7
    assert [r.doc for r in cluster.resources if r.kind == "VirtualService"] != [hand_written]
    [(failed, reason)] = cluster.failed.items()
    assert failed.name == "payment"
    assert "deployment paymnt.shop not found" in reason
