"""Istio's standard metrics from a local proxy: what Envoy's `istio.stats` filter records, served
at Envoy's `/stats/prometheus`.

Each proxy hands every call it relays to an `IstioStats` (a shopmesh.localmesh.observation
CallObserver), which counts it the way Istio's proxy does (istio/proxy istio_stats.cc):

- `istio_requests_total` and the histograms `istio_request_duration_milliseconds`,
  `istio_request_bytes`, `istio_response_bytes` (Envoy's default buckets), with Istio's 25
  labels;
- `istio_request_messages_total`, `istio_response_messages_total`, with the 20 peer labels only
  (no protocol, code, flags or security policy, as in Istio).

A sidecar reports as the destination (`reporter="destination"`): it is the destination, its
caller is whoever's verified certificate the connection carries (shopmesh.localmesh.peers), and
the connection is `mutual_tls`. The ingress gateway reports as the source of what it sends
into the mesh (`reporter="source"`): the destination is the pod named by the
`x-envoy-peer-metadata-id` its sidecar answered with, and the security policy `unknown`, as a
client-side Istio proxy reports it.

For gRPC, `response_code` is the HTTP status, 200 for every gRPC reply (errors included), and
`grpc_response_status` the numeric gRPC code: only that label tells a failed call.
What differs from Envoy is in docs/observability.md ("Mesh metrics").
"""

from __future__ import annotations

import bisect
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from shopmesh.localmesh.observation import RelayedCall
from shopmesh.localmesh.peers import LATEST, UNKNOWN, PeerDirectory, WorkloadMetadata

log = logging.getLogger("shopmesh.localmesh.istiostats")

#: Envoy's default histogram buckets (source/common/stats/histogram_impl.cc), used by Istio
#: for durations in milliseconds and for sizes in bytes alike.
BUCKETS = (0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000,
           600000, 1800000, 3600000)  # fmt: skip
#: Where Envoy serves its Prometheus stats, and the port it serves them on in an Istio pod
#: (the injected `istio-proxy` container's `http-envoy-prom`).
STATS_PATH = "/stats/prometheus"
ENVOY_PROMETHEUS_PORT = 15090
#: A gRPC message's length-prefixed frame: a compressed flag and four length bytes.
GRPC_FRAME_BYTES = 5
#: Istio's label names: the peers' (on every metric), then the request's (request metrics).
PEER_LABELS = (
    "reporter",
    "source_workload", "source_workload_namespace", "source_principal", "source_app", "source_version",
    "source_canonical_service", "source_canonical_revision", "source_cluster",
    "destination_workload", "destination_workload_namespace", "destination_principal",
    "destination_app", "destination_version", "destination_service", "destination_service_name",
    "destination_service_namespace", "destination_canonical_service", "destination_canonical_revision",
    "destination_cluster",
)  # fmt: skip
REQUEST_LABELS = (
    "request_protocol", "response_flags", "connection_security_policy", "response_code",
    "grpc_response_status",
)  # fmt: skip
REQUESTS = "istio_requests_total"
DURATION = "istio_request_duration_milliseconds"
REQUEST_BYTES = "istio_request_bytes"
RESPONSE_BYTES = "istio_response_bytes"
REQUEST_MESSAGES = "istio_request_messages_total"
RESPONSE_MESSAGES = "istio_response_messages_total"

DESTINATION, SOURCE = "destination", "source"
MUTUAL_TLS = "mutual_tls"
#: Peers whose labels are kept at once: certificates (renewed every half hour) and proxy ids
#: (from response headers) come and go; past this many the cache starts over.
MAX_CACHED_PEERS = 4096
#: Every reply a gRPC server or proxy sends carries HTTP :status 200.
GRPC_HTTP_STATUS = "200"
#: Envoy's "no response flags".
NO_FLAGS = "-"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(names: Sequence[str], values: Sequence[str]) -> str:
    return ",".join(f'{name}="{_escape(value)}"' for name, value in zip(names, values, strict=True))


def _bound(bound: float) -> str:
    return f"{bound:.32g}"  # as Envoy prints a bucket's bound: 0.5, 1, 3600000


_LE = (*(f'le="{_bound(bound)}"' for bound in BUCKETS), 'le="+Inf"')


def _source_side(workload: WorkloadMetadata | None, principal: str, *, local: bool) -> list[str]:
    if workload is None:
        return [UNKNOWN, UNKNOWN, principal, UNKNOWN, UNKNOWN, UNKNOWN, LATEST, UNKNOWN]
    return [
        workload.workload,
        workload.namespace,
        principal,
        workload.local_app if local else workload.peer_app,
        workload.local_version if local else workload.peer_version,
        workload.canonical_service,
        workload.canonical_revision,
        workload.cluster,
    ]


def _destination_side(workload: WorkloadMetadata | None, port: int | None, *, local: bool) -> list[str]:
    if workload is None:
        return [UNKNOWN] * 9 + [LATEST, UNKNOWN]
    service = workload.service_on(port)
    # Without a Service in front, Istio names the destination service after the workload's
    # canonical service (its fallback for a host it cannot resolve).
    host, name, namespace = (
        (service.host, service.name, service.namespace)
        if service is not None
        else (workload.canonical_service, workload.canonical_service, workload.namespace)
    )
    return [
        workload.workload,
        workload.namespace,
        workload.principal,
        workload.local_app if local else workload.peer_app,
        workload.local_version if local else workload.peer_version,
        host,
        name,
        namespace,
        workload.canonical_service,
        workload.canonical_revision,
        workload.cluster,
    ]


@dataclass(frozen=True, slots=True)
class _Peer:
    """Everything a call's metrics take from its two ends, rendered once per peer."""

    labels: str  # the 20 peer labels
    security_policy: str


class _Histogram:
    __slots__ = ("buckets", "total")

    def __init__(self) -> None:
        self.buckets = [0] * (len(BUCKETS) + 1)  # per bucket, not cumulative; the last is +Inf
        self.total = 0.0

    def render(self, name: str, labels: str, count: int, out: list[str]) -> None:
        cumulative = 0
        for le, in_bucket in zip(_LE, self.buckets, strict=True):
            cumulative += in_bucket
            out.append(f"{name}_bucket{{{labels},{le}}} {cumulative}")
        out.append(f"{name}_sum{{{labels}}} {self.total!r}")
        out.append(f"{name}_count{{{labels}}} {count}")


class _Series:
    """One request label set: its count and its three histograms."""

    __slots__ = ("count", "duration", "labels", "request_bytes", "response_bytes")

    def __init__(self, labels: str) -> None:
        self.labels = labels
        self.count = 0
        self.duration, self.request_bytes, self.response_bytes = _Histogram(), _Histogram(), _Histogram()


class IstioStats:
    """A proxy's Istio metrics: a CallObserver, and their Prometheus text (`render`).

    `local` is the proxy's own pod; `port` the port a sidecar serves (which of its pod's
    Services it stands for); `directory` finds the peer of each call.
    """

    def __init__(
        self, reporter: str, local: WorkloadMetadata, directory: PeerDirectory, port: int | None = None
    ) -> None:
        if reporter not in (DESTINATION, SOURCE):
            raise ValueError(f"reporter must be {DESTINATION!r} or {SOURCE!r}, not {reporter!r}")
        self.reporter = reporter
        self.local = local
        self.port = port
        self._directory = directory
        self._peers: dict[object, _Peer] = {}
        self._series: dict[tuple[_Peer, int], _Series] = {}
        self._messages: dict[_Peer, list[int]] = {}
        self._lock = threading.Lock()

    # -- recording (on the relaying thread: a few dictionary operations under a lock) ---------
    def observe(self, call: RelayedCall) -> None:
        peer = self._peer(call)
        code = call.code.value[0]
        milliseconds = call.duration * 1000.0
        sent = call.request_bytes + GRPC_FRAME_BYTES * call.request_messages
        received = call.response_bytes + GRPC_FRAME_BYTES * call.response_messages
        at_duration = bisect.bisect_left(BUCKETS, milliseconds)
        at_sent = bisect.bisect_left(BUCKETS, sent)
        at_received = bisect.bisect_left(BUCKETS, received)
        with self._lock:
            series = self._series.get((peer, code))
            if series is None:
                series = self._series[(peer, code)] = _Series(self._request_labels(peer, code))
            series.count += 1
            series.duration.buckets[at_duration] += 1
            series.duration.total += milliseconds
            series.request_bytes.buckets[at_sent] += 1
            series.request_bytes.total += sent
            series.response_bytes.buckets[at_received] += 1
            series.response_bytes.total += received
            messages = self._messages.get(peer)
            if messages is None:
                messages = self._messages[peer] = [0, 0]
            messages[0] += call.request_messages
            messages[1] += call.response_messages

    def _peer(self, call: RelayedCall) -> _Peer:
        key: object = call.caller if self.reporter == DESTINATION else call.upstream_peer
        peer = self._peers.get(key)
        if peer is None:
            if len(self._peers) >= MAX_CACHED_PEERS:
                self._peers.clear()
            # Equal labels make an equal _Peer: a renewed certificate keeps its caller's series.
            peer = self._peers[key] = self._resolve(call)
        return peer

    def _resolve(self, call: RelayedCall) -> _Peer:
        """The peer's labels: looked up once per certificate (or proxy id), then cached."""
        if self.reporter == DESTINATION:
            caller = call.caller
            workload = self._directory.by_certificate(caller.certificate) if caller is not None else None
            principal = caller.identity if caller is not None else UNKNOWN
            values = [
                DESTINATION,
                *_source_side(workload, principal, local=False),
                *_destination_side(self.local, self.port, local=True),
            ]
            policy = MUTUAL_TLS if caller is not None else "none"
        else:
            workload = self._directory.by_node_id(call.upstream_peer) if call.upstream_peer else None
            values = [
                SOURCE,
                *_source_side(self.local, self.local.principal, local=True),
                *_destination_side(workload, None, local=False),
            ]
            policy = UNKNOWN  # a client-side report never knows the server's policy
        return _Peer(_labels(PEER_LABELS, values), policy)

    @staticmethod
    def _request_labels(peer: _Peer, code: int) -> str:
        values = ("grpc", NO_FLAGS, peer.security_policy, GRPC_HTTP_STATUS, str(code))
        return f"{peer.labels},{_labels(REQUEST_LABELS, values)}"

    # -- exposition ----------------------------------------------------------------------------
    def render(self) -> str:
        """The Prometheus text exposition (format 0.0.4) of every metric."""
        with self._lock:  # copied under the lock, formatted outside it
            series = [
                (s.labels, s.count, _copy(s.duration), _copy(s.request_bytes), _copy(s.response_bytes))
                for s in self._series.values()
            ]
            messages = [(peer.labels, counts[0], counts[1]) for peer, counts in self._messages.items()]
        out = [f"# TYPE {REQUESTS} counter"]
        out += [f"{REQUESTS}{{{labels}}} {count}" for labels, count, *_ in series]
        for index, name in ((2, DURATION), (3, REQUEST_BYTES), (4, RESPONSE_BYTES)):
            out.append(f"# TYPE {name} histogram")
            for row in series:
                histogram: _Histogram = row[index]  # type: ignore[assignment]
                histogram.render(name, row[0], row[1], out)
        for name, position in ((REQUEST_MESSAGES, 1), (RESPONSE_MESSAGES, 2)):
            out.append(f"# TYPE {name} counter")
            out += [f"{name}{{{row[0]}}} {row[position]}" for row in messages]
        return "\n".join(out) + "\n"


def _copy(histogram: _Histogram) -> _Histogram:
    copied = _Histogram()
    copied.buckets, copied.total = list(histogram.buckets), histogram.total
    return copied


class StatsServer:
    """Envoy's admin endpoint, only its `/stats/prometheus`: an HTTP server on its own thread."""

    def __init__(self, address: str, stats: IstioStats) -> None:
        host, _, port = address.rpartition(":")

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != STATS_PATH:
                    self.send_error(404, f"only {STATS_PATH} here")
                    return
                body = stats.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass  # a scrape every few seconds is not news

        try:
            self._server = ThreadingHTTPServer((host, int(port)), Handler)
        except OSError as error:
            raise SystemExit(f"cannot serve stats on {address}: {error.strerror or error}") from None
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="stats", daemon=True)

    def start(self) -> StatsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def start_stats(
    reporter: str, address: str, node_id: str, peer_metadata: Path, port: int | None = None
) -> tuple[IstioStats, StatsServer]:
    """A proxy's Istio metrics, served on `address`: its own pod found by `node_id` in the
    peer directory the control plane keeps at `peer_metadata`."""
    directory = PeerDirectory(peer_metadata)
    local = directory.by_node_id(node_id)
    if local is None:
        raise SystemExit(f"{peer_metadata} knows no pod with proxy id {node_id}")
    stats = IstioStats(reporter, local, directory, port)
    return stats, StatsServer(address, stats).start()
