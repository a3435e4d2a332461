"""The checks whose mistakes always trip a second code too (so the one-code corpus cannot hold
them), each run alone on the rendered manifests with that one mistake."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

from shopmesh.manifests.analyzers import authorization, istio_routing, workloads
from shopmesh.manifests.findings import Inventory


def _findings(docs: list[dict[str, Any]], analyzer: Callable[[Inventory], None]) -> list[str]:
    inventory = Inventory.of(docs)
    analyzer(inventory)
    return [str(f) for f in inventory.findings]


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_ist0113_destination_rule_disabling_mtls_under_strict(default_docs: list[dict[str, Any]]) -> None:
    docs = copy.deepcopy(default_docs)
    assert _findings(docs, istio_routing.mtls_conflicts) == []
    _named(docs, "DestinationRule", "payment")["spec"]["trafficPolicy"]["tls"]["mode"] = "DISABLE"
    [finding] = _findings(docs, istio_routing.mtls_conflicts)
    assert finding.startswith("IST0113 error DestinationRule/shop/payment: ")
    assert 'Policy object "shop/default" specifies STRICT' in finding


def test_kia0102_method_neither_http_nor_grpc(default_docs: list[dict[str, Any]]) -> None:
    docs = copy.deepcopy(default_docs)
    operation = _named(docs, "AuthorizationPolicy", "payment")["spec"]["rules"][0]["to"][0]["operation"]
    operation["methods"] = ["post"]
    findings = _findings(docs, authorization.operation_paths_and_methods)
    assert (
        "KIA0102 warning AuthorizationPolicy/shop/payment: "
        'Only HTTP methods and fully-qualified gRPC names are allowed: "post"'
    ) in findings


def test_kia1301_workload_without_any_policy(default_docs: list[dict[str, Any]]) -> None:
    docs = copy.deepcopy(default_docs)
    assert _findings(docs, workloads.workloads_covered) == []
    stray = copy.deepcopy(_named(docs, "Deployment", "payment"))
    stray["metadata"]["namespace"] = "elsewhere"
    docs.append(stray)
    assert _findings(docs, workloads.workloads_covered) == [
        "KIA1301 warning Deployment/elsewhere/payment: "
        "This workload is not covered by any authorization policy"
    ]


def test_kia1301_a_root_namespace_policy_covers_workloads_of_every_namespace(
    default_docs: list[dict[str, Any]],
) -> None:
    """Kiali's hasCoveringAuthPolicy counts the root namespace's policies, selector-less ones
    for every workload."""
    docs = copy.deepcopy(default_docs)
    stray = copy.deepcopy(_named(docs, "Deployment", "payment"))
    stray["metadata"]["namespace"] = "elsewhere"
    mesh_wide = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "mesh-deny-all", "namespace": "istio-system"},
        "spec": {},
    }
    assert _findings([*docs, stray, mesh_wide], workloads.workloads_covered) == []
