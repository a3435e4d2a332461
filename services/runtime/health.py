"""grpc.health.v1 that tells the truth: SERVING only while the database answers and not draining.

Kubernetes' gRPC probes and Envoy's health checks read it; a replica whose database is gone
reports NOT_SERVING so traffic moves elsewhere, and SERVING again once it is back, without a
restart. Status is set for "" (the whole server) and for each full service name: readiness.

Liveness is another question, asked under another name (`LIVENESS`): does the process answer
at all? A livenessProbe that followed the database would restart healthy processes for an outage
a restart cannot end, every replica at once, and a restarted replica only waits for the same
database; so it asks `LIVENESS`, SERVING from start-up whatever the database does. A hung process
(its event loop blocked) answers nothing under any name, and the probe's timeout restarts it.
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
#: The health service name every livenessProbe asks for (`grpc.service: liveness`, the name
#: Kubernetes' documentation gives a liveness check that differs from readiness).
LIVENESS = "liveness"


class Health:
    def __init__(self, service_names: Sequence[str]) -> None:
        self.servicer = health.aio.HealthServicer()  # type: ignore[attr-defined]  # public, untyped
        self.names = ["", *service_names]
        self.serving: bool | None = None
        self.draining = False

    async def start(self, serving: bool) -> None:
        """Alive from now on; ready if `serving` (the first probe of the database)."""
        await self.servicer.set(LIVENESS, SERVING)
        await self.set_serving(serving)

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
        """NOT_SERVING for good: later probe results are ignored (the servicer's own latch).
        Liveness too (the servicer ends every name): the process is on its way out, and its
        drain and grace (15 s by default) end before three failed livenessProbes (30 s) could
        restart it."""
        self.draining = True
        self.serving = False
        await self.servicer.enter_graceful_shutdown()

    async def watch_database(self, database: Database, interval: float = PROBE_INTERVAL_SECONDS) -> None:
        """Runs until cancelled: probe, set, sleep. A probe never takes longer than the interval."""
        while True:
            await self.set_serving(await database.ping(timeout=interval))
            await asyncio.sleep(interval)
