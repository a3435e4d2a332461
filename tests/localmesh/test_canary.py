"""The canary, through the ingress as customers reach it: `x-canary: true` always lands on
order v2, the rest splits 90/10 by the VirtualService's weights, and an edit of those weights
on disk moves the split within a second, nothing restarted.

The orders counted are ListOrders calls: the route picks a version per call, whatever the
method, and a read keeps 2000 of them to seconds. 2000 CreateOrders would mostly measure the
embedded SQLite databases' write contention (and trip inventory's 3 s route timeout, which
grpc-core fires 1-2 s early).
"""

from __future__ import annotations

import math
import time
from collections import Counter
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from localmesh.meshcalls import pod_of
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.localmesh.supervisor import LocalMesh

PEER = "x-envoy-peer-metadata-id"
V2 = "order-v2-0"


def binomial_bounds(n: int, p: float, confidence: float = 0.999) -> tuple[int, int]:
    """The smallest [low, high] holding `confidence` of Binomial(n, p), tails split evenly."""
    pmf = [
        math.exp(
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * math.log(p)
            + (n - k) * math.log(1 - p)
        )
        for k in range(n + 1)
    ]
    tail = (1 - confidence) / 2
    low, acc = 0, 0.0
    while acc + pmf[low] <= tail:
        acc += pmf[low]
        low += 1
    high, acc = n, 0.0
    while acc + pmf[high] <= tail:
        acc += pmf[high]
        high -= 1
    return low, high


def served_by(channel: grpc.Channel, calls: int, metadata: tuple[tuple[str, str], ...] = ()) -> Counter[str]:
    """Which order pod answered each of `calls` ListOrders, 16 at a time."""
    stub = order_pb2_grpc.OrderServiceStub(channel)

    def one(_: int) -> str:
        _, call = stub.ListOrders.with_call(
            order_pb2.ListOrdersRequest(customer_id="canary-probe"), timeout=10, metadata=metadata
        )
        return pod_of(dict(call.initial_metadata()).get(PEER, ""))

    with futures.ThreadPoolExecutor(max_workers=16) as pool:
        return Counter(pool.map(one, range(calls)))


@pytest.fixture(scope="module")
def ingress(mesh: LocalMesh) -> grpc.Channel:
    with grpc.insecure_channel(mesh.settings.ingress) as channel:
        yield channel


def test_the_canary_header_always_reaches_v2(ingress: grpc.Channel) -> None:
    assert served_by(ingress, 200, (("x-canary", "true"),)) == Counter({V2: 200})


def test_2000_orders_split_90_10_within_binomial_bounds(ingress: grpc.Channel) -> None:
    counts = served_by(ingress, 2000)
    assert set(counts) == {"order-0", V2}
    low, high = binomial_bounds(2000, 0.10)
    assert low <= counts[V2] <= high, (counts, (low, high))


def _pushes(mesh: LocalMesh) -> int:
    return mesh.processes["controlplane"].logs(tail=10_000_000).count("pushed new config")


def _wait_for_push(mesh: LocalMesh, before: int, timeout: float = 5.0) -> float:
    """Seconds until the control plane has pushed a config after `before` pushes."""
    started = time.monotonic()
    while _pushes(mesh) == before:
        assert time.monotonic() - started < timeout, "the control plane pushed nothing"
        time.sleep(0.02)
    return time.monotonic() - started


def test_rewriting_the_weights_on_disk_shifts_the_split_within_a_second(
    mesh: LocalMesh, istio_routes: Path, ingress: grpc.Channel
) -> None:
    pids = {name: process.pid for name, process in mesh.processes.items()}
    original = istio_routes.read_text()
    assert original.count("weight: 90") == 2
    assert original.count("weight: 10") == 2
    before = _pushes(mesh)
    istio_routes.write_text(original.replace("weight: 90", "weight: 50").replace("weight: 10", "weight: 50"))
    try:
        assert _wait_for_push(mesh, before) < 1.0
        counts = served_by(ingress, 400)
        low, high = binomial_bounds(400, 0.5)
        assert low <= counts[V2] <= high, (counts, (low, high))
        assert counts[V2] > binomial_bounds(400, 0.10)[1]  # far outside what 90/10 gives
    finally:
        before = _pushes(mesh)
        istio_routes.write_text(original)
        _wait_for_push(mesh, before)
    counts = served_by(ingress, 200)  # and back to 90/10
    low, high = binomial_bounds(200, 0.10)
    assert low <= counts[V2] <= high, (counts, (low, high))
    assert {name: process.pid for name, process in mesh.processes.items()} == pids  # nothing restarted
