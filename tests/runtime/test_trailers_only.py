"""Error replies are Trailers-Only on the wire: grpc-status in the one HEADERS frame, END_STREAM
set, no DATA frame (Envoy reads a status only there: outlier detection, retryOn)."""

from __future__ import annotations

import pytest
from fixtures.h2frames import raw_unary_call

from shop.payment.v1 import payment_pb2 as pb

CHARGE = "/shop.payment.v1.PaymentService/Charge"

# Every way a call can fail through the runtime, and the grpc-status each must carry.
FAILURES = {
    "tok_invalid": "3",  # INVALID_ARGUMENT
    "tok_notfound": "5",  # NOT_FOUND
    "tok_precondition": "9",  # FAILED_PRECONDITION
    "tok_exists": "6",  # ALREADY_EXISTS
    "tok_unavailable": "14",  # UNAVAILABLE
    "tok_deadline": "4",  # DEADLINE_EXCEEDED
    "tok_crash": "13",  # INTERNAL (an unexpected exception)
}


@pytest.mark.parametrize(("token", "status"), sorted(FAILURES.items()))
async def test_error_reply_is_one_headers_frame_with_end_stream(
    probe_server, token: str, status: str
) -> None:
    reply = await raw_unary_call(
        probe_server.address,
        CHARGE,
        pb.ChargeRequest(payment_token=token),
        # A traced call: OpenTelemetry's interceptor is on this path and must not send headers early.
        metadata=[("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01")],
    )
    assert reply.headers.get(":status") == "200"
    assert reply.headers.get("grpc-status") == status
    assert reply.headers_end_stream, "the status must end the stream in the same HEADERS frame"
    assert reply.data_frames == 0
    assert reply.trailers is None
    assert reply.trailers_only
    if token != "tok_crash":  # rich details ride in the same frame
        assert "grpc-status-details-bin" in reply.headers


async def test_a_success_is_headers_data_trailers_so_the_check_can_tell(probe_server) -> None:
    reply = await raw_unary_call(probe_server.address, CHARGE, pb.ChargeRequest(payment_token="tok_visa"))
    assert not reply.trailers_only
    assert "grpc-status" not in reply.headers
    assert reply.data_frames >= 1
    assert reply.trailers is not None
    assert reply.trailers.get("grpc-status") == "0"


async def test_unknown_method_is_trailers_only_too(probe_server) -> None:
    reply = await raw_unary_call(
        probe_server.address, "/shop.payment.v1.PaymentService/NoSuchMethod", pb.ChargeRequest()
    )
    assert reply.headers.get("grpc-status") == "12"  # UNIMPLEMENTED
    assert reply.trailers_only
