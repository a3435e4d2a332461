"""Rendered Kubernetes + Istio objects → the xDS resources istiod would serve proxyless gRPC.

`translator.translate(objects, placement)` is the entry point; each module holds one part of
istiod's rules: `listeners`, `routes` (VirtualService), `clusters` (DestinationRule), `rbac`
(AuthorizationPolicy), `tls` (PeerAuthentication and client TLS), `names`, `matching`. The
objects are the one rendered-object model (shopmesh/manifests/model.py) and the policies the
one AuthorizationPolicy model (shopmesh/manifests/policy.py) that `shopmesh lint`, `authz` and
`topology` read too.
"""


class TranslationError(ValueError):
    """The objects use something the local mesh cannot enforce faithfully; names the object."""
