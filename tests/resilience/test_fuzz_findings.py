"""What the fuzz found in the services, each reproduced on a real service process (payment, its
own SQLite database). Each test states what should happen and fails today; `xfail(strict=True)`
keeps the suite green while the bug stands and fails it once the bug is fixed, so the marker
goes with the fix. (docs/resilience.md, "What the fuzz found".)"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from fixtures.processes import ServiceProcess

from shopmesh.resilience.fuzz.cases import grpc_headers
from shopmesh.resilience.fuzz.wire import grpc_message, request

pytestmark = pytest.mark.slow
GET_PAYMENT = "/shop.payment.v1.PaymentService/GetPayment"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
BAD_UTF8 = b"\x0a\x04\xff\xfe\xc0\x80"  # field 1 (a string) holding bytes that are not UTF-8


@pytest.fixture(scope="module")
def payment() -> Iterator[str]:
    process = ServiceProcess("payment").start()
    try:
        process.wait_serving()
        yield process.address
    finally:
        process.kill()


def _code(call: Callable[[], object]) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()  # type: ignore[attr-defined, no-any-return]
    return grpc.StatusCode.OK


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="services/runtime/interceptor.py passes the generated request deserializer on as it is: its "
    "DecodeError ends the call UNKNOWN ('Unexpected <class DecodeError>') before any handler runs",
)
def test_a_request_that_does_not_decode_is_invalid_argument(payment: str) -> None:
    with grpc.insecure_channel(payment) as channel:
        call = channel.unary_unary(GET_PAYMENT, None, None)
        assert _code(lambda: call(BAD_UTF8, timeout=5)) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="in a client stream (reflection) the DecodeError is raised while the handler reads its "
    "requests, and services/runtime's error mapping answers INTERNAL 'internal error'",
)
def test_a_stream_request_that_does_not_decode_is_invalid_argument(payment: str) -> None:
    with grpc.insecure_channel(payment) as channel:
        call = channel.stream_stream(REFLECTION, None, None)
        assert _code(lambda: list(call(iter([BAD_UTF8]), timeout=5))) == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="grpcio's aio server never answers a unary call whose request stream ends without a whole "
    "message: the call stays open until the client gives up (in a cluster, Envoy's route timeout ends it)",
)
@pytest.mark.parametrize(
    "data", [b"", b"\x00\x00\x00", grpc_message(b"", length=1000)[:7]], ids=["none", "half-prefix", "short"]
)
def test_a_unary_call_without_its_request_message_ends(payment: str, data: bytes) -> None:
    end = request(payment, grpc_headers(GET_PAYMENT.encode()), data, timeout=3.0)
    assert end.outcome != "no answer"


@pytest.mark.xfail(
    strict=True,
    raises=AssertionError,
    reason="grpc-core parses grpc-timeout before any Python code runs and ends a malformed one INTERNAL "
    "(\"Error parsing 'grpc-timeout' metadata\"); upstream behaviour, nothing in the services sees it",
)
@pytest.mark.parametrize("timeout", [b"1x", b"-5S"])
def test_a_malformed_grpc_timeout_is_not_internal(payment: str, timeout: bytes) -> None:
    end = request(
        payment, grpc_headers(GET_PAYMENT.encode(), grpc_timeout=timeout), grpc_message(b""), timeout=3.0
    )
    assert end.outcome not in ("INTERNAL", "UNKNOWN", "no answer"), end
