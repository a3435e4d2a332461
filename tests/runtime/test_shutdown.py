"""SIGTERM drains: health goes NOT_SERVING, the port keeps serving for the drain period, then
`stop(grace)` lets the calls in flight finish. No call that started before the signal fails."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import grpc
from fixtures.postgres import unique_name
from fixtures.processes import ServiceProcess
from fixtures.scrape import sample, scrape
from grpc_health.v1 import health_pb2, health_pb2_grpc

from shop.money.v1.money_pb2 import Money
from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc

REPO = Path(__file__).resolve().parents[2]
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


@dataclass(frozen=True)
class Outcome:
    started: float
    code: grpc.StatusCode


async def call(stub: payment_pb2_grpc.PaymentServiceStub, token: str) -> Outcome:
    started = time.monotonic()
    request = pb.ChargeRequest(
        idempotency_key=str(uuid.uuid4()),
        amount=Money(currency_code="USD", minor_units=100),
        payment_token=token,
        order_id="o-drain",
    )
    try:
        await stub.Charge(request, timeout=10)
    except grpc.aio.AioRpcError as error:
        return Outcome(started, error.code())
    return Outcome(started, grpc.StatusCode.OK)


def probe_process(launch_service) -> ServiceProcess:
    return launch_service(
        "payment",
        {
            "PYTHONPATH": str(REPO / "tests"),
            "SHOPMESH_MIGRATE_ON_START": "false",
            "SHOPMESH_DRAIN_SECONDS": "1.5",
            "SHOPMESH_GRACE_SECONDS": "5",
        },
        command=[sys.executable, "-m", "runtime.probe_service"],
    )


async def until(condition, within: float) -> None:
    """Polls an async condition (bounded): the machine may be slow, the test must not be."""
    deadline = time.monotonic() + within
    while not await condition():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.05)


async def test_calls_in_flight_at_sigterm_finish_and_new_ones_are_served_while_draining(
    launch_service,
) -> None:
    service = probe_process(launch_service)
    charge = {"grpc_type": "unary", "grpc_service": "shop.payment.v1.PaymentService", "grpc_method": "Charge"}

    async def all_slow_calls_arrived() -> bool:
        return (
            sample(
                await asyncio.to_thread(scrape, service.metrics_url), "grpc_server_started_total", **charge
            )
            >= 6
        )

    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        health = health_pb2_grpc.HealthStub(channel)

        async def draining() -> bool:
            reply = await health.Check(health_pb2.HealthCheckRequest(), timeout=2)
            return reply.status == NOT_SERVING

        # Slow calls (2.5 s) outlive the drain (1.5 s): still running when stop(grace) begins.
        slow = [asyncio.create_task(call(stub, "tok_sleep_2500")) for _ in range(6)]
        await until(all_slow_calls_arrived, within=5)
        service.signal(signal.SIGTERM)
        await until(draining, within=3)
        during_drain = await call(stub, "tok_visa")  # NOT_SERVING, yet still answering
        outcomes = await asyncio.gather(*slow)
    assert during_drain.code is grpc.StatusCode.OK
    assert [outcome.code for outcome in outcomes] == [grpc.StatusCode.OK] * 6
    assert await asyncio.to_thread(service.wait, 15) == 0
    messages = [record["message"] for record in service.log_records()]
    assert "received SIGTERM" in messages
    assert messages[-1] == "stopped"


async def test_sigterm_under_load_fails_no_call_started_before_it(launch_service, postgres) -> None:
    env = {
        "SHOPMESH_DATABASE_URL": postgres.create_database(unique_name("payment")),
        "SHOPMESH_DRAIN_SECONDS": "1",
        "SHOPMESH_GRACE_SECONDS": "5",
    }
    migrate = subprocess.run(  # noqa: ASYNC221 - nothing else runs on this loop yet
        [str(REPO / ".venv/bin/shopmesh"), "migrate", "payment"],
        env={**{k: v for k, v in os.environ.items() if not k.startswith("SHOPMESH_")}, **env},
        capture_output=True, text=True, timeout=60, cwd=REPO, check=False,
    )  # fmt: skip
    assert migrate.returncode == 0, migrate.stderr
    service = launch_service("payment", env)
    outcomes: list[Outcome] = []
    stop_at = time.monotonic() + 8  # bounded, whatever happens

    async def worker(stub: payment_pb2_grpc.PaymentServiceStub) -> None:
        while time.monotonic() < stop_at:
            outcome = await call(stub, "tok_visa")
            outcomes.append(outcome)
            if outcome.code is not grpc.StatusCode.OK:
                return  # the server is gone: this worker is done

    async with grpc.aio.insecure_channel(service.address) as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        workers = [asyncio.create_task(worker(stub)) for _ in range(8)]
        await asyncio.sleep(1.0)
        signalled = time.monotonic()
        service.signal(signal.SIGTERM)
        await asyncio.gather(*workers)
    assert await asyncio.to_thread(service.wait, 15) == 0

    before = [outcome for outcome in outcomes if outcome.started < signalled]
    assert len(before) >= 20, "the load was too light to show anything"
    assert {outcome.code for outcome in before} == {grpc.StatusCode.OK}
    # The drain (1 s) kept the port serving after the signal: calls made then succeeded too.
    # (Half a second of margin: under load a call reaches the server a little after it starts.)
    draining = [outcome for outcome in outcomes if signalled <= outcome.started < signalled + 0.5]
    assert draining
    assert {outcome.code for outcome in draining} == {grpc.StatusCode.OK}
    # Only calls made once the drain was over were refused (grpc cancels those that reach a
    # stopping server; later ones find the port closed).
    late = [outcome for outcome in outcomes if outcome.started >= signalled + 0.5]
    allowed = {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED}
    assert {outcome.code for outcome in late} <= allowed
    assert any(outcome.code is not grpc.StatusCode.OK for outcome in late), "the server never stopped"
