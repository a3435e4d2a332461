"""Each process's resident memory, open files and CPU time, sampled over a run, and whether
memory or open files grow without bound.

The rule (`growth`): the first half of a run is warm-up (pools fill, caches and allocator arenas
grow to their working size); over the second half, the least-squares slope of the samples
says where a process is heading. Resident memory is **growing** when that slope adds more than
`max(2 MiB, 2 % of its median)` over the second half; open files when it adds
`max(4, 10 % of their median)`: one more pooled SQLite connection (its file, WAL and shared
memory: 3) and a socket is a pool filling, not a leak. Anything else is **bounded**. So a
10-minute run at 5 orders a second catches a leak of 7 KiB a second (1.4 KiB an order) or of a
file every 400 orders; a stable process wanders by allocator steps that the slope of a hundred
and fifty samples averages out. A single large step late in a run reads as growth, and slower
leaks pass: a longer run tells both apart.
"""

from __future__ import annotations

import os
import statistics
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from shopmesh.bench import proc_status

#: Growth over the judged half above which memory is "growing": this many MiB, or this share.
RSS_GROWTH_MIB = 2.0
RSS_GROWTH_SHARE = 0.02
#: Growth over the judged half from which open files are "growing": this many, or this share.
FD_GROWTH = 4.0
FD_GROWTH_SHARE = 0.10
#: Fewer samples than this in the judged half and there is no verdict.
MIN_SAMPLES = 5
RULE = (
    "least-squares slope over the second half of the run (the first half is warm-up): "
    f"memory grows if it adds more than max({RSS_GROWTH_MIB:g} MiB, {RSS_GROWTH_SHARE:.0%} of its median) "
    f"over that half; open files grow if they add max({FD_GROWTH:g}, {FD_GROWTH_SHARE:.0%} of their median) "
    "or more"
)


@dataclass(frozen=True)
class Sample:
    seconds: float  # since sampling started
    rss_mib: float
    fds: int
    cpu_seconds: float
    #: Not judged: it explains memory a pool of threads takes as it grows to its high-water mark.
    threads: int = 0


def sample(pid: int, seconds: float) -> Sample | None:
    """The process's sample now; None if it is gone."""
    try:
        status = proc_status(pid)
        fds = len(os.listdir(f"/proc/{pid}/fd"))
        threads = len(os.listdir(f"/proc/{pid}/task"))
    except (FileNotFoundError, ProcessLookupError, KeyError):
        return None
    return Sample(seconds, status["rss_mib"], fds, status["cpu_seconds"], threads)


class Sampler:
    """Samples every process of `pids` every `interval` seconds, on a thread of its own."""

    def __init__(self, pids: Mapping[str, int], interval: float) -> None:
        self.pids = dict(pids)
        self.interval = interval
        self.series: dict[str, list[Sample]] = {name: [] for name in self.pids}
        self.gone: dict[str, float] = {}  # process -> when it was first seen gone
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sampler", daemon=True)
        self._started = 0.0

    def __enter__(self) -> Sampler:
        self._started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while True:
            now = time.monotonic() - self._started
            for name, pid in self.pids.items():
                if name in self.gone:
                    continue
                taken = sample(pid, now)
                if taken is None:
                    self.gone[name] = now
                else:
                    self.series[name].append(taken)
            if self._stop.wait(self.interval):
                return


def slope(points: Sequence[tuple[float, float]]) -> float:
    """Least-squares slope of (x, y) points (0 for fewer than two distinct x)."""
    if len(points) < 2:
        return 0.0
    mean_x = statistics.fmean(x for x, _ in points)
    mean_y = statistics.fmean(y for _, y in points)
    spread = sum((x - mean_x) ** 2 for x, _ in points)
    if spread == 0:
        return 0.0
    return sum((x - mean_x) * (y - mean_y) for x, y in points) / spread


def growth(series: Sequence[Sample]) -> dict[str, Any]:
    """One process's figures and verdicts under the rule above."""
    if not series:
        return {"samples": 0, "verdict": "no samples"}
    end = series[-1].seconds
    judged = [s for s in series if s.seconds >= end / 2]
    half = end - judged[0].seconds if judged else 0.0
    rss_slope = slope([(s.seconds, s.rss_mib) for s in judged])
    fd_slope = slope([(s.seconds, float(s.fds)) for s in judged])
    median_rss = statistics.median(s.rss_mib for s in judged) if judged else 0.0
    rss_allowed = max(RSS_GROWTH_MIB, RSS_GROWTH_SHARE * median_rss)
    fds_allowed = max(
        FD_GROWTH, FD_GROWTH_SHARE * (statistics.median(s.fds for s in judged) if judged else 0)
    )
    enough = len(judged) >= MIN_SAMPLES
    rss_verdict = "too short" if not enough else ("growing" if rss_slope * half > rss_allowed else "bounded")
    fd_verdict = "too short" if not enough else ("growing" if fd_slope * half >= fds_allowed else "bounded")
    return {
        "samples": len(series),
        "rss_mib": _figures([s.rss_mib for s in series]),
        "rss_growth_mib_over_second_half": round(rss_slope * half, 2),
        "rss_growth_mib_per_hour": round(rss_slope * 3600, 1),
        "rss_allowed_mib": round(rss_allowed, 2),
        "rss": rss_verdict,
        "fds": _figures([float(s.fds) for s in series]),
        "fd_growth_over_second_half": round(fd_slope * half, 2),
        "fds_allowed": round(fds_allowed, 2),
        "open_files": fd_verdict,
        "threads": _figures([float(s.threads) for s in series]),
        "threads_at_half": judged[0].threads if judged else series[-1].threads,
        "cpu_seconds": round(series[-1].cpu_seconds - series[0].cpu_seconds, 2),
        "verdict": "growing" if "growing" in (rss_verdict, fd_verdict) else rss_verdict,
    }


def _figures(values: Sequence[float]) -> dict[str, float]:
    return {"first": values[0], "last": values[-1], "min": min(values), "max": max(values)}
