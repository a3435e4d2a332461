"""The gRPC contracts as data: every service and method the generated stubs define.

One place answers "which methods exist?" for everything that names them by path: the servers
(health service names, reflection), the manifest linter (an AuthorizationPolicy path must name a
real method), the authorization matrix and the local mesh.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2
from shop.payment.v1 import payment_pb2

#: The file descriptor of each service's contract, keyed by the workload that serves it.
CONTRACTS: dict[str, FileDescriptor] = {
    "order": order_pb2.DESCRIPTOR,
    "inventory": inventory_pb2.DESCRIPTOR,
    "payment": payment_pb2.DESCRIPTOR,
}


@dataclass(frozen=True, order=True)
class Method:
    """One RPC: `/shop.order.v1.OrderService/CreateOrder` is its HTTP/2 `:path`."""

    service: str  # full service name, e.g. "shop.order.v1.OrderService"
    name: str  # e.g. "CreateOrder"
    client_streaming: bool
    server_streaming: bool

    @property
    def path(self) -> str:
        return f"/{self.service}/{self.name}"

    @property
    def grpc_type(self) -> str:
        """The go-grpc-prometheus `grpc_type` label value."""
        if self.client_streaming and self.server_streaming:
            return "bidi_stream"
        if self.client_streaming:
            return "client_stream"
        if self.server_streaming:
            return "server_stream"
        return "unary"


def services_of(workload: str) -> list[ServiceDescriptor]:
    """The services one workload serves."""
    return list(CONTRACTS[workload].services_by_name.values())


def methods_of(workload: str) -> list[Method]:
    """Every method of one workload, in declaration order."""
    return [
        Method(
            service=service.full_name,
            name=method.name,
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
        )
        for service in services_of(workload)
        for method in service.methods
    ]


def all_methods() -> Iterator[tuple[str, Method]]:
    """(workload, method) for every method of every workload."""
    for workload in CONTRACTS:
        for method in methods_of(workload):
            yield workload, method
