"""What `shopmesh mesh up` tells its user: what runs where, and what to try."""

from __future__ import annotations

import json
import shlex

from shopmesh.launch.demo import GRPCURL, grpcurl_examples
from shopmesh.localmesh.istiostats import STATS_PATH
from shopmesh.localmesh.supervisor import LocalMesh


def describe(mesh: LocalMesh) -> str:
    settings = mesh.settings
    lines = [f"control plane (xDS, CA)  {settings.control_plane}   state {settings.state}"]
    for pod in mesh.pods:
        instance = pod.instance
        stats = ", ".join(
            f"http://{pod.stats_address(i)}{STATS_PATH}" for i in range(len(pod.sidecar_addresses))
        )
        lines.append(
            f"{instance.name:<22} {instance.spiffe_id:<42} sidecar {', '.join(pod.sidecar_addresses)}"
            f"  app {pod.app_address}  metrics http://{pod.metrics_address}/metrics  Istio metrics {stats}"
        )
    if mesh.gateway_target:
        lines.append(
            f"ingress gateway          {settings.ingress} (plaintext) -> {mesh.gateway_target}"
            f"  Istio metrics http://{settings.ingress_stats}{STATS_PATH}"
        )
    if mesh.prometheus is not None:
        lines.append(
            f"prometheus               {mesh.prometheus.url}  scrapes {len(mesh.scrape_targets())} targets "
            f"every {mesh.prometheus.settings.scrape_interval:g} s, SLO rules loaded, data in "
            f"{mesh.prometheus.data_directory}"
        )
    lines.append(f"databases                {mesh.databases.describe()}")
    lines.append(f"logs                     {settings.state / 'logs'}")
    lines.append("")
    lines.append("try:")
    host = settings.ingress
    # Everything enters through the ingress gateway, which routes by method.
    canary = shlex.quote(json.dumps({"customer_id": "me"}))
    live = []
    if mesh.prometheus is not None:
        live.append(
            f".venv/bin/shopmesh topology --live --prometheus {mesh.prometheus.url}"
            "   # Kiali's graph, from the traffic"
        )
    if mesh.flagger_routes:  # Flagger's stack: its Canaries are rehearsed, not routed by header
        rollouts = [
            f".venv/bin/shopmesh canary {ref.split('/')[1]} --namespace {ref.split('/')[0]}"
            f" --state {settings.state}"
            f" --prometheus {mesh.prometheus.url if mesh.prometheus else '<url>'} --ingress {host}"
            " --interval 5s --load 8   # Flagger's analysis, rehearsed (docs/canary.md)"
            for ref in mesh.flagger_routes
        ]
    else:
        rollouts = [
            f"{GRPCURL} -H 'x-canary: true' -d {canary} {host} shop.order.v1.OrderService/ListOrders"
            "   # always order v2 (the canary overlay's header route)"
        ]
    examples = grpcurl_examples(
        order=host,
        inventory=host,
        health_check=True,
        more=[*rollouts, ".venv/bin/shopmesh mesh xds   # the xDS resources served now", *live],
    )
    lines.extend(f"  {line}" for line in examples)
    return "\n".join(lines)
