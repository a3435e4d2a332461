"""A gRPC contract as data: the services and methods of one generated file descriptor.

Everything that names methods by path reads them here — the servers (health and reflection
names, metrics pre-registration), the manifest linter (an AuthorizationPolicy path must name a
real method), the authorization matrix and the local mesh — so the generated descriptors stay
the one source of truth.
"""

from __future__ import annotations

from dataclasses import dataclass

from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor


@dataclass(frozen=True)
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


def services_in(contract: FileDescriptor) -> list[ServiceDescriptor]:
    """The gRPC services a contract defines, in declaration order."""
    return list(contract.services_by_name.values())


def methods_in(contract: FileDescriptor) -> list[Method]:
    """Every method of a contract, in declaration order."""
    return [
        Method(
            service=service.full_name,
            name=method.name,
            client_streaming=method.client_streaming,
            server_streaming=method.server_streaming,
        )
        for service in services_in(contract)
        for method in service.methods
    ]
