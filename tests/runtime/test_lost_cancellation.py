"""A cancellation grpc.aio turns into an AioRpcError (status OK) is raised again as one.

grpc.aio 1.85's unary call swallows a CancelledError that lands as its reply arrives and raises
AioRpcError(OK) instead (grpc/grpc#43502). That race cannot be forced through a real channel on
demand, so `_call_losing_its_cancellation` stands in for the call: it does what grpc.aio's
`_invoke` and `__await__` do when the race is lost.
"""

from __future__ import annotations

import asyncio
import time

import grpc
import pytest

from services.runtime.outbound import reraise_lost_cancellation
from shopmesh.bench.measure import run_calls


def _ok_error() -> grpc.aio.AioRpcError:
    return grpc.aio.AioRpcError(grpc.StatusCode.OK, grpc.aio.Metadata(), grpc.aio.Metadata())


async def _call_losing_its_cancellation(index: int) -> bytes:
    try:
        await asyncio.sleep(0.001)
    except asyncio.CancelledError:
        raise _ok_error() from None
    return b"reply"


async def test_an_error_in_a_task_being_cancelled_becomes_the_cancellation() -> None:
    async def hides_its_cancellation() -> None:
        try:
            await _call_losing_its_cancellation(0)
        except grpc.aio.AioRpcError as error:
            reraise_lost_cancellation(error)
            raise AssertionError("the cancellation was lost") from error

    task = asyncio.create_task(hides_its_cancellation())
    await asyncio.sleep(0)  # into the call
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


async def test_an_error_in_a_task_not_cancelled_is_left_to_the_caller() -> None:
    reraise_lost_cancellation(_ok_error())  # returns: a plain failed call is the loop's to count


async def test_a_cancelled_load_stops_though_its_calls_hide_the_cancellation() -> None:
    deadline = time.monotonic() + 60  # what the load would run to if the cancellation were lost
    load = asyncio.create_task(run_calls(_call_losing_its_cancellation, 1_000_000, 16, deadline))
    await asyncio.sleep(0.05)
    load.cancel()  # what Ctrl-C does to `scripts/bench` (asyncio.Runner cancels the main task)

    done, _ = await asyncio.wait([load], timeout=5)

    assert done == {load}, "the load went on after it was cancelled"
    assert load.cancelled()
