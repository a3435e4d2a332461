"""Real orders through the real local mesh: what each proxy and each app spends per CreateOrder.

    python -m shopmesh.localmesh.proxybench.orders [--orders 300] [--concurrency 2]
                                                   [--to ingress|app] [--json]

Starts the project's canary mesh (shopmesh.localmesh.supervisor, as `scripts/up` does, but on a
random subnet, free ports and embedded SQLite under a temporary directory),
tops up the bought product's stock, makes a few unmeasured orders, then `--orders` CreateOrder
calls (tok_visa, one item) `--concurrency` at a time, either through the ingress (ingress →
order's sidecar → order, whose calls to inventory and payment cross their sidecars) or
straight to order v1's app port (no ingress, no order sidecar). It reports orders/s, latency,
outcomes and every process's CPU per order (utime + stime from /proc), the proxies' summed.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import grpc

import shopmesh
from services.runtime.outbound import reraise_lost_cancellation
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.bench import machine, proc_status, top_up_stock
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.supervisor import LocalMesh

ROOT = Path(shopmesh.__file__).resolve().parents[1]
PRODUCT = "sku-espresso-beans"
WARMUP_ORDERS = 20
CALL_TIMEOUT_SECONDS = 10.0


async def create_orders(
    address: str, count: int, concurrency: int
) -> tuple[float, list[float], Counter[str]]:
    """Wall seconds, the latencies, and each outcome (order status or gRPC code) counted."""
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    remaining = iter(range(count))
    async with grpc.aio.insecure_channel(address) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)

        async def worker() -> None:
            for _ in remaining:
                request = order_pb2.CreateOrderRequest(
                    request_id=str(uuid.uuid4()),
                    customer_id="proxybench",
                    payment_token="tok_visa",
                    items=[order_pb2.OrderItem(product_id=PRODUCT, quantity=1)],
                )
                began = time.perf_counter()
                try:
                    reply = await orders.CreateOrder(request, timeout=CALL_TIMEOUT_SECONDS)
                    outcomes[order_pb2.OrderStatus.Name(reply.order.status)] += 1
                except grpc.aio.AioRpcError as error:
                    reraise_lost_cancellation(error)
                    outcomes[error.code().name] += 1
                latencies.append(time.perf_counter() - began)

        began = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return time.perf_counter() - began, sorted(latencies), outcomes


def run(orders: int, concurrency: int, to: str) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="shopmesh-orders-") as directory:
        # the project's canary mesh, on ports and a subnet of its own
        settings = dataclasses.replace(
            MeshSettings.for_project(ROOT), state=Path(directory)
        ).on_free_addresses()
        mesh = LocalMesh(settings)
        mesh.start(timeout=120)
        try:
            pods = {pod.instance.name: pod for pod in mesh.pods}
            asyncio.run(top_up_stock(pods["inventory-0"].app_address, PRODUCT, orders + 2 * WARMUP_ORDERS))
            address = settings.ingress if to == "ingress" else pods["order-0"].app_address
            asyncio.run(create_orders(address, WARMUP_ORDERS, concurrency))
            pids = {
                name: process.pid or 0 for name, process in mesh.processes.items() if name != "controlplane"
            }
            before = {name: proc_status(pid)["cpu_seconds"] for name, pid in pids.items()}
            seconds, latencies, outcomes = asyncio.run(create_orders(address, orders, concurrency))
            after = {name: proc_status(pid)["cpu_seconds"] for name, pid in pids.items()}
        finally:
            mesh.stop()
    cpu = {name: round((after[name] - before[name]) * 1000 / orders, 2) for name in sorted(pids)}

    def percentile(fraction: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(fraction * len(latencies)))] * 1000, 1)

    return {
        "orders": orders,
        "concurrency": concurrency,
        "to": to,
        "orders_per_second": round(orders / seconds, 1),
        "latency_ms": {"p50": percentile(0.5), "p90": percentile(0.9), "p99": percentile(0.99)},
        "outcomes": dict(outcomes),
        "cpu_ms_per_order": cpu,
        "proxies_cpu_ms_per_order": round(
            sum(value for name, value in cpu.items() if name.startswith(("sidecar", "ingress"))), 2
        ),
        "apps_cpu_ms_per_order": round(
            sum(value for name, value in cpu.items() if name.startswith("app")), 2
        ),
    }


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="python -m shopmesh.localmesh.proxybench.orders")
    parser.add_argument("--orders", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=2)
    parser.add_argument("--to", choices=("ingress", "app"), default="ingress")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(arguments)
    if not 1 <= args.orders <= 100_000 or not 1 <= args.concurrency <= 256:
        parser.error("--orders must be 1..100000 and --concurrency 1..256")
    facts = machine()
    report = {
        "command": " ".join(["python -m shopmesh.localmesh.proxybench.orders", *arguments]),
        "machine": facts,
        **run(args.orders, args.concurrency, args.to),
    }
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        print(
            f"{report['orders']} CreateOrders to {report['to']}, {report['concurrency']} at a time: "
            f"{report['orders_per_second']} orders/s, latency {report['latency_ms']} ms, {report['outcomes']}"
        )
        for name, value in report["cpu_ms_per_order"].items():
            print(f"  {name:<22} {value:>7} ms CPU per order")
        print(
            f"  proxies {report['proxies_cpu_ms_per_order']} ms, apps {report['apps_cpu_ms_per_order']} ms "
            f"per order; load average at start {facts['load_average_at_start']}"
        )
        print(f"rerun: {report['command']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
