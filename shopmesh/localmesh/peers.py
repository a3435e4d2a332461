"""Who is at the other end of a call: each pod's workload metadata, found by its certificate or
its proxy id — the local counterpart of Istio's metadata exchange.

Istio's proxies label every request with both ends' workload metadata (the pod's namespace,
workload, labels, identity, services). A proxy knows its own from its bootstrap; its peer's it
learns through metadata exchange or, in newer Istio, through peer metadata discovery from the
control plane. Here no client-side proxy exists (order calls payment straight from gRPC's own
xDS client), so a destination sidecar finds its caller the one way the connection proves: the
verified client certificate. Every pod holds a certificate of its own, and the control plane
records which pod each one went to (shopmesh.localmesh.ca); the ingress finds the pod that
answered by the `x-envoy-peer-metadata-id` its sidecar sends back.

The control plane keeps both in one file, the peer directory (`PeerDirectoryWriter`): every
pod's metadata by proxy id, and every live certificate's SHA-256 with its pod. A certificate is
in the file before its pod's credential files change, so a proxy that meets a new certificate
re-reads the file once and finds it (`PeerDirectory`).
"""

from __future__ import annotations

import datetime
import json
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from shopmesh.localmesh.ca import IssuedCertificate, spiffe_id
from shopmesh.localmesh.placement import Instance, Placement
from shopmesh.manifests.model import MeshObjects

#: Istio's default cluster id (pkg/config/constants DefaultClusterName), `source_cluster` etc.
CLUSTER_ID = "Kubernetes"
#: What Istio's stats report for a peer value it does not know.
UNKNOWN = "unknown"
#: The canonical revision of a workload without a revision label (the injector's default).
LATEST = "latest"
#: Istio's canonical service and revision labels, and Kubernetes' recommended app labels.
CANONICAL_NAME, CANONICAL_REVISION = "service.istio.io/canonical-name", "service.istio.io/canonical-revision"
K8S_NAME, K8S_VERSION = "app.kubernetes.io/name", "app.kubernetes.io/version"
#: The largest peer directory a proxy reads (a mesh of thousands of pods fits many times).
MAX_DIRECTORY_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True)
class ServiceRef:
    """A Kubernetes Service that selects a pod on one of its ports."""

    port: int  # the pod's (target) port
    host: str  # order.shop.svc.cluster.local
    name: str
    namespace: str


@dataclass(frozen=True)
class WorkloadMetadata:
    """One pod as Istio's stats see it (the proxy's node metadata: NAMESPACE, WORKLOAD_NAME,
    LABELS, SERVICE_ACCOUNT, CLUSTER_ID; and the Services the control plane puts in front)."""

    node_id: str
    pod: str
    namespace: str
    workload: str  # the Deployment's name
    labels: Mapping[str, str]
    service_account: str
    services: tuple[ServiceRef, ...] = ()
    cluster: str = CLUSTER_ID

    @property
    def principal(self) -> str:
        return spiffe_id(self.namespace, self.service_account)

    @property
    def canonical_service(self) -> str:
        """The injector's `service.istio.io/canonical-name` (pkg/kube/labels CanonicalService)."""
        labels = self.labels
        return labels.get(CANONICAL_NAME) or labels.get(K8S_NAME) or labels.get("app") or self.workload

    @property
    def canonical_revision(self) -> str:
        labels = self.labels
        return labels.get(CANONICAL_REVISION) or labels.get(K8S_VERSION) or labels.get("version") or LATEST

    # Istio's stats read app and version differently for the proxy's own pod and for its peer
    # (istio_stats.cc; metadata_object.cc): the own pod's `app` and `version` labels, empty when
    # absent; a peer's `app.kubernetes.io/*` first, `unknown` when absent.
    @property
    def local_app(self) -> str:
        return self.labels.get("app", "")

    @property
    def local_version(self) -> str:
        return self.labels.get("version", "")

    @property
    def peer_app(self) -> str:
        return self.labels.get(K8S_NAME) or self.labels.get("app") or UNKNOWN

    @property
    def peer_version(self) -> str:
        return self.labels.get(K8S_VERSION) or self.labels.get("version") or UNKNOWN

    def service_on(self, port: int | None = None) -> ServiceRef | None:
        """The Service in front of `port` (the first one, as Istio's inbound cluster takes the
        first Service on the port), or of the pod's first port when `port` is None."""
        matching = [ref for ref in self.services if port is None or ref.port == port]
        return matching[0] if matching else None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WorkloadMetadata:
        return cls(
            **{
                **data,
                "labels": dict(data["labels"]),
                "services": tuple(ServiceRef(**ref) for ref in data.get("services", ())),
            }
        )


def workload_metadata(objects: MeshObjects, placement: Placement) -> list[WorkloadMetadata]:
    """Every placed pod's metadata, the ingress gateway's included; each pod's Services are
    those selecting it, by target port, sorted by name."""
    fronting: dict[str, list[ServiceRef]] = {}
    for service in sorted(objects.services(), key=lambda s: (s.namespace, s.name)):
        for instance in placement.backing(service):
            for port in service.ports:
                pod_port = _pod_port(port.target_port, instance)
                if port.is_grpc and pod_port is not None:
                    fronting.setdefault(instance.node_id, []).append(
                        ServiceRef(pod_port, service.hostname, service.name, service.namespace)
                    )
    return [_metadata(instance, fronting.get(instance.node_id, ())) for instance in placement.pods()]


def _pod_port(target_port: int | str, instance: Instance) -> int | None:
    """The pod port a Service port reaches: a number as it is, a name as the pod's one gRPC
    port (as the translator resolves it for EDS)."""
    if isinstance(target_port, int) or target_port.isdigit():
        return int(target_port) if int(target_port) in instance.ports else None
    return instance.ports[0] if len(instance.ports) == 1 else None


def _metadata(instance: Instance, services: Sequence[ServiceRef]) -> WorkloadMetadata:
    return WorkloadMetadata(
        node_id=instance.node_id,
        pod=instance.name,
        namespace=instance.namespace,
        workload=instance.deployment,
        labels=dict(instance.labels),
        service_account=instance.service_account,
        services=tuple(sorted(services, key=lambda ref: ref.port)),
    )


def _write_atomically(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


class PeerDirectoryWriter:
    """The control plane's side: the pods' metadata, and each certificate the CA issues to a
    pod (`record`, a ca.CertificateRecord), written atomically on every change. Expired
    certificates are dropped."""

    def __init__(self, path: Path, workloads: Sequence[WorkloadMetadata]) -> None:
        self.path = path
        self.workloads = tuple(workloads)
        self._certificates = self._still_held()
        self._lock = threading.Lock()

    def _still_held(self) -> dict[str, tuple[str, datetime.datetime]]:
        """The unexpired certificates a previous run of the control plane recorded for these
        pods (`shopmesh mesh stop-control-plane`, then start): their holders keep presenting
        them on the connections they have, so they must still name their pod."""
        nodes = {workload.node_id for workload in self.workloads}
        try:
            recorded = json.loads(self.path.read_text())["certificates"]
            return {
                sha: (entry["node_id"], datetime.datetime.fromisoformat(entry["not_after"]))
                for sha, entry in recorded.items()
                if entry["node_id"] in nodes
            }
        except (FileNotFoundError, ValueError, KeyError, TypeError, AttributeError):
            return {}  # none, or not ours to read: every pod gets a new certificate anyway

    def write(self) -> None:
        now = datetime.datetime.now(datetime.UTC)
        with self._lock:
            self._certificates = {sha: entry for sha, entry in self._certificates.items() if entry[1] > now}
            document = {
                "workloads": {workload.node_id: asdict(workload) for workload in self.workloads},
                "certificates": {
                    sha: {"node_id": node_id, "not_after": not_after.isoformat()}
                    for sha, (node_id, not_after) in sorted(self._certificates.items())
                },
            }
            self.path.parent.mkdir(parents=True, exist_ok=True)
            _write_atomically(self.path, json.dumps(document, indent=1, sort_keys=True))

    def record(self, node_id: str, issued: IssuedCertificate) -> None:
        with self._lock:
            self._certificates[issued.sha256] = (node_id, issued.not_after)
        self.write()


class PeerDirectory:
    """A proxy's side: looks pods up by certificate or proxy id, reading the file again when
    a lookup misses and the file has changed since it was read (a renewed certificate)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._read_stamp: tuple[int, int] | None = None
        self._workloads: dict[str, WorkloadMetadata] = {}
        self._certificates: dict[str, str] = {}
        self._reload()

    def by_node_id(self, node_id: str) -> WorkloadMetadata | None:
        found = self._workloads.get(node_id)
        if found is None and self._reload():
            found = self._workloads.get(node_id)
        return found

    def by_certificate(self, sha256: str) -> WorkloadMetadata | None:
        node_id = self._certificates.get(sha256)
        if node_id is None and self._reload():
            node_id = self._certificates.get(sha256)
        return self._workloads.get(node_id) if node_id is not None else None

    def _reload(self) -> bool:
        """Reads the file if it changed; True if it did. A missing or unreadable file leaves
        what was read before (no pod known at all, at first)."""
        with self._lock:
            try:
                stat = self.path.stat()
            except OSError:
                return False
            stamp = (stat.st_mtime_ns, stat.st_size)
            if stamp == self._read_stamp or stat.st_size > MAX_DIRECTORY_BYTES:
                return False
            try:
                document = json.loads(self.path.read_text())
                workloads = {
                    node_id: WorkloadMetadata.from_json(data)
                    for node_id, data in document["workloads"].items()
                }
                certificates = {sha: entry["node_id"] for sha, entry in document["certificates"].items()}
            except (OSError, ValueError, KeyError, TypeError):
                return False  # half a file cannot happen (atomic replace); a broken one is skipped
            self._workloads, self._certificates, self._read_stamp = workloads, certificates, stamp
            return True
