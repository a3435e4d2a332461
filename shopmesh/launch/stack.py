"""Every declared service as a process, wired to each other: the plain run's stack.

    stack = Stack.on_loopback(Path("var"))          # the declared ports, SQLite files under var/
    stack.start()                                   # returns once every service is SERVING
    ...
    stack.stop()                                    # callers first, then what they call

`scripts/up --plain`, `scripts/bench` and the tests' stacks start it this way. Services are
started in `start_order()` (each after what it calls) without waiting for one another: a
caller's channel connects on its first call, by when what it calls serves. They are stopped in
the reverse order.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Self

from services.runtime.registry import start_order
from shopmesh.launch.service import ServiceProcess, sqlite_url

HOST = "127.0.0.1"
#: How long a service may take to serve (a cold start on a busy machine takes a few seconds).
START_TIMEOUT_SECONDS = 60.0
#: How long a service may take to drain and stop after SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS = 15.0


class Stack:
    def __init__(self, processes: Mapping[str, ServiceProcess]) -> None:
        self.processes = dict(processes)  # in start order

    @classmethod
    def on_loopback(
        cls,
        state: Path,
        *,
        database_urls: Mapping[str, str] | None = None,
        ports: Mapping[str, int] | None = None,
        metrics_ports: Mapping[str, int] | None = None,
        base: Mapping[str, str] | None = None,
        settings: Mapping[str, str] | None = None,
    ) -> Self:
        """Every declared service on 127.0.0.1: on its declared ports unless `ports` and
        `metrics_ports` say otherwise; on the database `database_urls` names, by default an
        SQLite file `state`/<name>.db; its dependencies' targets pointing at their processes
        in this stack; its log in `state`/logs/<name>.log. `base` is the environment they
        inherit (default: this process's), `settings` more SHOPMESH_* variables for all."""
        declared = start_order()
        port = {d.name: d.grpc_port for d in declared} | dict(ports or {})
        metrics_port = {d.name: d.metrics_port for d in declared} | dict(metrics_ports or {})
        address = {d.name: f"{HOST}:{port[d.name]}" for d in declared}
        urls = {d.name: sqlite_url(state / f"{d.name}.db") for d in declared} | dict(database_urls or {})
        return cls(
            {
                service.name: ServiceProcess(
                    service.name,
                    address=address[service.name],
                    metrics_address=f"{HOST}:{metrics_port[service.name]}",
                    database_url=urls[service.name],
                    targets={name: address[name] for name in service.calls},
                    log_file=state / "logs" / f"{service.name}.log",
                    base=base,
                    settings=settings,
                )
                for service in declared
            }
        )

    def address(self, service: str) -> str:
        return self.processes[service].address

    def spawn(self) -> None:
        """Starts every process, without waiting for any."""
        for process in self.processes.values():
            process.start()

    def wait_serving(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until every service is SERVING; RuntimeError (with its log) for one that exits first."""
        for process in self.processes.values():
            process.wait_serving(timeout)

    def start(self, timeout: float = START_TIMEOUT_SECONDS) -> Self:
        """spawn() and wait_serving(); if that fails, nothing is left running."""
        try:
            self.spawn()
            self.wait_serving(timeout)
        except BaseException:
            self.kill()
            raise
        return self

    def exited(self) -> list[ServiceProcess]:
        """The processes that were started and are no longer running."""
        return [p for p in self.processes.values() if p.pid is not None and not p.running()]

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """SIGTERM (a drain, then a graceful stop), callers before what they call; SIGKILL for
        one that has not exited after `timeout` seconds."""
        for process in reversed(self.processes.values()):
            process.stop(timeout)

    def kill(self) -> None:
        for process in self.processes.values():
            process.kill()
