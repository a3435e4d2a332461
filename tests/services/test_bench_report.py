"""The bench's verdicts: a figure the run could not resolve is not called met."""

from __future__ import annotations

from typing import Any

from shopmesh.bench.report import targets


def _report(ingress_hop_p90: float) -> dict[str, Any]:
    proxies = {
        "concurrency": 4,
        "sidecar_cpu_ms": 0.4,
        "ingress_cpu_ms": 0.7,
        "sidecar_hop_ms": {"p50": 0.3, "p90": 0.8},
        "ingress_hop_ms": {"p50": -0.2, "p90": ingress_hop_p90},
    }
    return {"echo": {"per_second": 3000.0}, "up_plain_seconds": {"warm": 1.0, "cold": 1.5},
            "mesh": {"proxies": [proxies], "orders": {"orders_per_second": 120.0}}}  # fmt: skip


def test_a_hop_below_zero_is_noise_not_a_met_target() -> None:
    rows = {row["figure"]: row["met"] for row in targets(_report(-3.8))}
    assert rows["ingress hop p90, c4 (ms)"] is None
    assert rows["sidecar hop p90, c4 (ms)"] is True
    assert rows["ingress CPU per relayed call, c4 (ms)"] is False
    assert rows["scripts/up --plain ready, cold (s)"] is False


def test_a_resolved_hop_is_judged() -> None:
    assert {row["figure"]: row["met"] for row in targets(_report(1.5))}["ingress hop p90, c4 (ms)"] is False
