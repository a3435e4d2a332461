"""The figures of a chaos run (shopmesh.resilience.recovery): calls in an event's window, a
pod's recovery from `mesh ps` samples, the books in the issue's words, and the bars."""

from __future__ import annotations

from typing import Any

from shopmesh.resilience.load import CallRecord
from shopmesh.resilience.recovery import (
    PodSample,
    PodState,
    bars,
    books_figures,
    calls_between,
    event_window,
    recoveries,
)

T0 = 1_800_000_000.0


def test_the_event_runs_from_the_first_activity_to_the_end_of_the_last() -> None:
    journal = {
        "run": [
            {"start": "2027-01-15T08:00:00+00:00", "end": "2027-01-15T08:00:01+00:00"},
            {"start": "2027-01-15T08:00:01+00:00", "end": "2027-01-15T08:00:12.5+00:00"},
        ]
    }
    start, end = event_window(journal)
    assert end - start == 12.5


def test_calls_in_the_window_their_failures_by_code_and_p99() -> None:
    timeline = [CallRecord(T0 + i * 0.1, "CreateOrder", "OK", 0.010) for i in range(99)]
    timeline.append(CallRecord(T0 + 5, "CreateOrder", "UNAVAILABLE", 2.0))
    timeline.append(CallRecord(T0 + 50, "ListProducts", "INTERNAL", 0.001))  # after the window
    figures = calls_between(timeline, T0, T0 + 10)
    assert figures["calls"] == 100
    assert figures["failed"] == 1
    assert figures["failed_share"] == 0.01
    assert figures["failed_by_method_and_code"] == {"CreateOrder UNAVAILABLE": 1}
    assert figures["codes"] == ["UNAVAILABLE"]
    assert figures["p99_ms"] == 10.0  # the 99th of 100 by nearest rank
    assert calls_between(timeline, T0 + 100, T0 + 110)["failed_share"] is None


def test_a_pods_recovery_counts_from_the_kill_to_when_the_kubelet_saw_it_ready() -> None:
    up, other = PodState(True, 0, T0 - 100), PodState(True, 0, T0 - 100)
    samples = [
        PodSample(T0 - 1, {"payment-0": up, "payment-1": other}),
        PodSample(T0 + 0.5, {"payment-0": PodState(False, 0, None), "payment-1": other}),
        PodSample(T0 + 1.0, {"payment-0": PodState(False, 1, None), "payment-1": other}),
        # sampled at +4.0, Ready since +3.2 by the kubelet's clock: that is the recovery
        PodSample(T0 + 4.0, {"payment-0": PodState(True, 1, T0 + 3.2), "payment-1": other}),
    ]
    assert recoveries(samples, T0, T0 + 10) == {
        "payment-0": {"not_ready_seen_at": 0.5, "ready_again_at": 3.2, "restarts": 1}
    }
    # still down at the end of the window: no recovery time
    assert recoveries(samples[:3], T0, T0 + 10)["payment-0"]["ready_again_at"] is None
    # restarted so fast that no sample saw it not Ready: the restart count tells
    quick = [samples[0], PodSample(T0 + 2, {"payment-0": PodState(True, 1, T0 + 1.5), "payment-1": other})]
    assert recoveries(quick, T0, T0 + 10)["payment-0"] == {
        "not_ready_seen_at": None,
        "ready_again_at": 1.5,
        "restarts": 1,
    }


def _figures(share: float, mttr: float | None, counts: dict[str, int]) -> dict[str, Any]:
    books = books_figures({"consistent": not any(counts.values()), "counts": counts, "not_at_rest": {}})
    return {
        "journal": {"status": "completed", "deviated": False},
        "event": {"failed_share": share, "failed": 0, "codes": []},
        "window": {"failed_share": share, "seconds": 60.0},
        "pods": {"payment-0": {"ready_again_at": mttr, "restarts": 1}},
        "books": books,
    }


def test_the_pod_kill_bars() -> None:
    met = bars("payment-pod-killed", _figures(0.004, 6.5, {"lost_order": 0}))
    assert all(bar["met"] for bar in met), met
    slow = bars("payment-pod-killed", _figures(0.004, 31.0, {}))
    assert [bar["bar"] for bar in slow if not bar["met"]] == ["payment-0 Ready again < 30 s after the kill"]
    assert "< 1 % of calls failed in the 60 s from the kill" in [bar["bar"] for bar in slow]
    failing = bars("payment-pod-killed", _figures(0.02, 6.5, {"lost_order": 1}))
    assert [bar["met"] for bar in failing] == [True, True, False, False]
    # order's and inventory's kills are judged on their own pod: payment-0's recovery is not theirs
    order = bars("order-pod-killed", _figures(0.004, 6.5, {}))
    assert [bar["bar"] for bar in order if not bar["met"]] == ["order-1 Ready again < 30 s after the kill"]
    inventory = {**_figures(0.004, None, {}), "pods": {"inventory-0": {"ready_again_at": 2.3, "restarts": 1}}}
    assert all(bar["met"] for bar in bars("inventory-pod-killed", inventory))
    assert (
        books_figures({"counts": {"lost_order": 2, "lost_reservation": 1, "orphan_charge": 3}})["lost_orders"]
        == 3
    )


def test_the_database_outage_bar_holds_only_if_no_inventory_pod_restarted() -> None:
    def outage(pods: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
        return bars("inventory-database-lost", {**_figures(0.2, None, {}), "pods": pods})

    back = {"ready_again_at": 21.3, "restarts": 0}
    assert all(bar["met"] for bar in outage({"inventory-0": back, "inventory-1": back}))
    # the second replica restarted by its livenessProbe: the service was restarted
    restarted = outage({"inventory-0": back, "inventory-1": {"ready_again_at": 24.5, "restarts": 1}})
    assert [bar["bar"] for bar in restarted if not bar["met"]] == ["inventory Ready again with no restart"]
    assert not all(bar["met"] for bar in outage({}))  # never seen not Ready: the outage did not happen
