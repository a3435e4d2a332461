"""What `shopmesh mesh up` tells its user: what runs where, and what to try."""

from __future__ import annotations

import json
import shlex

from shopmesh.launch.demo import GRPCURL, grpcurl_examples
from shopmesh.localmesh.supervisor import LocalMesh


def describe(mesh: LocalMesh) -> str:
    settings = mesh.settings
    lines = [f"control plane (xDS, CA)  {settings.control_plane}   state {settings.state}"]
    for pod in mesh.pods:
        instance = pod.instance
        lines.append(
            f"{instance.name:<22} {instance.spiffe_id:<42} sidecar {', '.join(pod.sidecar_addresses)}"
            f"  app {pod.app_address}  metrics http://{pod.metrics_address}/metrics"
        )
    if mesh.gateway_target:
        lines.append(f"ingress gateway          {settings.ingress} (plaintext) -> {mesh.gateway_target}")
    lines.append(f"logs                     {settings.state / 'logs'}")
    lines.append("")
    lines.append("try:")
    host = settings.ingress
    # Everything enters through the ingress gateway, which routes by method.
    canary = shlex.quote(json.dumps({"customer_id": "me"}))
    examples = grpcurl_examples(
        order=host,
        inventory=host,
        health_check=True,
        more=[
            f"{GRPCURL} -H 'x-canary: true' -d {canary} {host} shop.order.v1.OrderService/ListOrders"
            "   # always order v2 (the canary overlay's header route)",
            ".venv/bin/shopmesh mesh xds   # the xDS resources served now",
        ],
    )
    lines.extend(f"  {line}" for line in examples)
    return "\n".join(lines)
