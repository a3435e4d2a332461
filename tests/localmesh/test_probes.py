"""The local kubelet's probes (shopmesh/localmesh/probes.py): read from a Deployment with
Kubernetes' defaults, judged with its thresholds, run against a real gRPC health server; and
the endpoints they gate (only Ready pods in EDS)."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from envoy.config.endpoint.v3 import endpoint_pb2
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from shopmesh.launch.ports import free_port
from shopmesh.localmesh.controlplane import PodReadiness
from shopmesh.localmesh.placement import place
from shopmesh.localmesh.probes import Kind, ProbeSpec, ProbeWorker, check, pod_probes
from shopmesh.localmesh.translate import TranslationError, names
from shopmesh.localmesh.translate.translator import translate
from shopmesh.manifests.model import MeshObjects

FIXTURE = Path(__file__).parent / "fixtures" / "mesh.yaml"
PAYMENT_CLUSTER = "outbound|50053||payment.shop.svc.cluster.local"


def deployment(probes: str) -> MeshObjects:
    return MeshObjects.from_yaml(f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: payment, namespace: shop}}
spec:
  template:
    metadata: {{labels: {{app: payment}}}}
    spec:
      containers:
        - name: payment
          ports: [{{name: grpc, containerPort: 50053}}]
{probes}
""")


def test_probes_come_from_the_app_container_with_kubernetes_defaults() -> None:
    objects = deployment("""
          readinessProbe: {grpc: {port: 50053}, periodSeconds: 5, failureThreshold: 2}
          livenessProbe: {grpc: {port: 50053, service: liveness}}
""")
    (instance,) = place(objects).instances
    probes = pod_probes(objects, instance)
    assert probes[Kind.READINESS] == ProbeSpec(Kind.READINESS, "grpc", period=5, failure_threshold=2)
    assert probes[Kind.LIVENESS] == ProbeSpec(
        Kind.LIVENESS, "grpc", service="liveness", initial_delay=0, period=10, timeout=1,
        success_threshold=1, failure_threshold=3,
    )  # fmt: skip
    assert Kind.STARTUP not in probes


@pytest.mark.parametrize(
    ("probe", "message"),
    [
        ("readinessProbe: {exec: {command: [true]}}", "readinessProbe exec is not run by the local mesh"),
        ("livenessProbe: {grpc: {port: 1}, successThreshold: 2}", "livenessProbe successThreshold must be 1"),
        ("readinessProbe: {grpc: {port: 1}, periodSeconds: 0}", "below Kubernetes' minimum"),
        ("readinessProbe: {periodSeconds: 3}", "needs exactly one action"),
    ],
)
def test_a_probe_the_local_kubelet_cannot_run_faithfully_is_refused_by_name(probe: str, message: str) -> None:
    objects = deployment(f"          {probe}")
    (instance,) = place(objects).instances
    with pytest.raises(TranslationError, match=message) as raised:
        pod_probes(objects, instance)
    assert "Deployment shop/payment container payment" in str(raised.value)


def test_results_change_only_after_their_threshold_in_a_row() -> None:
    worker = ProbeWorker(ProbeSpec(Kind.READINESS, "grpc", period=5, failure_threshold=2), started_at=0.0)
    assert worker.result is False  # readiness starts failed
    assert worker.record(True, 0.0) is True  # successThreshold 1
    assert worker.record(False, 5.0) is True  # one failure: still Ready
    assert worker.record(True, 10.0) is True
    assert worker.record(False, 15.0) is True
    assert worker.record(False, 20.0) is False  # two in a row
    assert worker.next_at == 25.0


def test_liveness_starts_succeeded_and_nothing_runs_before_the_initial_delay() -> None:
    worker = ProbeWorker(ProbeSpec(Kind.LIVENESS, "grpc", initial_delay=3, period=10), started_at=100.0)
    assert worker.result is True
    assert not worker.due(102.9)
    assert worker.due(103.0)
    worker.record(True, 103.0)
    assert not worker.due(112.9)
    worker.trigger(104.0)
    assert worker.due(104.0)


@pytest.fixture
def health_server() -> Iterator[tuple[str, health.HealthServicer]]:
    servicer = health.HealthServicer()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    address = f"127.0.0.1:{free_port()}"
    server.add_insecure_port(address)
    server.start()
    try:
        yield address, servicer
    finally:
        server.stop(0)


def test_a_grpc_probe_succeeds_on_serving_only(health_server: tuple[str, health.HealthServicer]) -> None:
    address, servicer = health_server
    spec = ProbeSpec(Kind.READINESS, "grpc")
    servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    assert check(spec, address)
    servicer.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    assert not check(spec, address)
    assert not check(ProbeSpec(Kind.READINESS, "grpc", service="unknown"), address)  # NOT_FOUND
    assert not check(spec, f"127.0.0.1:{free_port()}")  # nothing listens
    assert check(ProbeSpec(Kind.READINESS, "tcpSocket"), address)


def _endpoints(ready: frozenset[str] | None) -> list[str]:
    objects = MeshObjects.from_yaml(FIXTURE.read_text())
    snapshot = translate(objects, place(objects, replicas={"payment": 2}), ready)
    assignment = snapshot.get(names.ENDPOINT, PAYMENT_CLUSTER)
    assert isinstance(assignment, endpoint_pb2.ClusterLoadAssignment)
    return [e.endpoint.address.socket_address.address for e in assignment.endpoints[0].lb_endpoints]


def test_only_ready_pods_are_endpoints() -> None:
    assert len(_endpoints(None)) == 2  # no pod status yet: every placed pod
    (payment_0,) = _endpoints(frozenset({"payment-0"}))
    assert payment_0.endswith(".1")
    assert _endpoints(frozenset()) == []


def test_the_control_plane_reads_readiness_when_the_status_file_changes(tmp_path: Path) -> None:
    status = tmp_path / "pod-status.json"
    readiness = PodReadiness(status, changed=lambda: None)
    assert readiness.ready is None
    status.write_text('{"ready": {"payment-0": true, "payment-1": false}}')
    assert readiness.refresh()
    assert readiness.ready == {"payment-0"}
    assert not readiness.refresh()  # unchanged
    status.write_text("{not json")
    assert not readiness.refresh()
    assert readiness.ready == {"payment-0"}  # an unreadable file changes nothing
