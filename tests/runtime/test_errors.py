"""Domain errors become the AIP-193 status with google.rpc details, as a grpc client sees them."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from services.runtime import errors
from services.runtime.status import to_grpc_status
from shop.payment.v1 import payment_pb2 as pb
from shop.payment.v1 import payment_pb2_grpc


async def charge_error(server, token: str) -> grpc.aio.AioRpcError:
    async with server.channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await payment_pb2_grpc.PaymentServiceStub(channel).Charge(
                pb.ChargeRequest(payment_token=token), timeout=5
            )
    return failure.value


def details_of(error: grpc.aio.AioRpcError) -> dict[str, object]:
    status = rpc_status.from_call(error)
    assert status is not None, "the reply has no google.rpc.Status"
    found: dict[str, object] = {}
    for packed in status.details:
        for kind in (
            error_details_pb2.BadRequest,
            error_details_pb2.ErrorInfo,
            error_details_pb2.ResourceInfo,
            error_details_pb2.RetryInfo,
        ):
            message = kind()
            if packed.Unpack(message):
                found[kind.__name__] = message
    return found


async def test_invalid_argument_lists_every_field(probe_server) -> None:
    error = await charge_error(probe_server, "tok_invalid")
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    bad_request = details_of(error)["BadRequest"]
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("amount.currency_code", "must be 3 letters"),
        ("order_id", "bad"),
    ]


async def test_not_found_names_the_resource(probe_server) -> None:
    error = await charge_error(probe_server, "tok_notfound")
    assert error.code() is grpc.StatusCode.NOT_FOUND
    info = details_of(error)["ResourceInfo"]
    assert (info.resource_type, info.resource_name) == ("payment", "p-404")


@pytest.mark.parametrize(
    ("token", "code", "reason"),
    [
        ("tok_precondition", grpc.StatusCode.FAILED_PRECONDITION, "CHARGE_VOIDED"),
        ("tok_exists", grpc.StatusCode.ALREADY_EXISTS, "IDEMPOTENCY_KEY_REUSED"),
        ("tok_unavailable", grpc.StatusCode.UNAVAILABLE, "PROCESSOR_UNAVAILABLE"),
        ("tok_deadline", grpc.StatusCode.DEADLINE_EXCEEDED, "PROCESSOR_TIMEOUT"),
    ],
)
async def test_reasoned_errors_carry_error_info_in_the_service_domain(
    probe_server, token, code, reason
) -> None:
    error = await charge_error(probe_server, token)
    assert error.code() is code
    info = details_of(error)["ErrorInfo"]
    assert info.reason == reason
    assert info.domain == "payment.shop"


async def test_precondition_metadata_and_retry_delay_reach_the_client(probe_server) -> None:
    assert details_of(await charge_error(probe_server, "tok_precondition"))["ErrorInfo"].metadata == {
        "key": "k-1"
    }
    retry = details_of(await charge_error(probe_server, "tok_unavailable"))["RetryInfo"]
    assert retry.retry_delay.ToMilliseconds() == 1500


async def test_an_unexpected_exception_is_internal_and_leaks_nothing(probe_server) -> None:
    error = await charge_error(probe_server, "tok_crash")
    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == "internal error"
    assert "secret" not in str(error.trailing_metadata())


def test_untrusted_strings_are_clipped_so_the_status_fits_a_header() -> None:
    many = [errors.FieldViolation(f"items[{i}].product_id", "x" * 5000) for i in range(200)]
    status = to_grpc_status(errors.InvalidArgument(many), service="order")
    details_size = sum(
        len(value) for key, value in status.trailing_metadata if key == "grpc-status-details-bin"
    )
    assert details_size < 4 * 1024  # well under grpc's default 8 KiB limit on a peer's header list
    assert len(status.details) <= 300
    assert status.details.startswith("invalid request: items[0].product_id")
    assert status.details.endswith("and 195 more")


def test_invalid_argument_needs_a_violation() -> None:
    with pytest.raises(ValueError, match="at least one"):
        errors.InvalidArgument([])


async def test_a_message_over_the_size_limit_is_refused(probe_server) -> None:
    limit = probe_server.settings.max_message_bytes
    async with probe_server.channel() as channel:
        with pytest.raises(grpc.aio.AioRpcError) as failure:
            await payment_pb2_grpc.PaymentServiceStub(channel).Charge(
                pb.ChargeRequest(payment_token="t" * (limit + 1)), timeout=10
            )
    assert failure.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
