"""The gRPC xDS bootstrap of one pod: what the istio-agent writes for proxyless gRPC
(`GRPC_XDS_BOOTSTRAP`): where the control plane is, who this node is, where its certificates
are (`file_watcher` provider "default", refreshed from disk as the CA rotates them), and the
template of its server listeners' names."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from shopmesh.localmesh.ca import IdentityFiles
from shopmesh.localmesh.placement import Instance
from shopmesh.localmesh.translate.names import SERVER_LISTENER_TEMPLATE
from shopmesh.localmesh.translate.tls import PROVIDER_INSTANCE

#: How often gRPC re-reads the certificate files: well inside a certificate's half life.
CERTIFICATE_REFRESH = "5s"


def bootstrap(instance: Instance, control_plane: str, identity: IdentityFiles) -> dict[str, Any]:
    return {
        "xds_servers": [
            {
                "server_uri": control_plane,
                "channel_creds": [{"type": "insecure"}],
                "server_features": ["xds_v3"],
            }
        ],
        "node": {
            "id": instance.node_id,
            "cluster": instance.app,
            "locality": {},
            "metadata": {
                "GENERATOR": "grpc",
                "NAMESPACE": instance.namespace,
                "LABELS": dict(instance.labels),
                "SERVICE_ACCOUNT": instance.service_account,
                "INSTANCE_IPS": instance.address,
            },
        },
        "certificate_providers": {
            PROVIDER_INSTANCE: {
                "plugin_name": "file_watcher",
                "config": {
                    "certificate_file": str(identity.certificate_chain),
                    "private_key_file": str(identity.private_key),
                    "ca_certificate_file": str(identity.root_certificate),
                    "refresh_interval": CERTIFICATE_REFRESH,
                },
            }
        },
        "server_listener_resource_name_template": SERVER_LISTENER_TEMPLATE,
    }


def write_bootstrap(path: Path, instance: Instance, control_plane: str, identity: IdentityFiles) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(bootstrap(instance, control_plane, identity), indent=2))
    return path
