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

from services.runtime.registry import declarations, start_order
from shop.order.v1 import order_pb2
from shopmesh.bench.measure import (
    WARMUP_CALLS,
    create_calls,
    echo_calls,
    measure,
    on_loop,
    order_calls,
    proc_status,
    product_calls,
    top_up_stock,
)
from shopmesh.launch.processes import ManagedProcess
from shopmesh.launch.readiness import free_port, wait_listening
from shopmesh.launch.service import ROOT
from shopmesh.launch.stack import Stack
from shopmesh.localrun import SETTINGS

WARMUP_ORDERS = 20
UP_TIMEOUT_SECONDS = 60.0


def ceiling(args: argparse.Namespace, state: Path) -> dict[str, Any]:
    """The bare grpc.aio echo at the first concurrency."""
    address = f"127.0.0.1:{free_port()}"
    argv = [sys.executable, "-m", "shopmesh.launch.echo", address]
    echo = ManagedProcess("echo", argv, os.environ, state / "logs" / "echo.log", ROOT).start()
    try:
        announce(echo)
        wait_listening(echo, address, UP_TIMEOUT_SECONDS)
        result, _ = on_loop(
            measure(
                address,
                {"echo": echo.pid or 0},
                echo_calls,
                args.calls,
                args.concurrency[0],
                seconds=args.max_seconds,
            )
        )
    finally:
        echo.stop()
    return result


def up_plain(state: Path) -> dict[str, float]:
    """Seconds until `scripts/up --plain` (shopmesh.localrun) says it is up: on fresh databases
    (cold: migrated first) and again on the same files (warm)."""
    seconds = {}
    for start in ("cold", "warm"):
        argv = [sys.executable, "-m", "shopmesh.localrun", "--state", str(state)]
        for declared in start_order():
            argv += [
                f"--{declared.name}-port",
                str(free_port()),
                f"--{declared.name}-metrics-port",
                str(free_port()),
            ]
        began = time.perf_counter()
        run = ManagedProcess(
            f"up --plain ({start})", argv, os.environ, state / "logs" / f"up-{start}.log", ROOT
        ).start()
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
    args: argparse.Namespace, state: Path, database_urls: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The plain stack on `database_urls` (SQLite files under `state` by default): idle memory,
    the read path and CreateOrder at each concurrency."""
    settings = dict(SETTINGS)
    if database_urls:
        settings["SHOPMESH_MIGRATE_ON_START"] = "true"  # off by default on PostgreSQL
    stack = Stack.on_loopback(
        state,
        database_urls=database_urls,
        ports={service: free_port() for service in declarations()},
        metrics_ports={service: free_port() for service in declarations()},
        settings=settings,
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
        idle = {name: proc_status(pid)["rss_mib"] for name, pid in pids.items()}
        print(f"stack up in {state}; loading", file=sys.stderr, flush=True)
        orders_made = (WARMUP_ORDERS + args.orders) * len(args.concurrency)
        on_loop(top_up_stock(stack.address("inventory"), args.product, orders_made))
        results: dict[str, Any] = {"stack_start_seconds": started, "idle_rss_mib": idle}
        inventory, order = {"inventory": pids["inventory"]}, {"order": pids["order"]}
        results["GetProduct"], _ = on_loop(
            measure(
                stack.address("inventory"),
                inventory,
                product_calls(args.product),
                args.calls,
                args.concurrency[0],
                seconds=args.max_seconds,
            )
        )
        created, order_ids = {}, []
        for concurrency in args.concurrency:
            result, replies = on_loop(
                measure(
                    stack.address("order"),
                    pids,
                    create_calls(args.product),
                    args.orders,
                    concurrency,
                    seconds=args.max_seconds,
                    warmup=WARMUP_ORDERS,
                )
            )
            result["outcomes"] = dict(
                Counter(
                    order_pb2.OrderStatus.Name(reply.order.status).removeprefix("ORDER_STATUS_")
                    for reply in replies
                )
            )
            created[f"c{concurrency}"] = result
            order_ids += [reply.order.order_id for reply in replies]
        results["CreateOrder"] = created
        if order_ids:
            results["GetOrder"], _ = on_loop(
                measure(
                    stack.address("order"),
                    order,
                    order_calls(order_ids),
                    args.calls,
                    args.concurrency[0],
                    seconds=args.max_seconds,
                )
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
        return stack_phases(args, state, urls)
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
