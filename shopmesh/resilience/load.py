"""Steady order load through an ingress: what a shop's customers do, at a fixed rate.

    python -m shopmesh.resilience.load --target 127.0.0.1:50051 --rate 10 [--duration 600] [--json]

Every 1/rate seconds (open loop: a slow answer does not slow the arrivals) a customer reads the
catalog (ListProducts), orders one unit of a product (CreateOrder: `tok_visa`, or
`tok_chargeDeclined` for a share of them) and, once it is CONFIRMED, cancels it (CancelOrder),
which puts the unit back: the stock stays where it was, so the load can run for hours. Only the
public API the ingress routes is used. Every call that does not end OK is an error, counted by
method and status; at most `max_in_flight` customers are served at once, and an arrival beyond
that is counted as not sent. `--duration 0` runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from services.runtime.outbound import reraise_lost_cancellation
from shop.inventory.v1 import inventory_pb2, inventory_pb2_grpc
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.bench.measure import Calls

T = TypeVar("T")
CALL_TIMEOUT_SECONDS = 10.0
#: The first errors are kept with their time and message; the rest are only counted.
KEPT_ERRORS = 200
METHODS = ("ListProducts", "CreateOrder", "CancelOrder")


@dataclass
class LoadSettings:
    target: str
    rate: float  # customers (orders) per second
    declined_share: float = 0.05
    max_in_flight: int = 64
    seed: int = 0
    record_calls: bool = False


@dataclass(frozen=True)
class CallRecord:
    """One call as the customer saw it: when it began (wall clock, epoch seconds, to set it
    beside other clocks: a chaos journal, `mesh ps`), its method, status and duration."""

    began: float
    method: str
    code: str  # "OK" or the gRPC status name
    seconds: float


@dataclass
class OrderLoad:
    settings: LoadSettings
    calls: dict[str, Calls] = field(default_factory=lambda: {method: Calls() for method in METHODS})
    outcomes: Counter[str] = field(default_factory=Counter)  # CreateOrder's order statuses
    errors: list[dict[str, Any]] = field(default_factory=list)  # the first KEPT_ERRORS
    #: Every call, when `settings.record_calls` (what happened when, for scripts/chaos).
    timeline: list[CallRecord] = field(default_factory=list)
    sent: int = 0
    not_sent: int = 0
    started_at: float = 0.0
    seconds: float = 0.0

    @property
    def error_count(self) -> int:
        return sum(sum(calls.errors.values()) for calls in self.calls.values()) + self.not_sent

    async def run(self, duration: float, stop: asyncio.Event | None = None) -> None:
        """Customers arrive until `duration` seconds have passed (0: until `stop` is set), then
        the ones in flight finish."""
        stop = stop or asyncio.Event()
        randomness = random.Random(self.settings.seed)
        interval = 1.0 / self.settings.rate
        self.started_at = time.monotonic()
        in_flight: set[asyncio.Task[None]] = set()
        async with grpc.aio.insecure_channel(self.settings.target) as channel:
            orders = order_pb2_grpc.OrderServiceStub(channel)
            catalog = inventory_pb2_grpc.InventoryServiceStub(channel)
            arrival = self.started_at
            while not stop.is_set() and (duration <= 0 or arrival - self.started_at < duration):
                if len(in_flight) >= self.settings.max_in_flight:
                    self.not_sent += 1
                else:
                    declined = randomness.random() < self.settings.declined_share
                    task = asyncio.create_task(self._customer(orders, catalog, randomness.random(), declined))
                    in_flight.add(task)
                    task.add_done_callback(in_flight.discard)
                    self.sent += 1
                arrival += interval
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), max(0.0, arrival - time.monotonic()))
            if in_flight:
                await asyncio.wait(in_flight)
        self.seconds = time.monotonic() - self.started_at

    async def _customer(
        self,
        orders: order_pb2_grpc.OrderServiceAsyncStub,
        catalog: inventory_pb2_grpc.InventoryServiceAsyncStub,
        pick: float,
        declined: bool,
    ) -> None:
        listed = await self._call(
            "ListProducts",
            catalog.ListProducts(
                inventory_pb2.ListProductsRequest(page_size=20), timeout=CALL_TIMEOUT_SECONDS
            ),
        )
        if listed is None or not listed.products:
            return
        product = listed.products[int(pick * len(listed.products))]
        request = order_pb2.CreateOrderRequest(
            request_id=str(uuid.uuid4()),
            customer_id="load",
            items=[order_pb2.OrderItem(product_id=product.product_id, quantity=1)],
            payment_token="tok_chargeDeclined" if declined else "tok_visa",
        )
        created = await self._call("CreateOrder", orders.CreateOrder(request, timeout=CALL_TIMEOUT_SECONDS))
        if created is None:
            return
        status = order_pb2.OrderStatus.Name(created.order.status).removeprefix("ORDER_STATUS_")
        self.outcomes[status] += 1
        if created.order.status == order_pb2.ORDER_STATUS_CONFIRMED:
            cancel = order_pb2.CancelOrderRequest(order_id=created.order.order_id, reason="load: returned")
            await self._call("CancelOrder", orders.CancelOrder(cancel, timeout=CALL_TIMEOUT_SECONDS))

    async def _call(self, method: str, pending: Awaitable[T]) -> T | None:
        began, began_at = time.perf_counter(), time.time()
        try:
            reply = await pending
        except grpc.aio.AioRpcError as error:
            reraise_lost_cancellation(error)
            self.calls[method].errors[error.code().name] += 1
            if self.settings.record_calls:
                self.timeline.append(
                    CallRecord(began_at, method, error.code().name, time.perf_counter() - began)
                )
            if len(self.errors) < KEPT_ERRORS:
                self.errors.append(
                    {
                        "at_seconds": round(time.monotonic() - self.started_at, 3),
                        "method": method,
                        "code": error.code().name,
                        "message": (error.details() or "")[:200],
                    }
                )
            return None
        self.calls[method].seconds.append(time.perf_counter() - began)
        if self.settings.record_calls:
            self.timeline.append(CallRecord(began_at, method, "OK", self.calls[method].seconds[-1]))
        return reply

    def summary(self) -> dict[str, Any]:
        return {
            "target": self.settings.target,
            "rate_per_second": self.settings.rate,
            "seconds": round(self.seconds, 1),
            "customers_sent": self.sent,
            "customers_not_sent": self.not_sent,
            "errors": self.error_count,
            "order_outcomes": dict(self.outcomes),
            "calls": {method: calls.summary() for method, calls in self.calls.items()},
            "first_errors": self.errors,
        }


async def wait_answering(target: str, within: float) -> int:
    """Until the catalog answers OK through `target` (a mesh that has just started may still
    refuse a route's first connection); the number of failed calls before that. Raises
    TimeoutError after `within` seconds."""
    failed = 0
    async with asyncio.timeout(within), grpc.aio.insecure_channel(target) as channel:
        catalog = inventory_pb2_grpc.InventoryServiceStub(channel)
        while True:
            try:
                await catalog.ListProducts(
                    inventory_pb2.ListProductsRequest(page_size=1), timeout=CALL_TIMEOUT_SECONDS
                )
                return failed
            except grpc.aio.AioRpcError as error:
                reraise_lost_cancellation(error)  # asyncio.timeout's cancellation
                failed += 1
                await asyncio.sleep(0.2)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m shopmesh.resilience.load", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--target", required=True, help="the ingress, host:port (plaintext gRPC)")
    parser.add_argument("--rate", type=float, default=10.0, help="orders per second (default 10)")
    parser.add_argument("--duration", type=float, default=0.0, help="seconds; 0 runs until Ctrl-C (default)")
    parser.add_argument("--json", action="store_true", help="print the summary as JSON")
    args = parser.parse_args(argv)
    if not 0 < args.rate <= 1000:
        parser.error("--rate must be more than 0 and at most 1000 orders per second")
    if args.duration < 0:
        parser.error("--duration must be 0 or more seconds")
    return args


async def _main(args: argparse.Namespace) -> OrderLoad:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    load = OrderLoad(LoadSettings(args.target, args.rate))
    await load.run(args.duration, stop)
    return load


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    load = asyncio.run(_main(args))
    summary = load.summary()
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(
            f"{summary['customers_sent']} customers in {summary['seconds']} s, {summary['errors']} errors; "
            f"orders {summary['order_outcomes']}; "
            + "; ".join(
                f"{m} {c['ok']} ok p99 {c['latency_ms']['p99']} ms {c['errors'] or ''}"
                for m, c in summary["calls"].items()
            )
        )
    return 0 if load.error_count == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
