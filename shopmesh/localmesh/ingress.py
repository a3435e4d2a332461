"""The ingress gateway: plaintext gRPC in (where grpcurl points), mTLS into the mesh out.

Istio's ingress gateway is an Envoy whose routes come from the VirtualServices bound to a
Gateway. Ours is a gRPC server on 127.0.0.1 forwarding every call, as raw bytes, through one
xDS channel whose routes the control plane builds from those same VirtualServices; the
channel's certificates are the gateway's own identity
(`spiffe://cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account`), so every
sidecar's authorization policy sees the caller it would in a cluster.

Run as `python -m shopmesh.localmesh.ingress` with GRPC_XDS_BOOTSTRAP set to its bootstrap.
"""

from __future__ import annotations

import argparse
import logging
import uuid
from collections.abc import Sequence
from concurrent import futures

import grpc
import grpc.experimental

from shopmesh.localmesh.forwarding import UNLIMITED_MESSAGES, Forwarder, serve_until_signalled

log = logging.getLogger("shopmesh.localmesh.ingress")

REQUEST_ID = "x-request-id"


def add_request_id(metadata: list[tuple[str, str | bytes]], _context: grpc.ServicerContext) -> None:
    """Envoy at the edge gives each request an `x-request-id` unless the client sent one."""
    if not any(key == REQUEST_ID for key, _ in metadata):
        metadata.append((REQUEST_ID, str(uuid.uuid4())))


def build_server(listen: str, target: str, workers: int = 64) -> tuple[grpc.Server, int]:
    mesh = grpc.secure_channel(
        target,
        grpc.xds_channel_credentials(grpc.experimental.insecure_channel_credentials()),
        options=UNLIMITED_MESSAGES,
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="ingress"),
        handlers=[Forwarder(lambda _method: mesh, decorate=add_request_id)],
        options=UNLIMITED_MESSAGES,
    )
    port = server.add_insecure_port(listen)
    if port == 0:
        raise SystemExit(f"ingress: cannot listen on {listen}")
    return server, port


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shopmesh.localmesh.ingress")
    parser.add_argument("--listen", default="127.0.0.1:50051")
    parser.add_argument("--target", required=True, help="xds:///<the gateway's listener>")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s ingress %(levelname)s %(message)s")
    server, _port = build_server(arguments.listen, arguments.target)
    serve_until_signalled(server, f"{arguments.listen} -> {arguments.target}")


if __name__ == "__main__":
    main()
