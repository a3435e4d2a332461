"""The sidecar as a proxy: any method, as raw bytes, with metadata, deadline, status and status
details passed through unchanged and `x-forwarded-client-cert` added — checked against an
echo service that reports what it received (the real services cannot). The echo serves
reflection (v1alpha only), so the sidecar relays its unary and server-streaming methods by
their shapes; a method it does not describe goes the generic stream way."""

from __future__ import annotations

import base64
import hashlib
import sys
import time
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from google.protobuf import any_pb2, descriptor_pool
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha import reflection
from grpc_status import rpc_status

from localmesh.meshcalls import probe
from shopmesh.launch.ports import free_port
from shopmesh.launch.processes import ManagedProcess
from shopmesh.localmesh.bootstrap import write_bootstrap
from shopmesh.localmesh.ca import IdentityFiles, spiffe_id
from shopmesh.localmesh.placement import Instance, free_subnet, place
from shopmesh.localmesh.proxybench.peers import bytes_service_file
from shopmesh.localmesh.proxybench.rig import echo_manifests
from shopmesh.localmesh.state import MeshState
from shopmesh.manifests.model import MeshObjects

ECHO_PORT = 50061
#: Short enough that certificates rotate during these tests (renewed at half life, re-read by
#: gRPC every 5 s: bootstrap.CERTIFICATE_REFRESH), long enough to outlive one refresh.
CERTIFICATE_LIFETIME = 12
MANIFESTS = echo_manifests(["cluster.local/ns/shop/sa/order"], ["/test.Echo/*"], port=ECHO_PORT)


def _identity(data: bytes) -> bytes:
    return data


class Echo(grpc.GenericRpcHandler):
    """Answers with what it saw: the request, the metadata it got and its remaining deadline."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        seen = dict(details.invocation_metadata)

        def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
            context.set_trailing_metadata(
                (
                    ("x-seen-xfcc", str(seen.get("x-forwarded-client-cert", ""))),
                    ("x-seen-custom", str(seen.get("x-custom", ""))),
                    ("x-seen-deadline", f"{context.time_remaining():.3f}"),
                )
            )
            return request

        def fail(request: bytes, context: grpc.ServicerContext) -> bytes:
            info = any_pb2.Any()
            info.Pack(error_details_pb2.ErrorInfo(reason="ECHO_REFUSED", domain="echo.test"))
            context.abort_with_status(
                rpc_status.to_status(status_pb2.Status(code=9, message="refused by echo", details=[info]))
            )
            return b""

        def stream(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            yield from (request for _ in range(3))

        if details.method == "/test.Echo/Unary":
            return grpc.unary_unary_rpc_method_handler(unary, _identity, _identity)
        if details.method == "/test.Echo/Fail":
            return grpc.unary_unary_rpc_method_handler(fail, _identity, _identity)
        if details.method == "/test.Echo/Stream":
            return grpc.unary_stream_rpc_method_handler(stream, _identity, _identity)
        return None


#: What the echo's reflection describes (raw bytes: no .proto is compiled for it); `Nope` is
#: not described.
ECHO_METHODS = {"Unary": (False, False), "Fail": (False, False), "Stream": (False, True)}


@dataclass
class EchoPod:
    sidecar: ManagedProcess
    client_bootstrap: Path
    client_identity: IdentityFiles
    target: str


@pytest.fixture(scope="module")
def echo_pod(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EchoPod]:
    root = tmp_path_factory.mktemp("echo")
    manifests = root / "manifests.yaml"
    manifests.write_text(MANIFESTS)
    state = MeshState(root / "state")
    (root / "state").mkdir()
    placement = place(MeshObjects.from_yaml(MANIFESTS), subnet=free_subnet())
    placement.save(state.placement_file)
    (pod,) = placement.instances
    control_plane = f"127.0.0.1:{free_port()}"
    order = spiffe_id("shop", "order")
    processes = []
    app = grpc.server(futures.ThreadPoolExecutor(max_workers=8), handlers=[Echo()])
    descriptors = descriptor_pool.DescriptorPool()
    descriptors.Add(bytes_service_file("test", "Echo", ECHO_METHODS))
    reflection.enable_server_reflection(("test.Echo", reflection.SERVICE_NAME), app, pool=descriptors)
    app_port = app.add_insecure_port("127.0.0.1:0")
    app.start()
    try:
        cp = ManagedProcess(
            "controlplane",
            [sys.executable, "-m", "shopmesh.localmesh.controlplane", "--state", str(state.root),
             "--listen", control_plane, "--source", str(manifests), "--identity", order,
             "--certificate-lifetime", str(CERTIFICATE_LIFETIME)],
            {"PATH": "/usr/bin:/bin"}, state.log_file("controlplane"), root,
        ).start()  # fmt: skip
        processes.append(cp)
        cp.wait_for_line("READY", 60)
        identities = state.identities_directory
        pod_identity = IdentityFiles(identities / pod.spiffe_id.removeprefix("spiffe://"))
        bootstrap = write_bootstrap(state.bootstrap_file(pod.name), pod, control_plane, pod_identity)
        sidecar = ManagedProcess(
            "sidecar",
            [sys.executable, "-m", "shopmesh.localmesh.sidecar", "--listen", f"{pod.address}:{ECHO_PORT}",
             "--app", f"127.0.0.1:{app_port}", "--identity", pod.spiffe_id, "--node-id", pod.node_id],
            {"PATH": "/usr/bin:/bin", "GRPC_XDS_BOOTSTRAP": str(bootstrap)}, state.log_file("sidecar"), root,
        ).start()  # fmt: skip
        processes.append(sidecar)
        sidecar.wait_for_line("STARTED", 30)
        deadline = time.monotonic() + 30
        while "knows" not in sidecar.logs():  # it learned the echo's methods from its reflection
            assert time.monotonic() < deadline, sidecar.logs()
            time.sleep(0.05)
        client_identity = IdentityFiles(identities / order.removeprefix("spiffe://"))
        client = Instance("client", "client", "shop", {}, "order", "127.0.0.1", ())
        client_bootstrap = write_bootstrap(
            state.bootstrap_file("client"), client, control_plane, client_identity
        )
        target = f"xds:///echo.shop.svc.cluster.local:{ECHO_PORT}"
        yield EchoPod(sidecar, client_bootstrap, client_identity, target)
    finally:
        for process in reversed(processes):
            process.stop()
        app.stop(0)


def _call(pod: EchoPod, method: str, **options: object) -> dict:
    request = base64.b64encode(b"\x00raw bytes\xff").decode()
    (result,) = probe(pod.client_bootstrap, [{"target": pod.target, "method": method, "request_b64": request,
                                               "timeout": 5, **options}])  # fmt: skip
    return result


def test_a_unary_call_arrives_with_its_metadata_deadline_and_the_callers_certificate(
    echo_pod: EchoPod,
) -> None:
    result = _call(echo_pod, "/test.Echo/Unary", metadata=[["x-custom", "hello"]])
    assert result["code"] == "OK", result
    assert base64.b64decode(result["response_b64"]) == b"\x00raw bytes\xff"  # bytes untouched
    trailers = result["trailers"]
    assert trailers["x-seen-custom"] == "hello"
    # the client's 5 s deadline reached the service (less the time spent on the way)
    assert 2.0 < float(trailers["x-seen-deadline"]) <= 5.0
    certificate = x509.load_pem_x509_certificate(echo_pod.client_identity.certificate_chain.read_bytes())
    digest = hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()
    assert trailers["x-seen-xfcc"] == (
        f'By=spiffe://cluster.local/ns/shop/sa/echo;Hash={digest};Subject="";'
        "URI=spiffe://cluster.local/ns/shop/sa/order"
    )


def test_a_callers_own_xfcc_is_kept_and_ours_appended(echo_pod: EchoPod) -> None:
    result = _call(echo_pod, "/test.Echo/Unary", metadata=[["x-forwarded-client-cert", "By=forged"]])
    forwarded = result["trailers"]["x-seen-xfcc"].split(",")
    assert forwarded[0] == "By=forged"
    assert forwarded[-1].endswith(";URI=spiffe://cluster.local/ns/shop/sa/order")  # the one to trust


def test_status_message_and_details_come_back_unchanged(echo_pod: EchoPod) -> None:
    result = _call(echo_pod, "/test.Echo/Fail")
    assert (result["code"], result["details"]) == ("FAILED_PRECONDITION", "refused by echo")
    status = status_pb2.Status.FromString(base64.b64decode(result["trailers"]["grpc-status-details-bin"]))
    info = error_details_pb2.ErrorInfo()
    assert status.details[0].Unpack(info)
    assert (status.code, info.reason, info.domain) == (9, "ECHO_REFUSED", "echo.test")


def test_a_failure_comes_back_after_response_headers_and_the_sidecar_lives_on(echo_pod: EchoPod) -> None:
    """The echo's error is Trailers-Only; grpc-core's xDS server would abort the process if the
    sidecar answered so (docs/local-mesh.md): it sends its headers first."""
    for method in ("/test.Echo/Fail", "/test.Echo/Nope"):  # the unary relay and the stream relay
        result = _call(echo_pod, method)
        assert result["code"] in ("FAILED_PRECONDITION", "UNIMPLEMENTED"), result
        assert result["headers"]["x-envoy-peer-metadata-id"].startswith("sidecar~"), result
    assert echo_pod.sidecar.running(), echo_pod.sidecar.logs()


def test_a_server_stream_is_forwarded_message_by_message(echo_pod: EchoPod) -> None:
    result = _call(echo_pod, "/test.Echo/Stream", streaming=True)
    assert (result["code"], result["messages"]) == ("OK", 3)


def test_unknown_methods_reach_the_service_and_its_answer_comes_back(echo_pod: EchoPod) -> None:
    result = _call(echo_pod, "/test.Echo/Nope")
    assert result["code"] == "UNIMPLEMENTED"
    assert result["peer"].startswith("sidecar~")


def test_rotated_certificates_are_picked_up_without_a_failed_call(echo_pod: EchoPod) -> None:
    """One long-lived client process: gRPC's file watcher re-reads the renewed certificate (new
    connections present it: the XFCC hash the service sees changes) and no call fails across
    the rotation, on the client's side or the sidecar's (whose certificate rotates too)."""
    results = probe(
        echo_pod.client_bootstrap,
        [
            {
                "target": echo_pod.target,
                "method": "/test.Echo/Unary",
                "count": 1000,
                "duration": CERTIFICATE_LIFETIME + 3,  # renewed at half life, re-read within 5 s
                "pause": 0.5,
                "fresh_channel": True,  # certificates are presented at each handshake
            }
        ],
    )
    assert [r for r in results if r["code"] != "OK"] == []
    hashes = list(dict.fromkeys(r["trailers"]["x-seen-xfcc"].split(";")[1] for r in results))
    assert len(hashes) >= 2, hashes  # the client presented a renewed certificate
