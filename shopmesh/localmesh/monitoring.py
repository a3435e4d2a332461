"""The local mesh's Prometheus: what it scrapes, generated from the placement, and the SLO rules.

Per pod, the two endpoints a cluster's PodMonitors scrape (k8s/monitoring/pod-monitors.yaml):
the service's own metrics (`grpc-services`: go-grpc-prometheus names, on the pod's metrics
port) and its sidecar's Istio metrics (`envoy-stats`: `/stats/prometheus` on Envoy's port);
for the ingress gateway, its Istio metrics. Every target carries the labels Kubernetes service
discovery gives (`namespace`, `pod`, `container`, `app`, `version`): shopmesh.telemetry.targets.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from shopmesh.launch.listeners import accepts_connections
from shopmesh.localmesh.placement import Instance
from shopmesh.localmesh.pods import Pod
from shopmesh.telemetry.generate import RULES_FILE
from shopmesh.telemetry.prometheus import (
    AddressInUse,
    Binaries,
    LocalPrometheus,
    PrometheusSettings,
    find_binaries,
    in_use_message,
)
from shopmesh.telemetry.targets import (
    DEFAULT_SCRAPE_INTERVAL,
    PodLabels,
    ScrapeTarget,
    proxy_target,
    service_target,
)


def scrape_targets(pods: Sequence[Pod], ingress: Instance, ingress_stats: str) -> list[ScrapeTarget]:
    targets = []
    for pod in pods:
        labels = PodLabels.of(pod.instance)
        targets.append(service_target(labels, pod.metrics_address))
        targets += [
            proxy_target(labels, pod.stats_address(index)) for index in range(len(pod.sidecar_addresses))
        ]
    targets.append(proxy_target(PodLabels.of(ingress), ingress_stats))
    return targets


def prometheus_binaries(listen: str) -> Binaries:
    """Prometheus' binaries, if it can start on `listen`: PrometheusNotFound says how to
    install them, AddressInUse who holds the address (checked before anything starts)."""
    binaries = find_binaries()
    if accepts_connections(listen):
        raise AddressInUse(in_use_message(listen))
    return binaries


def mesh_prometheus(
    root: Path,
    state: Path,
    listen: str,
    targets: Sequence[ScrapeTarget],
    binaries: Binaries,
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
) -> LocalPrometheus:
    """The Prometheus of a mesh whose project is `root`, not started: its data under `state`,
    the project's SLO rules loaded."""
    settings = PrometheusSettings(
        state=state,
        targets=targets,
        listen=listen,
        rule_files=[root / RULES_FILE],
        scrape_interval=scrape_interval,
    )
    return LocalPrometheus(settings, binaries)
