"""Run the probe service (probe_service.py) in this process through the real `serve()`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import grpc
from fixtures.ports import loopback

from runtime.probe_service import DEFINITION
from services.runtime.config import Settings
from services.runtime.server import ServiceDefinition, serve
from shopmesh.launch.ports import free_port


@dataclass
class RunningServer:
    settings: Settings
    task: asyncio.Task[None]
    shutdown: asyncio.Event

    @property
    def address(self) -> str:
        return self.settings.listen_address

    @property
    def port(self) -> int:
        return int(self.address.rpartition(":")[2])

    @property
    def metrics_url(self) -> str:
        return f"http://{self.settings.metrics_address}/metrics"

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.insecure_channel(self.address)

    async def stop(self) -> None:
        self.shutdown.set()
        await asyncio.wait_for(self.task, timeout=15)


def probe_settings(database_url: str, **overrides: object) -> Settings:
    port = free_port()
    values: dict[str, object] = {
        "service": "payment",
        "listen_address": loopback(port),
        "metrics_address": loopback(free_port()),
        "database_url": database_url,
        # The probe calls "downstream" itself: the same server answers as its own dependency.
        "dependency_targets": {"payment": loopback(port), "inventory": loopback(port)},
        "drain_seconds": 0.5,
        "grace_seconds": 2.0,
        "migrate_on_start": False,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@contextlib.asynccontextmanager
async def running(
    settings: Settings, definition: ServiceDefinition = DEFINITION
) -> AsyncIterator[RunningServer]:
    ready, shutdown = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(definition, settings, ready=ready, shutdown=shutdown))
    waiting = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiting}, timeout=15, return_when=asyncio.FIRST_COMPLETED)
    if not ready.is_set():
        waiting.cancel()
        task.cancel()
        raise AssertionError(f"probe server did not start: {task.exception() if task.done() else 'timeout'}")
    server = RunningServer(settings, task, shutdown)
    try:
        yield server
    finally:
        if not task.done():
            await server.stop()
