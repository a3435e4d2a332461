"""Outlier detection from the payment DestinationRule, enforced by gRPC's xDS client: a
payment replica that fails (its service crashed, its sidecar answers UNAVAILABLE) is ejected,
charges then succeed on the other replica, and the ejected one is tried again once the
ejection time is over.

With the manifests' values (interval 10s, baseEjectionTime 30s, consecutive errors 5 → a 50 %
failure rate over at least 5 calls, see translate/clusters.py) this takes about 50 s.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator

import pytest

from localmesh.meshcalls import client_bootstrap, encoded, pod_of, probe, target
from shop.money.v1 import money_pb2
from shop.payment.v1 import payment_pb2
from shopmesh.localmesh.sidecar import APP_RECONNECT_MAX_SECONDS
from shopmesh.localmesh.supervisor import LocalMesh

FAULTY = "payment-1"
INTERVAL, BASE_EJECTION = 10.0, 30.0  # istio/base/payment.yaml, its DestinationRule


@pytest.fixture
def faulty_replica(mesh: LocalMesh) -> Iterator[str]:
    """The service crashes and its sidecar stays up, answering UNAVAILABLE, while the pod is
    still an endpoint: the window outlier detection is for. Here it lasts the whole test,
    because the pod's kubelet is suspended (as if its node's kubelet were down), which would
    otherwise restart the pod and take it out of EDS within seconds."""
    assert mesh.kubelet is not None
    worker = mesh.kubelet.worker(FAULTY)
    worker.suspend()
    mesh.processes[f"app-{FAULTY}"].kill()
    try:
        yield FAULTY
    finally:
        worker.resume()  # it sees the exit and restarts the pod
        mesh.kubelet.wait_ready(timeout=90)
        time.sleep(APP_RECONNECT_MAX_SECONDS)


def test_a_failing_replica_is_ejected_and_tried_again_after_the_ejection_time(
    mesh: LocalMesh, faulty_replica: str
) -> None:
    charges = [
        encoded(
            payment_pb2.ChargeRequest(
                idempotency_key=f"outlier-{i}",
                amount=money_pb2.Money(currency_code="USD", minor_units=100 + i),
                payment_token="tok_visa",
                order_id=f"outlier-{i}",
            )
        )
        for i in range(3000)
    ]
    plan = [
        {
            "target": target("payment"),
            "method": "/shop.payment.v1.PaymentService/Charge",
            "requests_b64": charges,
            "count": len(charges),
            "duration": INTERVAL + BASE_EJECTION + INTERVAL + 5,
            "concurrency": 2,
            "pause": 0.05,
            "timeout": 5,
        }
    ]
    results = sorted(probe(client_bootstrap(mesh, "shop", "order"), plan), key=lambda r: r["started"])
    assert len(results) > 300

    faulty_hits = [r["started"] for r in results if pod_of(r["peer"]) == faulty_replica]
    failures = [r for r in results if r["code"] != "OK"]
    assert failures, "the faulty replica was never tried"
    assert all(pod_of(r["peer"]) == faulty_replica and r["code"] == "UNAVAILABLE" for r in failures)

    gaps = [(later - earlier, earlier, later) for earlier, later in itertools.pairwise(faulty_hits)]
    ejected_for, ejected_at, tried_again_at = max(gaps)
    # Ejected at the first outlier sweep (every `interval`) once it had failed enough...
    assert ejected_at <= faulty_hits[0] + INTERVAL + 2, (faulty_hits[:5], ejected_at)
    # ...kept out for the ejection time (un-ejection is checked at a sweep too)...
    assert BASE_EJECTION - 2 <= ejected_for <= BASE_EJECTION + INTERVAL + 2, ejected_for
    # ...while it was out, the charges succeeded on the healthy replica...
    during = [r for r in results if ejected_at < r["started"] < tried_again_at]
    assert len(during) > 100
    succeeded = sum(r["code"] == "OK" for r in during) / len(during)
    assert succeeded >= 0.99, succeeded
    assert {pod_of(r["peer"]) for r in during} == {"payment-0"}
    # ...and it was tried again afterwards (`tried_again_at` is a call that reached it).
    assert tried_again_at - ejected_at >= BASE_EJECTION - 2
