"""The ingress gateway: plaintext gRPC in (where grpcurl points), mTLS into the mesh out.

Istio's ingress gateway is an Envoy whose routes come from the VirtualServices bound to a
Gateway. Ours is a gRPC server on 127.0.0.1 relaying every call, as raw bytes
(shopmesh.localmesh.forwarding), through one xDS channel whose routes the control plane builds
from those same VirtualServices; the channel's certificates are the gateway's own identity
(`spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account`), so every
sidecar's authorization policy sees the caller it would in a cluster. Which methods are unary
it knows from the declared contracts and learns through its reflection route
(shopmesh.localmesh.methods).

It answers `grpc.health.v1.Health` itself, for "" (the gateway as a whole), as Istio's gateway
answers its readiness probe itself: SERVING once it can route — its xDS channel has the
gateway's listener and routes and a connection to a backend (channel state READY) — and
NOT_SERVING before, whenever the mesh is out of reach, and from the moment it begins to stop.

Run as `python -m shopmesh.localmesh.ingress` with GRPC_XDS_BOOTSTRAP set to its bootstrap.
"""

from __future__ import annotations

import argparse
import functools
import logging
import uuid
from collections.abc import Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import grpc.experimental
from grpc_health.v1 import health, health_pb2

from services.runtime.decoding import decode_request
from services.runtime.errors import InvalidArgument
from services.runtime.status import to_grpc_status
from shopmesh.localmesh.forwarding import UNLIMITED_MESSAGES, UPSTREAM_OPTIONS, Relay, serve_until_signalled
from shopmesh.localmesh.istiostats import SOURCE, start_stats
from shopmesh.localmesh.methods import KnownMethods, declared_methods, reflected_methods
from shopmesh.localmesh.observation import CallObserver, VerifiedPeer

log = logging.getLogger("shopmesh.localmesh.ingress")

REQUEST_ID = "x-request-id"
HEALTH_SERVICE = "grpc.health.v1.Health"
#: The ErrorInfo domain of the gateway's own errors ("<name>.shop", services.runtime.status).
GATEWAY = "istio-ingressgateway"
#: The mesh channel never goes idle: its connectivity is the gateway's health, and an idle
#: channel would say nothing (gRPC's default idles it after 30 minutes without calls).
NEVER_IDLE = [("grpc.client_idle_timeout_ms", 2**31 - 1)]
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def add_request_id(
    metadata: list[tuple[str, str | bytes]], _context: grpc.ServicerContext
) -> VerifiedPeer | None:
    """Envoy at the edge gives each request an `x-request-id` unless the client sent one.
    The ingress's callers present no certificate: no caller identity."""
    if not any(key == REQUEST_ID for key, _ in metadata):
        metadata.append((REQUEST_ID, str(uuid.uuid4())))
    return None


class GatewayHealth:
    """`grpc.health.v1` for "": follows the mesh channel's connectivity until `stop()`."""

    def __init__(self, mesh: grpc.Channel) -> None:
        self.servicer = health.HealthServicer()
        self.servicer.set("", NOT_SERVING)
        self._mesh = mesh
        mesh.subscribe(self._follow, try_to_connect=True)

    def _follow(self, state: grpc.ChannelConnectivity) -> None:
        log.info("mesh channel %s", state.name)
        self.servicer.set("", SERVING if state == grpc.ChannelConnectivity.READY else NOT_SERVING)
        if state == grpc.ChannelConnectivity.IDLE:
            # Disconnected (or never connected): connect again, so the state says something.
            # (A subscription asks to connect only once; this future asks until READY.)
            grpc.channel_ready_future(self._mesh)

    def stop(self) -> None:
        self._mesh.unsubscribe(self._follow)
        self.servicer.enter_graceful_shutdown()


def decoding_health_handlers(servicer: health.HealthServicer) -> dict[str, grpc.RpcMethodHandler[Any, Any]]:
    """`grpc.health.v1.Health` as health_pb2_grpc registers it, but decoding its requests itself
    (services.runtime.decoding): grpcio's sync server answers bytes that do not decode INTERNAL
    "Exception deserializing request!", where the caller's mistake is INVALID_ARGUMENT."""

    def check(data: bytes, context: grpc.ServicerContext) -> health_pb2.HealthCheckResponse:
        return servicer.Check(_health_request(data, context), context)

    def watch(data: bytes, context: grpc.ServicerContext) -> Iterator[health_pb2.HealthCheckResponse]:
        yield from servicer.Watch(_health_request(data, context), context)

    respond = health_pb2.HealthCheckResponse.SerializeToString
    return {
        "Check": grpc.unary_unary_rpc_method_handler(check, None, respond),
        "Watch": grpc.unary_stream_rpc_method_handler(watch, None, respond),
    }


def _health_request(data: bytes, context: grpc.ServicerContext) -> health_pb2.HealthCheckRequest:
    try:
        request: health_pb2.HealthCheckRequest = decode_request(
            health_pb2.HealthCheckRequest.FromString, data
        )
    except InvalidArgument as error:
        context.abort_with_status(to_grpc_status(error, service=GATEWAY))
        raise AssertionError("abort_with_status returned") from error  # pragma: no cover - it raises
    return request


def build_server(
    listen: str, target: str, workers: int = 64, observer: CallObserver | None = None
) -> tuple[grpc.Server, int, GatewayHealth]:
    mesh = grpc.secure_channel(
        target,
        grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials()),
        options=[*UPSTREAM_OPTIONS, *NEVER_IDLE],
    )
    methods = KnownMethods(declared_methods(), source=functools.partial(reflected_methods, mesh))
    methods.start_learning()
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingress"),
        handlers=[Relay(mesh, methods, inbound=add_request_id, observer=observer)],
        options=UNLIMITED_MESSAGES,
    )
    gateway_health = GatewayHealth(mesh)
    # Registered methods come before the relay (and cost it nothing): the gateway answers its
    # health itself. (grpc-stubs do not declare the method; the generated health code uses it.)
    server.add_registered_method_handlers(  # type: ignore[attr-defined]
        HEALTH_SERVICE, decoding_health_handlers(gateway_health.servicer)
    )
    port = server.add_insecure_port(listen)
    if port == 0:
        raise SystemExit(f"ingress: cannot listen on {listen}")
    return server, port, gateway_health


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shopmesh.localmesh.ingress")
    parser.add_argument("--listen", default="127.0.0.1:50051")
    parser.add_argument("--target", required=True, help="xds:///<the gateway's listener>")
    parser.add_argument(
        "--stats", help="serve Istio's metrics here (/stats/prometheus), e.g. 127.0.0.1:15090"
    )
    parser.add_argument("--node-id", help="the gateway pod's proxy id (with --stats)")
    parser.add_argument(
        "--peer-metadata", type=Path, help="the control plane's peer directory (with --stats)"
    )
    arguments = parser.parse_args(argv)
    if arguments.stats and not (arguments.node_id and arguments.peer_metadata):
        parser.error("--stats needs --node-id and --peer-metadata")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ingress %(levelname)s %(message)s")
    observer = None
    if arguments.stats:
        observer, _ = start_stats(SOURCE, arguments.stats, arguments.node_id, arguments.peer_metadata)
    server, _port, gateway_health = build_server(arguments.listen, arguments.target, observer=observer)
    serve_until_signalled(server, f"{arguments.listen} -> {arguments.target}", on_stop=gateway_health.stop)


if __name__ == "__main__":
    main()
