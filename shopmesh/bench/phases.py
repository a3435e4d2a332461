"""The bench's phases: the ceiling, `scripts/up --plain`, the stack on SQLite or PostgreSQL,
and the local mesh."""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.runtime.registry import declarations
from shop.order.v1 import order_pb2
from shopmesh.bench.measure import (
    WARMUP_CALLS,
    CallMaker,
    create_calls,
    echo_calls,
    measure,
    on_loop,
    order_calls,
    proc_status,
    product_calls,
    top_up_stock,
)
from shopmesh.launch.ports import free_port
from shopmesh.launch.processes import ManagedProcess
from shopmesh.launch.readiness import wait_listening
from shopmesh.launch.service import ROOT
from shopmesh.launch.stack import Stack
from shopmesh.localrun import SETTINGS

WARMUP_ORDERS = 20
UP_TIMEOUT_SECONDS = 60.0


def stack_ports() -> tuple[dict[str, int], dict[str, int]]:
    """gRPC and metrics ports for every declared service."""
    names = sorted(declarations())
    ports = [free_port() for _ in range(2 * len(names))]
    return dict(zip(names, ports[: len(names)], strict=True)), dict(
        zip(names, ports[len(names) :], strict=True)
    )


class Ceiling:
    """The bare grpc.aio echo, measured at the first concurrency at the start of the run and
    again at its end: the faster of the two is the ceiling the ratios divide by (on a shared
    machine, the one less slowed by other work)."""

    def __init__(self, args: argparse.Namespace, state: Path) -> None:
        self.args = args
        self.address = f"127.0.0.1:{free_port()}"
        argv = [sys.executable, "-m", "shopmesh.launch.echo", self.address]
        self.process = ManagedProcess("echo", argv, os.environ, state / "logs" / "echo.log", ROOT)
        self.runs: list[dict[str, Any]] = []

    def __enter__(self) -> Ceiling:
        self.process.start()
        announce(self.process)
        wait_listening(self.process, self.address, UP_TIMEOUT_SECONDS)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.process.stop()

    def measure(self) -> None:
        pids = {"echo": self.process.pid or 0}
        calls, concurrency = self.args.calls, self.args.concurrency[0]
        result, _ = on_loop(
            measure(self.address, pids, echo_calls, calls, concurrency, seconds=self.args.max_seconds)
        )
        self.runs.append(result)

    def report(self) -> dict[str, Any]:
        best = max(self.runs, key=lambda run: float(run["per_second"]))
        return {**best, "per_second_each_run": [run["per_second"] for run in self.runs]}


def up_plain(state: Path) -> dict[str, float]:
    """Seconds until `scripts/up --plain` (shopmesh.localrun) says it is up: on fresh databases
    (cold: migrated first) and again on the same files (warm)."""
    seconds = {}
    for start in ("cold", "warm"):
        argv = [sys.executable, "-m", "shopmesh.localrun", "--state", str(state)]
        ports, metrics_ports = stack_ports()
        for name, port in ports.items():
            argv += [f"--{name}-port", str(port), f"--{name}-metrics-port", str(metrics_ports[name])]
        began = time.perf_counter()
        run = ManagedProcess(
            f"up --plain ({start})", argv, os.environ, state / "logs" / f"up-{start}.log", ROOT
        ).start()
        announce(run)
        try:
            while "shopmesh is up" not in run.logs():
                if not run.running() or time.perf_counter() - began > UP_TIMEOUT_SECONDS:
                    raise RuntimeError(f"{run.name} did not come up:\n{run.logs()}")
                time.sleep(0.005)
            seconds[start] = round(time.perf_counter() - began, 2)
        finally:
            run.stop()
    return seconds


def stack_phases(
    args: argparse.Namespace,
    state: Path,
    database_urls: Mapping[str, str] | None = None,
    database_pid: int | None = None,
) -> dict[str, Any]:
    """The plain stack on `database_urls` (SQLite files under `state` by default): idle memory,
    the read path and CreateOrder at each concurrency. `database_pid`: a PostgreSQL server whose
    CPU per call is reported too."""
    settings = dict(SETTINGS)
    if database_urls:
        settings["SHOPMESH_MIGRATE_ON_START"] = "true"  # off by default on PostgreSQL
    ports, metrics_ports = stack_ports()
    stack = Stack.on_loopback(
        state, database_urls=database_urls, ports=ports, metrics_ports=metrics_ports, settings=settings
    )
    try:
        began = time.perf_counter()
        stack.spawn()
        for process in stack.processes.values():
            announce(process)
        stack.wait_serving()
        started = round(time.perf_counter() - began, 2)
        time.sleep(1.0)  # settled: what each service holds before any call
        pids = {name: process.pid or 0 for name, process in stack.processes.items()}
        results: dict[str, Any] = {
            "stack_start_seconds": started,
            "idle_rss_mib": {name: proc_status(pid)["rss_mib"] for name, pid in pids.items()},
        }
        print(f"stack up in {state}; loading", file=sys.stderr, flush=True)
        orders_made = (WARMUP_ORDERS + args.orders) * len(args.concurrency)
        on_loop(top_up_stock(stack.address("inventory"), args.product, orders_made))

        def phase(
            service: str,
            servers: Mapping[str, int],
            make: CallMaker,
            count: int,
            concurrency: int,
            warmup: int = WARMUP_CALLS,
        ) -> tuple[dict[str, Any], list[Any]]:
            return on_loop(
                measure(
                    stack.address(service),
                    servers,
                    make,
                    count,
                    concurrency,
                    seconds=args.max_seconds,
                    warmup=warmup,
                    database=database_pid,
                )
            )

        first = args.concurrency[0]
        results["GetProduct"], _ = phase(
            "inventory", {"inventory": pids["inventory"]}, product_calls(args.product), args.calls, first
        )
        created, order_ids = {}, []
        for concurrency in args.concurrency:
            result, replies = phase(
                "order", pids, create_calls(args.product), args.orders, concurrency, WARMUP_ORDERS
            )
            statuses = (order_pb2.OrderStatus.Name(reply.order.status) for reply in replies)
            result["outcomes"] = dict(Counter(status.removeprefix("ORDER_STATUS_") for status in statuses))
            created[f"c{concurrency}"] = result
            order_ids += [reply.order.order_id for reply in replies]
        results["CreateOrder"] = created
        if order_ids:
            results["GetOrder"], _ = phase(
                "order", {"order": pids["order"]}, order_calls(order_ids), args.calls, first
            )
        results["rss_after_mib"] = {name: proc_status(pid) for name, pid in pids.items()}
        return results
    finally:
        stack.stop()


def postgres_phases(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    from shopmesh.launch.postgres import PostgresServer, unique_name

    server = PostgresServer(durable=True)
    try:
        server.start()
        urls = {name: server.create_database(unique_name(name)) for name in declarations()}
        return stack_phases(args, state, urls, server.pid)
    finally:
        server.close()


def mesh_phases(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    """The proxies' CPU per relayed call and hop latency; CreateOrder through the ingress."""
    from shopmesh.localmesh.proxybench import orders
    from shopmesh.localmesh.proxybench.measure import PATHS, summarise
    from shopmesh.localmesh.proxybench.measure import measure as relay
    from shopmesh.localmesh.proxybench.rig import rig

    with rig(state) as proxies:
        runs = [
            relay(proxies, path, concurrency, calls=args.calls, warmup=WARMUP_CALLS, size=64)
            for concurrency in args.concurrency
            for path in PATHS
        ]
    return {
        "relays": runs,
        "proxies": summarise(runs),
        "orders": orders.run(args.orders, args.concurrency[0], "ingress"),
    }


def announce(process: ManagedProcess) -> None:
    print(f"started {process.name} (pid {process.pid})", file=sys.stderr, flush=True)
