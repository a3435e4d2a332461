"""Rendered Kubernetes + Istio objects → the xDS resources istiod would serve proxyless gRPC.

`translator.translate(objects, placement)` is the entry point; each module holds one part of
istiod's rules: `listeners`, `routes` (VirtualService), `clusters` (DestinationRule), `rbac`
(AuthorizationPolicy), `tls` (PeerAuthentication and client TLS), `names`, `matching`.
"""
