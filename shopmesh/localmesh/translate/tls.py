"""Mutual TLS: PeerAuthentication → the server's DownstreamTlsContext, DestinationRule → the
client's UpstreamTlsContext, both naming the certificates the bootstrap's `file_watcher`
provider reads (grpcgen.go buildCommonTLSContext: instance "default", root "ROOTCA")."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from envoy.config.core.v3 import base_pb2
from envoy.extensions.transport_sockets.tls.v3 import common_pb2, tls_pb2
from envoy.type.matcher.v3 import string_pb2
from google.protobuf import any_pb2, wrappers_pb2

from shopmesh.localmesh.translate import TranslationError
from shopmesh.localmesh.translate.names import TLS_TRANSPORT_SOCKET
from shopmesh.manifests.mesh import ROOT_NAMESPACE
from shopmesh.manifests.model import MeshObjects, selects

#: The bootstrap's certificate provider instance and its certificate names (istio-agent's).
PROVIDER_INSTANCE = "default"
IDENTITY_CERTIFICATE = "default"
ROOT_CERTIFICATE = "ROOTCA"

STRICT, PERMISSIVE, DISABLE = "STRICT", "PERMISSIVE", "DISABLE"


def mtls_mode(objects: MeshObjects, namespace: str, labels: Mapping[str, str], port: int) -> str:
    """The PeerAuthentication mode for one workload port (authn policy applier semantics).

    The most specific policy wins: workload selector (its `portLevelMtls` first), then the
    namespace-wide one, then the root namespace's mesh-wide one; UNSET inherits from the next;
    with nothing set Istio's default is PERMISSIVE.

    PERMISSIVE is then enforced as STRICT, exactly as grpcgen does for pods carrying the
    `security.istio.io/tlsMode: istio` label (every injected pod): a gRPC server cannot accept
    plaintext and mTLS on one port, and every local caller speaks mTLS (auto mTLS).
    """
    workload, namespace_wide, mesh_wide = None, None, None
    for policy in objects.of_kind("PeerAuthentication"):
        spec = policy.spec
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        policy_namespace = policy.namespace
        if selector and policy_namespace == namespace and selects(selector, labels):
            port_mode = ((spec.get("portLevelMtls") or {}).get(str(port)) or {}).get("mode")
            port_mode = port_mode or ((spec.get("portLevelMtls") or {}).get(port) or {}).get("mode")
            workload = port_mode or (spec.get("mtls") or {}).get("mode")
        elif not selector and policy_namespace == namespace:
            namespace_wide = (spec.get("mtls") or {}).get("mode")
        elif not selector and policy_namespace == ROOT_NAMESPACE:
            mesh_wide = (spec.get("mtls") or {}).get("mode")
    mode = next((m for m in (workload, namespace_wide, mesh_wide) if m and m != "UNSET"), PERMISSIVE)
    if mode not in (STRICT, PERMISSIVE, DISABLE):
        raise TranslationError(f"PeerAuthentication mode {mode!r} is unknown")
    return STRICT if mode == PERMISSIVE else mode


def _common_tls_context(subject_alt_names: Sequence[str] = ()) -> tls_pb2.CommonTlsContext:
    return tls_pb2.CommonTlsContext(
        tls_certificate_provider_instance=common_pb2.CertificateProviderPluginInstance(
            instance_name=PROVIDER_INSTANCE, certificate_name=IDENTITY_CERTIFICATE
        ),
        validation_context=common_pb2.CertificateValidationContext(
            ca_certificate_provider_instance=common_pb2.CertificateProviderPluginInstance(
                instance_name=PROVIDER_INSTANCE, certificate_name=ROOT_CERTIFICATE
            ),
            match_subject_alt_names=[string_pb2.StringMatcher(exact=san) for san in subject_alt_names],
        ),
    )


def downstream_transport_socket() -> base_pb2.TransportSocket:
    """STRICT: present the workload's certificate and require the caller's (lds.go)."""
    context = tls_pb2.DownstreamTlsContext(
        common_tls_context=_common_tls_context(),
        require_client_certificate=wrappers_pb2.BoolValue(value=True),
    )
    return _transport_socket(context)


def upstream_transport_socket(service_account_sans: Sequence[str]) -> base_pb2.TransportSocket:
    """ISTIO_MUTUAL: present our certificate; accept only the destination's service accounts
    (cds.go applyTLS: push.ServiceAccounts[hostname][port] as SAN matchers)."""
    return _transport_socket(
        tls_pb2.UpstreamTlsContext(common_tls_context=_common_tls_context(sorted(service_account_sans)))
    )


def _transport_socket(
    context: tls_pb2.DownstreamTlsContext | tls_pb2.UpstreamTlsContext,
) -> base_pb2.TransportSocket:
    packed = any_pb2.Any()
    packed.Pack(context)
    return base_pb2.TransportSocket(name=TLS_TRANSPORT_SOCKET, typed_config=packed)


def client_tls_mode(traffic_policy: Mapping[str, object] | None, where: str) -> str:
    """The DestinationRule's client TLS mode; unset means auto mTLS (ISTIO_MUTUAL here).

    Istio's sidecars use auto mTLS towards injected pods when no DestinationRule says
    otherwise; every local workload has a sidecar, so unset → ISTIO_MUTUAL. (grpcgen itself
    only honours an explicit ISTIO_MUTUAL; with STRICT servers that difference only matters
    for manifests without a DestinationRule, which would fail on a real proxyless mesh.)
    """
    tls = (traffic_policy or {}).get("tls") or {}
    mode = str(tls.get("mode", "ISTIO_MUTUAL")) if isinstance(tls, dict) else "ISTIO_MUTUAL"
    if mode not in ("ISTIO_MUTUAL", "DISABLE"):
        raise TranslationError(f"{where}: client TLS mode {mode} (own certificates) is not enforced locally")
    return mode
