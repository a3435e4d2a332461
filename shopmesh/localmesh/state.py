"""The local mesh's state directory (var/mesh by default): who writes what where."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shopmesh.localmesh.ca import IdentityFiles, identity_files, pod_identity_files
from shopmesh.localmesh.placement import Instance, Placement


@dataclass(frozen=True)
class MeshState:
    root: Path

    @property
    def placement_file(self) -> Path:
        return self.root / "placement.json"

    @property
    def ca_directory(self) -> Path:
        return self.root / "ca"

    @property
    def identities_directory(self) -> Path:
        return self.root / "identities"

    def identity_files(self, spiffe_uri: str) -> IdentityFiles:
        """A ServiceAccount's shared certificate (identities that run no pod: clients, operators)."""
        return identity_files(self.identities_directory, spiffe_uri)

    def pod_identity_files(self, pod: Instance) -> IdentityFiles:
        """A pod's own certificate, as its istio-agent keeps it."""
        return pod_identity_files(self.identities_directory, pod.namespace, pod.name)

    def credentials(self, instance: Instance, placement: Placement) -> IdentityFiles:
        """What a bootstrap points at: a placed pod's own certificate, or else (a client, an
        operator) its identity's shared one."""
        if instance in placement.pods():
            return self.pod_identity_files(instance)
        return self.identity_files(instance.spiffe_id)

    @property
    def peer_metadata_file(self) -> Path:
        """The control plane's peer directory (shopmesh.localmesh.peers)."""
        return self.root / "peer-metadata.json"

    @property
    def applied_directory(self) -> Path:
        """Objects applied on top of the sources (shopmesh.localmesh.applied)."""
        return self.root / "applied"

    @property
    def rotation_request_file(self) -> Path:
        """Touched to have the CA renew every certificate now (shopmesh.localmesh.rotation)."""
        return self.ca_directory / "rotate"

    @property
    def pod_status_file(self) -> Path:
        """Which pods are Ready: written by the local kubelet, read by the control plane's EDS."""
        return self.root / "pod-status.json"

    @property
    def control_socket(self) -> Path:
        """Where the running supervisor takes commands (shopmesh.localmesh.control)."""
        return self.root / "control.sock"

    @property
    def prometheus_directory(self) -> Path:
        return self.root / "prometheus"

    def bootstrap_file(self, instance_name: str) -> Path:
        return self.root / "bootstrap" / f"{instance_name}.json"

    def log_file(self, process_name: str) -> Path:
        return self.root / "logs" / f"{process_name}.log"
