"""What Istio's metrics cost each proxy: the same calls through two rigs, one whose proxies
record and serve the metrics and one whose proxies do not (`--telemetry compare`).

Both rigs run side by side; the runs alternate between them (off, on, off, on, ... for each
path and concurrency), so a change in what else the machine does meets both alike. The
difference of the proxies' CPU per relayed call is the metrics' cost. It is a difference of
two noisy numbers: `record_cost` (in measure.py) gives the recording's own cost in this
process, exactly, and `scrape_cost` what one scrape of a proxy's page costs.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import grpc

from shopmesh.localmesh.istiostats import DESTINATION, IstioStats
from shopmesh.localmesh.observation import RelayedCall, VerifiedPeer
from shopmesh.localmesh.proxybench.measure import bench_directory, measure
from shopmesh.localmesh.proxybench.rig import ECHO_PORT, rig

PROXIES = ("sidecar", "ingress")
MODES = ("off", "on")


def compare(root: Path, concurrencies: Sequence[int], rounds: int, **settings: Any) -> list[dict[str, Any]]:
    """Every (concurrency, proxy, telemetry off/on) measured `rounds` times, alternating."""
    runs = []
    with ExitStack() as cleanup:
        rigs = {mode: cleanup.enter_context(rig(root / mode, telemetry=mode == "on")) for mode in MODES}
        for concurrency in concurrencies:
            for _ in range(rounds):
                for path in PROXIES:
                    for mode in MODES:
                        run = measure(rigs[mode], path, concurrency, **settings)
                        runs.append({**run, "telemetry": mode})
    return runs


def summarise_comparison(runs: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per concurrency and proxy: its mean CPU per call without and with the metrics."""
    rows = []
    for concurrency in sorted({run["concurrency"] for run in runs}):
        for proxy in PROXIES:
            means = {
                mode: statistics.fmean(
                    run["cpu_ms_per_call"][proxy]
                    for run in runs
                    if (run["concurrency"], run["path"], run["telemetry"]) == (concurrency, proxy, mode)
                )
                for mode in MODES
            }
            rows.append(
                {
                    "concurrency": concurrency,
                    "proxy": proxy,
                    "off_cpu_ms": round(means["off"], 3),
                    "on_cpu_ms": round(means["on"], 3),
                    "metrics_cpu_ms": round(means["on"] - means["off"], 3),
                }
            )
    return rows


def scrape_cost(peers: int = 10, codes: int = 4, scrapes: int = 200) -> dict[str, float]:
    """Milliseconds of CPU one scrape's page costs a sidecar that has seen `peers` callers
    answered with `codes` gRPC codes each (every series filled), and the page's size."""
    with tempfile.TemporaryDirectory(prefix="shopmesh-scrape-") as temporary:
        directory, pods, caller = bench_directory(Path(temporary))
        stats = IstioStats(DESTINATION, pods["echo-0"], directory, ECHO_PORT)
        for peer in range(peers):
            # more callers: other certificates of the same identity (unknown to the directory)
            certificate = caller if peer == 0 else VerifiedPeer(caller.identity, f"{peer:064x}")
            for code in list(grpc.StatusCode)[:codes]:
                stats.observe(
                    RelayedCall("/bench.Echo/Unary", certificate, (), code, 1, 64, 1, 64, 0.003, "")
                )
        began = time.process_time()
        for _ in range(scrapes):
            page = stats.render()
        return {
            "render_ms": round((time.process_time() - began) / scrapes * 1000, 3),
            "page_bytes": len(page.encode()),
            "series": peers * codes,
        }
