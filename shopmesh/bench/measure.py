"""Measuring calls: rate, latency, and the CPU each process spends per call (/proc)."""

from __future__ import annotations

import asyncio
import os
import platform
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc

from services.runtime.outbound import reraise_lost_cancellation
from services.runtime.server import event_loop
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.launch.echo import UNARY

T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 10.0
MAX_STOCK_DELTA = 1_000_000  # AdjustStock's bound on one adjustment
WARMUP_CALLS = 200
#: What one call does: `make(channel)` gives the function that makes the i-th call.
CallMaker = Callable[[grpc.aio.Channel], Callable[[int], Awaitable[Any]]]


@dataclass
class Calls:
    """Latencies of the successful calls of one kind, and the statuses of the failed ones."""

    seconds: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)

    def summary(self) -> dict[str, Any]:
        ordered = sorted(self.seconds)

        def percentile(fraction: float) -> float | None:  # nearest rank
            if not ordered:
                return None
            return round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 1)

        latency = {name: percentile(value) for name, value in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99))}
        return {
            "ok": len(ordered),
            "errors": dict(self.errors),
            "latency_ms": {**latency, "max": percentile(1)},
        }


async def run_calls(
    call: Callable[[int], Awaitable[Any]], count: int, concurrency: int, deadline: float
) -> tuple[Calls, list[Any], float]:
    """`count` calls (`call(i)` makes the i-th), `concurrency` at a time, none started after
    `deadline` (time.monotonic()): latencies and failures, the replies, the wall seconds."""
    calls, replies = Calls(), []
    pending = iter(range(count))

    async def worker() -> None:
        for index in pending:  # one loop: the shared iterator hands out the calls
            if time.monotonic() > deadline:
                return
            began = time.perf_counter()
            try:
                reply = await call(index)
            except grpc.aio.AioRpcError as error:
                reraise_lost_cancellation(error)
                calls.errors[error.code().name] += 1
                continue
            calls.seconds.append(time.perf_counter() - began)
            replies.append(reply)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return calls, replies, time.perf_counter() - began


async def measure(
    target: str,
    servers: Mapping[str, int],
    make: CallMaker,
    count: int,
    concurrency: int,
    *,
    seconds: float,
    warmup: int = WARMUP_CALLS,
    database: int | None = None,
) -> tuple[dict[str, Any], list[Any]]:
    """Calls to `target` after `warmup` unmeasured ones, none started after `seconds`: their
    rate and latency, and the CPU each of `servers` (name → pid) and this process spent per
    successful call; with `database` (a PostgreSQL server's pid), its processes' too, apart."""
    deadline = time.monotonic() + seconds
    async with grpc.aio.insecure_channel(target) as channel:
        call = make(channel)
        await run_calls(call, min(warmup, count), concurrency, deadline)
        before = {name: cpu_seconds(pid) for name, pid in servers.items()}
        database_before = tree_cpu_seconds(database) if database else 0.0
        client_before = time.process_time()
        calls, replies, wall = await run_calls(call, count, concurrency, deadline)
        client = time.process_time() - client_before
        after = {name: cpu_seconds(pid) for name, pid in servers.items()}
        database_after = tree_cpu_seconds(database) if database else 0.0
    done = max(len(calls.seconds), 1)
    cpu = {name: round((after[name] - before[name]) * 1000 / done, 3) for name in servers}
    result = {
        "concurrency": concurrency,
        "per_second": round(len(calls.seconds) / wall, 1),
        **calls.summary(),
        "server_cpu_ms": {**cpu, "total": round(sum(cpu.values()), 3)},
        "client_cpu_ms": round(client * 1000 / done, 3),
    }
    if database:
        result["database_cpu_ms"] = round((database_after - database_before) * 1000 / done, 3)
    return result, replies


def on_loop(work: Coroutine[Any, Any, T]) -> T:
    """Runs `work` on the event loop the services run on (the load generator's too)."""
    with event_loop() as runner:
        return runner.run(work)


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process so far, in seconds (/proc/<pid>/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(pid: int) -> float:
    """CPU seconds of a process and its children (PostgreSQL's server and its backends)."""
    total = cpu_seconds(pid)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            if int(stat[1]) == pid:  # its parent
                total += (int(stat[11]) + int(stat[12])) / os.sysconf("SC_CLK_TCK")
    return total


def proc_status(pid: int) -> dict[str, float]:
    """Resident memory now and at its peak (MiB), and CPU seconds used so far, from /proc."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return {
        "rss_mib": round(int(fields["VmRSS"].split()[0]) / 1024, 1),
        "peak_rss_mib": round(int(fields["VmHWM"].split()[0]) / 1024, 1),
        "cpu_seconds": round(cpu_seconds(pid), 2),
    }


def machine() -> dict[str, Any]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    models = [line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")]
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": models[0] if models else platform.processor() or "unknown",
        "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1),
        "load_average_at_start": [round(value, 2) for value in os.getloadavg()],
        "python": platform.python_version(),
        "kernel": platform.release(),
    }


async def top_up_stock(address: str, product_id: str, units: int) -> None:
    async with grpc.aio.insecure_channel(address) as channel:
        inventory = inventory_pb2_grpc.InventoryServiceStub(channel)
        product = await inventory.GetProduct(
            inventory_pb2.GetProductRequest(product_id=product_id), timeout=CALL_TIMEOUT_SECONDS
        )
        missing = units - product.product.available
        while missing > 0:
            delta = min(missing, MAX_STOCK_DELTA)
            adjust = inventory_pb2.AdjustStockRequest(product_id=product_id, delta=delta, reason="bench")
            await inventory.AdjustStock(adjust, timeout=CALL_TIMEOUT_SECONDS)
            missing -= delta


# -- what is called --------------------------------------------------------------------------------
def echo_calls(channel: grpc.aio.Channel) -> Callable[[int], Awaitable[Any]]:
    unary = channel.unary_unary(UNARY, None, None)  # raw bytes: no serializer
    return lambda _: unary(bytes(64), timeout=CALL_TIMEOUT_SECONDS)


def product_calls(product_id: str) -> CallMaker:
    def make(channel: grpc.aio.Channel) -> Callable[[int], Awaitable[Any]]:
        get = inventory_pb2_grpc.InventoryServiceStub(channel).GetProduct
        request = inventory_pb2.GetProductRequest(product_id=product_id)
        return lambda _: get(request, timeout=CALL_TIMEOUT_SECONDS)

    return make


def order_calls(order_ids: Sequence[str]) -> CallMaker:
    def make(channel: grpc.aio.Channel) -> Callable[[int], Awaitable[Any]]:
        get = order_pb2_grpc.OrderServiceStub(channel).GetOrder
        requests = [order_pb2.GetOrderRequest(order_id=order_id) for order_id in order_ids]
        return lambda index: get(requests[index % len(requests)], timeout=CALL_TIMEOUT_SECONDS)

    return make


def create_calls(product_id: str) -> CallMaker:
    def make(channel: grpc.aio.Channel) -> Callable[[int], Awaitable[Any]]:
        create = order_pb2_grpc.OrderServiceStub(channel).CreateOrder

        def call(_: int) -> Awaitable[Any]:
            request = order_pb2.CreateOrderRequest(
                request_id=str(uuid.uuid4()),
                customer_id="bench",
                items=[order_pb2.OrderItem(product_id=product_id, quantity=1)],
                payment_token="tok_visa",
            )
            return create(request, timeout=CALL_TIMEOUT_SECONDS)

        return call

    return make
