"""Changing a running local mesh: objects applied on top of its sources (`shopmesh mesh apply`
and `delete`, the directory the control plane watches) and every certificate renewed at once
(`shopmesh mesh rotate-certificates`). The control plane's side runs here as it runs in the
control plane; a real mesh takes these through chaos/local (tests/chaos/test_local_experiments.py)."""

from __future__ import annotations

import asyncio
import datetime
import threading
from pathlib import Path

import pytest
from cryptography import x509

from shopmesh.cli import main as shopmesh
from shopmesh.localmesh.applied import AppliedObjects, ApplyError, overlay, parse
from shopmesh.localmesh.ca import CertificateAuthority, IdentityIssuer, PodIdentity, spiffe_id
from shopmesh.localmesh.rotation import request_rotation, serve_rotation_requests
from shopmesh.manifests.model import MeshObjects

FAULTY_PAYMENT = """
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: payment}
spec:
  hosts: [payment.shop.svc.cluster.local]
  http:
    - fault: {abort: {grpcStatus: UNAVAILABLE, percentage: {value: 5}}}
      route: [{destination: {host: payment}}]
"""


def _virtual_service(name: str, namespace: str, marker: str) -> dict[str, object]:
    return {
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"hosts": [marker]},
    }


def test_an_applied_object_replaces_the_sources_one_of_its_kind_namespace_and_name() -> None:
    sources = MeshObjects(
        [_virtual_service("payment", "shop", "from-sources"), _virtual_service("order", "shop", "order")]
    )
    applied = parse(FAULTY_PAYMENT, "shop", "faults.yaml")
    merged = overlay(sources, applied)
    payments = [r for r in merged.of_kind("VirtualService") if r.name == "payment"]
    assert len(payments) == 1
    assert "fault" in payments[0]["spec"]["http"][0]
    assert [r.name for r in merged.of_kind("VirtualService")].count("order") == 1
    # in another namespace it is another object: added, not replacing
    elsewhere = overlay(sources, parse(FAULTY_PAYMENT, "staging", "faults.yaml"))
    assert len([r for r in elsewhere.of_kind("VirtualService") if r.name == "payment"]) == 2


@pytest.mark.parametrize(
    ("text", "complaint"),
    [
        ("a: [", "not YAML"),
        ("", "no object"),
        ("- 1\n- 2", "not a Kubernetes object"),
        ("kind: VirtualService\nmetadata: {name: x}", "needs apiVersion and kind"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: Bad_Name}", "not a valid object name"),
        ("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: ../etc}", "not a valid namespace"),
    ],
)
def test_what_is_not_an_object_to_apply_is_refused_naming_the_document(text: str, complaint: str) -> None:
    with pytest.raises(ApplyError, match=complaint):
        parse(text, "shop", "given.yaml")


def test_apply_and_delete_write_one_file_per_object_and_wait_for_the_control_plane(tmp_path: Path) -> None:
    applied = AppliedObjects(tmp_path / "applied")
    objects = parse(FAULTY_PAYMENT, "shop", "faults.yaml")
    assert applied.apply(objects) == ["virtualservice.shop.payment.yaml"]
    assert applied.load() == objects
    with pytest.raises(TimeoutError, match="control plane"):
        applied.wait_served(timeout=0.2)  # nothing acted on it
    applied.write_status(applied.fingerprint(), "payment: abort percentage 500 is not between 0 and 100")
    assert "percentage" in str(applied.wait_served(timeout=1))
    applied.write_status(applied.fingerprint(), None)
    assert applied.wait_served(timeout=1) is None
    assert applied.delete(objects) == (["virtualservice.shop.payment.yaml"], [])
    assert applied.delete(objects) == ([], ["VirtualService/shop/payment"])
    assert applied.load() == []


def test_the_commands_say_in_one_line_when_there_is_no_mesh_or_no_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert shopmesh(["mesh", "apply", "--state", str(tmp_path), "-f", str(tmp_path / "x.yaml")]) == 1
    assert "no local mesh" in capsys.readouterr().err
    (tmp_path / "placement.json").write_text("{}")
    assert shopmesh(["mesh", "apply", "--state", str(tmp_path), "-f", str(tmp_path / "x.yaml")]) == 1
    assert "no such file" in capsys.readouterr().err
    assert shopmesh(["mesh", "rotate-certificates", "--state", str(tmp_path / "none")]) == 1
    assert "no local mesh CA" in capsys.readouterr().err


def test_a_rotation_request_renews_every_certificate_at_once(tmp_path: Path) -> None:
    issuer = IdentityIssuer(CertificateAuthority.create(), tmp_path / "ids", datetime.timedelta(hours=1))
    issuer.ensure([spiffe_id("shop", "operator")])
    files = issuer.ensure_pods(
        [PodIdentity("shop", f"payment-{n}", spiffe_id("shop", "payment"), f"node-{n}") for n in (0, 1)]
    )
    before = {
        node: x509.load_pem_x509_certificate(f.certificate_chain.read_bytes()) for node, f in files.items()
    }
    request = tmp_path / "ca" / "rotate"
    loop = asyncio.new_event_loop()
    serving = loop.create_task(serve_rotation_requests(request, issuer.rotate_all))
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        assert request_rotation(request, timeout=10) == 3  # two pods and one shared identity
        assert request_rotation(request, timeout=10) == 3  # each request is answered once
    finally:
        loop.call_soon_threadsafe(serving.cancel)
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()
    for node, chain in files.items():
        after = x509.load_pem_x509_certificate(chain.certificate_chain.read_bytes())
        assert after.serial_number != before[node].serial_number
    with pytest.raises(TimeoutError, match="no control plane"):
        request_rotation(tmp_path / "elsewhere" / "rotate", timeout=0.3)
