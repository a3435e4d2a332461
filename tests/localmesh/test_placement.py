"""Where local pods run: loopback subnets that meshes running side by side do not share, and
how many pods each Deployment runs (at the autoscalers' floor on request)."""

from __future__ import annotations

import socket

import pytest

from shopmesh.localmesh.placement import autoscaler_floors, free_subnet, place
from shopmesh.manifests.model import MeshObjects


def _deployment(name: str, version: str, spec: str = "") -> str:
    return f"""
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}, namespace: shop}}
spec:{spec}
  template:
    metadata: {{labels: {{app: order, version: {version}}}}}
    spec: {{containers: [{{name: order, ports: [{{name: grpc, containerPort: 50051}}]}}]}}
"""


def _autoscaler(kind: str, target: str, floor: str = "") -> str:
    return f"""
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {{name: {target}, namespace: shop}}
spec:
  scaleTargetRef: {{apiVersion: apps/v1, kind: {kind}, name: {target}}}{floor}
  maxReplicas: 6
"""


#: order (v1) scaled by an autoscaler, its canary order-v2 at one replica, and an autoscaler of a
#: StatefulSet, which counts no Deployment's pods.
WORKLOADS = MeshObjects.from_yaml(
    "---".join(
        [
            _deployment("order", "v1"),
            _deployment("order-v2", "v2", "\n  replicas: 1"),
            _autoscaler("Deployment", "order", "\n  minReplicas: 2"),
            _autoscaler("StatefulSet", "checkout"),
        ]
    )
)


def test_a_free_subnet_is_one_nobody_listens_in_and_not_handed_out_twice() -> None:
    with socket.socket() as listener:
        listener.bind(("127.201.0.1", 0))
        listener.listen()
        assert free_subnet(low=201, high=202) == 202  # 201 has a listener
        with pytest.raises(RuntimeError, match=r"127\.201-202"):
            free_subnet(low=201, high=202)  # 202 is handed out already


def test_the_autoscalers_floor_is_each_scaled_deployments_min_replicas() -> None:
    floors = autoscaler_floors(WORKLOADS)
    assert floors == {"order": 2}  # a StatefulSet's autoscaler is no Deployment's; v2 has none
    pods = place(WORKLOADS, replicas=floors).instances
    assert [(pod.name, pod.version, pod.address) for pod in pods] == [
        ("order-0", "v1", "127.10.1.1"),
        ("order-1", "v1", "127.10.1.2"),
        ("order-v2-0", "v2", "127.10.2.1"),
    ]
    # without the floors, a Deployment with no `replicas` runs one pod, as before
    assert [pod.name for pod in place(WORKLOADS).instances] == ["order-0", "order-v2-0"]
