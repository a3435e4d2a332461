"""The local Prometheus, for real: it scrapes a target with its Kubernetes labels, evaluates the SLO
rules on what it scraped, answers queries, stops leaving nothing running, and refuses bad
starts with the reason and nothing left behind."""

from __future__ import annotations

import math
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fixtures.eventually import eventually
from fixtures.ports import loopback
from prometheus_client import CollectorRegistry, Counter, start_http_server

from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.ports import free_port
from shopmesh.telemetry import generate
from shopmesh.telemetry.prometheus import (
    AddressInUse,
    Binaries,
    LocalPrometheus,
    PrometheusError,
    PrometheusNotFound,
    PrometheusSettings,
)
from shopmesh.telemetry.query import PrometheusClient, PrometheusUnavailable, QueryError
from shopmesh.telemetry.targets import PodLabels, proxy_target

ROOT = Path(__file__).resolve().parents[2]
ORDER = PodLabels(namespace="shop", pod="order-0", app="order", version="v1")
RATIO_5M = 'destination_canonical_service:slo_errors_per_request:ratio_rate5m{slo="grpc-availability"}'


@pytest.fixture
def istio_exporter() -> Iterator[str]:
    """A real /stats/prometheus-like page serving istio_requests_total as a destination proxy
    would, counting 3 OK, 1 UNAVAILABLE and 1 INVALID_ARGUMENT call every 50 ms."""
    registry = CollectorRegistry()
    requests = Counter(
        "istio_requests",
        "Requests",
        [
            "reporter",
            "request_protocol",
            "destination_workload_namespace",
            "destination_canonical_service",
            "grpc_response_status",
        ],
        registry=registry,
    )
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=registry)
    stop = threading.Event()
    lock = threading.Lock()

    def traffic() -> None:
        while not stop.wait(0.05):
            with lock:  # all three move together, so any scrape sees exactly 3:1:1
                for status, calls in (("0", 3), ("14", 1), ("3", 1)):
                    requests.labels("destination", "grpc", "shop", "order", status).inc(calls)

    worker = threading.Thread(target=traffic, daemon=True)
    worker.start()
    yield loopback(port)
    stop.set()
    worker.join()
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.mark.slow  # waits for scrapes and rule evaluations: a few seconds
def test_scrapes_with_kubernetes_labels_and_evaluates_the_slo_rules(
    start_prometheus: Callable[..., LocalPrometheus], istio_exporter: str
) -> None:
    prometheus = start_prometheus(
        targets=[proxy_target(ORDER, istio_exporter)],
        rule_files=[ROOT / generate.RULES_FILE],
        scrape_interval=0.5,
    )
    client = prometheus.client

    eventually(lambda: bool(client.query('up{job="envoy-stats"} == 1')), 15, "target up")
    [up] = client.query('up{job="envoy-stats"}')
    assert up.labels == {
        "__name__": "up",
        "job": "envoy-stats",
        "instance": istio_exporter,
        "namespace": "shop",
        "pod": "order-0",
        "app": "order",
        "version": "v1",
        "container": "istio-proxy",
    }

    # The loaded rule counts UNAVAILABLE and not INVALID_ARGUMENT: 1 of 5 calls.
    eventually(lambda: bool(client.query(RATIO_5M)), 20, "the availability ratio recorded")
    [ratio] = client.query(RATIO_5M)
    assert ratio.labels["destination_canonical_service"] == "order"
    assert math.isclose(ratio.value, 0.2, rel_tol=1e-9)

    end = time.time()
    series = client.query_range("sum(istio_requests_total)", end - 10, end, 1)
    assert len(series) == 1
    assert series[0].points
    assert all(value > 0 for _, value in series[0].points)


def test_stop_leaves_nothing_running(start_prometheus: Callable[..., LocalPrometheus]) -> None:
    prometheus = start_prometheus()
    assert prometheus.client.ready()
    [two] = prometheus.client.query("1 + 1")
    assert two.value == 2
    assert two.labels == {}
    pid = prometheus.process.pid if prometheus.process else None
    assert pid is not None

    prometheus.stop()
    assert not accepts_connections(prometheus.settings.listen)
    assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text()
    assert not (prometheus.data_directory / "lock").exists()
    assert sorted(p.name for p in prometheus.settings.state.iterdir()) == [
        "data",
        "prometheus.log",
        "prometheus.yml",
    ]


def test_a_taken_address_is_refused_naming_its_holder(tmp_path: Path, binaries: Binaries) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        address = loopback(holder.getsockname()[1])
        state = tmp_path / "state" / "prometheus"
        prometheus = LocalPrometheus(PrometheusSettings(state=state, listen=address), binaries)
        with pytest.raises(AddressInUse, match=rf"{address} is already in use by pid {os.getpid()} \("):
            prometheus.start()
    assert not (tmp_path / "state").exists()
    assert prometheus.process is None


def test_missing_prometheus_is_named_with_how_to_install_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    state = tmp_path / "state"
    with pytest.raises(
        PrometheusNotFound, match=r"prometheus and promtool not found on PATH: install Debian's"
    ):
        LocalPrometheus(PrometheusSettings(state=state, listen=loopback(free_port()))).start()
    assert not state.exists()


def test_a_rule_file_promtool_rejects_stops_the_start(tmp_path: Path, binaries: Binaries) -> None:
    broken = tmp_path / "broken.rules.yaml"
    broken.write_text("groups:\n- name: g\n  rules:\n  - record: x\n    expr: sum(rate(y[5m])\n")
    state = tmp_path / "state"
    settings = PrometheusSettings(state=state, listen=loopback(free_port()), rule_files=[broken])
    with pytest.raises(
        PrometheusError, match=r"promtool rejects .*prometheus.yml:(.|\n)*unclosed left parenthesis"
    ):
        LocalPrometheus(settings, binaries).start()
    assert not state.exists()


def test_prometheus_exiting_at_start_is_reported_with_its_log(
    start_prometheus: Callable[..., LocalPrometheus], binaries: Binaries
) -> None:
    first = start_prometheus()
    # The same data directory: Prometheus refuses a TSDB another instance holds.
    second = LocalPrometheus(
        PrometheusSettings(state=first.settings.state, listen=loopback(free_port())), binaries
    )
    with pytest.raises(PrometheusError, match=r"Prometheus exited \(1\):(.|\n)*lock DB directory"):
        second.start()
    assert second.process is None
    assert first.client.ready()
    assert first.running()


def test_queries_fail_clearly(start_prometheus: Callable[..., LocalPrometheus]) -> None:
    nobody = PrometheusClient(f"http://{loopback(free_port())}", timeout=2)
    assert not nobody.ready()
    with pytest.raises(PrometheusUnavailable, match=r"no Prometheus at http://127\.0\.0\.1:\d+ \(.*refused"):
        nobody.query("up")
    with pytest.raises(PrometheusUnavailable, match="no Prometheus at"):
        nobody.query_range("up", 0, 10, 1)

    client = start_prometheus().client
    with pytest.raises(
        QueryError, match=r"query 'sum\(rate\(x\[5m\]\)': bad_data: .*unclosed left parenthesis"
    ):
        client.query("sum(rate(x[5m])")
    with pytest.raises(QueryError, match="returned a matrix, not an instant vector"):
        client.query("up[5m]")
    with pytest.raises(ValueError, match="start <= end and step > 0"):
        client.query_range("up", 10, 0, 1)
