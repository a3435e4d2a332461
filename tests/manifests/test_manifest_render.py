"""`kubectl kustomize` renders k8s/, istio/ and every overlay, with the objects the design needs."""

from __future__ import annotations

from collections import Counter
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from services.runtime.registry import declarations
from shopmesh.manifests import render
from shopmesh.manifests.render import RenderError, kustomize

REPOSITORY = Path(__file__).resolve().parents[2]
KUSTOMIZATIONS = sorted(
    str(path.parent.relative_to(REPOSITORY))
    for top in ("k8s", "istio")
    for path in [
        REPOSITORY / top / "kustomization.yaml",
        *(REPOSITORY / top / "overlays").glob("*/kustomization.yaml"),
    ]
)


@cache
def rendered(directory: str) -> list[dict[str, Any]]:
    return kustomize(REPOSITORY / directory)


def test_every_top_level_directory_and_overlay_is_listed() -> None:
    assert KUSTOMIZATIONS == [
        "istio",
        "istio/overlays/canary",
        "istio/overlays/flagger",
        "k8s",
        "k8s/overlays/canary",
        "k8s/overlays/flagger",
    ]


@pytest.mark.slow  # kubectl kustomize
@pytest.mark.parametrize("directory", KUSTOMIZATIONS)
def test_kustomize_renders(directory: str) -> None:
    docs = rendered(directory)
    assert docs, f"{directory} rendered nothing"
    assert all(doc["metadata"].get("namespace") == "shop" for doc in docs if doc["kind"] != "Namespace")


def _kinds(directory: str) -> Counter[str]:
    return Counter(doc["kind"] for doc in rendered(directory))


@pytest.mark.slow  # kubectl kustomize
def test_default_deployment_has_every_required_object() -> None:
    docs = rendered("k8s")
    kinds = _kinds("k8s")
    services = set(declarations())
    assert kinds["Namespace"] == 1
    assert kinds["StatefulSet"] == 1  # postgres
    assert kinds["Secret"] == 0, "no credentials are committed"
    # Every declared service has its workload, and only they have Deployments.
    for kind in ("Deployment", "PodDisruptionBudget", "HorizontalPodAutoscaler"):
        assert {d["metadata"]["name"] for d in docs if d["kind"] == kind} == services, kind
    # Plus postgres' and the operator's.
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "ServiceAccount"} == services | {
        "postgres",
        "operator",
    }
    assert {d["metadata"]["name"] for d in docs if d["kind"] == "Service"} == services | {"postgres"}
    policies = {d["metadata"]["name"] for d in docs if d["kind"] == "NetworkPolicy"}
    assert "default-deny" in policies
    assert services <= policies, "each service has its own NetworkPolicy"


@pytest.mark.slow  # kubectl kustomize
def test_canary_overlay_adds_order_v2_only() -> None:
    base = {(d["kind"], d["metadata"]["name"]) for d in rendered("k8s")}
    canary = {(d["kind"], d["metadata"]["name"]): d for d in rendered("k8s/overlays/canary")}
    assert set(canary) - base == {("Deployment", "order-v2")}
    labels = canary[("Deployment", "order-v2")]["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == "order"
    assert labels["version"] == "v2"


@pytest.mark.slow  # kubectl kustomize
def test_flagger_overlay_selects_order_on_a_label_flagger_rewrites() -> None:
    """Flagger rewrites the first of app, name, app.kubernetes.io/name in the target's selector
    on its primary's pods: here app.kubernetes.io/name, so `app: order` (what the policies
    select) stays on the primary's pods too; `version` is out of the immutable selector."""
    docs = {(d["kind"], d["metadata"]["name"]): d for d in rendered("k8s/overlays/flagger")}
    order = docs[("Deployment", "order")]
    assert order["spec"]["selector"]["matchLabels"] == {"app.kubernetes.io/name": "order"}
    labels = order["spec"]["template"]["metadata"]["labels"]
    assert labels["app"] == labels["app.kubernetes.io/name"] == "order"
    base = {(d["kind"], d["metadata"]["name"]) for d in rendered("k8s")}
    assert set(docs) - base == {
        ("Canary", "order"),
        ("MetricTemplate", "grpc-success-rate"),
        ("MetricTemplate", "grpc-request-duration-p99"),
        ("ServiceAccount", "flagger-loadtester"),
        ("Deployment", "flagger-loadtester"),
        ("Service", "flagger-loadtester"),
        ("NetworkPolicy", "flagger-loadtester"),
        ("NetworkPolicy", "order-from-flagger-loadtester"),
    }


@pytest.mark.slow  # kubectl kustomize
def test_istio_flagger_overlay_leaves_order_routing_to_flagger() -> None:
    docs = {(d["kind"], d["metadata"]["name"]): d for d in rendered("istio/overlays/flagger")}
    assert ("VirtualService", "order") not in docs
    assert "subsets" not in docs[("DestinationRule", "order")]["spec"]
    ingress = docs[("VirtualService", "shop-ingress")]["spec"]
    assert [route["name"] for route in ingress["http"]] == ["catalog"]
    assert ingress["hosts"] == ["shop.example.com"]


@pytest.mark.slow  # kubectl kustomize
def test_istio_renders_every_kind() -> None:
    assert set(_kinds("istio")) == {
        "PeerAuthentication",
        "AuthorizationPolicy",
        "DestinationRule",
        "VirtualService",
        "Gateway",
        "Sidecar",
        "Telemetry",
    }


def test_stacks_pair_overlays_by_name(repository: Path) -> None:
    stacks = {
        s.name: [str(d.relative_to(repository)) for d in s.directories]
        for s in render.discover_stacks(repository)
    }
    assert stacks == {
        "default": ["k8s", "istio"],
        "canary": ["k8s/overlays/canary", "istio/overlays/canary"],
        "flagger": ["k8s/overlays/flagger", "istio/overlays/flagger"],
        "monitoring": ["k8s/monitoring"],
    }


def test_missing_kubectl_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(render.sys, "executable", str(tmp_path / "python"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RenderError, match="kubectl not found"):
        render.find_kubectl()


@pytest.mark.slow  # kubectl kustomize
def test_kustomize_failure_is_reported(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [missing.yaml]\n")
    with pytest.raises(RenderError, match="kubectl kustomize"):
        kustomize(tmp_path)
