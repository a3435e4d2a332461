"""/metrics counts the calls made, under go-grpc-prometheus's names and labels.

The probe server shares this process's default registry with anything else the session ran,
so the checks read deltas around the calls they make.
"""

from __future__ import annotations

import asyncio

import grpc
import pytest
from fixtures.scrape import Samples, sample
from fixtures.scrape import scrape as scrape_now

from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc

CHARGE = {"grpc_type": "unary", "grpc_service": "shop.payment.v1.PaymentService", "grpc_method": "Charge"}


async def scrape(url: str) -> Samples:
    return await asyncio.to_thread(scrape_now, url)


async def test_calls_are_counted_by_method_and_code(probe_server) -> None:
    before = await scrape(probe_server.metrics_url)
    async with probe_server.channel() as channel:
        stub = payment_pb2_grpc.PaymentServiceStub(channel)
        for _ in range(3):
            await stub.Charge(pb.ChargeRequest(payment_token="tok_visa"), timeout=5)
        for _ in range(2):
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.Charge(pb.ChargeRequest(payment_token="tok_notfound"), timeout=5)
    after = await scrape(probe_server.metrics_url)

    def delta(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert delta("grpc_server_started_total", **CHARGE) == 5
    assert delta("grpc_server_handled_total", **CHARGE, grpc_code="OK") == 3
    assert delta("grpc_server_handled_total", **CHARGE, grpc_code="NotFound") == 2
    assert delta("grpc_server_handling_seconds_count", **CHARGE) == 5
    assert delta("grpc_server_msg_received_total", **CHARGE) == 5
    assert delta("grpc_server_msg_sent_total", **CHARGE) == 3


async def test_every_method_and_code_is_exported_before_its_first_call(probe_server) -> None:
    samples = await scrape(probe_server.metrics_url)
    refund = {"grpc_type": "unary", "grpc_service": "shop.payment.v1.PaymentService", "grpc_method": "Refund"}
    assert ("grpc_server_started_total", frozenset(refund.items())) in samples
    for code in ("OK", "InvalidArgument", "Unavailable", "DeadlineExceeded", "Canceled", "Internal"):
        assert ("grpc_server_handled_total", frozenset({**refund, "grpc_code": code}.items())) in samples


async def test_health_checks_are_counted_as_server_streams_and_unaries(probe_server) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    check = {"grpc_type": "unary", "grpc_service": "grpc.health.v1.Health", "grpc_method": "Check"}
    before = await scrape(probe_server.metrics_url)
    async with probe_server.channel() as channel:
        await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    after = await scrape(probe_server.metrics_url)
    key = ("grpc_server_handled_total", frozenset({**check, "grpc_code": "OK"}.items()))
    assert after[key] - before.get(key, 0.0) == 1
