"""`scripts/bench`: what one machine does with the plain stack — orders per second, latency, memory.

    python -m shopmesh.bench [--orders 2000] [--concurrency 16] [--reads 1] [--max-seconds 120]
                             [--product sku-espresso-beans] [--state DIR] [--json]

Starts order, inventory and payment the way `scripts/up --plain` does (shopmesh.launch), on
free loopback ports and embedded SQLite files under a temporary directory, tops up the bought
product's stock with AdjustStock, then runs `--orders` CreateOrder calls (unique request_id,
tok_visa) from `--concurrency` workers, each followed by `--reads` GetOrder calls of the new
order. It stops taking new work at `--max-seconds`, so it always ends. It reports throughput,
latency percentiles, statuses, each service's resident memory and CPU time, the machine and the
command that reruns it; then stops every process it started, Ctrl-C included.

The load generator runs on the same machine as the services and competes with them for CPU:
the numbers are what one laptop does end to end, not what a service does alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import shlex
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from services.runtime.registry import declarations
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.launch.demo import DEMO_PRODUCT
from shopmesh.launch.readiness import free_port
from shopmesh.launch.stack import Stack
from shopmesh.localrun import SETTINGS

CALL_TIMEOUT_SECONDS = 10.0
MAX_STOCK_DELTA = 1_000_000  # AdjustStock's bound on one adjustment


@dataclass
class Calls:
    """Latencies of the successful calls of one method, and the statuses of the failed ones."""

    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.seconds)

        def percentile(fraction: float) -> float | None:  # nearest rank
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

        return {
            "ok": len(ordered),
            "errors": dict(self.errors),
            "latency_ms": {
                "p50": percentile(0.50),
                "p90": percentile(0.90),
                "p99": percentile(0.99),
                "max": percentile(1.0),
            },
        }


@dataclass
class Load:
    orders: int
    concurrency: int
    reads: int
    product_id: str
    deadline: float
    create: Calls = field(default_factory=Calls)
    get: Calls = field(default_factory=Calls)
    outcomes: Counter[str] = field(default_factory=Counter)  # OrderStatus of the created orders
    started: int = 0

    async def worker(self, orders: order_pb2_grpc.OrderServiceStub) -> None:
        while self.started < self.orders and time.monotonic() < self.deadline:
            self.started += 1  # one event loop: no lock needed between workers
            request = order_pb2.CreateOrderRequest(
                request_id=str(uuid.uuid4()),
                customer_id="bench",
                items=[order_pb2.OrderItem(product_id=self.product_id, quantity=1)],
                payment_token="tok_visa",
            )
            order = await self.call(self.create, orders.CreateOrder(request, timeout=self.timeout()))
            if order is None:
                continue
            self.outcomes[order_pb2.OrderStatus.Name(order.order.status).removeprefix("ORDER_STATUS_")] += 1
            for _ in range(self.reads):
                lookup = order_pb2.GetOrderRequest(order_id=order.order.order_id)
                await self.call(self.get, orders.GetOrder(lookup, timeout=self.timeout()))

    def timeout(self) -> float:
        # Never past the deadline (plus one call's worth): the run must end.
        return max(0.1, min(CALL_TIMEOUT_SECONDS, self.deadline + CALL_TIMEOUT_SECONDS - time.monotonic()))

    @staticmethod
    async def call(calls: Calls, pending: Any) -> Any:
        began = time.perf_counter()
        try:
            reply = await pending
        except grpc.aio.AioRpcError as error:
            calls.errors[error.code().name] += 1
            return None
        calls.seconds.append(time.perf_counter() - began)
        return reply


async def top_up_stock(address: str, product_id: str, units: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        product = await inventory.GetProduct(
            inventory_pb2.GetProductRequest(product_id=product_id), timeout=CALL_TIMEOUT_SECONDS
        )
        missing = units - product.product.available
        if missing > 0:
            adjust = inventory_pb2.AdjustStockRequest(product_id=product_id, delta=missing, reason="bench")
            await inventory.AdjustStock(adjust, timeout=CALL_TIMEOUT_SECONDS)


async def run_load(load: Load, order_address: str) -> float:
    """Runs the load; returns its wall-clock seconds."""
    async with grpc.aio.insecure_channel(order_address) as channel:
        orders = order_pb2_grpc.OrderServiceStub(channel)
        began = time.perf_counter()
        await asyncio.gather(*(load.worker(orders) for _ in range(load.concurrency)))
        return time.perf_counter() - began


def proc_status(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (MiB), and CPU seconds used so far, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {
        "rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        "peak_rss_mib": round(int(fields["VmHWM"].split()[0]) / 1024, 1),
        "cpu_seconds": round((int(stat[11]) + int(stat[12])) / ticks, 2),  # utime + stime
    }


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": models[0] if models else platform.processor() or "unknown",
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/bench", description=__doc__.split("\n\n")[0])

    def bounded(low: int, high: int) -> Any:
        def check(text: str) -> int:
            value = int(text)
            if not low <= value <= high:
                raise argparse.ArgumentTypeError(f"must be within {low}..{high}")
            return value

        return check

    parser.add_argument("--orders", type=bounded(1, MAX_STOCK_DELTA), default=2000)
    parser.add_argument("--concurrency", type=bounded(1, 1000), default=16)
    parser.add_argument("--reads", type=bounded(0, 100), default=1, help="GetOrder calls per order")
    parser.add_argument("--max-seconds", type=bounded(1, 86_400), default=120, help="stop taking new work")
    parser.add_argument("--product", default=DEMO_PRODUCT, help="a product of the demo catalog")
    parser.add_argument("--state", type=Path, help="databases and logs (default: a temporary directory)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser.parse_args(argv)


def bench(args: argparse.Namespace, command: str) -> dict[str, Any]:
    facts = machine()
    with ExitStack() as cleanup:
        state = args.state or Path(
            cleanup.enter_context(tempfile.TemporaryDirectory(prefix="shopmesh-bench-"))
        )
        stack = Stack.on_loopback(
            state.resolve(),
            ports={service: free_port() for service in declarations()},
            metrics_ports={service: free_port() for service in declarations()},
            settings=SETTINGS,
        )
        cleanup.callback(stack.stop)  # before any start: whatever started is stopped, callers first
        stack.spawn()
        for process in stack.processes.values():
            print(f"started {process.name} (pid {process.pid})", file=sys.stderr, flush=True)
        stack.wait_serving()
        processes = stack.processes
        print(f"services up in {state.resolve()}; seeding and loading", file=sys.stderr, flush=True)
        asyncio.run(top_up_stock(stack.address("inventory"), args.product, args.orders))
        before = {service: proc_status(process.pid or 0) for service, process in processes.items()}
        client_before = resource.getrusage(resource.RUSAGE_SELF)
        load = Load(
            args.orders, args.concurrency, args.reads, args.product, time.monotonic() + args.max_seconds
        )
        seconds = asyncio.run(run_load(load, stack.address("order")))
        client_after = resource.getrusage(resource.RUSAGE_SELF)
        services = {}
        for service, process in processes.items():
            after = proc_status(process.pid or 0)
            after["cpu_seconds"] = round(after["cpu_seconds"] - before[service]["cpu_seconds"], 2)
            services[service] = {"pid": process.pid, **after}
    client_cpu = (client_after.ru_utime + client_after.ru_stime) - (
        client_before.ru_utime + client_before.ru_stime
    )
    return {
        "command": command,
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {**facts, "load_average_at_end": [round(value, 2) for value in os.getloadavg()]},
        "settings": {
            "orders": args.orders,
            "concurrency": args.concurrency,
            "reads_per_order": args.reads,
            "max_seconds": args.max_seconds,
            "database": "sqlite",
        },
        "seconds": round(seconds, 2),
        "orders_attempted": load.started,
        "order_outcomes": dict(load.outcomes),
        "orders_per_second": round(load.create.summary()["ok"] / seconds, 1),
        "CreateOrder": load.create.summary(),
        "GetOrder": load.get.summary(),
        "services": services,  # memory at the end of the load; CPU seconds during it
        "client_cpu_seconds": round(client_cpu, 2),
    }


def render(report: dict[str, Any]) -> str:
    machine_facts, settings = report["machine"], report["settings"]
    lines = [
        f"shopmesh bench, {report['date']}: {machine_facts['nproc']} CPUs ({machine_facts['cpu_model']}), "
        f"load average {machine_facts['load_average_at_start']} at start, "
        f"{machine_facts['load_average_at_end']} at end",
        f"{report['orders_attempted']} of {settings['orders']} orders, "
        f"concurrency {settings['concurrency']}, {settings['reads_per_order']} GetOrder each, SQLite, "
        f"in {report['seconds']} s (limit {settings['max_seconds']} s)",
        f"throughput: {report['orders_per_second']} orders/s; outcomes {report['order_outcomes']}",
    ]
    for method in ("CreateOrder", "GetOrder"):
        calls = report[method]
        latency = "  ".join(f"{name} {value} ms" for name, value in calls["latency_ms"].items())
        lines.append(f"{method:<12} ok {calls['ok']:<6} errors {calls['errors'] or 0}   {latency}")
    for service, usage in report["services"].items():
        lines.append(
            f"{service:<10} pid {usage['pid']:<8} RSS {usage['rss_mib']} MiB (peak {usage['peak_rss_mib']}), "
            f"CPU {usage['cpu_seconds']} s during the load"
        )
    lines.append(f"load generator (this process): CPU {report['client_cpu_seconds']} s during the load")
    lines.append(f"rerun: {report['command']}")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    args = parse(arguments)
    command = shlex.join(["scripts/bench", *arguments])
    # SIGTERM unwinds like Ctrl-C, through the cleanup that stops the services.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        report = bench(args, command)
    except KeyboardInterrupt:
        print("interrupted; every service stopped", file=sys.stderr)
        return 130
    except RuntimeError as error:  # a service did not start: its log's tail is in the message
        print(error, file=sys.stderr)
        return 1
    except grpc.aio.AioRpcError as error:  # seeding failed, e.g. --product is not in the catalog
        print(f"bench: {error.code().name}: {error.details()}", file=sys.stderr)
        return 1
    print(json.dumps(report, indent=2) if args.json else render(report), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
