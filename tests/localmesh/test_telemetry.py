"""Istio's standard metrics from the running local mesh, in its real Prometheus.

A known mix of CreateOrders goes through the ingress — confirmed, declined (OK, order
REJECTED), invalid (INVALID_ARGUMENT), payment unavailable (payment answers UNAVAILABLE to
order, order answers UNAVAILABLE), some with `x-canary: true` (always order v2) — and then:

- Prometheus holds exactly the calls each order made, per caller and callee workload and
  version and gRPC status, at the destinations and (for what it sent) at the ingress;
- Kiali's graph query and Flagger's request-success-rate, run unchanged, read what they should:
  Flagger's 100 % while gRPC calls fail, since it counts 5xx only;
- every panel of the Grafana dashboard has data;
- `shopmesh topology --live` draws the graph the mix made.

Rates: Prometheus' rate() over a window whose every series has samples one scrape interval
apart through it, the first before the mix and the last after, extrapolates the increase to
the window's edges: over a window of R seconds that is a multiple of the interval, every
target's samples span R - interval, so rate x (R - interval) is exactly the number of calls,
as long as each series' first value is not too small for Prometheus' "counter started at zero"
rule (the window below is chosen long enough). So the window is aligned that way and the
counts are compared exactly.
"""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from cryptography import x509

from localmesh.meshcalls import client_bootstrap, encoded, pod_of, probe, rewritten, target
from shop.inventory.v1 import inventory_pb2
from shop.order.v1 import order_pb2, order_pb2_grpc
from shopmesh.launch.ports import free_port
from shopmesh.localmesh.ca import certificate_sha256
from shopmesh.localmesh.supervisor import LocalMesh
from shopmesh.manifests.authz import callers, matrix
from shopmesh.manifests.render import render
from shopmesh.telemetry import flagger, kiali, livegraph
from shopmesh.telemetry.dashboard import load_dashboard, panel_queries
from shopmesh.telemetry.generate import DASHBOARD
from shopmesh.telemetry.query import PrometheusClient, Sample

ROOT = Path(__file__).resolve().parents[2]
PEER = "x-envoy-peer-metadata-id"
PRODUCT = "sku-milk-jug"
CANARY = (("x-canary", "true"),)
INGRESS = ("istio-ingressgateway", "unknown")  # workload, and version as a peer's (no label)
WORKLOAD_OF = {"order-0": ("order", "v1"), "order-v2-0": ("order-v2", "v2")}

#: What each kind of order sends and gets: its card token (None: no items, so invalid), the
#: gRPC status through the ingress, and order's calls in the saga (services/order/saga.py):
#: (service, status) each.
KINDS: dict[str, tuple[str | None, grpc.StatusCode, tuple[tuple[str, int], ...]]] = {
    # reserve, charge, commit
    "confirmed": ("tok_visa", grpc.StatusCode.OK, (("inventory", 0), ("payment", 0), ("inventory", 0))),
    # reserve, charge (declined: an OK reply), release
    "declined": (
        "tok_chargeDeclined",
        grpc.StatusCode.OK,
        (("inventory", 0), ("payment", 0), ("inventory", 0)),
    ),
    # refused before the saga starts
    "invalid": (None, grpc.StatusCode.INVALID_ARGUMENT, ()),
    # reserve, charge (UNAVAILABLE), the charge key voided by a refund, release
    "unavailable": (
        "tok_unavailable",
        grpc.StatusCode.UNAVAILABLE,
        (("inventory", 0), ("payment", 14), ("payment", 0), ("inventory", 0)),
    ),
}
#: The measured mix: (kind, with x-canary) -> how many.
MIX = {
    ("confirmed", False): 4,
    ("declined", False): 2,
    ("invalid", False): 2,
    ("unavailable", False): 2,
    ("confirmed", True): 2,
    ("invalid", True): 1,
    ("unavailable", True): 1,
}
#: Each kind on each order version, before the window: every series the mix moves then exists,
#: with a first value Prometheus' rate() does not take for a fresh counter.
WARMUP_PER_VERSION = 2
SCRAPE_SECONDS = 5.0  # shopmesh.telemetry.targets.DEFAULT_SCRAPE_INTERVAL
MIN_WINDOW_SECONDS = 40

#: A failure relayed by a sidecar reaches its caller after response headers (the sidecar
#: sends them first: docs/local-mesh.md, "no Trailers-Only through a sidecar"), and gRPC never
#: retries a call that got headers (test_relay.py). So the routes' `retries` (payment's and the
#: gateway's: attempts 2 on `unavailable`) make no second attempt: one call each.
ATTEMPTS_PER_CALL = 1

Key = tuple[str, str, str, str, str]  # source workload, version; destination workload, version; status
BY = "source_workload, source_version, destination_workload, destination_version, grpc_response_status"
AT_DESTINATIONS = 'istio_requests_total{reporter="destination", destination_workload_namespace="shop"}'


@dataclass
class Mix:
    """What was sent, and the aligned window around it (see the module's docstring)."""

    served: list[tuple[str, str]]  # (kind, order pod) per measured order
    start: float  # the window's start, before the first measured order
    end: float  # its end, after every target's last scrape of the mix
    before: dict[tuple[tuple[str, str], ...], float]  # every destination series before the mix
    after: dict[tuple[tuple[str, str], ...], float]

    @property
    def window(self) -> int:
        return round(self.end - self.start)


def expected_counts(served: list[tuple[str, str]]) -> Counter[Key]:
    """Every call the orders made, as destinations report them."""
    counts: Counter[Key] = Counter()
    for kind, pod in served:
        _, status, calls = KINDS[kind]
        workload, version = WORKLOAD_OF[pod]
        counts[(*INGRESS, workload, version, str(status.value[0]))] += ATTEMPTS_PER_CALL
        for service, code in calls:
            counts[(workload, version, service, "v1", str(code))] += ATTEMPTS_PER_CALL
    return counts


def _series(
    client: PrometheusClient, expr: str, at: float | None = None
) -> dict[tuple[tuple[str, str], ...], float]:
    return {tuple(sorted(sample.labels.items())): sample.value for sample in client.query(expr, at)}


def _by_key(samples: list[Sample]) -> dict[Key, float]:
    names = [name.strip() for name in BY.split(",")]
    return {tuple(sample.labels.get(name, "") for name in names): sample.value for sample in samples}  # type: ignore[misc]


def _scraped_after(client: PrometheusClient, moment: float, targets: int, timeout: float = 60.0) -> None:
    """Until every target has been scraped (successfully) at or after `moment`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        # timestamp() of a bare selector: the samples' own times (of any other expression, the
        # evaluation's)
        stamps = client.query("timestamp(up)")
        healthy = all(sample.value == 1 for sample in client.query("up"))
        if healthy and len(stamps) == targets and min(sample.value for sample in stamps) >= moment:
            return
        time.sleep(0.5)
    raise AssertionError(f"not every one of {targets} targets scraped after {moment} within {timeout}s")


def _order(stub: order_pb2_grpc.OrderServiceStub, kind: str, canary: bool) -> str:
    """One CreateOrder of this kind; the order pod that served it (its sidecar's peer id)."""
    token, status, _ = KINDS[kind]
    request = order_pb2.CreateOrderRequest(
        request_id=f"telemetry-{uuid.uuid4()}",
        customer_id="telemetry",
        items=[order_pb2.OrderItem(product_id=PRODUCT, quantity=1)] if token else [],
        payment_token=token or "tok_visa",
    )
    try:
        reply, call = stub.CreateOrder.with_call(request, timeout=30, metadata=CANARY if canary else ())
        code, headers = grpc.StatusCode.OK, call.initial_metadata()
        expected_order = (
            order_pb2.ORDER_STATUS_REJECTED if kind == "declined" else order_pb2.ORDER_STATUS_CONFIRMED
        )
        assert reply.order.status == expected_order, (kind, reply.order)
    except grpc.RpcError as error:
        failed: Any = error
        code, headers = failed.code(), failed.initial_metadata()
    assert code == status, (kind, code)  # anything else (a timeout) would make other calls
    return pod_of(dict(headers or ()).get(PEER, ""))


def _on_version(stub: order_pb2_grpc.OrderServiceStub, kind: str, pod: str) -> None:
    """One order of this kind served by this order pod (v2: by header; v1: 90 % of the rest)."""
    for _ in range(40):
        if _order(stub, kind, canary=pod == "order-v2-0") == pod:
            return
    raise AssertionError(f"no {kind} order reached {pod} in 40 tries")


#: Which payment replica answers is gRPC's round robin; the series the mix may move at each.
PAYMENT_SERIES = {
    (caller, pod, status)
    for caller in ("order", "order-v2")
    for pod in ("payment-0", "payment-1")
    for status in ("0", "14")
}


def _warm_up(stub: order_pb2_grpc.OrderServiceStub, client: PrometheusClient, targets: int) -> None:
    """Every kind on both order versions, until every series the mix may move exists, payment's
    on both replicas. (An unavailable order calls payment twice, a confirmed one once: the
    latter moves the round robin's turn.)"""
    for kind in KINDS:
        for pod in WORKLOAD_OF:
            for _ in range(WARMUP_PER_VERSION):
                _on_version(stub, kind, pod)
    selector = 'reporter="destination", destination_workload="payment"'
    for _ in range(10):
        _scraped_after(client, time.time(), targets)
        found = client.query(
            f"count by (source_workload, pod, grpc_response_status) (istio_requests_total{{{selector}}})"
        )
        missing = PAYMENT_SERIES - {
            (s.labels["source_workload"], s.labels["pod"], s.labels["grpc_response_status"]) for s in found
        }
        if not missing:
            return
        for pod in {pod for pod, (workload, _) in WORKLOAD_OF.items() if workload in {m[0] for m in missing}}:
            _on_version(stub, "confirmed", pod)
            _on_version(stub, "unavailable", pod)
    raise AssertionError(f"payment series still missing: {missing}")


@pytest.fixture(scope="module")
def client(mesh: LocalMesh) -> PrometheusClient:
    assert mesh.prometheus is not None, "the session mesh runs a Prometheus"
    return mesh.prometheus.client


#: What the mix calls, each behind a DestinationRule with outlier detection.
DETECTED = ("order", "inventory", "payment")


@pytest.fixture(scope="module")
def without_outlier_detection(mesh: LocalMesh) -> Iterator[None]:
    """The mesh's DestinationRules without outlier detection while the mix runs.

    The local mesh's outlier detection (gRFC A50, translate/clusters.py) counts every non-OK
    status against a host, and ejects one that failed more than half of 5 calls in a 10 s
    interval. The warm-up and the mix answer INVALID_ARGUMENT and UNAVAILABLE (the card
    processor's outage) about half the time, from one order v1 pod: where an interval's edge
    fell among those calls, that pod was ejected for 30 s and a confirmed order then failed
    UNAVAILABLE at the ingress. Envoy, counting only 5xx, would eject nothing here. What is
    measured here is telemetry; test_outlier.py shows outlier detection itself. The removal is
    a kustomize patch in the overlay the control plane watches."""
    kustomization = mesh.settings.sources[1] / "kustomization.yaml"
    original = kustomization.read_text()
    assert original.rstrip().splitlines()[-1].startswith("    "), "patches must stay the file's last list"
    removals = "".join(
        f"  - target:\n      kind: DestinationRule\n      name: {name}\n    patch: |-\n"
        "      - op: remove\n        path: /spec/trafficPolicy/outlierDetection\n"
        for name in DETECTED
    )
    with rewritten(mesh, kustomization, original.rstrip("\n") + "\n" + removals):
        # Pushed, so rendered as the control plane renders it (a patch that fails pushes nothing):
        rules = {rule.name: rule.spec for rule in render([kustomization.parent]).of_kind("DestinationRule")}
        assert all("outlierDetection" not in rules[name]["trafficPolicy"] for name in DETECTED), rules
        yield


@pytest.fixture(scope="module")
def mix(mesh: LocalMesh, client: PrometheusClient, without_outlier_detection: None) -> Iterator[Mix]:
    targets = len(mesh.scrape_targets())
    adjust = inventory_pb2.AdjustStockRequest(product_id=PRODUCT, delta=200, reason="telemetry test orders")
    plan = [{"target": target("inventory"), "method": "/shop.inventory.v1.InventoryService/AdjustStock",
             "request_b64": encoded(adjust), "timeout": 10.0}]  # fmt: skip
    [adjusted] = probe(client_bootstrap(mesh, "shop", "operator"), plan)
    assert adjusted["code"] == "OK", adjusted
    with grpc.insecure_channel(mesh.settings.ingress) as channel:
        stub = order_pb2_grpc.OrderServiceStub(channel)
        _warm_up(stub, client, targets)
        start = time.time()
        _scraped_after(client, start, targets)  # every target's first sample in the window: before the mix
        before = _series(client, AT_DESTINATIONS)
        served = [
            (kind, _order(stub, kind, canary)) for (kind, canary), count in MIX.items() for _ in range(count)
        ]
    _scraped_after(client, time.time(), targets)  # every target's samples after the mix
    after = _series(client, AT_DESTINATIONS)
    # Long enough that no series is taken for a fresh counter (its first value over the
    # increase at least interval / (window - interval): Prometheus' extrapolation rule).
    steepest = max((after[s] - before.get(s, 0)) / before[s] for s in after if s in before)
    needed = max(MIN_WINDOW_SECONDS, time.time() - start, SCRAPE_SECONDS * (1 + steepest) + SCRAPE_SECONDS)
    window = SCRAPE_SECONDS * math.ceil(needed / SCRAPE_SECONDS)
    end = start + window
    time.sleep(max(0.0, end + 1.0 - time.time()))  # every sample up to `end` is in
    return Mix(served, start, end, before, after)


def test_prometheus_holds_exactly_the_calls_of_the_mix_per_version_and_status(
    mix: Mix, client: PrometheusClient
) -> None:
    expected = expected_counts(mix.served)
    before = _by_key(client.query(f"sum by ({BY}) ({AT_DESTINATIONS})", mix.start))
    after = _by_key(client.query(f"sum by ({BY}) ({AT_DESTINATIONS})", mix.end))
    counted = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    assert counted == dict(expected)
    # order v1 and v2 share a ServiceAccount: told apart all the same, as callers and as callees
    callers_seen = {(key[0], key[1]) for key in counted}
    assert ("order-v2", "v2") in callers_seen
    assert ("order", "v1") in callers_seen
    assert ("istio-ingressgateway", "unknown", "order-v2", "v2", "3") in counted


def test_the_ingress_reports_as_source_what_the_orders_destinations_report(
    mix: Mix, client: PrometheusClient
) -> None:
    names = (
        "destination_workload",
        "destination_version",
        "grpc_response_status",
        "connection_security_policy",
    )
    counted = {}
    for reporter in ("source", "destination"):
        selector = f'reporter="{reporter}", source_workload="istio-ingressgateway"'
        expr = f"sum by ({', '.join(names)}) (istio_requests_total{{{selector}}})"
        before = {tuple(s.labels[n] for n in names): s.value for s in client.query(expr, mix.start)}
        after = {tuple(s.labels[n] for n in names): s.value for s in client.query(expr, mix.end)}
        counted[reporter] = {
            key[:3]: (value - before.get(key, 0), key[3])
            for key, value in after.items()
            if value != before.get(key, 0)
        }
    expected = {key[2:]: count for key, count in expected_counts(mix.served).items() if key[:2] == INGRESS}
    assert {key: count for key, (count, _) in counted["destination"].items()} == expected
    assert {key: count for key, (count, _) in counted["source"].items()} == expected
    assert {policy for _, policy in counted["destination"].values()} == {"mutual_tls"}
    assert {policy for _, policy in counted["source"].values()} == {"unknown"}  # a client never knows


def test_no_call_was_retried_as_the_routes_and_the_relay_imply(mix: Mix, client: PrometheusClient) -> None:
    """The services' own counts (go-grpc-prometheus, scraped from each pod) agree: each
    UNAVAILABLE Charge and CreateOrder was attempted once, though the routes say `retries`."""
    unavailable = sum(1 for kind, _ in mix.served if kind == "unavailable")
    for app, method in (("payment", "Charge"), ("order", "CreateOrder")):
        expr = (
            f'sum(grpc_server_handled_total{{app="{app}", grpc_method="{method}", grpc_code="Unavailable"}})'
        )
        before, after = client.query(expr, mix.start), client.query(expr, mix.end)
        assert after[0].value - (before[0].value if before else 0) == unavailable * ATTEMPTS_PER_CALL


#: Kiali's incoming-traffic query for namespace shop over a window, as kiali/kiali renders it
#: (commit d733a096, graph/telemetry/istio/istio.go:141-189, the `reporter="destination"` query:
#: fmt.Sprintf(`sum(rate(%s{%s,destination_workload_namespace="%s"} [%vs])) by (%s) %s`, ...)).
KIALI_GRAPH_QUERY = (
    'sum(rate(istio_requests_total{reporter="destination",destination_workload_namespace="shop"} '
    "[{window}s])) by (source_cluster,source_workload_namespace,source_workload,source_canonical_service,"
    "source_canonical_revision,destination_cluster,destination_service_namespace,destination_service,"
    "destination_service_name,destination_workload_namespace,destination_workload,"
    "destination_canonical_service,destination_canonical_revision,request_protocol,response_code,"
    "grpc_response_status,response_flags) > 0"
)

#: Flagger's builtin `request-success-rate` (fluxcd/flagger pkg/metrics/observers/istio.go),
#: verbatim; Flagger collapses its whitespace before sending it.
FLAGGER_REQUEST_SUCCESS_RATE = """
sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}",
      response_code!~"5.*"
    }[{{ interval }}]
  )
)
/
sum(
  rate(
    istio_requests_total{
      reporter="destination",
      destination_workload_namespace="{{ namespace }}",
      destination_workload=~"{{ target }}"
    }[{{ interval }}]
  )
)
* 100
"""


def test_kialis_graph_query_run_unchanged_reads_the_mix(mix: Mix, client: PrometheusClient) -> None:
    query = KIALI_GRAPH_QUERY.replace("{window}", str(mix.window))
    assert kiali.graph_queries("shop", mix.window)[1] == query  # what `topology --live` runs
    rates = client.query(query, mix.end)
    calls = {
        (s.labels["source_workload"], s.labels["source_canonical_revision"], s.labels["destination_workload"],
         s.labels["destination_canonical_revision"], s.labels["grpc_response_status"]):
        round(s.value * (mix.window - SCRAPE_SECONDS), 2)
        for s in rates
    }  # fmt: skip
    expected = {
        ("istio-ingressgateway", "latest", *key[2:]) if key[:2] == INGRESS else key: float(count)
        for key, count in expected_counts(mix.served).items()
    }
    assert calls == expected
    assert {s.labels["response_code"] for s in rates} == {"200"}  # gRPC errors included
    assert {s.labels["request_protocol"] for s in rates} == {"grpc"}


def test_flaggers_success_rate_reads_100_percent_while_grpc_calls_fail(
    mix: Mix, client: PrometheusClient
) -> None:
    """The canary's (order-v2) gRPC errors flow, yet Flagger's builtin check, which only counts
    5xx, reads 100 %; the gRPC-aware template reads what the SLO counts."""
    interval = f"{mix.window}s"
    query = flagger.render(
        FLAGGER_REQUEST_SUCCESS_RATE, namespace="shop", target="order-v2", interval=interval
    )
    assert query == flagger.render(
        flagger.REQUEST_SUCCESS_RATE, namespace="shop", target="order-v2", interval=interval
    )
    (success,) = client.query(query, mix.end)
    assert success.value == 100.0
    at_v2 = {key: count for key, count in expected_counts(mix.served).items() if key[2] == "order-v2"}
    failed = sum(count for key, count in at_v2.items() if key[4] == "14")  # spends the budget (3 does not)
    assert failed
    assert any(key[4] == "3" for key in at_v2)
    aware = flagger.render(flagger.GRPC_SUCCESS_RATE, namespace="shop", target="order-v2", interval=interval)
    (grpc_success,) = client.query(aware, mix.end)
    assert grpc_success.value == pytest.approx(100.0 * (1 - failed / sum(at_v2.values())), rel=1e-9)


def test_every_dashboard_panel_has_data_after_the_mix(mix: Mix, client: PrometheusClient) -> None:
    board = load_dashboard(ROOT / DASHBOARD)
    empty = []
    for query in panel_queries(board, rate_interval=f"{mix.window}s"):
        values = [sample.value for sample in client.query(query.expr, mix.end)]
        if not any(math.isfinite(value) for value in values):
            empty.append(f"{query.panel} ({query.ref_id}): {query.expr}")
    assert not empty, "\n".join(empty)


def _topology(mesh: LocalMesh, *arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "shopmesh.cli", "topology", str(mesh.settings.sources[0].parents[2]),
         "--stack", "canary", "--live", *arguments],
        capture_output=True, text=True, timeout=120, check=False, cwd=ROOT,
    )  # fmt: skip


def test_topology_live_draws_the_graph_of_the_mix(mix: Mix, mesh: LocalMesh, tmp_path: Path) -> None:
    assert mesh.prometheus is not None
    svg = tmp_path / "live.svg"
    shown = _topology(
        mesh, "--prometheus", mesh.prometheus.url, "--duration", str(mix.window), "--at", str(mix.end),
        "-o", str(svg),
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    name = {"order": "order v1", "order-v2": "order v2", "inventory": "inventory v1", "payment": "payment v1"}
    name["istio-ingressgateway"] = "istio-ingressgateway"
    edges: dict[tuple[str, str], Counter[str]] = {}
    for (source, _, destination, _, status), count in expected_counts(mix.served).items():
        edges.setdefault((name[source], name[destination]), Counter())[status] += count
    table = shown.stdout.split("\n\n")[0].splitlines()
    assert re.split(r"\s{2,}", table[0]) == [
        "source",
        "destination",
        "requests/s",
        "errors",
        "p95",
        "security",
        "policy",
    ]
    rows = {(row[0], row[1]): row[2:] for row in (re.split(r"\s{2,}", line) for line in table[1:])}
    for (source, destination), statuses in edges.items():
        rate, errors, p95, security, policy = rows.pop((source, destination))
        total = sum(statuses.values())
        failed = total - statuses["0"]  # Kiali's rule for gRPC: any status but 0
        assert rate == f"{total / (mix.window - SCRAPE_SECONDS):.3g}", (source, destination)
        assert errors == f"{100 * failed / total:.1f} %", (source, destination)
        assert p95.endswith(" ms")
        assert float(p95.split()[0]) > 0
        assert security == f"{livegraph.PADLOCK} mTLS"  # every edge into the mesh: mutual TLS
        assert policy == "allowed"
    assert not rows, f"edges the mix did not make: {rows}"
    assert "traffic no policy allows: none" in shown.stdout
    objects = mesh.objects
    assert objects is not None
    observed = {("ingress", "order"), ("order", "inventory"), ("order", "payment")}
    probes = {"other-workload", "no-identity"}
    allowed = {(c.caller, c.service) for c in matrix(objects) if c.allowed and c.caller not in probes}
    idle = ", ".join(f"{caller} -> {service}" for caller, service in sorted(allowed - observed))
    assert f"allowed calls without traffic: {idle}\n" in shown.stdout
    picture = svg.read_text()
    assert all(title in picture for title in ("istio-ingressgateway", "order v1", "order v2", "payment v1"))
    assert picture.count(livegraph.PADLOCK) == len(edges)


def test_topology_live_names_traffic_no_policy_allows(mesh: LocalMesh) -> None:
    objects = mesh.objects
    assert objects is not None
    stranger = kiali.Node("shop", "unknown")
    order, payment = (
        kiali.Node("shop", "order", "order", "v1"),
        kiali.Node("shop", "payment", "payment", "v1"),
    )
    observed = [
        kiali.Edge(order, payment, {"0": 1.0}, source_principal="spiffe://cluster.local/ns/shop/sa/order"),
        kiali.Edge(
            stranger,
            payment,
            {"7": 1.0},
            1.0,
            source_principal="spiffe://cluster.local/ns/default/sa/default",
        ),
        # payment may not call order, whatever its certificate says
        kiali.Edge(payment, order, {"0": 1.0}, source_principal="spiffe://cluster.local/ns/shop/sa/payment"),
    ]
    check = livegraph.check_policies(observed, objects)
    assert check.not_allowed == (observed[1], observed[2])
    assert ("order", "payment") not in check.idle
    assert ("order", "inventory") in check.idle
    assert {caller.name for caller in callers(objects)} >= {caller for caller, _ in check.idle}
    table = livegraph.render_table(observed, check)
    assert "traffic no policy allows: unknown -> payment v1, payment v1 -> order v1" in table


def test_topology_live_without_a_prometheus_says_so(mesh: LocalMesh) -> None:
    nobody = f"http://127.0.0.1:{free_port()}"
    shown = _topology(mesh, "--prometheus", nobody)
    assert shown.returncode == 1
    assert shown.stderr.strip() == (
        f"shopmesh topology --live: no Prometheus at {nobody} ([Errno 111] Connection refused); "
        "is it running? (scripts/up starts one)"
    )


def test_each_pod_holds_its_own_certificate_and_the_control_plane_knows_whose(mesh: LocalMesh) -> None:
    directory = json.loads(mesh.state.peer_metadata_file.read_text())
    holders: Mapping[str, str] = {sha: entry["node_id"] for sha, entry in directory["certificates"].items()}
    identities = {}
    for pod in mesh.pods:
        chain = mesh.state.pod_identity_files(pod.instance).certificate_chain.read_bytes()
        certificate = x509.load_pem_x509_certificate(chain)
        names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        identities[pod.name] = names.get_values_for_type(x509.UniformResourceIdentifier)
        assert holders[certificate_sha256(certificate)] == pod.instance.node_id
    assert identities["order-0"] == identities["order-v2-0"] == ["spiffe://cluster.local/ns/shop/sa/order"]
