"""The mesh's fixed names, and Istio's rules for them: one place for the lint, the
authorization matrix, the topology and the local mesh.

What a default Istio install gives every cluster: the root namespace (meshConfig.rootNamespace,
pkg/config/mesh DefaultMeshConfig), the trust domain and DNS domain `cluster.local`, and the
ingress gateway's identity and labels (the `istio-ingressgateway` of the default profile, which
`istioctl analyze` also adds to a file-only analysis: pkg/config/analysis/local/defaults.go).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

#: Where a policy applies mesh-wide (AuthorizationPolicy, PeerAuthentication, Sidecar, ...).
ROOT_NAMESPACE = "istio-system"
#: Istio's default trust domain, and Kubernetes' default cluster domain.
CLUSTER_DOMAIN = "cluster.local"
TRUST_DOMAIN = CLUSTER_DOMAIN
SPIFFE_PREFIX = "spiffe://"


def fqdn(host: str, namespace: str) -> str:
    """A host as Istio resolves it (pilot/pkg/model/config.go ResolveShortnameToFQDN, and the
    analyzers' util.ConvertHostToFQDN): only a name without a dot is short, and is expanded in
    the namespace of the object naming it (`order` in shop → `order.shop.svc.cluster.local`).
    Anything with a dot (`order.shop` included), wildcards and IP addresses stay as written."""
    if not host or host.startswith("*") or "." in host or _is_ip_address(host):
        return host
    return f"{host}.{namespace}.svc.{CLUSTER_DOMAIN}"


def _is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def principal(namespace: str, service_account: str) -> str:
    """The identity of a ServiceAccount as AuthorizationPolicies name it (no `spiffe://`)."""
    return f"{TRUST_DOMAIN}/ns/{namespace}/sa/{service_account}"


def principal_namespace(value: str) -> str | None:
    """The namespace inside a principal `<trust domain>/ns/<namespace>/sa/<account>`."""
    parts = value.split("/")
    return parts[2] if len(parts) >= 5 and parts[1] == "ns" and parts[3] == "sa" else None


@dataclass(frozen=True)
class Identity:
    """A workload identity: its namespace and ServiceAccount, and the pod labels it runs with."""

    namespace: str
    service_account: str
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def principal(self) -> str:
        return principal(self.namespace, self.service_account)

    @property
    def spiffe_id(self) -> str:
        return SPIFFE_PREFIX + self.principal


#: The ingress gateway a default Istio install runs (not in our manifests: Istio installs it).
INGRESS_GATEWAY = Identity(
    namespace=ROOT_NAMESPACE,
    service_account="istio-ingressgateway-service-account",
    labels=MappingProxyType({"istio": "ingressgateway", "app": "istio-ingressgateway"}),
)
#: Its Service: what the gateway's listener is named after.
INGRESS_GATEWAY_HOST = fqdn("istio-ingressgateway", ROOT_NAMESPACE)
