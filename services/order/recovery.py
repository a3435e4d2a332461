"""The recovery pass: finishes or compensates every order its runner left in flight.

A runner holds an in-flight order under a lease (its caller's time plus room to compensate).
When the lease runs out with the order still in flight, the runner is gone (the process
crashed or was killed) or its compensation could not reach a dependency. The pass takes such
orders over, one compare-and-set each, so that with several replicas exactly one resumes an
order. It runs at start-up and then every few seconds; this is the saga's durability, not a
retry of calls (each resumed step is one call, and the mesh retries calls).
"""

from __future__ import annotations

import asyncio
import logging

from services.order.domain import DependencyFailed
from services.order.ports import OrderStore
from services.order.saga import Saga, Superseded
from services.runtime.errors import ShopError
from services.runtime.persistence import utc_now

log = logging.getLogger(__name__)

SWEEP_INTERVAL_SECONDS = 1.0
BATCH = 20


class Recovery:
    def __init__(self, store: OrderStore, saga: Saga) -> None:
        self.store = store
        self.saga = saga

    async def sweep(self) -> int:
        """Resumes the stranded orders found now; returns how many came to rest."""
        stranded = await self.store.stranded(utc_now(), BATCH)
        settled = 0
        for order in stranded:
            try:
                order = await self.saga.take_over(order)
            except Superseded:
                continue
            except (DependencyFailed, ShopError) as error:
                log.warning("order %s not recovered yet: %s", order.order_id, error)
                continue
            settled += not order.in_flight
        return settled

    async def run(self) -> None:
        """Sweeps until cancelled (at shutdown)."""
        while True:
            try:
                await self.sweep()
            except ShopError as error:  # the database is unreachable: try again next time
                log.warning("recovery pass skipped: %s", error)
            except Exception:  # a bug must not end recovery for the life of the process
                log.exception("recovery pass failed")
            await asyncio.sleep(SWEEP_INTERVAL_SECONDS)
