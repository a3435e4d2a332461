"""PeerAuthentication STRICT, enforced by every sidecar: no certificate or a foreign CA's
certificate gets no connection; a mesh identity gets HTTP/2 and reaches the service."""

from __future__ import annotations

import datetime
import socket
import ssl
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from localmesh.meshcalls import client_bootstrap, probe, target
from shopmesh.localmesh.bootstrap import write_bootstrap
from shopmesh.localmesh.ca import CertificateAuthority, IdentityFiles, spiffe_id
from shopmesh.localmesh.placement import Instance
from shopmesh.localmesh.supervisor import LocalMesh

HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0])  # + empty SETTINGS
SETTINGS_FRAME = 4


def _sidecars(mesh: LocalMesh) -> list[str]:
    return [address for pod in mesh.pods for address in pod.sidecar_addresses]


def _first_frame_type(address: str, identity: IdentityFiles, root: Path) -> int | str:
    """Handshake as `identity` (trusting the mesh root, no hostname: workload certificates name
    only a SPIFFE URI), send the HTTP/2 preface; the type of the server's first frame, or why
    there was none."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.load_verify_locations(root)
    context.load_cert_chain(identity.certificate_chain, identity.private_key)
    context.set_alpn_protocols(["h2"])
    host, port = address.rsplit(":", 1)
    try:
        with (
            socket.create_connection((host, int(port)), timeout=5) as raw,
            context.wrap_socket(raw) as tls,
        ):
            tls.sendall(HTTP2_PREFACE)
            header = tls.recv(9)
            return header[3] if len(header) >= 4 else "closed"
    except (ssl.SSLError, ConnectionError) as error:
        return type(error).__name__


@pytest.fixture(scope="module")
def foreign_identity(tmp_path_factory: pytest.TempPathFactory, mesh: LocalMesh) -> IdentityFiles:
    """`order`'s SPIFFE id, signed by another CA; the mesh root as trust anchor."""
    directory = tmp_path_factory.mktemp("foreign")
    issued = CertificateAuthority.create("impostor").issue(
        spiffe_id("shop", "order"), datetime.timedelta(hours=1)
    )
    files = IdentityFiles(directory)
    files.certificate_chain.write_bytes(issued.certificate_pem)
    files.private_key.write_bytes(issued.private_key_pem)
    files.root_certificate.write_bytes(
        mesh.identity_files(spiffe_id("shop", "order")).root_certificate.read_bytes()
    )
    return files


def test_a_plaintext_client_is_refused_by_every_workload(mesh: LocalMesh) -> None:
    for address in _sidecars(mesh):
        with grpc.insecure_channel(address) as channel:
            with pytest.raises(grpc.RpcError) as refused:
                health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=3)
            assert refused.value.code() == grpc.StatusCode.UNAVAILABLE, address


def test_a_foreign_ca_is_refused_and_a_mesh_identity_accepted_by_every_workload(
    mesh: LocalMesh, foreign_identity: IdentityFiles
) -> None:
    mesh_identity = mesh.identity_files(spiffe_id("shop", "order"))
    root = mesh_identity.root_certificate
    for address in _sidecars(mesh):
        assert _first_frame_type(address, mesh_identity, root) == SETTINGS_FRAME, address
        # TLS 1.3: the client's handshake ends first, then the server checks the client's
        # certificate and closes (or alerts) before any HTTP/2 frame
        refused = _first_frame_type(address, foreign_identity, root)
        assert refused in ("closed", "SSLError", "SSLEOFError", "ConnectionResetError"), (address, refused)


def test_through_grpc_a_foreign_certificate_reaches_no_service(
    mesh: LocalMesh, foreign_identity: IdentityFiles, tmp_path: Path
) -> None:
    impostor = Instance("impostor", "impostor", "shop", {}, "order", "127.0.0.1", ())
    bootstrap = write_bootstrap(
        tmp_path / "impostor.json", impostor, mesh.settings.control_plane, foreign_identity
    )
    plan = [
        {
            "target": target(service),
            "method": f"/shop.{service}.v1.{service.title()}Service/{method}",
            "count": 2,
        }
        for service, method in (("order", "GetOrder"), ("inventory", "GetProduct"), ("payment", "Refund"))
    ]
    for result in probe(bootstrap, plan):
        assert result["code"] == "UNAVAILABLE", result
        assert result["peer"] == ""  # no sidecar answered
    # the same calls with the genuine identity get through (and fail validation in the service)
    genuine = probe(client_bootstrap(mesh, "shop", "order"), plan[2:])
    assert {r["code"] for r in genuine} == {"INVALID_ARGUMENT"}
    assert all(r["peer"].startswith("sidecar~") for r in genuine)
