"""The local CA: SPIFFE-only workload certificates that chain to the root, renewed at half life."""

from __future__ import annotations

import datetime
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature

from shopmesh.localmesh.ca import CertificateAuthority, IdentityIssuer, spiffe_id

ORDER = spiffe_id("shop", "order")


def test_workload_certificate_names_only_the_spiffe_identity_and_chains_to_the_root() -> None:
    authority = CertificateAuthority.create()
    issued = authority.issue(ORDER, datetime.timedelta(minutes=10))
    certificate = x509.load_pem_x509_certificate(issued.certificate_pem)

    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert names.get_values_for_type(x509.UniformResourceIdentifier) == [
        "spiffe://cluster.local/ns/shop/sa/order"
    ]
    assert names.get_values_for_type(x509.DNSName) == []
    certificate.verify_directly_issued_by(authority.certificate)
    assert not certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    lifetime = certificate.not_valid_after_utc - certificate.not_valid_before_utc
    assert datetime.timedelta(minutes=10) <= lifetime <= datetime.timedelta(minutes=11)


def test_a_foreign_authority_does_not_vouch_for_mesh_certificates() -> None:
    mesh, foreign = CertificateAuthority.create(), CertificateAuthority.create()
    impostor = x509.load_pem_x509_certificate(
        foreign.issue(ORDER, datetime.timedelta(minutes=1)).certificate_pem
    )
    with pytest.raises((ValueError, InvalidSignature)):
        impostor.verify_directly_issued_by(mesh.certificate)


def test_the_root_survives_a_restart(tmp_path: Path) -> None:
    first = CertificateAuthority.load_or_create(tmp_path)
    again = CertificateAuthority.load_or_create(tmp_path)
    assert first.root_pem == again.root_pem


def test_certificates_are_rotated_at_half_life(tmp_path: Path) -> None:
    issuer = IdentityIssuer(CertificateAuthority.create(), tmp_path, datetime.timedelta(seconds=2))
    files = issuer.ensure([ORDER])[ORDER]
    first = files.certificate_chain.read_bytes()
    assert files.private_key.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    issuer.start_rotation(check_every=0.1)
    try:
        deadline = time.monotonic() + 5
        while files.certificate_chain.read_bytes() == first and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        issuer.stop()
    renewed = x509.load_pem_x509_certificate(files.certificate_chain.read_bytes())
    previous = x509.load_pem_x509_certificate(first)
    assert renewed.serial_number != previous.serial_number
    assert time.time() < previous.not_valid_after_utc.timestamp() + 1  # renewed before it expired
