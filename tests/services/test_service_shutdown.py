"""Order stopped under CreateOrder load (SQLite, no drain: what Ctrl-C on `scripts/bench` or
`scripts/up --plain` does): callers who hang up leave their sagas running (by design: a saga is
not cut short by its caller), and SIGTERM must still end the process within its grace period,
with no order lost (those still in flight when the grace period ends are finished by the
recovery pass of the next start). That calls in flight at SIGTERM finish is
tests/runtime/test_shutdown.py's."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
import uuid
from pathlib import Path

import grpc
from fixtures.processes import ServiceProcess
from shop_stack import Stack

GRACE_SECONDS = 3
#: Room for the process to start its exit once the grace period is over (a slow, shared machine).
EXIT_MARGIN_SECONDS = 5
PRODUCT = "sku-espresso-beans"
WARM_UP_CALLS = 16


async def test_sigterm_with_hung_up_callers_exits_within_grace_and_loses_no_order(
    sqlite_stack: Stack, tmp_path: Path
) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'order.db'}"
    env = {
        "SHOPMESH_DATABASE_URL": url,
        "SHOPMESH_MIGRATE_ON_START": "true",
        "SHOPMESH_INVENTORY_TARGET": sqlite_stack.processes["inventory"].address,
        "SHOPMESH_PAYMENT_TARGET": sqlite_stack.processes["payment"].address,
        "SHOPMESH_DRAIN_SECONDS": "0",
        "SHOPMESH_GRACE_SECONDS": str(GRACE_SECONDS),
    }
    order = ServiceProcess("order", env).start()
    stack = Stack({**sqlite_stack.processes, "order": order}, {**sqlite_stack.database_urls, "order": url})
    try:
        await asyncio.to_thread(order.wait_serving)
        outcomes = await _load_then_sigterm(order, stack)
        try:
            returncode = await asyncio.to_thread(order.wait, GRACE_SECONDS + EXIT_MARGIN_SECONDS)
        except subprocess.TimeoutExpired:
            raise AssertionError(
                f"order still running {GRACE_SECONDS}+{EXIT_MARGIN_SECONDS}s after SIGTERM"
            ) from None
        assert returncode == 0, order.logs()[-3000:]
        assert set(outcomes) == {grpc.StatusCode.OK}, outcomes

        # The next start's recovery pass lays to rest whatever the grace period cut short.
        restarted = ServiceProcess("order", env).start()
        stack.processes["order"] = restarted
        await asyncio.to_thread(restarted.wait_serving)
        await _until_every_order_at_rest(stack, within=30)
        await stack.assert_books_agree()
    finally:
        stack.processes["order"].kill()
        order.kill()


async def _load_then_sigterm(order: ServiceProcess, stack: Stack) -> list[grpc.StatusCode]:
    """16 callers keep CreateOrder busy, then all hang up mid-call, and SIGTERM follows at once:
    what Ctrl-C on the benchmark does. Returns the codes of the calls that came back before."""
    clients = stack.clients()
    await clients.set_stock(PRODUCT, 1000)
    finished: list[grpc.StatusCode] = []
    stop_at = time.monotonic() + 20  # bounded, whatever happens

    async def caller() -> None:
        while time.monotonic() < stop_at:
            try:
                await clients.create_order(str(uuid.uuid4()), {PRODUCT: 1}, seconds=5)
            except grpc.aio.AioRpcError as error:
                finished.append(error.code())
                return
            finished.append(grpc.StatusCode.OK)

    try:
        callers = [asyncio.create_task(caller()) for _ in range(16)]
        while len(finished) < WARM_UP_CALLS:  # into the load: every caller has a call in flight
            assert time.monotonic() < stop_at, finished
            assert not any(task.done() for task in callers), finished
            await asyncio.sleep(0.05)
        for task in callers:
            task.cancel()  # cancels its call: the server cancels the handler; its saga runs on
        await asyncio.gather(*callers, return_exceptions=True)
        order.signal(signal.SIGTERM)
    finally:
        await clients.close()
    return finished


async def _until_every_order_at_rest(stack: Stack, within: float) -> None:
    deadline = time.monotonic() + within
    while await stack.rows("order", "SELECT order_id FROM orders WHERE step IS NOT NULL"):
        assert time.monotonic() < deadline, "orders left in flight were not recovered"
        await asyncio.sleep(0.5)
