"""Istio's standard metrics as a proxy records them: each pod's own certificate, recorded by the
CA, names the caller's pod (order v1 and v2 share a ServiceAccount and are told apart); the
labels are Istio's; the page Prometheus scrapes parses, with Envoy's buckets."""

from __future__ import annotations

import datetime
import urllib.error
import urllib.request
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from fixtures.ports import loopback
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from shopmesh.launch.ports import free_port
from shopmesh.localmesh.ca import (
    CertificateAuthority,
    IdentityIssuer,
    IssuedCertificate,
    PodIdentity,
    certificate_sha256,
    pod_identity_files,
)
from shopmesh.localmesh.istiostats import (
    BUCKETS,
    DESTINATION,
    PEER_LABELS,
    REQUEST_LABELS,
    SOURCE,
    STATS_PATH,
    IstioStats,
    StatsServer,
)
from shopmesh.localmesh.observation import RelayedCall, VerifiedPeer
from shopmesh.localmesh.peers import PeerDirectory, PeerDirectoryWriter, WorkloadMetadata, workload_metadata
from shopmesh.localmesh.placement import place
from shopmesh.manifests.model import MeshObjects


def _deployment(name: str, version: str, account: str, app: str, port: int) -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: shop}}
spec:
  template:
    metadata: {{labels: {{app: {app}, version: {version}}}}}
    spec:
      serviceAccountName: {account}
      containers: [{{name: server, ports: [{{name: grpc, containerPort: {port}}}]}}]
---
"""


MANIFESTS = (
    _deployment("order", "v1", "order", "order", 50051)
    + _deployment("order-v2", "v2", "order", "order", 50051)
    + _deployment("payment", "v1", "payment", "payment", 50053)
    + """
apiVersion: v1
kind: Service
metadata: {name: order, namespace: shop}
spec:
  selector: {app: order}
  ports: [{name: grpc, port: 50051, targetPort: grpc}]
---
apiVersion: v1
kind: Service
metadata: {name: payment, namespace: shop}
spec:
  selector: {app: payment}
  ports: [{name: grpc, port: 50053, targetPort: 50053}]
"""
)
CHARGE = "/shop.payment.v1.PaymentService/Charge"


class Mesh:
    """The pods of MANIFESTS, each with a certificate of its own recorded in a peer directory."""

    def __init__(self, root: Path) -> None:
        objects = MeshObjects.from_yaml(MANIFESTS)
        self.identities = root / "identities"
        self.placement = place(objects)
        self.writer = PeerDirectoryWriter(
            root / "peer-metadata.json", workload_metadata(objects, self.placement)
        )
        self.writer.write()
        self.directory = PeerDirectory(self.writer.path)
        #: per pod, its certificate file as it was each time the CA recorded a new certificate
        self.files_when_recorded: dict[str, list[bytes]] = {}
        self.issuer = IdentityIssuer(
            CertificateAuthority.create(), self.identities, datetime.timedelta(hours=1), self._record
        )
        self.issuer.ensure_pods(self.pod_identity(pod.name) for pod in self.placement.pods())

    def _record(self, node_id: str, issued: IssuedCertificate) -> None:
        pod = next(pod for pod in self.placement.pods() if pod.node_id == node_id)
        chain = pod_identity_files(self.identities, pod.namespace, pod.name).certificate_chain
        self.files_when_recorded.setdefault(pod.name, []).append(
            chain.read_bytes() if chain.exists() else b""
        )
        self.writer.record(node_id, issued)

    def pod_identity(self, name: str) -> PodIdentity:
        pod = next(pod for pod in self.placement.pods() if pod.name == name)
        return PodIdentity(pod.namespace, pod.name, pod.spiffe_id, pod.node_id)

    def pod(self, name: str) -> WorkloadMetadata:
        found = next(pod for pod in self.placement.pods() if pod.name == name)
        workload = self.directory.by_node_id(found.node_id)
        assert workload is not None
        return workload

    def certificate(self, name: str) -> VerifiedPeer:
        """The certificate the pod would present, as the sidecar sees it on the connection."""
        pod = self.pod(name)
        files = pod_identity_files(self.identities, pod.namespace, pod.pod)
        certificate = x509.load_pem_x509_certificate(files.certificate_chain.read_bytes())
        return VerifiedPeer(pod.principal, certificate_sha256(certificate))


@pytest.fixture
def mesh(tmp_path: Path) -> Mesh:
    return Mesh(tmp_path)


def _call(caller: VerifiedPeer | None, code: grpc.StatusCode, seconds: float, peer: str = "") -> RelayedCall:
    return RelayedCall(
        CHARGE, caller, (), code, 1, 100, 1 if code == grpc.StatusCode.OK else 0, 40, seconds, peer
    )


def _samples(stats: IstioStats) -> list[Sample]:
    return [sample for family in text_string_to_metric_families(stats.render()) for sample in family.samples]


def _one(samples: list[Sample], name: str, **labels: str) -> Sample:
    (found,) = [s for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())]
    return found


def test_order_v1_and_v2_share_an_identity_but_not_a_certificate(mesh: Mesh) -> None:
    v1, v2 = mesh.certificate("order-0"), mesh.certificate("order-v2-0")
    assert v1.identity == v2.identity == "spiffe://cluster.local/ns/shop/sa/order"
    assert v1.certificate != v2.certificate
    assert mesh.directory.by_certificate(v1.certificate) == mesh.pod("order-0")
    assert mesh.directory.by_certificate(v2.certificate) == mesh.pod("order-v2-0")
    assert mesh.directory.by_certificate("00" * 32) is None


def test_a_restarted_control_plane_still_knows_the_certificates_pods_hold(mesh: Mesh) -> None:
    """`shopmesh mesh stop-control-plane` then `start-control-plane`: the new control plane
    issues new certificates, but a caller's open connections keep presenting its old one."""
    held = mesh.certificate("order-0")
    restarted = PeerDirectoryWriter(mesh.writer.path, mesh.writer.workloads)
    restarted.write()
    assert PeerDirectory(restarted.path).by_certificate(held.certificate) == mesh.pod("order-0")


def test_a_destination_report_carries_istios_labels_for_each_caller_version(mesh: Mesh) -> None:
    stats = IstioStats(DESTINATION, mesh.pod("payment-0"), mesh.directory, port=50053)
    stats.observe(_call(mesh.certificate("order-0"), grpc.StatusCode.OK, 0.003))
    stats.observe(_call(mesh.certificate("order-v2-0"), grpc.StatusCode.UNAVAILABLE, 0.020))
    stats.observe(_call(mesh.certificate("order-v2-0"), grpc.StatusCode.UNAVAILABLE, 0.030))
    samples = _samples(stats)
    v2 = _one(samples, "istio_requests_total", source_version="v2")
    assert v2.value == 2
    assert v2.labels == {
        "reporter": "destination",
        "source_workload": "order-v2",
        "source_workload_namespace": "shop",
        "source_principal": "spiffe://cluster.local/ns/shop/sa/order",
        "source_app": "order",
        "source_version": "v2",
        "source_canonical_service": "order",
        "source_canonical_revision": "v2",
        "source_cluster": "Kubernetes",
        "destination_workload": "payment",
        "destination_workload_namespace": "shop",
        "destination_principal": "spiffe://cluster.local/ns/shop/sa/payment",
        "destination_app": "payment",
        "destination_version": "v1",
        "destination_service": "payment.shop.svc.cluster.local",
        "destination_service_name": "payment",
        "destination_service_namespace": "shop",
        "destination_canonical_service": "payment",
        "destination_canonical_revision": "v1",
        "destination_cluster": "Kubernetes",
        "request_protocol": "grpc",
        "response_flags": "-",
        "connection_security_policy": "mutual_tls",
        "response_code": "200",  # a failed gRPC call is an HTTP 200 too
        "grpc_response_status": "14",
    }
    v1 = _one(samples, "istio_requests_total", source_version="v1")
    assert (v1.labels["source_workload"], v1.labels["grpc_response_status"], v1.value) == ("order", "0", 1)
    # messages: the peer labels only, as Istio's
    messages = _one(samples, "istio_request_messages_total", source_version="v2")
    assert tuple(messages.labels) == PEER_LABELS
    assert messages.value == 2
    assert _one(samples, "istio_response_messages_total", source_version="v2").value == 0
    assert tuple(v2.labels) == PEER_LABELS + REQUEST_LABELS


def test_histograms_have_envoys_buckets_and_count_what_they_saw(mesh: Mesh) -> None:
    stats = IstioStats(DESTINATION, mesh.pod("payment-0"), mesh.directory, port=50053)
    for seconds in (0.0004, 0.003, 0.003, 0.240, 2.0):
        stats.observe(_call(mesh.certificate("order-0"), grpc.StatusCode.OK, seconds))
    samples = _samples(stats)
    buckets = {
        s.labels["le"]: s.value for s in samples if s.name == "istio_request_duration_milliseconds_bucket"
    }
    assert list(buckets) == [f"{bound:g}" if bound < 1e6 else str(bound) for bound in BUCKETS] + ["+Inf"]
    assert (buckets["0.5"], buckets["1"], buckets["5"], buckets["250"], buckets["1000"]) == (1, 1, 3, 4, 4)
    assert buckets["2500"] == buckets["+Inf"] == 5
    total = _one(samples, "istio_request_duration_milliseconds_sum")
    assert total.value == pytest.approx(0.4 + 3 + 3 + 240 + 2000)
    # bytes: each message's length-prefixed gRPC frame (5 bytes) with it
    assert _one(samples, "istio_request_bytes_sum").value == 5 * 105
    assert _one(samples, "istio_response_bytes_count").value == 5


def test_an_unknown_certificate_is_an_unknown_workload_with_its_proven_principal(mesh: Mesh) -> None:
    stats = IstioStats(DESTINATION, mesh.pod("payment-0"), mesh.directory, port=50053)
    operator = VerifiedPeer("spiffe://cluster.local/ns/shop/sa/operator", "ab" * 32)
    stats.observe(_call(operator, grpc.StatusCode.OK, 0.001))
    labels = _one(_samples(stats), "istio_requests_total").labels
    assert labels["source_principal"] == operator.identity
    assert (labels["source_workload"], labels["source_canonical_revision"]) == ("unknown", "latest")


def test_a_renewed_certificate_is_known_before_its_pod_can_present_it(mesh: Mesh) -> None:
    """The CA records a pod's certificate before writing its files; a proxy that meets the new
    certificate reads the directory again and finds the pod."""
    order = mesh.pod("order-0")
    before = mesh.certificate("order-0")
    first = pod_identity_files(mesh.identities, "shop", "order-0").certificate_chain.read_bytes()
    mesh.issuer.ensure_pods([mesh.pod_identity("order-0")])  # renewed
    after = mesh.certificate("order-0")
    assert after.certificate != before.certificate
    # when the renewal was recorded, the pod's file still held the first certificate
    assert mesh.files_when_recorded["order-0"] == [b"", first]
    assert mesh.directory.by_certificate(after.certificate) == order  # re-read on the miss
    assert mesh.directory.by_certificate(before.certificate) == order  # still live: kept
    stats = IstioStats(DESTINATION, mesh.pod("payment-0"), mesh.directory, port=50053)
    for certificate in (before, after):
        stats.observe(_call(certificate, grpc.StatusCode.OK, 0.001))
    assert _one(_samples(stats), "istio_requests_total").value == 2  # one caller, one series


def test_the_ingress_reports_as_the_source_of_what_it_sends(mesh: Mesh) -> None:
    stats = IstioStats(SOURCE, mesh.pod("istio-ingressgateway-0"), mesh.directory)
    stats.observe(_call(None, grpc.StatusCode.INVALID_ARGUMENT, 0.01, peer=mesh.pod("order-v2-0").node_id))
    stats.observe(_call(None, grpc.StatusCode.UNAVAILABLE, 0.01))  # no pod answered
    samples = _samples(stats)
    served = _one(samples, "istio_requests_total", grpc_response_status="3").labels
    assert (served["reporter"], served["source_workload"], served["source_workload_namespace"]) == (
        "source",
        "istio-ingressgateway",
        "istio-system",
    )
    assert (served["destination_workload"], served["destination_version"]) == ("order-v2", "v2")
    assert served["destination_service"] == "order.shop.svc.cluster.local"
    assert served["connection_security_policy"] == "unknown"  # a client never knows it
    assert served["source_version"] == ""  # its own pod has no version label (Istio: empty)
    unserved = _one(samples, "istio_requests_total", grpc_response_status="14").labels
    assert unserved["destination_workload"] == "unknown"


def test_the_stats_endpoint_serves_the_page_at_envoys_path_only(mesh: Mesh) -> None:
    stats = IstioStats(DESTINATION, mesh.pod("payment-0"), mesh.directory, port=50053)
    stats.observe(_call(mesh.certificate("order-0"), grpc.StatusCode.OK, 0.001))
    address = loopback(free_port())
    server = StatsServer(address, stats).start()
    try:
        with urllib.request.urlopen(f"http://{address}{STATS_PATH}", timeout=5) as reply:
            assert reply.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            assert reply.read().decode() == stats.render()
        with pytest.raises(urllib.error.HTTPError) as missing:
            urllib.request.urlopen(f"http://{address}/metrics", timeout=5)
        assert missing.value.code == 404
        with pytest.raises(SystemExit, match=f"cannot serve stats on {address}"):
            StatsServer(address, stats)  # taken
    finally:
        server.stop()
