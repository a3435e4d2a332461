"""The canary, through the ingress as customers reach it: `x-canary: true` always lands on
order v2, 2000 orders without it split 90/10 by the VirtualService's weights, and an edit of
those weights on disk moves the split within a second, nothing restarted.

The orders are real CreateOrders (stock reserved, card charged, reservation committed), each
counted by the pod whose sidecar served it, and each must end CONFIRMED: an order lost on the
way is a failed routing proof. They run two at a time: on two cores a CreateOrder costs about
80 ms of CPU across a dozen processes, so more at once finish no sooner and only queue behind
the embedded SQLite databases' write locks, where a slow turn outlasts inventory's 3 s route
timeout (which grpc-core ends early) and fails the order (docs/local-mesh.md, "Throughput").
The live rewrite is counted with ListOrders, which the route splits exactly as it splits
CreateOrder, in a tenth of the time.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent import futures
from pathlib import Path

import grpc
import pytest

from localmesh.meshcalls import client_bootstrap, encoded, pod_of, probe, rewritten, target
from localmesh.statistics import binomial_bounds
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.localmesh.supervisor import LocalMesh

PEER = "x-envoy-peer-metadata-id"
V2 = "order-v2-0"
ORDERS = 2000
HEADER_ORDERS = 100
#: Orders in flight at once: enough to keep both cores busy, few enough that no order waits
#: long behind SQLite's write lock (see the module docstring).
CONCURRENCY = 2
#: The whole run's budget: 2000 orders take about two minutes on two idle cores.
ORDERS_BUDGET_SECONDS = 420.0
CANARY = (("x-canary", "true"),)


def in_parallel(
    call: Callable[[int], str], calls: int, budget: float, concurrency: int = CONCURRENCY
) -> Counter[str]:
    """`calls` calls, `concurrency` at a time, within `budget` seconds: what each returned,
    counted. The first call that fails stops the others (and fails the test)."""
    deadline = time.monotonic() + budget
    indices = iter(range(calls))
    lock = threading.Lock()
    failed = threading.Event()

    def worker() -> list[str]:
        results = []
        while time.monotonic() < deadline and not failed.is_set():
            with lock:
                index = next(indices, None)
            if index is None:
                break
            try:
                results.append(call(index))
            except BaseException:
                failed.set()
                raise
        return results

    with futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        tasks = [pool.submit(worker) for _ in range(concurrency)]
        done = [result for task in tasks for result in task.result()]
    assert len(done) == calls, f"only {len(done)} of {calls} calls within {budget} s"
    return Counter(done)


@pytest.fixture(scope="module")
def ingress(mesh: LocalMesh) -> Iterator[grpc.Channel]:
    with grpc.insecure_channel(mesh.settings.ingress) as channel:
        yield channel


@pytest.fixture(scope="module")
def product_in_stock(mesh: LocalMesh, ingress: grpc.Channel) -> str:
    """A catalog product with stock for every order here, added by the operator (the only
    identity inventory's policy lets adjust stock) through the mesh."""
    listed = ingress.unary_unary(
        "/shop.inventory.v1.InventoryService/ListProducts",
        request_serializer=inventory_pb2.ListProductsRequest.SerializeToString,
        response_deserializer=inventory_pb2.ListProductsResponse.FromString,
    )(inventory_pb2.ListProductsRequest(), timeout=10)
    product_id: str = listed.products[0].product_id
    adjust = inventory_pb2.AdjustStockRequest(
        product_id=product_id, delta=ORDERS + HEADER_ORDERS + 100, reason="canary test orders"
    )
    plan = [
        {
            "target": target("inventory"),
            "method": "/shop.inventory.v1.InventoryService/AdjustStock",
            "request_b64": encoded(adjust),
            "timeout": 10.0,
        }
    ]
    [result] = probe(client_bootstrap(mesh, "shop", "operator"), plan)
    assert result["code"] == "OK", result
    return product_id


def order_taker(
    ingress: grpc.Channel, product_id: str, metadata: tuple[tuple[str, str], ...] = ()
) -> Callable[[int], str]:
    """A CreateOrder with a fresh request id; returns the pod that served it, once CONFIRMED."""
    stub = order_pb2_grpc.OrderServiceStub(ingress)

    def create(_: int) -> str:
        request = order_pb2.CreateOrderRequest(
            request_id=f"canary-{uuid.uuid4()}",
            customer_id="canary-orders",
            items=[order_pb2.OrderItem(product_id=product_id, quantity=1)],
            payment_token="tok_visa",
        )
        reply, call = stub.CreateOrder.with_call(request, timeout=30, metadata=metadata)
        assert reply.order.status == order_pb2.ORDER_STATUS_CONFIRMED, reply.order
        return pod_of(dict(call.initial_metadata()).get(PEER, ""))

    return create


def served_by(ingress: grpc.Channel, calls: int) -> Counter[str]:
    """Which order pod answered each of `calls` ListOrders."""
    stub = order_pb2_grpc.OrderServiceStub(ingress)

    def list_orders(_: int) -> str:
        _, call = stub.ListOrders.with_call(
            order_pb2.ListOrdersRequest(customer_id="canary-probe"), timeout=10
        )
        return pod_of(dict(call.initial_metadata()).get(PEER, ""))

    return in_parallel(list_orders, calls, budget=60.0, concurrency=16)


def test_the_canary_header_always_reaches_v2(ingress: grpc.Channel, product_in_stock: str) -> None:
    orders = order_taker(ingress, product_in_stock, CANARY)
    assert in_parallel(orders, HEADER_ORDERS, budget=60.0) == Counter({V2: HEADER_ORDERS})


def test_2000_orders_split_90_10_within_binomial_bounds(ingress: grpc.Channel, product_in_stock: str) -> None:
    counts = in_parallel(order_taker(ingress, product_in_stock), ORDERS, budget=ORDERS_BUDGET_SECONDS)
    assert set(counts) == {"order-0", V2}, counts
    low, high = binomial_bounds(ORDERS, 0.10)
    assert low <= counts[V2] <= high, (counts, (low, high))


def test_rewriting_the_weights_on_disk_shifts_the_split_within_a_second(
    mesh: LocalMesh, istio_routes: Path, ingress: grpc.Channel
) -> None:
    pids = {name: process.pid for name, process in mesh.processes.items()}
    original = istio_routes.read_text()
    assert original.count("weight: 90") == 2
    assert original.count("weight: 10") == 2
    half_and_half = original.replace("weight: 90", "weight: 50").replace("weight: 10", "weight: 50")
    with rewritten(mesh, istio_routes, half_and_half) as pushed_after:
        assert pushed_after < 1.0
        counts = served_by(ingress, 400)
        low, high = binomial_bounds(400, 0.5)
        assert low <= counts[V2] <= high, (counts, (low, high))
        assert counts[V2] > binomial_bounds(400, 0.10)[1]  # far outside what 90/10 gives
    counts = served_by(ingress, 200)  # and back to 90/10
    low, high = binomial_bounds(200, 0.10)
    assert low <= counts[V2] <= high, (counts, (low, high))
    assert {name: process.pid for name, process in mesh.processes.items()} == pids  # nothing restarted
