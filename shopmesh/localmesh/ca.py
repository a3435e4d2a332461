"""A local certificate authority: short-lived SPIFFE certificates, one per pod.

It plays istiod's CA and the istio-agent together. istiod signs a workload certificate whose
only subject alternative name is the URI `spiffe://<trust domain>/ns/<namespace>/sa/<account>`
(no DNS names, no meaningful subject), valid for 24 h by default and renewed by the agent at
about half its life; the agent writes it where gRPC's `file_watcher` certificate provider reads
it (the proxyless bootstrap's `certificate_providers`). We do the same with a shorter life, so
rotation is something the local mesh actually exercises, not a promise.

Every istio-agent generates its own key and asks for its own certificate: two pods of one
ServiceAccount hold two certificates with the same SPIFFE id. So does every pod here
(`ensure_pods`), and the CA records which pod each certificate went to (`record`), before the
pod can present it: what lets a destination proxy tell order v1 from order v2 by the verified
certificate alone (shopmesh.localmesh.peers). Identities that belong to no pod (an operator,
a test client) get one certificate per ServiceAccount (`ensure`).
"""

from __future__ import annotations

import datetime
import hashlib
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from shopmesh.manifests.mesh import TRUST_DOMAIN

#: File names inside an identity's directory: the ones the istio-agent writes for proxyless
#: gRPC (`./etc/certs/{cert-chain,key,root-cert}.pem`), which the bootstrap points at.
CERT_CHAIN_FILE = "cert-chain.pem"
KEY_FILE = "key.pem"
ROOT_CERT_FILE = "root-cert.pem"


def spiffe_id(namespace: str, service_account: str, trust_domain: str = TRUST_DOMAIN) -> str:
    """The identity Istio gives a ServiceAccount (`spiffe://cluster.local/ns/shop/sa/order`)."""
    return f"spiffe://{trust_domain}/ns/{namespace}/sa/{service_account}"


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _key_usage(**granted: bool) -> x509.KeyUsage:
    """A KeyUsage with only the `granted` usages set."""
    usages = ("digital_signature", "content_commitment", "key_encipherment", "data_encipherment",
              "key_agreement", "key_cert_sign", "crl_sign", "encipher_only", "decipher_only")  # fmt: skip
    return x509.KeyUsage(**{usage: granted.get(usage, False) for usage in usages})


def _pem(certificate: x509.Certificate) -> bytes:
    return certificate.public_bytes(serialization.Encoding.PEM)


def certificate_sha256(certificate: x509.Certificate) -> str:
    """The certificate's SHA-256 over its DER bytes, hex: XFCC's `Hash`, and how the CA's record
    and a proxy name one certificate."""
    return hashlib.sha256(certificate.public_bytes(serialization.Encoding.DER)).hexdigest()


@dataclass(frozen=True)
class IssuedCertificate:
    spiffe_id: str
    certificate_pem: bytes
    private_key_pem: bytes
    issued_at: datetime.datetime
    not_after: datetime.datetime
    sha256: str  # certificate_sha256 of the certificate

    def due_for_renewal(self, now: datetime.datetime) -> bool:
        """Renew at half life, as the istio-agent does (SECRET_GRACE_PERIOD_RATIO 0.5)."""
        return now >= self.issued_at + (self.not_after - self.issued_at) / 2


class CertificateAuthority:
    """A self-signed root that signs workload certificates (ECDSA P-256, like istiod's default)."""

    def __init__(self, private_key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self._private_key = private_key
        self.certificate = certificate

    @classmethod
    def create(
        cls, organization: str = "shopmesh local mesh", lifetime_days: int = 30
    ) -> CertificateAuthority:
        key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} root CA"),
            ]
        )
        now = _now()
        certificate = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=lifetime_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                _key_usage(digital_signature=True, key_cert_sign=True, crl_sign=True), critical=True
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, certificate)

    @classmethod
    def load_or_create(cls, directory: Path) -> CertificateAuthority:
        """The root kept in `directory` (so restarts keep trusting old certificates), or a new one."""
        cert_path, key_path = directory / "ca-cert.pem", directory / "ca-key.pem"
        if cert_path.exists() and key_path.exists():
            certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
            if isinstance(key, ec.EllipticCurvePrivateKey) and certificate.not_valid_after_utc > _now():
                return cls(key, certificate)
        authority = cls.create()
        directory.mkdir(parents=True, exist_ok=True)
        _write_atomically(key_path, authority.private_key_pem(), mode=0o600)
        _write_atomically(cert_path, authority.root_pem)
        return authority

    @property
    def root_pem(self) -> bytes:
        return _pem(self.certificate)

    def private_key_pem(self) -> bytes:
        return self._private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def issue(self, spiffe_uri: str, lifetime: datetime.timedelta) -> IssuedCertificate:
        """A workload certificate whose only identity is `spiffe_uri` (URI SAN), as istiod signs."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = _now()
        # Backdated a little, as istiod does, so a clock a few seconds behind still accepts it.
        not_before = now - datetime.timedelta(seconds=30)
        not_after = now + lifetime
        certificate = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([]))  # istiod leaves the subject empty; identity is the SAN
            .issuer_name(self.certificate.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(not_before)
            .not_valid_after(not_after)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(_key_usage(digital_signature=True, key_encipherment=True), critical=True)
            .add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                critical=False,
            )
            # Critical because the subject is empty (RFC 5280 §4.2.1.6), as in Istio's certificates.
            .add_extension(
                x509.SubjectAlternativeName([x509.UniformResourceIdentifier(spiffe_uri)]), critical=True
            )
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self._private_key.public_key()),
                critical=False,
            )
            .sign(self._private_key, hashes.SHA256())
        )
        return IssuedCertificate(
            spiffe_id=spiffe_uri,
            certificate_pem=_pem(certificate),
            private_key_pem=key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            ),
            issued_at=now,
            not_after=not_after,
            sha256=certificate_sha256(certificate),
        )


def _write_atomically(path: Path, content: bytes, mode: int = 0o644) -> None:
    """Readers (gRPC's file watcher) see the old file or the new one, never half of one."""
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(content)
    os.chmod(temporary, mode)
    os.replace(temporary, path)


@dataclass(frozen=True)
class PodIdentity:
    """A pod that holds a certificate of its own (as each pod's istio-agent does)."""

    namespace: str
    name: str
    spiffe_id: str
    node_id: str  # the pod's proxy id, by which the CA's record names it


#: Told of each certificate issued to a pod (its node id, the certificate) before the pod's
#: files change: the CA's record of which pod holds which certificate.
CertificateRecord = Callable[[str, IssuedCertificate], None]


@dataclass(frozen=True)
class IdentityFiles:
    """Where one identity's credentials live: what a bootstrap's `file_watcher` points at."""

    directory: Path

    @property
    def certificate_chain(self) -> Path:
        return self.directory / CERT_CHAIN_FILE

    @property
    def private_key(self) -> Path:
        return self.directory / KEY_FILE

    @property
    def root_certificate(self) -> Path:
        return self.directory / ROOT_CERT_FILE


def identity_files(root: Path, spiffe_uri: str) -> IdentityFiles:
    """A ServiceAccount's shared certificate under `root`:
    spiffe://cluster.local/ns/shop/sa/order -> <root>/cluster.local/ns/shop/sa/order."""
    return IdentityFiles(root / spiffe_uri.removeprefix("spiffe://"))


def pod_identity_files(root: Path, namespace: str, pod: str) -> IdentityFiles:
    """A pod's own certificate under `root`: <root>/pods/<namespace>/<pod>."""
    return IdentityFiles(root / "pods" / namespace / pod)


@dataclass(frozen=True)
class _Holder:
    """Who holds the certificate kept in `files`: a ServiceAccount (pod None) or one pod."""

    files: IdentityFiles
    spiffe_id: str
    pod: PodIdentity | None = None


class IdentityIssuer:
    """Keeps every identity's certificate files fresh: issues them, then renews at half life.

    The key is written before the certificate: gRPC's file watcher rejects a key that does not
    match the certificate and keeps serving the previous pair until the next refresh, so a
    reader between the two writes never ends up with a broken identity. A pod's certificate is
    recorded (`record`) before either is written.
    """

    def __init__(
        self,
        authority: CertificateAuthority,
        directory: Path,
        lifetime: datetime.timedelta,
        record: CertificateRecord | None = None,
    ) -> None:
        self._authority = authority
        self._directory = directory
        self._lifetime = lifetime
        self._record = record
        self._holders: dict[Path, _Holder] = {}
        self._issued: dict[Path, IssuedCertificate] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def files_for(self, spiffe_uri: str) -> IdentityFiles:
        return identity_files(self._directory, spiffe_uri)

    def ensure(self, spiffe_uris: Iterable[str]) -> dict[str, IdentityFiles]:
        """Issue (or renew) the shared certificates of these identities now; returns their files."""
        holders = [_Holder(self.files_for(uri), uri) for uri in spiffe_uris]
        return {holder.spiffe_id: self._refresh(holder, force=True) for holder in holders}

    def ensure_pods(self, pods: Iterable[PodIdentity]) -> dict[str, IdentityFiles]:
        """Issue (or renew) each pod's own certificate now; returns their files by node id."""
        holders = [
            _Holder(pod_identity_files(self._directory, pod.namespace, pod.name), pod.spiffe_id, pod)
            for pod in pods
        ]
        return {holder.pod.node_id: self._refresh(holder, force=True) for holder in holders if holder.pod}

    def issued(self, spiffe_uri: str) -> IssuedCertificate:
        """The current shared certificate of an identity."""
        with self._lock:
            return self._issued[self.files_for(spiffe_uri).directory]

    def _refresh(self, holder: _Holder, *, force: bool = False) -> IdentityFiles:
        files = holder.files
        with self._lock:
            current = self._issued.get(files.directory)
            if not force and current is not None and not current.due_for_renewal(_now()):
                return files
            issued = self._authority.issue(holder.spiffe_id, self._lifetime)
            if holder.pod is not None and self._record is not None:
                self._record(holder.pod.node_id, issued)  # known before anyone can present it
            files.directory.mkdir(parents=True, exist_ok=True)
            _write_atomically(files.root_certificate, self._authority.root_pem)
            _write_atomically(files.private_key, issued.private_key_pem, mode=0o600)
            _write_atomically(files.certificate_chain, issued.certificate_pem)
            self._holders[files.directory] = holder
            self._issued[files.directory] = issued
        return files

    def rotate_all(self) -> int:
        """Renew every certificate now, whatever its age (an operator's rotation); how many."""
        with self._lock:
            holders = list(self._holders.values())
        for holder in holders:
            self._refresh(holder, force=True)
        return len(holders)

    def start_rotation(self, check_every: float = 1.0) -> None:
        """Renew each certificate at half its life, in a background thread, until `stop()`."""

        def rotate() -> None:
            while not self._stop.wait(check_every):
                with self._lock:
                    holders = list(self._holders.values())
                for holder in holders:
                    self._refresh(holder)

        self._thread = threading.Thread(target=rotate, name="identity-rotation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
