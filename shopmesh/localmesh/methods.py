"""Which methods stream: what lets a proxy relay a unary call as one message each way.

On the wire every gRPC call is an HTTP/2 stream, so a proxy that knows nothing could relay
every call as a bidirectional stream — and grpcio's synchronous client spends a thread per
such call (it consumes the request iterator on a thread of its own). A call that is known to
be unary is relayed with unary handlers instead: one message in, one out, no extra thread.
Only the shape of a method is needed, never its messages, and it is known without decoding
any relayed message:

- from the declared services' contracts (services/runtime/registry.py) and gRPC's own
  health and reflection services, known from the start;
- from the upstream's gRPC reflection (which every service serves), asked in the background
  at start and again when a method no one knew is called (an app restarted with a new
  method): the sidecar asks its app, the ingress whichever service its routes send
  reflection to.

A method not (yet) known is relayed as a stream: slower, never wrong.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

import grpc
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from services.runtime.contracts import Method, methods_in
from services.runtime.reflection import V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME
from services.runtime.registry import declarations

log = logging.getLogger("shopmesh.localmesh.methods")

#: What one reflection exchange may bring back: an app's services are a handful.
MAX_SERVICES = 1000
REFLECTION_TIMEOUT_SECONDS = 5.0


class KnownMethods:
    """Method path → `Method`, read by the relay on every call.

    Readers see one dict, replaced whole when more is learned (no lock on the call path). With
    a `source`, `start_learning()` asks it in the background until it answers, and a miss asks
    again, at most once every `relearn_after` seconds.
    """

    def __init__(
        self,
        methods: Iterable[Method] = (),
        source: Callable[[], Sequence[Method]] | None = None,
        relearn_after: float = 5.0,
    ) -> None:
        self._methods = {method.path: method for method in methods}
        self._source = source
        self._relearn_after = relearn_after
        self._learning = threading.Lock()
        self._last_attempt = -relearn_after

    def get(self, path: str) -> Method | None:
        found = self._methods.get(path)
        if found is None and self._source is not None:
            self._learn_soon()
        return found

    def __len__(self) -> int:
        return len(self._methods)

    def add(self, methods: Iterable[Method]) -> None:
        self._methods = {**self._methods, **{method.path: method for method in methods}}

    def start_learning(self, retry_seconds: float = 0.5, give_up_after: float = 60.0) -> None:
        """Learn from the source in the background, retrying (at most every 5 s) until it
        answers once or `give_up_after` seconds have passed; a miss asks again later."""

        def until_learned() -> None:
            pause, deadline = retry_seconds, time.monotonic() + give_up_after
            while not self._learn() and time.monotonic() < deadline:
                time.sleep(pause)
                pause = min(pause * 2, 5.0)

        threading.Thread(target=until_learned, name="learn-methods", daemon=True).start()

    def _learn_soon(self) -> None:
        if time.monotonic() - self._last_attempt < self._relearn_after or self._learning.locked():
            return
        threading.Thread(target=self._learn, name="learn-methods", daemon=True).start()

    def _learn(self) -> bool:
        if self._source is None or not self._learning.acquire(blocking=False):
            return False
        try:
            self._last_attempt = time.monotonic()
            learned = self._source()
        except grpc.RpcError as error:
            failed: grpc.Call = error  # type: ignore[assignment]
            log.debug("methods not learned (%s: %s)", failed.code().name, failed.details())
            return False
        finally:
            self._learning.release()
        self.add(learned)
        log.info("knows %d methods, %d of them unary", len(self), sum(1 for m in learned if _unary(m)))
        return True


def _unary(method: Method) -> bool:
    return not method.client_streaming and not method.server_streaming


def methods_of_files(files: Iterable[descriptor_pb2.FileDescriptorProto], services: set[str]) -> list[Method]:
    """The methods of the named services among these file descriptors."""
    found = []
    for file in files:
        prefix = f"{file.package}." if file.package else ""
        for service in file.service:
            if prefix + service.name not in services:
                continue
            found += [
                Method(prefix + service.name, m.name, m.client_streaming, m.server_streaming)
                for m in service.method
            ]
    return found


def reflected_methods(channel: grpc.Channel, timeout: float = REFLECTION_TIMEOUT_SECONDS) -> list[Method]:
    """Every method the server behind `channel` serves, from its reflection (v1, else v1alpha).
    Raises grpc.RpcError when it cannot be asked (not up yet, no reflection)."""
    for service_name in (V1_SERVICE_NAME, V1ALPHA_SERVICE_NAME):
        exchange = channel.stream_stream(
            f"/{service_name}/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        try:
            (listing,) = exchange(
                iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=timeout
            )
        except grpc.RpcError as error:
            failed: grpc.Call = error  # type: ignore[assignment]
            if failed.code() == grpc.StatusCode.UNIMPLEMENTED and service_name != V1ALPHA_SERVICE_NAME:
                continue  # an older server: v1alpha only
            raise
        services = {service.name for service in listing.list_services_response.service[:MAX_SERVICES]}
        questions = [
            reflection_pb2.ServerReflectionRequest(file_containing_symbol=name) for name in sorted(services)
        ]
        files = [
            descriptor_pb2.FileDescriptorProto.FromString(serialized)
            for answer in exchange(iter(questions), timeout=timeout)
            for serialized in answer.file_descriptor_response.file_descriptor_proto
        ]
        return methods_of_files(files, services)
    raise AssertionError("unreachable: the last reflection version raises")


def declared_methods() -> list[Method]:
    """The declared services' methods, and gRPC's own health and reflection services'."""
    standard = [*methods_in(health_pb2.DESCRIPTOR), *methods_in(reflection_pb2.DESCRIPTOR)]
    v1_reflection = [
        Method(V1_SERVICE_NAME, m.name, m.client_streaming, m.server_streaming)
        for m in methods_in(reflection_pb2.DESCRIPTOR)
    ]
    declared = [method for service in declarations().values() for method in service.methods]
    return [*standard, *v1_reflection, *declared]
