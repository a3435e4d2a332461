"""The sidecar of one pod: an xDS-enabled gRPC server on the pod's address, in front of the
unchanged (grpc.aio) service on localhost.

It plays Envoy's inbound side. Listener, TLS and RBAC all come from the control plane: the
server does not even bind until its Listener (`grpc/server?xds.resource.listening_address=
<pod ip>:<port>`) arrives, then terminates mTLS with the pod's certificate (STRICT: no client
certificate, no connection) and runs the RBAC filters (PERMISSION_DENIED before the service
sees the call). What passes is relayed as is (shopmesh.localmesh.forwarding), with
`x-forwarded-client-cert` added; which methods are unary it knows from the declared
contracts and learns from the app's reflection (shopmesh.localmesh.methods).

`grpc.aio.server` cannot be xDS-enabled (grpcio has no such parameter), hence a sync server
here and the services untouched.
Run as `python -m shopmesh.localmesh.sidecar` with GRPC_XDS_BOOTSTRAP set to the pod's bootstrap.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import logging
from collections.abc import Sequence
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from shopmesh.localmesh.forwarding import (
    PEER_ID,
    UNLIMITED_MESSAGES,
    UPSTREAM_OPTIONS,
    Inbound,
    Relay,
    serve_until_signalled,
)
from shopmesh.localmesh.istiostats import DESTINATION, start_stats
from shopmesh.localmesh.methods import KnownMethods, declared_methods, reflected_methods
from shopmesh.localmesh.observation import CallObserver, VerifiedPeer

log = logging.getLogger("shopmesh.localmesh.sidecar")

XFCC = "x-forwarded-client-cert"
#: The app is on loopback: after it restarts, be connected again within a second (gRPC's
#: default backoff would keep failing calls for up to two minutes; Envoy just reconnects).
APP_RECONNECT_MAX_SECONDS = 1.0
APP_RECONNECT = [
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", int(APP_RECONNECT_MAX_SECONDS * 1000)),
]


@dataclass(frozen=True)
class ClientCertificate:
    """What Istio's inbound listener forwards of a client certificate
    (`SetCurrentClientCertDetails{Subject, URI, DNS}`)."""

    sha256: str  # of the DER certificate, hex
    subject: str
    uris: tuple[str, ...]
    dns_names: tuple[str, ...]

    @property
    def identity(self) -> str | None:
        """The SPIFFE id: a mesh certificate's one URI SAN."""
        return self.uris[0] if self.uris else None

    @functools.cached_property
    def peer(self) -> VerifiedPeer | None:
        """The caller, for the call's observer; None for a certificate naming no identity."""
        return VerifiedPeer(self.uris[0], self.sha256) if self.uris else None

    def xfcc(self, local_identity: str) -> str:
        """Envoy's XFCC element: `By=<our SPIFFE id>;Hash=<hash>;Subject="<subject>";URI=<id>`."""
        subject = self.subject.replace('"', '\\"')
        parts = [f"By={local_identity}", f"Hash={self.sha256}", f'Subject="{subject}"']
        parts += [f"URI={uri}" for uri in self.uris]
        parts += [f"DNS={dns}" for dns in self.dns_names]
        return ";".join(parts)


@functools.lru_cache(maxsize=256)  # a connection's certificate, parsed once, not per call
def client_certificate(pem: bytes) -> ClientCertificate:
    certificate = x509.load_pem_x509_certificate(pem)
    try:
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = tuple(names.get_values_for_type(x509.UniformResourceIdentifier))
        dns_names = tuple(names.get_values_for_type(x509.DNSName))
    except x509.ExtensionNotFound:
        uris, dns_names = (), ()
    return ClientCertificate(
        sha256=hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest(),
        subject=certificate.subject.rfc4514_string(),
        uris=uris,
        dns_names=dns_names,
    )


def peer_certificate(context: grpc.ServicerContext) -> ClientCertificate | None:
    """The verified client certificate of this call's connection; None on plaintext (only with
    PeerAuthentication DISABLE: nothing to vouch for)."""
    found: bytes | list[bytes] = context.auth_context().get("x509_pem_cert") or []
    pem = found if isinstance(found, bytes) else (found[0] if found else None)
    return client_certificate(pem) if pem else None


def forward_client_certificate(local_identity: str) -> Inbound:
    """The sidecar's inbound hook: appends our XFCC element as Istio's inbound HCM does
    (APPEND_FORWARD: a caller's own XFCC stays, ours is appended) and names the caller."""

    def inbound(
        metadata: list[tuple[str, str | bytes]], context: grpc.ServicerContext
    ) -> VerifiedPeer | None:
        certificate = peer_certificate(context)
        if certificate is None:
            return None
        previous = [str(value) for key, value in metadata if key == XFCC]
        if previous:
            metadata[:] = [(key, value) for key, value in metadata if key != XFCC]
        metadata.append((XFCC, ",".join([*previous, certificate.xfcc(local_identity)])))
        return certificate.peer

    return inbound


def build_server(
    listen: str,
    app: str,
    local_identity: str,
    node_id: str,
    workers: int = 64,
    observer: CallObserver | None = None,
) -> grpc.Server:
    upstream = grpc.insecure_channel(app, options=[*UPSTREAM_OPTIONS, *APP_RECONNECT])
    methods = KnownMethods(declared_methods(), source=functools.partial(reflected_methods, upstream))
    methods.start_learning()
    relay = Relay(
        upstream,
        methods,
        inbound=forward_client_certificate(local_identity),
        response_headers=((PEER_ID, node_id),),
        observer=observer,
        trailers_only=False,  # grpc-core's xDS server would abort (see forwarding's docstring)
    )
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="sidecar"),
        handlers=[relay],
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
    parser.add_argument("--stats", help="serve Istio's metrics here (/stats/prometheus), e.g. <pod ip>:15090")
    parser.add_argument(
        "--peer-metadata", type=Path, help="the control plane's peer directory (with --stats)"
    )
    arguments = parser.parse_args(argv)
    if arguments.stats and not arguments.peer_metadata:
        parser.error("--stats needs --peer-metadata")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s sidecar %(levelname)s %(message)s")
    observer = None
    if arguments.stats:
        port = int(arguments.listen.rpartition(":")[2])
        observer, _ = start_stats(
            DESTINATION, arguments.stats, arguments.node_id, arguments.peer_metadata, port
        )
    server = build_server(
        arguments.listen, arguments.app, arguments.identity, arguments.node_id, observer=observer
    )
    serve_until_signalled(server, f"{arguments.listen} -> {arguments.app}")


if __name__ == "__main__":
    main()
