"""The relay the sidecar and the ingress share (shopmesh.localmesh.forwarding), in one process:
a real gRPC server relaying to a real app on loopback, each method shape by its own path, what
the caller gets back, what the observer sees, and how a failure without response headers is
handed back (Trailers-Only or not) — shown by a client's own gRPC retry policy."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from services.runtime.contracts import Method
from shopmesh.localmesh.forwarding import PEER_ID, Relay
from shopmesh.localmesh.methods import KnownMethods
from shopmesh.localmesh.observation import RelayedCall, VerifiedPeer

SERVICE = "test.Echo"
KNOWN = KnownMethods(
    [
        Method(SERVICE, "Unary", client_streaming=False, server_streaming=False),
        Method(SERVICE, "Fail", client_streaming=False, server_streaming=False),
        Method(SERVICE, "Unavailable", client_streaming=False, server_streaming=False),
        Method(SERVICE, "UnavailableAfterHeaders", client_streaming=False, server_streaming=False),
        Method(SERVICE, "Stream", client_streaming=False, server_streaming=True),
    ]
)  # /test.Echo/Chat is left unknown: relayed as a stream
UPSTREAM_PEER = "sidecar~127.0.0.1~app-0.test~test.svc.cluster.local"
RETRY_THREE_TIMES = json.dumps(
    {
        "methodConfig": [
            {
                "name": [{"service": SERVICE}],
                "retryPolicy": {
                    "maxAttempts": 3,
                    "initialBackoff": "0.01s",
                    "maxBackoff": "0.01s",
                    "backoffMultiplier": 1,
                    "retryableStatusCodes": ["UNAVAILABLE"],
                },
            }
        ]
    }
)


@dataclass
class App(grpc.GenericRpcHandler):
    """The upstream: reports what it received, fails on demand, counts attempts."""

    attempts: dict[str, int] = field(default_factory=dict)

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        seen = dict(details.invocation_metadata)
        name = details.method.rsplit("/", 1)[-1]
        self.attempts[name] = self.attempts.get(name, 0) + 1

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.send_initial_metadata(((PEER_ID, UPSTREAM_PEER), ("x-app-header", "h")))
            context.set_trailing_metadata(
                (
                    ("x-seen-custom", str(seen.get("x-custom", ""))),
                    ("x-seen-added", str(seen.get("x-added", ""))),
                    ("x-seen-deadline", f"{context.time_remaining():.3f}"),
                )
            )
            return request[::-1]

        def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
            info = any_pb2.Any()
            info.Pack(error_details_pb2.ErrorInfo(reason="REFUSED", domain="echo.test"))
            status = status_pb2.Status(code=9, message="refused by echo", details=[info])
            context.abort_with_status(rpc_status.to_status(status))  # Trailers-Only
            return b""

        def unavailable(request: bytes, context: grpc.ServicerContext) -> bytes:
            if name == "UnavailableAfterHeaders":
                context.send_initial_metadata((("x-app-header", "h"),))
            context.abort(grpc.StatusCode.UNAVAILABLE, "try again")
            return b""

        def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            yield from (request for _ in range(3))

        def chat(requests: Iterator[bytes], context: grpc.ServicerContext) -> Iterator[bytes]:
            for request in requests:
                yield request + request

        handlers = {
            "Unary": grpc.unary_unary_rpc_method_handler(unary),
            "Fail": grpc.unary_unary_rpc_method_handler(fail),
            "Unavailable": grpc.unary_unary_rpc_method_handler(unavailable),
            "UnavailableAfterHeaders": grpc.unary_unary_rpc_method_handler(unavailable),
            "Stream": grpc.unary_stream_rpc_method_handler(stream),
            "Chat": grpc.stream_stream_rpc_method_handler(chat),
        }
        return handlers.get(name)


@dataclass
class Recorder:
    calls: list[RelayedCall] = field(default_factory=list)
    fail: bool = False

    def observe(self, call: RelayedCall) -> None:
        self.calls.append(call)
        if self.fail:
            raise RuntimeError("a broken observer")


@dataclass
class Rig:
    app: App
    observer: Recorder
    relay: grpc.Channel
    retrying: grpc.Channel


def _serve(handler: grpc.GenericRpcHandler) -> tuple[grpc.Server, str]:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[handler])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


CALLER = VerifiedPeer("spiffe://cluster.local/ns/test/sa/caller", "ab" * 32)


def _add_header(
    metadata: list[tuple[str, str | bytes]], _context: grpc.ServicerContext
) -> VerifiedPeer | None:
    metadata.append(("x-added", "by the relay"))
    return CALLER


@pytest.fixture(params=[True, False], ids=["trailers-only", "headers-first"])
def rig(request: pytest.FixtureRequest) -> Iterator[Rig]:
    app = App()
    observer = Recorder()
    app_server, app_address = _serve(app)
    upstream = grpc.insecure_channel(app_address)
    relay = Relay(
        upstream,
        KNOWN,
        inbound=_add_header,
        response_headers=((PEER_ID, "relay-0"),),
        observer=observer,
        trailers_only=request.param,
    )
    relay_server, relay_address = _serve(relay)
    channel = grpc.insecure_channel(relay_address)
    retrying = grpc.insecure_channel(relay_address, options=[("grpc.service_config", RETRY_THREE_TIMES)])
    try:
        yield Rig(app, observer, channel, retrying)
    finally:
        for closable in (channel, retrying, upstream):
            closable.close()
        relay_server.stop(0)
        app_server.stop(0)


def test_a_unary_call_goes_through_with_metadata_deadline_headers_and_trailers(rig: Rig) -> None:
    unary = rig.relay.unary_unary(f"/{SERVICE}/Unary")
    response, call = unary.with_call(b"\x00bytes\xff", timeout=5, metadata=(("x-custom", "hello"),))
    assert response == b"\xffsetyb\x00"  # bytes untouched, both ways
    headers, trailers = dict(call.initial_metadata()), dict(call.trailing_metadata())
    assert headers["x-app-header"] == "h"  # the app's headers, and the relay's own after them
    assert [value for key, value in call.initial_metadata() if key == PEER_ID] == [UPSTREAM_PEER, "relay-0"]
    assert (trailers["x-seen-custom"], trailers["x-seen-added"]) == ("hello", "by the relay")
    # the caller's 5 s deadline reached the app: gRPC encodes `grpc-timeout` in a few digits,
    # rounded up, so each hop may add a few milliseconds
    assert 2.0 < float(trailers["x-seen-deadline"]) <= 5.1
    (observed,) = rig.observer.calls
    assert observed.method == f"/{SERVICE}/Unary"
    assert observed.caller == CALLER
    assert ("x-custom", "hello") in observed.request_headers
    assert ("x-added", "by the relay") not in observed.request_headers  # as the caller sent them
    assert observed.code == grpc.StatusCode.OK
    assert (observed.request_messages, observed.request_bytes) == (1, 7)
    assert (observed.response_messages, observed.response_bytes) == (1, 7)
    assert observed.upstream_peer == UPSTREAM_PEER
    assert 0 < observed.duration < 5


def test_status_message_and_details_come_back_unchanged(rig: Rig) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        rig.relay.unary_unary(f"/{SERVICE}/Fail")(b"", timeout=5)
    error: grpc.Call = failed.value  # type: ignore[assignment]
    assert (error.code(), error.details()) == (grpc.StatusCode.FAILED_PRECONDITION, "refused by echo")
    status = rpc_status.from_call(error)
    assert status is not None
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (info.reason, info.domain) == ("REFUSED", "echo.test")
    (observed,) = rig.observer.calls
    assert (observed.code, observed.response_messages) == (grpc.StatusCode.FAILED_PRECONDITION, 0)


def test_a_reply_without_headers_is_trailers_only_where_allowed_so_the_callers_retries_apply(
    rig: Rig, request: pytest.FixtureRequest
) -> None:
    trailers_only = request.node.callspec.params["rig"]
    with pytest.raises(grpc.RpcError) as failed:
        rig.retrying.unary_unary(f"/{SERVICE}/Unavailable")(b"", timeout=5)
    error: grpc.Call = failed.value  # type: ignore[assignment]
    assert (error.code(), error.details()) == (grpc.StatusCode.UNAVAILABLE, "try again")
    own_header = (PEER_ID, "relay-0")
    if trailers_only:  # no response headers: the caller's gRPC retried, the relay's header in trailers
        assert rig.app.attempts["Unavailable"] == 3
        assert tuple(error.initial_metadata()) == ()
        assert own_header in tuple(error.trailing_metadata())
    else:  # the sidecar's way: headers first, so the call is committed and never retried
        assert rig.app.attempts["Unavailable"] == 1
        assert own_header in tuple(error.initial_metadata())
    assert len(rig.observer.calls) == rig.app.attempts["Unavailable"]
    assert {call.upstream_peer for call in rig.observer.calls} == {
        ""
    }  # the relay's own is not the upstream's


def test_an_upstream_that_sent_headers_before_failing_is_not_retried_through_the_relay(rig: Rig) -> None:
    with pytest.raises(grpc.RpcError) as failed:
        rig.retrying.unary_unary(f"/{SERVICE}/UnavailableAfterHeaders")(b"", timeout=5)
    error: grpc.Call = failed.value  # type: ignore[assignment]
    assert error.code() == grpc.StatusCode.UNAVAILABLE
    assert rig.app.attempts["UnavailableAfterHeaders"] == 1
    assert dict(error.initial_metadata())["x-app-header"] == "h"


def test_a_server_stream_is_relayed_message_by_message(rig: Rig) -> None:
    answers = rig.relay.unary_stream(f"/{SERVICE}/Stream")(b"abc", timeout=5)
    assert list(answers) == [b"abc"] * 3
    (observed,) = rig.observer.calls
    assert (observed.request_messages, observed.response_messages, observed.response_bytes) == (1, 3, 9)


def test_an_unknown_method_is_relayed_as_a_bidirectional_stream(rig: Rig) -> None:
    answers = rig.relay.stream_stream(f"/{SERVICE}/Chat")(iter([b"a", b"bc"]), timeout=5)
    assert list(answers) == [b"aa", b"bcbc"]
    (observed,) = rig.observer.calls
    assert (observed.request_messages, observed.request_bytes) == (2, 3)
    assert (observed.response_messages, observed.response_bytes) == (2, 6)
    with pytest.raises(grpc.RpcError) as missing:
        rig.relay.unary_unary(f"/{SERVICE}/Nope")(b"", timeout=5)
    assert missing.value.code() == grpc.StatusCode.UNIMPLEMENTED  # the app's own answer


def test_a_failing_observer_does_not_fail_the_call(rig: Rig) -> None:
    rig.observer.fail = True
    assert rig.relay.unary_unary(f"/{SERVICE}/Unary")(b"ab", timeout=5) == b"ba"
    assert len(rig.observer.calls) == 1
