"""grpc.health.v1 that tells the truth: SERVING only while the database answers and not draining.

Kubernetes' gRPC probes and Envoy's health checks read it; a replica whose database is gone
reports NOT_SERVING so traffic moves elsewhere, and SERVING again once it is back, without a
restart. Status is set for "" (the whole server) and for each full service name.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from grpc_health.v1 import health, health_pb2

from services.runtime.database import Database

log = logging.getLogger(__name__)

PROBE_INTERVAL_SECONDS = 0.5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


class Health:
    def __init__(self, service_names: Sequence[str]) -> None:
        self.servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # public, untyped
        self.names = ["", *service_names]
        self.serving: bool | None = None
        self.draining = False

    async def set_serving(self, serving: bool) -> None:
        # While draining the servicer ignores updates (its own latch); so does this log.
        if self.draining or serving == self.serving:
            return
        self.serving = serving
        log.log(
            logging.INFO if serving else logging.WARNING,
            "health: %s",
            "SERVING" if serving else "NOT_SERVING",
        )
        for name in self.names:
            await self.servicer.set(name, SERVING if serving else NOT_SERVING)

    async def drain(self) -> None:
        """NOT_SERVING for good: later probe results are ignored (the servicer's own latch)."""
        self.draining = True
        self.serving = False
        await self.servicer.enter_graceful_shutdown()

    async def watch_database(self, database: Database, interval: float = PROBE_INTERVAL_SECONDS) -> None:
        """Runs until cancelled: probe, set, sleep. A probe never takes longer than the interval."""
        while True:
            await self.set_serving(await database.ping(timeout=interval))
            await asyncio.sleep(interval)
