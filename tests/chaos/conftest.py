"""What the chaos tests share: an ingress gateway's Istio metrics at a chosen mix of gRPC
statuses, and a real Prometheus (Debian's) scraping them."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
from fixtures.ports import loopback
from prometheus_client import CollectorRegistry, Counter, start_http_server

from shopmesh.launch.ports import free_port
from shopmesh.telemetry.prometheus import LocalPrometheus, PrometheusSettings, find_binaries
from shopmesh.telemetry.targets import PodLabels, proxy_target

GATEWAY = PodLabels(namespace="istio-system", pod="istio-ingressgateway-0", app="istio-ingressgateway")
#: What the gateway's Envoy reports about the calls it sends into the mesh (Istio's labels).
INGRESS_LABELS = {"reporter": "source", "source_workload": "istio-ingressgateway", "request_protocol": "grpc"}


@pytest.fixture
def ingress_metrics() -> Iterator[Callable[[Mapping[str, int]], str]]:
    """`ingress_metrics({"0": 199, "3": 1})`: a page of istio_requests_total as the ingress
    gateway reports it, counting that many calls of each gRPC status (by number) every 50 ms;
    its address."""
    stops: list[Callable[[], None]] = []

    def serve(mix: Mapping[str, int]) -> str:
        registry = CollectorRegistry()
        requests = Counter(
            "istio_requests", "Requests", [*INGRESS_LABELS, "grpc_response_status"], registry=registry
        )
        port = free_port()
        server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
        stop = threading.Event()
        lock = threading.Lock()

        def traffic() -> None:
            while not stop.wait(0.05):
                with lock:
                    for status, calls in mix.items():
                        requests.labels(*INGRESS_LABELS.values(), status).inc(calls)

        worker = threading.Thread(target=traffic, daemon=True)
        worker.start()

        def close() -> None:
            stop.set()
            worker.join()
            server.shutdown()
            server.server_close()
            thread.join()

        stops.append(close)
        return loopback(port)

    yield serve
    for close in stops:
        close()


@pytest.fixture
def prometheus_of(tmp_path: Path) -> Iterator[Callable[[str | None], LocalPrometheus]]:
    """`prometheus_of(address)`: a ready Prometheus on a free port scraping the gateway page at
    `address` (or nothing) every half second; stopped at the end of the test."""
    started: list[LocalPrometheus] = []

    def start(address: str | None) -> LocalPrometheus:
        prometheus = LocalPrometheus(
            PrometheusSettings(
                state=tmp_path / f"prometheus-{len(started)}",
                listen=loopback(free_port()),
                targets=[] if address is None else [proxy_target(GATEWAY, address)],
                scrape_interval=0.5,
            ),
            find_binaries(),
        )
        started.append(prometheus)
        return prometheus.start()

    yield start
    for prometheus in started:
        prometheus.stop()
