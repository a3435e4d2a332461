"""The sidecar of one pod: an xDS-enabled gRPC server on the pod's address, in front of the
unchanged (grpc.aio) service on localhost.

It plays Envoy's inbound side. Listener, TLS and RBAC all come from the control plane: the
server does not even bind until its Listener (`grpc/server?xds.resource.listening_address=
<pod ip>:<port>`) arrives, then terminates mTLS with the pod's certificate (STRICT: no client
certificate, no connection) and runs the RBAC filters (PERMISSION_DENIED before the service
sees the call). What passes is forwarded as is, with `x-forwarded-client-cert` added.

`grpc.aio.server` cannot be xDS-enabled, hence a sync server here and the services untouched.
Run as `python -m shopmesh.localmesh.sidecar` with GRPC_XDS_BOOTSTRAP set to the pod's bootstrap.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
from collections.abc import Sequence
from concurrent import futures

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shopmesh.localmesh.forwarding import UNLIMITED_MESSAGES, Forwarder, serve_until_signalled

log = logging.getLogger("shopmesh.localmesh.sidecar")

XFCC = "x-forwarded-client-cert"
#: Istio's metadata exchange names the serving pod in this response header; we send the id
#: part only (the full `x-envoy-peer-metadata` is a telemetry blob nothing here reads).
PEER_ID = "x-envoy-peer-metadata-id"
#: The app is on loopback: after it restarts, be connected again within a second (gRPC's
#: default backoff would keep failing calls for up to two minutes; Envoy just reconnects).
APP_RECONNECT_MAX_SECONDS = 1.0
APP_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", int(APP_RECONNECT_MAX_SECONDS * 1000)),
]


def client_cert_details(local_identity: str, context: grpc.ServicerContext) -> str | None:
    """Envoy's XFCC element for this connection, as Istio's inbound listener configures it
    (`SetCurrentClientCertDetails{Subject, URI, DNS}`): `By=<our SPIFFE id>;Hash=<SHA-256 of the
    client certificate, DER, hex>;Subject="<subject>";URI=<client SPIFFE id>`."""
    auth = context.auth_context()
    found: bytes | list[bytes] = auth.get("x509_pem_cert") or []
    certificates = [found] if isinstance(found, bytes) else list(found)
    pem = certificates[0] if certificates else None
    if pem is None:
        return None  # plaintext (only with PeerAuthentication DISABLE): nothing to vouch for
    certificate = x509.load_pem_x509_certificate(pem)
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    subject = certificate.subject.rfc4514_string().replace('"', '\\"')
    parts = [f"By={local_identity}", f"Hash={digest}", f'Subject="{subject}"']
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        parts += [f"URI={uri}" for uri in names.get_values_for_type(x509.UniformResourceIdentifier)]
        parts += [f"DNS={dns}" for dns in names.get_values_for_type(x509.DNSName)]
    except x509.ExtensionNotFound:
        pass
    return ";".join(parts)


def build_server(listen: str, app: str, local_identity: str, node_id: str, workers: int = 64) -> grpc.Server:
    upstream = grpc.insecure_channel(app, options=[*UNLIMITED_MESSAGES, *APP_RECONNECT])

    def decorate(metadata: list[tuple[str, str | bytes]], context: grpc.ServicerContext) -> None:
        # Istio's inbound HCM: APPEND_FORWARD — a caller's own XFCC stays, ours is appended.
        details = client_cert_details(local_identity, context)
        if details is None:
            return
        previous = [value for key, value in metadata if key == XFCC]
        metadata[:] = [(key, value) for key, value in metadata if key != XFCC]
        metadata.append((XFCC, ",".join([*(str(v) for v in previous), details])))

    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sidecar"),
        handlers=[
            Forwarder(lambda _method: upstream, decorate=decorate, response_headers=[(PEER_ID, node_id)])
        ],
        options=UNLIMITED_MESSAGES,
        xds=True,
    )
    server.add_secure_port(listen, grpc.xds_server_credentials(grpc.insecure_server_credentials()))
    return server


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m shopmesh.localmesh.sidecar")
    parser.add_argument("--listen", required=True, help="the pod address and port, e.g. 127.10.1.1:50051")
    parser.add_argument("--app", required=True, help="the service behind, e.g. 127.0.0.1:41234")
    parser.add_argument("--identity", required=True, help="this pod's SPIFFE id (XFCC `By`)")
    parser.add_argument("--node-id", required=True, help="this pod's proxy id (metadata exchange)")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sidecar %(levelname)s %(message)s")
    server = build_server(arguments.listen, arguments.app, arguments.identity, arguments.node_id)
    serve_until_signalled(server, f"{arguments.listen} -> {arguments.app}")


if __name__ == "__main__":
    main()
