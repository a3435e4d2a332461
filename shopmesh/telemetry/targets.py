"""What the local Prometheus scrapes, labelled the way it is in a cluster, and its configuration.

In a cluster, k8s/monitoring/pod-monitors.yaml has the prometheus-operator discover the pods:
every target gets `namespace`, `pod` and `container` from Kubernetes service discovery and `app`
and `version` from the pod's labels (`podTargetLabels`), and one of two jobs:

- `grpc-services`: a service's own metrics (go-grpc-prometheus names, `/metrics`);
- `envoy-stats`: a proxy's Istio standard metrics at Istio's stats path (`/stats/prometheus`),
  the job name of Istio's documentation for Envoy's stats.

Locally there is no service discovery: whoever places the pods says where each one's metrics
are (`service_target`, `proxy_target`), and `prometheus_config` turns that into static targets
carrying the very same labels, so a query written for the cluster runs unchanged here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import yaml

SERVICES_JOB = "grpc-services"
PROXIES_JOB = "envoy-stats"
SERVICES_METRICS_PATH = "/metrics"
#: Where Envoy (and Istio's agent, merged) serve Istio's standard metrics.
ISTIO_STATS_PATH = "/stats/prometheus"
#: The containers Kubernetes service discovery names: the app's, and the injected proxy's.
SERVICE_CONTAINER = "server"
PROXY_CONTAINER = "istio-proxy"
#: Seconds between scrapes: short, so that a test sees its traffic within a few seconds.
DEFAULT_SCRAPE_INTERVAL = 5.0

_LABEL_NAME = re.compile(r"^[a-zA-Z_][a-zA-Z0-9_]*$")
_JOB_NAME = re.compile(r"^[a-z0-9][a-z0-9_./-]{0,62}$")
#: Labels Prometheus sets itself: a target must not claim them.
_RESERVED_LABELS = frozenset({"job", "instance"})
_MAX_LABEL_VALUE = 253  # a DNS subdomain, the longest name Kubernetes gives a pod


class PlacedPod(Protocol):
    """What a placement knows of a pod (shopmesh.localmesh.placement.Instance has it)."""

    @property
    def name(self) -> str: ...
    @property
    def namespace(self) -> str: ...
    @property
    def app(self) -> str: ...
    @property
    def version(self) -> str: ...


@dataclass(frozen=True)
class PodLabels:
    """The labels Kubernetes service discovery gives every target of a pod."""

    namespace: str
    pod: str
    app: str
    version: str = ""  # a pod without a `version` label has no `version` target label

    @classmethod
    def of(cls, pod: PlacedPod) -> PodLabels:
        return cls(namespace=pod.namespace, pod=pod.name, app=pod.app, version=pod.version)

    def as_labels(self) -> dict[str, str]:
        labels = {"namespace": self.namespace, "pod": self.pod, "app": self.app}
        if self.version:
            labels["version"] = self.version
        return labels


@dataclass(frozen=True)
class ScrapeTarget:
    job: str
    address: str  # host:port
    metrics_path: str
    labels: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _JOB_NAME.match(self.job):
            raise ValueError(f"job {self.job!r}: lowercase letters, digits and _./- only, at most 63")
        _check_address(self.address)
        if not self.metrics_path.startswith("/") or any(c.isspace() for c in self.metrics_path):
            raise ValueError(f"metrics path {self.metrics_path!r} of {self.address}: must start with /")
        for name, value in self.labels.items():
            if not _LABEL_NAME.match(name) or name.startswith("__") or name in _RESERVED_LABELS:
                raise ValueError(f"target {self.address}: {name!r} cannot be a target label")
            if not isinstance(value, str) or not value or len(value) > _MAX_LABEL_VALUE:
                raise ValueError(f"target {self.address}: label {name} must be 1-{_MAX_LABEL_VALUE} chars")
        object.__setattr__(self, "labels", MappingProxyType(dict(self.labels)))


def service_target(pod: PodLabels, address: str) -> ScrapeTarget:
    """A service's go-grpc-prometheus metrics (`grpc_server_*`, `shop_*`) on its metrics port."""
    return ScrapeTarget(
        SERVICES_JOB, address, SERVICES_METRICS_PATH, {**pod.as_labels(), "container": SERVICE_CONTAINER}
    )


def proxy_target(pod: PodLabels, address: str) -> ScrapeTarget:
    """A sidecar's or gateway's Istio standard metrics (`istio_requests_total`, …)."""
    return ScrapeTarget(
        PROXIES_JOB, address, ISTIO_STATS_PATH, {**pod.as_labels(), "container": PROXY_CONTAINER}
    )


def prometheus_config(
    targets: Iterable[ScrapeTarget],
    *,
    rule_files: Sequence[Path] = (),
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL,
) -> dict[str, Any]:
    """Prometheus' configuration: one job per job name, one static target per address.

    Rules are evaluated as often as targets are scraped. A job's targets share one metrics
    path (Prometheus sets it per job); two targets of a job at one address are refused.
    """
    if not 0 < scrape_interval <= 60:
        raise ValueError(f"scrape interval {scrape_interval}s: must be more than 0 and at most 60 s")
    interval = _duration(scrape_interval)
    jobs: dict[str, list[ScrapeTarget]] = {}
    for target in targets:
        jobs.setdefault(target.job, []).append(target)
    scrape_configs = []
    for job, members in sorted(jobs.items()):
        paths = sorted({target.metrics_path for target in members})
        if len(paths) > 1:
            raise ValueError(f"job {job}: targets with different metrics paths {', '.join(paths)}")
        addresses = [target.address for target in members]
        repeated = sorted({address for address in addresses if addresses.count(address) > 1})
        if repeated:
            raise ValueError(f"job {job}: {', '.join(repeated)} listed more than once")
        scrape_configs.append(
            {
                "job_name": job,
                "metrics_path": paths[0],
                "static_configs": [
                    {"targets": [target.address], "labels": dict(sorted(target.labels.items()))}
                    for target in sorted(members, key=lambda target: target.address)
                ],
            }
        )
    return {
        "global": {
            "scrape_interval": interval,
            # A scrape must end before the next one starts (Prometheus refuses a longer timeout).
            "scrape_timeout": interval,
            "evaluation_interval": interval,
        },
        "rule_files": [str(Path(path).resolve()) for path in rule_files],
        "scrape_configs": scrape_configs,
    }


def render_config(config: Mapping[str, Any]) -> str:
    return "# Generated by shopmesh.telemetry.targets: edit the targets, not this file.\n" + yaml.safe_dump(
        dict(config), sort_keys=False
    )


def _duration(seconds: float) -> str:
    milliseconds = round(seconds * 1000)
    return f"{milliseconds // 1000}s" if milliseconds % 1000 == 0 else f"{milliseconds}ms"


def _check_address(address: str) -> None:
    host, separator, port = address.rpartition(":")
    if not separator or not host or "/" in address or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"scrape address {address!r}: expected host:port, e.g. 127.10.1.1:9090")
