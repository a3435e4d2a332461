"""What a proxy saw of one relayed call: the observation point for mesh telemetry.

Both proxies hand every call they relay, once it has ended, to an optional `CallObserver` —
what Envoy's stats and access-log filters see: the method, who called (the verified peer
identity), the status the caller got, message and byte counts each way, how long it took and
which pod answered. Istio's standard metrics (`istio_requests_total`, ...) are a function of
these plus the workloads' metadata, so recording them needs no change to the relay.

The observer runs on the thread that relayed the call, after the upstream answered and just
before the caller gets the status: it must be quick and must not block (a counter increment,
a histogram observation). An observer that raises is logged and the call is unaffected.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import grpc

Metadata = tuple[tuple[str, str | bytes], ...]


@dataclass(frozen=True, slots=True)
class VerifiedPeer:
    """A caller as mTLS proved it: what Envoy's inbound listener knows of the connection."""

    #: The SPIFFE id, the URI SAN of the client certificate (`spiffe://cluster.local/ns/shop/sa/order`).
    identity: str
    #: SHA-256 of the DER client certificate, hex (XFCC's `Hash`). Each pod has a certificate
    #: of its own, so this names the pod, where the identity names only its ServiceAccount.
    certificate: str


@dataclass(frozen=True, slots=True)
class RelayedCall:
    #: The HTTP/2 `:path`, e.g. `/shop.order.v1.OrderService/CreateOrder`.
    method: str
    #: The caller's verified certificate, or None when the caller presented none (the
    #: ingress's plaintext side).
    caller: VerifiedPeer | None
    #: The request headers as the caller sent them (the proxy's own additions excluded).
    request_headers: Metadata
    #: The status the caller got: the upstream's, or the proxy's own when no upstream answered.
    code: grpc.StatusCode
    request_messages: int
    request_bytes: int
    response_messages: int
    response_bytes: int
    #: Seconds from the proxy's handler starting to the status being handed back.
    duration: float
    #: The upstream proxy's `x-envoy-peer-metadata-id` (Istio's metadata exchange: which pod
    #: served), from its response headers or trailers; "" when no upstream proxy answered.
    upstream_peer: str


class CallObserver(Protocol):
    def observe(self, call: RelayedCall) -> None:
        """One relayed call, once it has ended. Must not block; runs on the relaying thread."""
