"""An Aggregated Discovery Service, state of the world, xDS v3: istiod's serving half.

Every stream keeps what its client subscribed to, per type, and what it was last sent; a
response goes out when a subscription changes or when a new snapshot changes a subscribed
resource. Each `xds:///` target of a client opens its own stream, so nothing is shared
between streams but the snapshot.

Each stream is answered for its node, as istiod generates per proxy: the node's namespace and
pod labels (its bootstrap's NAMESPACE and LABELS) decide which outbound listeners it sees
(its Sidecar's egress) and, for a VirtualService with source-dependent matches, which routes
it gets (translator.Snapshot).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import grpc
from envoy.service.discovery.v3 import ads_pb2_grpc, discovery_pb2
from google.protobuf import any_pb2

from shopmesh.localmesh.translate.names import CLUSTER, LISTENER, TYPE_URLS
from shopmesh.localmesh.translate.proxy import ANONYMOUS, Proxy
from shopmesh.localmesh.translate.translator import Snapshot

log = logging.getLogger("shopmesh.localmesh.ads")

#: Types whose every response must hold all subscribed resources (a missing one is deleted).
FULL_STATE_TYPES = (LISTENER, CLUSTER)


@dataclass(eq=False)  # identity-hashed: kept in a set of live streams
class _Stream:
    node_id: str = ""
    proxy: Proxy = ANONYMOUS
    subscriptions: dict[str, set[str]] = field(default_factory=dict)
    changed_subscriptions: set[str] = field(default_factory=set)
    sent: dict[str, dict[str, str]] = field(default_factory=dict)
    nonces: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    closed: bool = False
    wake: asyncio.Event = field(default_factory=asyncio.Event)

    def on_request(self, request: discovery_pb2.DiscoveryRequest) -> None:
        if request.node.id:
            # The bootstrap's node metadata says who asks (istiod reads the same fields).
            self.node_id = request.node.id
            metadata = request.node.metadata.fields
            namespace = metadata["NAMESPACE"].string_value if "NAMESPACE" in metadata else ""
            labels = metadata["LABELS"].struct_value.fields if "LABELS" in metadata else {}
            self.proxy = Proxy.of(namespace, {k: v.string_value for k, v in labels.items()})
        if request.type_url not in TYPE_URLS:
            log.warning("%s asked for unknown type %s", self.node_id, request.type_url)
            return
        if request.HasField("error_detail"):
            # A NACK: the client refused what we sent; it keeps its previous config.
            log.error(
                "NACK from %s for %s (version %s): %s",
                self.node_id,
                request.type_url.rsplit(".", 1)[-1],
                request.version_info,
                request.error_detail.message,
            )
        names = set(request.resource_names)
        if self.subscriptions.get(request.type_url) != names:
            self.subscriptions[request.type_url] = names
            self.changed_subscriptions.add(request.type_url)

    def responses(self, snapshot: Snapshot, version: int) -> list[discovery_pb2.DiscoveryResponse]:
        out = []
        for type_url in TYPE_URLS:
            if type_url not in self.subscriptions:
                continue
            wanted = {
                name for name in self.subscriptions[type_url] if snapshot.visible(type_url, name, self.proxy)
            }
            digests = {name: snapshot.digest(type_url, name, self.proxy) for name in wanted}
            present = {name: digest for name, digest in digests.items() if digest}
            subscription_changed = type_url in self.changed_subscriptions
            if present == self.sent.get(type_url) and not (
                subscription_changed and type_url in FULL_STATE_TYPES
            ):
                continue
            if not present and type_url not in FULL_STATE_TYPES and type_url not in self.sent:
                continue  # nothing to say yet; the client waits for RDS/EDS resources
            response = discovery_pb2.DiscoveryResponse(
                version_info=str(version), type_url=type_url, nonce=str(next(self.nonces))
            )
            for name in sorted(present):
                packed = any_pb2.Any()
                resource = snapshot.get(type_url, name, self.proxy)
                assert resource is not None  # present: it has a digest
                packed.Pack(resource)
                response.resources.append(packed)
            self.sent[type_url] = present
            out.append(response)
        self.changed_subscriptions.clear()
        return out


class AggregatedDiscoveryService(ads_pb2_grpc.AggregatedDiscoveryServiceServicer):
    def __init__(self, snapshot: Snapshot) -> None:
        self._snapshot = snapshot
        self._version = 1
        self._streams: set[_Stream] = set()

    @property
    def snapshot(self) -> Snapshot:
        return self._snapshot

    @property
    def version(self) -> int:
        return self._version

    def publish(self, snapshot: Snapshot) -> None:
        """Serve a new snapshot: every stream re-checks what it is subscribed to."""
        self._snapshot = snapshot
        self._version += 1
        for stream in self._streams:
            stream.wake.set()

    async def StreamAggregatedResources(
        self,
        request_iterator: AsyncIterator[discovery_pb2.DiscoveryRequest],
        context: grpc.aio.ServicerContext[discovery_pb2.DiscoveryRequest, discovery_pb2.DiscoveryResponse],
    ) -> AsyncIterator[discovery_pb2.DiscoveryResponse]:
        stream = _Stream()
        self._streams.add(stream)

        async def read() -> None:
            try:
                async for request in request_iterator:
                    stream.on_request(request)
                    stream.wake.set()
            finally:
                stream.closed = True
                stream.wake.set()

        reader = asyncio.create_task(read())
        try:
            while True:
                await stream.wake.wait()
                stream.wake.clear()
                if stream.closed:
                    return
                for response in stream.responses(self._snapshot, self._version):
                    yield response
        finally:
            reader.cancel()
            self._streams.discard(stream)

    async def DeltaAggregatedResources(self, request_iterator, context):  # type: ignore[no-untyped-def]
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "this control plane speaks state-of-the-world xDS")
