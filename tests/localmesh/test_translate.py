"""The translator on a small fixture (fixtures/mesh.yaml) and on the project's own manifests."""

from __future__ import annotations

from pathlib import Path

import pytest
from envoy.config.cluster.v3 import cluster_pb2
from envoy.config.endpoint.v3 import endpoint_pb2
from envoy.config.listener.v3 import listener_pb2
from envoy.config.rbac.v3 import rbac_pb2 as rbac_config
from envoy.config.route.v3 import route_pb2
from envoy.extensions.filters.http.rbac.v3 import rbac_pb2 as rbac_filter
from envoy.extensions.filters.network.http_connection_manager.v3 import http_connection_manager_pb2 as hcm
from envoy.extensions.transport_sockets.tls.v3 import tls_pb2
from google.protobuf import json_format

from shopmesh.localmesh.placement import place
from shopmesh.localmesh.translate import TranslationError, names
from shopmesh.localmesh.translate.rbac import MATCH_NEVER, rbac_filters
from shopmesh.localmesh.translate.translator import Snapshot, translate
from shopmesh.manifests.authz import Caller, matrix
from shopmesh.manifests.model import MeshObjects
from shopmesh.manifests.policy import AuthorizationPolicy, Request, WorkloadPolicies
from shopmesh.manifests.render import render

FIXTURE = Path(__file__).parent / "fixtures" / "mesh.yaml"
ROOT = Path(__file__).resolve().parents[2]
PAYMENT = "payment.shop.svc.cluster.local"
ORDER = "order.shop.svc.cluster.local"


@pytest.fixture(scope="module")
def objects() -> MeshObjects:
    return MeshObjects.from_yaml(FIXTURE.read_text())


@pytest.fixture(scope="module")
def snapshot(objects: MeshObjects) -> Snapshot:
    return translate(objects, place(objects, subnet=10))


def _manager(listener: listener_pb2.Listener) -> hcm.HttpConnectionManager:
    manager = hcm.HttpConnectionManager()
    packed = listener.api_listener.api_listener if listener.HasField("api_listener") else None
    if packed is None:
        packed = listener.filter_chains[0].filters[0].typed_config
    packed.Unpack(manager)
    return manager


def test_each_grpc_service_port_gets_an_api_listener_whose_routes_come_by_rds(snapshot: Snapshot) -> None:
    listener = snapshot.get(names.LISTENER, f"{PAYMENT}:50053")
    assert isinstance(listener, listener_pb2.Listener)
    manager = _manager(listener)
    assert manager.rds.route_config_name == f"outbound|50053||{PAYMENT}"
    assert manager.rds.config_source.HasField("ads")
    assert manager.http_filters[-1].name == "envoy.filters.http.router"  # the router last


def test_weighted_and_header_routes_keep_the_virtual_service_order(snapshot: Snapshot) -> None:
    routes = snapshot.get(names.ROUTE, f"outbound|50051||{ORDER}")
    assert isinstance(routes, route_pb2.RouteConfiguration)
    (host,) = routes.virtual_hosts
    assert {ORDER, f"{ORDER}:50051", "order", "order.shop:50051"} <= set(host.domains)
    header, split = host.routes
    assert header.match.headers[0].name == "x-canary"
    assert header.match.headers[0].string_match.exact == "true"
    assert header.route.cluster == f"outbound|50051|v2|{ORDER}"
    weights = {c.name: c.weight.value for c in split.route.weighted_clusters.clusters}
    assert weights == {f"outbound|50051|v1|{ORDER}": 90, f"outbound|50051|v2|{ORDER}": 10}
    assert split.route.retry_policy.retry_on == "unavailable"
    assert split.route.retry_policy.num_retries.value == 2


def test_a_service_without_virtual_service_routes_to_itself_with_istios_default_retries(
    snapshot: Snapshot,
) -> None:
    routes = snapshot.get(names.ROUTE, f"outbound|50053||{PAYMENT}")
    assert isinstance(routes, route_pb2.RouteConfiguration)
    (route,) = routes.virtual_hosts[0].routes
    assert route.route.cluster == f"outbound|50053||{PAYMENT}"
    assert "unavailable" in route.route.retry_policy.retry_on.split(",")


def test_istio_mutual_verifies_the_destinations_service_accounts(snapshot: Snapshot) -> None:
    cluster = snapshot.get(names.CLUSTER, f"outbound|50053||{PAYMENT}")
    assert isinstance(cluster, cluster_pb2.Cluster)
    assert cluster.transport_socket.name == "envoy.transport_sockets.tls"
    context = tls_pb2.UpstreamTlsContext()
    cluster.transport_socket.typed_config.Unpack(context)
    sans = context.common_tls_context.validation_context.match_subject_alt_names
    assert [m.exact for m in sans] == ["spiffe://cluster.local/ns/shop/sa/payment"]
    assert context.common_tls_context.tls_certificate_provider_instance.instance_name == "default"


def test_consecutive_errors_become_an_a50_failure_percentage(snapshot: Snapshot) -> None:
    cluster = snapshot.get(names.CLUSTER, f"outbound|50053||{PAYMENT}")
    assert isinstance(cluster, cluster_pb2.Cluster)
    detection = cluster.outlier_detection
    assert detection.failure_percentage_request_volume.value == 3  # consecutive5xxErrors: 3
    assert detection.enforcing_failure_percentage.value == 100
    assert detection.failure_percentage_threshold.value == 50
    assert detection.failure_percentage_minimum_hosts.value == 1
    assert detection.enforcing_success_rate.value == 0
    assert detection.interval.ToSeconds() == 1
    assert detection.base_ejection_time.ToSeconds() == 5
    assert detection.max_ejection_percent.value == 50


def test_endpoints_list_each_pod_address_and_subsets_pick_by_label(snapshot: Snapshot) -> None:
    def addresses(cluster: str) -> list[str]:
        assignment = snapshot.get(names.ENDPOINT, cluster)
        assert isinstance(assignment, endpoint_pb2.ClusterLoadAssignment)
        (locality,) = assignment.endpoints
        assert locality.load_balancing_weight.value == 1  # gRPC refuses a locality without one
        return [
            f"{e.endpoint.address.socket_address.address}:{e.endpoint.address.socket_address.port_value}"
            for e in locality.lb_endpoints
        ]

    assert addresses(f"outbound|50053||{PAYMENT}") == ["127.10.4.1:50053", "127.10.4.2:50053"]
    assert addresses(f"outbound|50051|v2|{ORDER}") == ["127.10.3.1:50051"]
    # a named targetPort ("grpc") resolves to the pod's gRPC port
    assert addresses("outbound|50052||inventory.shop.svc.cluster.local") == ["127.10.1.1:50052"]


def _rbac(listener: listener_pb2.Listener) -> dict[str, rbac_config.RBAC]:
    out = {}
    for http_filter in _manager(listener).http_filters:
        if http_filter.name.startswith("envoy.filters.http.rbac"):
            config = rbac_filter.RBAC()
            http_filter.typed_config.Unpack(config)
            out[http_filter.name] = config.rules
    return out


def test_strict_servers_require_client_certificates_and_apply_allow_policies(snapshot: Snapshot) -> None:
    listener = snapshot.get(names.LISTENER, names.server_listener("127.10.4.1", 50053))
    assert isinstance(listener, listener_pb2.Listener)
    chain = listener.filter_chains[0]
    context = tls_pb2.DownstreamTlsContext()
    chain.transport_socket.typed_config.Unpack(context)
    assert context.require_client_certificate.value is True
    route = _manager(listener).route_config.virtual_hosts[0].routes[0]
    assert route.HasField("non_forwarding_action")

    rules = _rbac(listener)
    assert set(rules) == {"envoy.filters.http.rbac"}  # no DENY policy in the fixture
    allow = rules["envoy.filters.http.rbac"]
    assert allow.action == rbac_config.RBAC.ALLOW
    # deny-all (spec: {}) is a policy that never matches (builder.go rbacPolicyMatchNever);
    # payment's rule and the namespace-wide health rule are the ones that can
    assert sorted(allow.policies) == ["shop-deny-all-0", "shop-health-0", "shop-payment-0"]
    assert allow.policies["shop-deny-all-0"] == MATCH_NEVER
    (principal,) = allow.policies["shop-payment-0"].principals
    (principals,) = principal.and_ids.ids
    (order,) = principals.or_ids.ids
    assert order.authenticated.principal_name.exact == "spiffe://cluster.local/ns/shop/sa/order"


def test_deny_all_alone_still_denies_everything(objects: MeshObjects) -> None:
    only_baseline = MeshObjects(
        [d for d in objects if d["kind"] != "AuthorizationPolicy" or d["metadata"]["name"] == "deny-all"]
    )
    snapshot = translate(only_baseline, place(only_baseline))
    listener = snapshot.get(names.LISTENER, names.server_listener("127.10.1.1", 50052))
    assert isinstance(listener, listener_pb2.Listener)
    allow = _rbac(listener)["envoy.filters.http.rbac"]
    assert allow.action == rbac_config.RBAC.ALLOW
    assert dict(allow.policies) == {"shop-deny-all-0": MATCH_NEVER}


def test_the_gateway_gets_the_routes_of_its_bound_virtual_services(snapshot: Snapshot) -> None:
    routes = snapshot.get(names.ROUTE, "gateway|80|istio-ingressgateway.istio-system.svc.cluster.local")
    assert isinstance(routes, route_pb2.RouteConfiguration)
    clusters = [
        r.route.cluster or r.route.weighted_clusters.clusters[0].name for r in routes.virtual_hosts[0].routes
    ]
    assert clusters[0] == "outbound|50052||inventory.shop.svc.cluster.local"
    assert f"outbound|50051|v2|{ORDER}" in clusters


@pytest.mark.parametrize(
    ("kind", "patch"),
    [
        ("VirtualService", {"mirror": {"host": "order", "subset": "v2"}}),
        ("AuthorizationPolicy", {"action": "CUSTOM"}),
    ],
)
def test_what_cannot_be_enforced_is_refused_not_ignored(objects: MeshObjects, kind: str, patch: dict) -> None:
    documents = [dict(d) for d in objects]
    target = next(d for d in documents if d["kind"] == kind and d["metadata"]["name"] == "order")
    spec = dict(target["spec"])
    if kind == "VirtualService":
        spec["http"] = [{**spec["http"][0], **patch}]
    else:
        spec.update(patch)
    target["spec"] = spec
    with pytest.raises(TranslationError, match="order"):
        translate(MeshObjects(documents), place(MeshObjects(documents)))


@pytest.mark.slow  # kubectl kustomize
def test_the_projects_canary_stack_translates_and_every_pod_enforces_mtls_and_rbac() -> None:
    objects = render([ROOT / "k8s" / "overlays" / "canary", ROOT / "istio" / "overlays" / "canary"])
    placement = place(objects, replicas={"payment": 2})
    snapshot = translate(objects, placement)
    assert {i.name for i in placement.instances} >= {
        "order-0",
        "order-v2-0",
        "inventory-0",
        "payment-0",
        "payment-1",
    }
    for instance in placement.instances:
        for port in instance.ports:
            listener = snapshot.get(names.LISTENER, names.server_listener(instance.address, port))
            assert isinstance(listener, listener_pb2.Listener), instance.name
            assert listener.filter_chains[0].HasField("transport_socket"), instance.name
            assert "envoy.filters.http.rbac" in _rbac(listener), instance.name


def _policy(spec: dict, namespace: str = "shop", name: str = "p") -> AuthorizationPolicy:
    return AuthorizationPolicy.of(
        MeshObjects(
            [
                {
                    "kind": "AuthorizationPolicy",
                    "metadata": {"name": name, "namespace": namespace},
                    "spec": spec,
                }
            ]
        ).resources[0]
    )


def _allow_rules(*policies: AuthorizationPolicy) -> rbac_config.RBAC:
    filters = dict(rbac_filters(WorkloadPolicies.select(policies, "shop", {"app": "w"})))
    return filters["envoy.filters.http.rbac"].rules


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("cluster.local/ns/shop/sa/order", {"exact": "spiffe://cluster.local/ns/shop/sa/order"}),
        ("cluster.local/ns/shop/*", {"prefix": "spiffe://cluster.local/ns/shop/"}),
        # StringMatcherWithPrefix: a suffix behind the spiffe:// prefix becomes a regex
        ("*/sa/order", {"safe_regex": {"regex": "spiffe://.*/sa/order"}}),
        ("*", {"safe_regex": {"regex": ".+"}}),
    ],
)
def test_principals_follow_istios_string_matching(value: str, expected: dict) -> None:
    rules = _allow_rules(_policy({"rules": [{"from": [{"source": {"principals": [value]}}]}]}))
    (principal,) = rules.policies["shop-p-0"].principals
    (any_of,) = principal.and_ids.ids
    (matcher,) = any_of.or_ids.ids
    got = json_format.MessageToDict(matcher.authenticated.principal_name, preserving_proto_field_name=True)
    assert got == expected


def test_sources_operations_and_conditions_combine_as_istios_model() -> None:
    rules = _allow_rules(
        _policy(
            {
                "rules": [
                    {
                        "from": [
                            {"source": {"principals": ["cluster.local/ns/shop/sa/order"]}},
                            {
                                "source": {
                                    "namespaces": ["ops"],
                                    "notPrincipals": ["cluster.local/ns/ops/sa/intern"],
                                }
                            },
                        ],
                        "to": [{"operation": {"paths": ["/a/*"], "methods": ["POST"]}}],
                        "when": [{"key": "request.headers[x-tenant]", "values": ["acme"]}],
                    }
                ]
            }
        )
    )
    policy = rules.policies["shop-p-0"]
    first, second = policy.principals  # `from` entries: one principal each, ORed by Envoy
    principal, tenant = first.and_ids.ids  # a request header is a principal's condition (model.go)
    assert (
        principal.or_ids.ids[0].authenticated.principal_name.exact
        == "spiffe://cluster.local/ns/shop/sa/order"
    )
    assert (tenant.or_ids.ids[0].header.name, tenant.or_ids.ids[0].header.string_match.exact) == (
        "x-tenant",
        "acme",
    )
    not_intern, namespace, _tenant = second.and_ids.ids  # principals come before namespaces
    assert not_intern.not_id.or_ids.ids[0].authenticated.principal_name.exact == (
        "spiffe://cluster.local/ns/ops/sa/intern"
    )
    assert namespace.or_ids.ids[0].authenticated.principal_name.safe_regex.regex == ".*/ns/ops/.*"
    (permission,) = policy.permissions
    method, path = permission.and_rules.rules  # hosts, methods, paths, ports: Istio's order
    assert (method.or_rules.rules[0].header.name, method.or_rules.rules[0].header.string_match.exact) == (
        ":method",
        "POST",
    )
    assert path.or_rules.rules[0].url_path.path.prefix == "/a/"


def test_what_a_proxyless_server_cannot_check_is_refused() -> None:
    jwt = _policy({"rules": [{"from": [{"source": {"requestPrincipals": ["issuer/subject"]}}]}]})
    with pytest.raises(TranslationError, match=r"shop/p rule 0: request\.auth\.principal"):
        _allow_rules(jwt)


def test_translator_and_matrix_agree_on_a_root_namespace_policy_with_a_selector(objects: MeshObjects) -> None:
    """The case the two used to disagree on: Istio attaches a root-namespace policy with a
    selector to matching pods of every namespace (policyattachment.go)."""
    root = {
        "apiVersion": "security.istio.io/v1",
        "kind": "AuthorizationPolicy",
        "metadata": {"name": "no-refunds", "namespace": "istio-system"},
        "spec": {
            "selector": {"matchLabels": {"app": "payment"}},
            "action": "DENY",
            "rules": [{"to": [{"operation": {"paths": ["/shop.payment.v1.PaymentService/Refund"]}}]}],
        },
    }
    with_root = MeshObjects([*objects, root])
    snapshot = translate(with_root, place(with_root, subnet=10))
    listener = snapshot.get(names.LISTENER, names.server_listener("127.10.4.1", 50053))
    assert isinstance(listener, listener_pb2.Listener)
    deny = _rbac(listener)["envoy.filters.http.rbac.DENY"]
    assert list(deny.policies) == ["istio-system-no-refunds-0"]
    order = Caller("order", "cluster.local/ns/shop/sa/order")
    cells = {
        c.path.rpartition("/")[2]: c.allowed for c in matrix(with_root, [order]) if c.service == "payment"
    }
    assert cells["Refund"] is False
    assert cells["Charge"] is True
    payment = WorkloadPolicies.select(
        [AuthorizationPolicy.of(r) for r in with_root.of_kind("AuthorizationPolicy")],
        "shop",
        {"app": "payment"},
    )
    assert not payment.allows(Request(order.principal, 50053, "/shop.payment.v1.PaymentService/Refund"))
