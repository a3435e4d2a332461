"""What a service is, declared once in its own package (`services/<name>/declaration.py`).

Everything that needs to know the services derives from these declarations: the runtime
(default addresses, the dependencies it opens channels to, health and reflection names), the
`shopmesh` CLI, the plain local run, the local mesh, the benchmark and the tests. The runtime
itself names no service; it discovers them (services/runtime/registry.py).
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from services.runtime.contracts import Method, methods_in, services_in


@dataclass(frozen=True)
class ServiceDeclaration:
    #: The workload's name: its package `services.<name>`, its Kubernetes app label, Service,
    #: ServiceAccount and database.
    name: str
    #: Its gRPC port, the same locally (127.0.0.1:<port>) and in Kubernetes.
    grpc_port: int
    #: Its Prometheus /metrics port on a laptop (in a pod every service uses 9090).
    metrics_port: int
    #: The generated file descriptor of its contract, e.g. `order_pb2.DESCRIPTOR`.
    contract: FileDescriptor
    #: The services it calls, by name: each gets a channel, targeted by SHOPMESH_<NAME>_TARGET.
    calls: tuple[str, ...] = ()
    #: The seed data a local run loads into an empty database (SHOPMESH_SEED), if it has any.
    seed: str | None = None

    @property
    def proto_package(self) -> str:
        return self.contract.package

    @property
    def grpc_services(self) -> list[ServiceDescriptor]:
        return services_in(self.contract)

    @property
    def methods(self) -> list[Method]:
        return methods_in(self.contract)

    @property
    def health_names(self) -> list[str]:
        """The names its health service answers for, besides "" (the whole server)."""
        return [service.full_name for service in self.grpc_services]
