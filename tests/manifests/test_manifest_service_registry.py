"""The registry hosts are looked up in, as istioctl analyze builds it (util/service_lookup.go):
Services and ServiceEntries, exact and wildcard hosts, visible where their exportTo says; and
the analyzers that use it report exactly what upstream reports on the same objects."""

from __future__ import annotations

from typing import Any

import pytest

from shopmesh.manifests.analyzers import istio_routing
from shopmesh.manifests.findings import Inventory
from shopmesh.manifests.model import MeshObjects
from shopmesh.manifests.service_registry import ServiceRegistry


def _service(
    name: str, namespace: str, export_to: str | None = None, ports: tuple[int, ...] = (50051,)
) -> Any:
    metadata: dict[str, Any] = {"name": name, "namespace": namespace}
    if export_to is not None:
        metadata["annotations"] = {"networking.istio.io/exportTo": export_to}
    return {"kind": "Service", "metadata": metadata, "spec": {"ports": [{"port": p} for p in ports]}}


def _entry(name: str, namespace: str, hosts: list[str], export_to: list[str] | None = None) -> Any:
    spec: dict[str, Any] = {"hosts": hosts, "ports": [{"number": 443, "name": "tls", "protocol": "TLS"}]}
    if export_to is not None:
        spec["exportTo"] = export_to
    return {"kind": "ServiceEntry", "metadata": {"name": name, "namespace": namespace}, "spec": spec}


REGISTRY = ServiceRegistry(
    MeshObjects(
        [
            _service("ledger", "billing", "."),
            _service("invoices", "billing", "billing, shop"),
            _service("order", "shop", ports=(50051, 9090)),
            _entry("partner", "billing", ["ledger.partner.example.com"], ["."]),
            _entry("google", "shop", ["*.googleapis.com"]),
            _entry("short", "shop", ["legacy"]),
        ]
    )
)


@pytest.mark.parametrize(
    ("namespace", "export_to", "host", "found"),
    [
        ("billing", [], "ledger", "ledger"),  # a short name, in its own namespace
        ("billing", [], "ledger.billing.svc.cluster.local", "ledger"),
        ("shop", [], "ledger.billing.svc.cluster.local", None),  # exported to billing only
        ("shop", [], "invoices.billing.svc.cluster.local", "invoices"),  # exported to shop too
        ("payments", [], "invoices.billing.svc.cluster.local", None),
        ("shop", [], "ledger.partner.example.com", None),  # the entry is billing's own
        ("billing", [], "ledger.partner.example.com", "partner"),
        ("shop", [], "storage.googleapis.com", "google"),  # under the wildcard host
        ("elsewhere", [], "storage.googleapis.com", "google"),  # exported everywhere
        ("shop", [], "googleapis.com", None),  # a wildcard needs a label before it
        ("shop", [], "order.shop", None),  # order.shop is a name of its own, never expanded
        ("shop", [], "legacy", "short"),  # a dot-less entry host is expanded in its namespace
        # Upstream's quirk: an object's own exportTo replaces its namespace in the lookup.
        ("billing", ["*"], "ledger.billing.svc.cluster.local", None),
        ("shop", ["billing"], "ledger.billing.svc.cluster.local", "ledger"),
    ],
)
def test_lookup_follows_istioctl(namespace: str, export_to: list[str], host: str, found: str | None) -> None:
    entry = REGISTRY.lookup(namespace, export_to, host)
    assert (entry.resource.name if entry else None) == found


def test_a_service_carries_its_ports_and_no_workload_selector() -> None:
    entry = REGISTRY.lookup("shop", [], "order")
    assert entry is not None
    assert entry.ports == (50051, 9090)
    assert entry.workload_selector == {}


def _findings(docs: list[dict[str, Any]]) -> list[str]:
    inventory = Inventory.of(docs)
    istio_routing.virtual_service_destinations(inventory)
    istio_routing.destination_rule_hosts_and_subsets(inventory)
    return sorted(str(f) for f in inventory.findings)


def test_routes_and_rules_are_judged_by_what_their_namespace_sees() -> None:
    def route(name: str, namespace: str, host: str, **destination: Any) -> Any:
        return {
            "kind": "VirtualService",
            "metadata": {"name": name, "namespace": namespace},
            "spec": {"hosts": [host], "http": [{"route": [{"destination": {"host": host, **destination}}]}]},
        }

    docs = [
        _service("ledger", "billing", "."),
        _service("order", "shop", ports=(50051, 9090)),
        _entry("google", "shop", ["*.googleapis.com"]),
        route("ledger", "shop", "ledger.billing.svc.cluster.local"),
        route("ledger-local", "billing", "ledger"),
        route("storage", "shop", "storage.googleapis.com"),
        route("order", "shop", "order"),
        {
            "kind": "VirtualService",
            "metadata": {"name": "mirrored", "namespace": "shop"},
            "spec": {
                "hosts": ["x"],
                "http": [
                    {
                        "route": [{"destination": {"host": "storage.googleapis.com"}}],
                        "mirror": {"host": "nope"},
                    }
                ],
            },
        },
        {
            "kind": "DestinationRule",
            "metadata": {"name": "ledger", "namespace": "shop"},
            "spec": {"host": "ledger.billing.svc.cluster.local"},
        },
        {
            "kind": "DestinationRule",
            "metadata": {"name": "google", "namespace": "shop"},
            "spec": {"host": "*.googleapis.com"},
        },
    ]
    assert _findings(docs) == [
        "IST0101 error VirtualService/shop/ledger: Referenced host not found: "
        '"ledger.billing.svc.cluster.local"',
        'IST0101 error VirtualService/shop/mirrored: Referenced mirror host not found: "nope"',
        "IST0112 error VirtualService/shop/order: This VirtualService routes to a service "
        '"order.shop.svc.cluster.local" that exposes multiple ports [50051, 9090]. '
        "Specifying a port in the destination is required to disambiguate.",
        "IST0174 warning DestinationRule/shop/ledger: The host ledger.billing.svc.cluster.local defined in "
        "the DestinationRule does not match any services in the mesh.",
    ]
