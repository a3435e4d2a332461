"""What `shopmesh mesh up` tells its user (what runs where, and what to try) and what
`shopmesh mesh ps` shows (the pods, as `kubectl get pods`)."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from typing import Any

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
        more=[
            *rollouts,
            ".venv/bin/shopmesh mesh xds   # the xDS resources served now",
            ".venv/bin/shopmesh mesh ps   # the pods: ready, status, restarts (kill, stop-control-plane)",
            *live,
        ],
    )
    lines.extend(f"  {line}" for line in examples)
    return "\n".join(lines)


def human_duration(seconds: float) -> str:
    """kubectl's ages (apimachinery duration.HumanDuration): 45s, 3m20s, 12m, 2h5m, 3d4h."""
    s = int(seconds)
    if s < 120:
        return f"{s}s"
    minutes = s // 60
    if minutes < 10:
        return f"{minutes}m{s % 60}s" if s % 60 else f"{minutes}m"
    if minutes < 180:
        return f"{minutes}m"
    hours = minutes // 60
    if hours < 48:
        return f"{hours}h{minutes % 60}m" if minutes % 60 else f"{hours}h"
    return f"{hours // 24}d{hours % 24}h" if hours % 24 else f"{hours // 24}d"


def pod_table(ps: Mapping[str, Any]) -> str:
    """`kubectl get pods`'s columns; RESTARTS as kubectl prints them, with the last one's age."""
    rows = [("NAME", "READY", "STATUS", "RESTARTS", "AGE")]
    for pod in ps["pods"]:
        restarts = str(pod["restarts"])
        if pod["last_restart_seconds_ago"] is not None:
            restarts += f" ({human_duration(pod['last_restart_seconds_ago'])} ago)"
        ready = f"{pod['ready_containers']}/{pod['containers']}"
        rows.append((pod["name"], ready, pod["status"], restarts, human_duration(pod["age_seconds"])))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "   ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    control_plane = ps["control_plane"]
    lines.append(f"\ncontrol plane {control_plane['address']}: {control_plane['status']}")
    return "\n".join(lines)
