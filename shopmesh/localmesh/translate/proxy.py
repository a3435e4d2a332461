"""Who asks for a resource: a node's namespace and pod labels, from its bootstrap's metadata
(NAMESPACE, LABELS), as istiod's model.Proxy carries them.

istiod generates each proxy's configuration for it. Two parts of a VirtualService depend on
who asks (pilot/pkg/networking/core/route/route.go sourceMatchHTTP): a match with
`sourceLabels` (and `sourceNamespace`) applies only in the proxies of matching workloads, and
a match naming `gateways` only in those gateways' proxies. A route none of whose matches apply
is left out of that proxy's routes.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from shopmesh.manifests.model import selects

#: The match fields whose meaning depends on the proxy.
SOURCE_FIELDS = frozenset({"sourceLabels", "sourceNamespace", "gateways"})


@dataclass(frozen=True)
class Proxy:
    namespace: str = ""
    labels: tuple[tuple[str, str], ...] = ()

    @classmethod
    def of(cls, namespace: str, labels: Mapping[str, str]) -> Proxy:
        return cls(namespace, tuple(sorted((str(k), str(v)) for k, v in labels.items())))

    @property
    def label_map(self) -> dict[str, str]:
        return dict(self.labels)


#: A proxy nobody in particular runs: no labels, no namespace (a test client, a dump).
ANONYMOUS = Proxy()


def gateway_name(name: str, namespace: str) -> str:
    """`<namespace>/<name>` for a Gateway named in a VirtualService of `namespace`; `mesh` as is."""
    return name if "/" in name or name == "mesh" else f"{namespace}/{name}"


def source_matches(match: Mapping[str, Any], proxy: Proxy, gateways: Collection[str], namespace: str) -> bool:
    """route.go sourceMatchHTTP: a match naming gateways applies in those gateways' proxies
    (`mesh`: the sidecars); otherwise its sourceLabels must all be the proxy's, and its
    sourceNamespace (when set) the proxy's namespace."""
    named = [gateway_name(str(g), namespace) for g in match.get("gateways") or []]
    if named:
        return any(g in gateways for g in named)
    if not selects({str(k): str(v) for k, v in (match.get("sourceLabels") or {}).items()}, proxy.label_map):
        return False
    return not match.get("sourceNamespace") or match["sourceNamespace"] == proxy.namespace


def depends_on_proxy(virtual_service_http: Any) -> bool:
    """Whether any match of these HTTP routes applies only to some proxies."""
    return any(
        SOURCE_FIELDS & set(match)
        for http in virtual_service_http or []
        for match in (http.get("match") or [])
        if isinstance(match, Mapping)
    )
