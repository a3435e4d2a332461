"""`scripts/up`: order, inventory and payment on 127.0.0.1, each on its embedded SQLite file.

    python -m shopmesh.localrun [--order-port 50051] [--inventory-port 50052] [--payment-port 50053]
                                [--state var]

Starts the three services (inventory seeds the demo catalog into an empty database), waits until
each one's health says SERVING, prints grpcurl examples, and on Ctrl-C (or SIGTERM) stops them
all — order first, so nothing is left calling a stopped dependency — leaving no process behind
(each child also dies with this supervisor: see shopmesh.localmesh.processes). A child that
exits on its own stops the rest, with its log's tail. The mesh mode lives in shopmesh.localmesh;
this module is the plain, mesh-less run.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime.config import target_variable
from services.runtime.registry import declaration, start_order
from shopmesh.localmesh.processes import ManagedProcess

ROOT = Path(__file__).resolve().parent.parent
#: Dependencies first, so each service's first calls find them serving.
START_ORDER = tuple(service.name for service in start_order())
HOST = "127.0.0.1"
START_TIMEOUT_SECONDS = 60.0


@dataclass(frozen=True)
class LocalRun:
    state: Path  # databases and logs
    ports: Mapping[str, int]
    metrics_ports: Mapping[str, int]

    def address(self, service: str) -> str:
        return f"{HOST}:{self.ports[service]}"

    def environment(self, service: str, base: Mapping[str, str]) -> dict[str, str]:
        env = dict(base)
        env.update(
            SHOPMESH_LISTEN_ADDRESS=self.address(service),
            SHOPMESH_METRICS_ADDRESS=f"{HOST}:{self.metrics_ports[service]}",
            SHOPMESH_DATABASE_URL=f"sqlite+aiosqlite:///{self.state / service}.db",
            # Nothing balances load across a laptop's single replica: no reason to linger.
            SHOPMESH_DRAIN_SECONDS="0",
            PYTHONUNBUFFERED="1",
        )
        declared = declaration(service)
        env.update({target_variable(name): self.address(name) for name in declared.calls})
        if declared.seed is not None:
            env["SHOPMESH_SEED"] = declared.seed
        return env


def wait_serving(process: ManagedProcess, address: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    with grpc.insecure_channel(address) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        while time.monotonic() < deadline:
            if not process.running():
                raise RuntimeError(f"{process.name} exited ({process.returncode()}):\n{process.logs()}")
            try:
                reply = health.Check(health_pb2.HealthCheckRequest(), timeout=0.5)
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.1)
    raise RuntimeError(f"{process.name} not SERVING on {address} within {timeout}s:\n{process.logs()}")


def examples(run: LocalRun) -> str:
    grpcurl = ".venv/bin/grpcurl -plaintext"
    create = (
        '{"request_id": "demo-1", "customer_id": "me", "payment_token": "tok_visa", '
        '"items": [{"product_id": "sku-espresso-beans", "quantity": 2}]}'
    )
    order, inventory = run.address("order"), run.address("inventory")
    lines = [
        f"{grpcurl} {order} list",
        f"{grpcurl} {order} describe shop.order.v1.OrderService",
        f"{grpcurl} {inventory} shop.inventory.v1.InventoryService/ListProducts",
        f"{grpcurl} -d {shlex.quote(create)} {order} shop.order.v1.OrderService/CreateOrder",
        f'{grpcurl} -d \'{{"order_id": "<order_id>"}}\' {order} shop.order.v1.OrderService/GetOrder',
        f'{grpcurl} -d \'{{"order_id": "<order_id>"}}\' {order} shop.order.v1.OrderService/WatchOrder',
        f"{grpcurl} {order} grpc.health.v1.Health/Check",
        "(tok_chargeDeclined declines, tok_unavailable is a processor outage)",
    ]
    return "\n".join(f"  {line}" for line in lines)


def parse(argv: Sequence[str] | None) -> LocalRun:
    parser = argparse.ArgumentParser(prog="scripts/up", description=__doc__.split("\n\n")[0])
    for service in START_ORDER:
        declared = declaration(service)
        parser.add_argument(f"--{service}-port", type=int, default=declared.grpc_port, metavar="PORT")
        parser.add_argument(
            f"--{service}-metrics-port", type=int, default=declared.metrics_port, metavar="PORT"
        )
    parser.add_argument("--state", type=Path, default=ROOT / "var", help="databases and logs (default: var/)")
    args = parser.parse_args(argv)
    return LocalRun(
        state=args.state.resolve(),
        ports={service: getattr(args, f"{service}_port") for service in START_ORDER},
        metrics_ports={service: getattr(args, f"{service}_metrics_port") for service in START_ORDER},
    )


def main(argv: Sequence[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    run = parse(argv)
    run.state.mkdir(parents=True, exist_ok=True)
    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    processes: list[ManagedProcess] = []
    try:
        for service in START_ORDER:
            process = ManagedProcess(
                service,
                [sys.executable, "-m", f"services.{service}"],
                run.environment(service, os.environ if environ is None else environ),
                run.state / "logs" / f"{service}.log",
                ROOT,
            ).start()
            processes.append(process)
            print(f"started {service} (pid {process.pid}) on {run.address(service)}", flush=True)
        for process in processes:
            wait_serving(process, run.address(process.name), START_TIMEOUT_SECONDS)
        print(f"shopmesh is up (logs in {run.state / 'logs'}). Try:\n{examples(run)}", flush=True)
        print("Ctrl-C stops it.", flush=True)
        while not stop.wait(0.5):
            dead = [process for process in processes if not process.running()]
            if dead:
                print(f"{dead[0].name} exited ({dead[0].returncode()}):\n{dead[0].logs()}", file=sys.stderr)
                return 1
        return 0
    except RuntimeError as error:
        print(error, file=sys.stderr)
        return 1
    finally:
        for process in reversed(processes):
            process.stop(timeout=15.0)
        print("stopped", flush=True)


if __name__ == "__main__":
    sys.exit(main())
