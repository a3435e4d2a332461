"""The scrape targets model and the Prometheus configuration generated from it (promtool checks it)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from shopmesh.localmesh.placement import Instance, Placement
from shopmesh.telemetry import generate
from shopmesh.telemetry.prometheus import Binaries
from shopmesh.telemetry.targets import (
    PodLabels,
    ScrapeTarget,
    prometheus_config,
    proxy_target,
    render_config,
    service_target,
)

ROOT = Path(__file__).resolve().parents[2]
ORDER_V2 = PodLabels(namespace="shop", pod="order-v2-0", app="order", version="v2")
GATEWAY = PodLabels(namespace="istio-system", pod="istio-ingressgateway-0", app="istio-ingressgateway")


def test_targets_carry_kubernetes_labels_and_istio_jobs() -> None:
    config = prometheus_config(
        [
            service_target(ORDER_V2, "127.10.2.1:9090"),
            proxy_target(ORDER_V2, "127.10.2.1:15090"),
            proxy_target(GATEWAY, "127.0.0.1:15090"),
        ]
    )
    assert config["global"] == {"scrape_interval": "5s", "scrape_timeout": "5s", "evaluation_interval": "5s"}
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["grpc-services"]["metrics_path"] == "/metrics"
    assert jobs["grpc-services"]["static_configs"] == [
        {
            "targets": ["127.10.2.1:9090"],
            "labels": {
                "app": "order",
                "container": "server",
                "namespace": "shop",
                "pod": "order-v2-0",
                "version": "v2",
            },
        }
    ]
    assert jobs["envoy-stats"]["metrics_path"] == "/stats/prometheus"
    assert [c["labels"] for c in jobs["envoy-stats"]["static_configs"]] == [
        # no version label on the gateway: Kubernetes SD gives none for a pod without one
        {
            "app": "istio-ingressgateway",
            "container": "istio-proxy",
            "namespace": "istio-system",
            "pod": "istio-ingressgateway-0",
        },
        {
            "app": "order",
            "container": "istio-proxy",
            "namespace": "shop",
            "pod": "order-v2-0",
            "version": "v2",
        },
    ]


def test_promtool_accepts_the_generated_config_with_the_slo_rules(tmp_path: Path, binaries: Binaries) -> None:
    rules = ROOT / generate.RULES_FILE
    config = prometheus_config(
        [service_target(ORDER_V2, "127.10.2.1:9090"), proxy_target(ORDER_V2, "127.10.2.1:15090")],
        rule_files=[rules],
        scrape_interval=1.5,
    )
    path = tmp_path / "prometheus.yml"
    path.write_text(render_config(config))
    assert yaml.safe_load(path.read_text())["global"]["scrape_interval"] == "1500ms"
    checked = binaries.promtool_run("check", "config", str(path))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 26 rules found" in checked.stdout


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1", "/metrics"), "expected host:port"),
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1:0", "/metrics"), "expected host:port"),
        (lambda: ScrapeTarget("grpc-services", "http://a:1", "/metrics"), "expected host:port"),
        (lambda: ScrapeTarget("Bad Job", "127.0.0.1:1", "/metrics"), "job 'Bad Job'"),
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1:1", "metrics"), "must start with /"),
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1:1", "/m", {"job": "x"}), "'job' cannot be"),
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1:1", "/m", {"__address__": "x"}), "cannot be"),
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1:1", "/m", {"app-name": "x"}), "cannot be"),
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1:1", "/m", {"app": ""}), "1-253 chars"),
        (lambda: ScrapeTarget("grpc-services", "127.0.0.1:1", "/m", {"app": "x" * 254}), "1-253 chars"),
    ],
)
def test_bad_targets_are_refused_with_the_reason(make: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make()  # type: ignore[operator]


def test_a_job_has_one_path_and_each_address_once() -> None:
    target = service_target(ORDER_V2, "127.10.2.1:9090")
    with pytest.raises(ValueError, match=r"127.10.2.1:9090 listed more than once"):
        prometheus_config([target, target])
    other_path = ScrapeTarget("grpc-services", "127.10.2.2:9090", "/other")
    with pytest.raises(ValueError, match="different metrics paths /metrics, /other"):
        prometheus_config([target, other_path])
    for interval in (0, -1, 61):
        with pytest.raises(ValueError, match="scrape interval"):
            prometheus_config([target], scrape_interval=interval)


def test_a_placed_pods_labels() -> None:
    placement = Placement(
        instances=(
            Instance(
                name="order-v2-0",
                deployment="order-v2",
                namespace="shop",
                labels={"app": "order", "version": "v2"},
                service_account="order",
                address="127.10.2.1",
                ports=(50051,),
            ),
        )
    )
    assert [PodLabels.of(pod) for pod in (*placement.instances, placement.ingress)] == [
        ORDER_V2,
        GATEWAY,
    ]
