"""The figures of a chaos run (scripts/chaos): what the customers saw during each experiment's
event, how long each pod took to be Ready again, what the books say, and which bars hold.

Three clocks are set side by side, all wall-clock epoch seconds: the Chaos Toolkit journal (when
each activity began and ended), the load's record of every call (shopmesh.resilience.load), and
the samples of `mesh ps` taken every half second (each pod's readiness, restarts, and when the
kubelet last saw it become Ready). The *event* of an experiment runs from the start of its
method's first activity to the end of its last one (a pause after an activity is not part of
it: the settling time the steady state is judged on afterwards is not the event). A pod's
recovery counts from the kill: the end of the `mesh kill` command, which sends SIGKILL last.
"""

from __future__ import annotations

import datetime
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shopmesh.resilience.load import CallRecord

#: Codes that are a failure of the shop, not an answer to the customer (the availability SLO's).
INTERNAL_CODES = frozenset({"INTERNAL", "UNKNOWN"})
#: "Any single pod killed", for each service: the pod each of these experiments kills (one
#: experiment, chaos/local/pod-killed.yaml, run with `--var pod=...`). order's is order-1 (v1),
#: so that order-0, killed mid-saga later in the run, is not restarted twice within ten minutes
#: (CrashLoopBackOff would then hold its second start 10 s), as (d) kills payment-1, not payment-0.
KILLED_POD = {
    "payment-pod-killed": "payment-0",
    "order-pod-killed": "order-1",
    "inventory-pod-killed": "inventory-0",
}


def epoch(iso: str) -> float:
    return datetime.datetime.fromisoformat(iso).timestamp()


def event_window(journal: Mapping[str, Any]) -> tuple[float, float]:
    """From the start of the method's first activity to the end of its last."""
    runs = journal.get("run") or []
    if not runs:
        raise ValueError("the journal has no method run: the experiment did not start")
    return epoch(runs[0]["start"]), epoch(runs[-1]["end"])


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile (0 when there is no value)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def calls_between(timeline: Sequence[CallRecord], start: float, end: float) -> dict[str, Any]:
    """The calls that began in [start, end]: how many, how many failed and with which codes,
    their p99 (all methods, and CreateOrder alone)."""
    calls = [call for call in timeline if start <= call.began <= end]
    failed = Counter(f"{call.method} {call.code}" for call in calls if call.code != "OK")
    created = [call.seconds for call in calls if call.method == "CreateOrder"]
    return {
        "seconds": round(end - start, 1),
        "calls": len(calls),
        "failed": sum(failed.values()),
        "failed_share": round(sum(failed.values()) / len(calls), 5) if calls else None,
        "failed_by_method_and_code": dict(sorted(failed.items())),
        "codes": sorted({call.code for call in calls if call.code != "OK"}),
        "p99_ms": round(percentile([call.seconds for call in calls], 0.99) * 1000, 1),
        "create_order_p99_ms": round(percentile(created, 0.99) * 1000, 1),
    }


@dataclass(frozen=True)
class PodState:
    ready: bool
    restarts: int
    ready_since: float | None  # when it last became Ready (epoch seconds), as the kubelet says


@dataclass(frozen=True)
class PodSample:
    at: float  # epoch seconds
    pods: Mapping[str, PodState]


def recoveries(
    samples: Sequence[PodSample], since: float, until: float, before: float | None = None
) -> dict[str, dict[str, Any]]:
    """Each pod that was not Ready, or restarted, between `before` (default `since`: when the
    failure was being injected) and `until`: when it was first seen not Ready, when it became
    Ready again (the kubelet's own time of it), both in seconds after `since` (the kill, or the
    start of the event), and its restarts."""
    start = since if before is None else min(before, since)
    window = [sample for sample in samples if start <= sample.at <= until]
    earlier_sample = next((s for s in reversed(samples) if s.at < start), window[0] if window else None)
    if earlier_sample is None:
        return {}
    out: dict[str, dict[str, Any]] = {}
    for pod, earlier in earlier_sample.pods.items():
        states = [(sample.at, sample.pods[pod]) for sample in window if pod in sample.pods]
        down = next((at for at, state in states if not state.ready), None)
        restarted = next((at for at, state in states if state.restarts > earlier.restarts), None)
        if down is None and restarted is None:
            continue
        noticed = min(t for t in (down, restarted) if t is not None)
        back = next((state for at, state in states if at >= noticed and state.ready), None)
        ready_again = back.ready_since if back is not None and back.ready_since is not None else None
        out[pod] = {
            "not_ready_seen_at": round(max(0.0, down - since), 1) if down is not None else None,
            "ready_again_at": round(ready_again - since, 1) if ready_again is not None else None,
            "restarts": (states[-1][1].restarts if states else earlier.restarts) - earlier.restarts,
        }
    return out


def books_figures(books: Mapping[str, Any]) -> dict[str, Any]:
    """What the consistency check found, in the issue's words."""
    counts = books.get("counts", {})
    return {
        "consistent": books.get("consistent"),
        "lost_orders": counts.get("lost_order", 0) + counts.get("lost_reservation", 0),
        "stock_drift": counts.get("stock_drift", 0),
        "orphan_charges": counts.get("orphan_charge", 0),
        "not_at_rest": len(books.get("not_at_rest") or {}),
        "findings": sum(counts.values()),
    }


def _bar(what: str, met: bool, seen: Any) -> dict[str, Any]:
    return {"bar": what, "met": bool(met), "seen": seen}


def bars(name: str, figures: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The issue's bars for this experiment, judged on its figures."""
    event, books, pods = figures["event"], figures["books"], figures["pods"]
    journal_ok = figures["journal"]["status"] == "completed" and not figures["journal"]["deviated"]
    out = [
        _bar("Chaos Toolkit run completed, steady state met before and after", journal_ok, figures["journal"])
    ]
    books_ok = books["consistent"] is True
    if name in KILLED_POD:
        pod = KILLED_POD[name]
        mttr = (pods.get(pod) or {}).get("ready_again_at")
        out.append(_bar(f"{pod} Ready again < 30 s after the kill", mttr is not None and mttr < 30, mttr))
        share = figures["window"]["failed_share"]
        out.append(
            _bar(
                f"< 1 % of calls failed in the {figures['window']['seconds']:g} s from the kill",
                share is not None and share < 0.01,
                share,
            )
        )
        out.append(_bar("0 orders lost (the books agree)", books_ok and books["lost_orders"] == 0, books))
    elif name == "order-killed-mid-saga":
        mttr = (pods.get("order-0") or {}).get("ready_again_at")
        out.append(_bar("order-0 Ready again < 30 s after the kill", mttr is not None and mttr < 30, mttr))
        out.append(_bar("every order at rest after the restart, the books agree", books_ok, books))
    elif name == "inventory-database-lost":
        internal = sorted(INTERNAL_CODES & set(event["codes"]))
        out.append(_bar("no INTERNAL or UNKNOWN during the outage", not internal, event["codes"]))
        # Every inventory pod (two at the autoscaler's floor): none restarted, each Ready again.
        inventory = {pod: seen for pod, seen in pods.items() if pod.startswith("inventory-")}
        out.append(
            _bar(
                "inventory Ready again with no restart",
                bool(inventory)
                and all(
                    seen.get("restarts", 0) == 0 and seen.get("ready_again_at") is not None
                    for seen in inventory.values()
                ),
                inventory,
            )
        )
        out.append(_bar("the books agree", books_ok, books))
    elif name == "control-plane-down":
        share = event["failed_share"]
        out.append(
            _bar(
                "the data plane keeps serving (< 0.5 % of calls failed during the outage)",
                share is not None and share < 0.005,
                share,
            )
        )
        payment = pods.get("payment-1") or {}
        back = payment.get("ready_again_at")
        started = figures.get("control_plane_back_at")
        out.append(
            _bar(
                "payment-1 restarted, not Ready until the control plane is back, then Ready",
                payment.get("restarts", 0) >= 1
                and back is not None
                and started is not None
                and back >= started,
                {
                    "ready_again_at": back,
                    "control_plane_back_at": started,
                    "restarts": payment.get("restarts"),
                },
            )
        )
        out.append(_bar("the books agree", books_ok, books))
    else:  # payment-faults, certificates-rotated
        out.append(_bar("the books agree", books_ok, books))
        if name == "certificates-rotated":
            out.append(_bar("no call failed during the rotations", event["failed"] == 0, event["failed"]))
    return out


def render(report: Mapping[str, Any]) -> str:
    lines = [
        f"chaos: {'PASSED' if report['passed'] else 'FAILED'}  ({report['command']})",
        f"machine: {report['machine']['nproc']} CPUs, {report['machine']['cpu_model']}, "
        f"load average at start {report['machine']['load_average_at_start']}, "
        f"at end {report.get('load_average_at_end')}",
        f"load: {report['rate']} orders/s through the ingress (each: ListProducts, CreateOrder, "
        "CancelOrder once confirmed)",
    ]
    for name, figures in report["experiments"].items():
        if "skipped" in figures:
            lines.append(f"\n{name}: NOT RUN: {figures['skipped']}")
            continue
        event, books = figures["event"], figures["books"]
        lines.append(
            f"\n{name} ({figures['mesh']}): journal {figures['journal']['status']}"
            f"{', deviated' if figures['journal']['deviated'] else ''}"
        )
        lines.append(
            f"  event {event['seconds']} s: {event['calls']} calls, {event['failed']} failed "
            f"({100 * (event['failed_share'] or 0):.2f} %) {event['failed_by_method_and_code'] or ''}; "
            f"p99 {event['p99_ms']} ms (CreateOrder {event['create_order_p99_ms']} ms)"
        )
        window = figures["window"]
        lines.append(
            f"  the {window['seconds']:g} s from its start: {window['calls']} calls, "
            f"{window['failed']} failed ({100 * (window['failed_share'] or 0):.2f} %), "
            f"p99 {window['p99_ms']} ms"
        )
        if figures["pods"]:
            lines.append(f"  pods (seconds after {figures['recovery_from']}):")
        for pod, recovery in figures["pods"].items():
            lines.append(
                f"    {pod}: not Ready seen at +{recovery['not_ready_seen_at']} s, Ready again at "
                f"+{recovery['ready_again_at']} s, {recovery['restarts']} restart(s)"
            )
        lines.append(
            f"  books: {'agree' if books['consistent'] else 'DISAGREE'}; lost orders {books['lost_orders']}, "
            f"stock drift {books['stock_drift']}, orphan charges {books['orphan_charges']}, "
            f"not at rest {books['not_at_rest']}"
        )
        for bar in figures["bars"]:
            lines.append(f"  [{'met' if bar['met'] else 'NOT MET'}] {bar['bar']}")
        failed = [r for r in figures["journal"]["failed_activities"]]
        lines += [f"  failed activity: {activity}" for activity in failed]
    return "\n".join(lines)
