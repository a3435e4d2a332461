"""An incoming call's trace context, request id and deadline reach the calls it makes.

The probe's Charge(tok_forward) calls GetPayment on its "downstream" (itself, through the
runtime's outbound channel); GetPayment reports the metadata and deadline it received.
"""

from __future__ import annotations

import json
import time

import grpc

from runtime.probe_server import probe_settings, running
from services.runtime.callcontext import CallContext, call_scope, current_call, outbound_call_context
from services.runtime.outbound import DEFAULT_TIMEOUT_SECONDS, propagated
from shop.money.v1.money_pb2 import Money
from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc

TRACE = "0af7651916cd43dd8448eb211c80319c"
SPAN = "b7ad6b7169203331"
#: grpc encodes a deadline as a rounded-up timeout; the receiver may see slightly more than sent.
ROUNDING = 1.1


async def downstream_saw(
    server,
    metadata,
    *,
    call_timeout: float | None = 10,
    outbound_timeout: int = 0,
) -> dict:
    async with server.channel() as channel:
        reply = await payment_pb2_grpc.PaymentServiceStub(channel).Charge(
            pb.ChargeRequest(payment_token="tok_forward", amount=Money(minor_units=outbound_timeout)),
            metadata=metadata,
            timeout=call_timeout,
        )
    return json.loads(reply.payment.decline_reason)


async def test_traceparent_and_request_id_are_forwarded_in_every_format(probe_server) -> None:
    seen = await downstream_saw(
        probe_server, [("traceparent", f"00-{TRACE}-{SPAN}-01"), ("x-request-id", "req-42")]
    )
    headers = seen["metadata"]
    assert headers["x-request-id"] == "req-42"
    assert headers["traceparent"].split("-")[1] == TRACE
    assert headers["traceparent"].endswith("-01")  # still sampled
    assert headers["b3"].split("-")[0] == TRACE
    assert headers["x-b3-traceid"] == TRACE
    assert headers["x-b3-sampled"] == "1"


async def test_an_envoy_b3_context_is_continued(probe_server) -> None:
    single = await downstream_saw(probe_server, [("b3", f"{TRACE}-{SPAN}-1")])
    multi = await downstream_saw(
        probe_server, [("x-b3-traceid", TRACE), ("x-b3-spanid", SPAN), ("x-b3-sampled", "1")]
    )
    for seen in (single, multi):
        assert seen["metadata"]["traceparent"].split("-")[1] == TRACE
        assert seen["metadata"]["x-b3-traceid"] == TRACE


async def test_a_request_id_is_made_when_the_caller_sent_none(probe_server) -> None:
    first = (await downstream_saw(probe_server, []))["metadata"]["x-request-id"]
    second = (await downstream_saw(probe_server, []))["metadata"]["x-request-id"]
    assert len(first) == 36  # a fresh UUID per incoming call
    assert first != second


async def test_an_oversized_request_id_is_replaced_not_forwarded(probe_server) -> None:
    seen = await downstream_saw(probe_server, [("x-request-id", "r" * 500)])
    assert seen["metadata"]["x-request-id"] != "r" * 500


async def test_the_remaining_deadline_is_passed_on_never_extended(probe_server) -> None:
    # The outbound call asks for 30 s; the incoming call has 2 s left: 2 s wins.
    seen = await downstream_saw(probe_server, [], call_timeout=2, outbound_timeout=30)
    assert 0 < seen["time_remaining"] <= 2 * ROUNDING
    # A shorter explicit timeout is kept.
    seen = await downstream_saw(probe_server, [], call_timeout=30, outbound_timeout=1)
    assert 0 < seen["time_remaining"] <= 1 * ROUNDING


async def test_without_an_incoming_deadline_calls_get_the_default_budget(probe_server) -> None:
    seen = await downstream_saw(probe_server, [], call_timeout=None)
    assert DEFAULT_TIMEOUT_SECONDS / 2 < seen["time_remaining"] <= DEFAULT_TIMEOUT_SECONDS * ROUNDING


def details(timeout: float | None, metadata=()) -> grpc.aio.ClientCallDetails:
    return grpc.aio.ClientCallDetails("/x.Y/Z", timeout, grpc.aio.Metadata(*metadata), None, None)


def test_propagated_takes_the_smaller_of_explicit_and_remaining() -> None:
    with call_scope(CallContext("r-1", "/a.B/C", time.monotonic() + 2)):
        assert propagated(details(30)).timeout <= 2
        assert propagated(details(0.5)).timeout == 0.5
        assert propagated(details(None)).timeout <= 2
        assert ("x-request-id", "r-1") in list(propagated(details(None)).metadata)
    assert propagated(details(None)).timeout == DEFAULT_TIMEOUT_SECONDS
    assert current_call() is None


def test_an_expired_deadline_is_not_revived() -> None:
    with call_scope(CallContext("r-1", "/a.B/C", time.monotonic() - 1)):
        assert propagated(details(30)).timeout == 0


def test_a_compensation_gets_its_own_budget_and_keeps_the_request_id() -> None:
    with call_scope(CallContext("r-1", "/a.B/C", time.monotonic() - 1)), outbound_call_context(3.0):
        outbound = propagated(details(None))
        assert 2.5 < outbound.timeout <= 3.0
        assert ("x-request-id", "r-1") in list(outbound.metadata)


def test_a_request_id_the_caller_set_explicitly_is_kept() -> None:
    with call_scope(CallContext("r-1", "/a.B/C", None)):
        outbound = propagated(details(None, [("x-request-id", "mine")]))
    assert [value for key, value in outbound.metadata if key == "x-request-id"] == ["mine"]


async def test_xds_channel_credentials_fall_back_to_plaintext_outside_the_mesh(tmp_path) -> None:
    settings = probe_settings(f"sqlite+aiosqlite:///{tmp_path}/xds.db", channel_credentials="xds")
    async with running(settings) as server:
        seen = await downstream_saw(server, [("x-request-id", "req-xds")])
    assert seen["metadata"]["x-request-id"] == "req-xds"
