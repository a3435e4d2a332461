"""The soak's growth rule (shopmesh.resilience.sampling) on made-up series, and the sampler on
real processes: one that leaks memory and files is found growing, a steady one bounded."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
import time

import pytest

from shopmesh.resilience.sampling import Sample, Sampler, growth, slope


def series(rss: object, fds: object = lambda t: 20, seconds: int = 600, every: float = 2.0) -> list[Sample]:
    return [
        Sample(t, float(rss(t)), int(fds(t)), t / 100)  # type: ignore[operator]
        for t in (i * every for i in range(int(seconds / every) + 1))
    ]


def test_least_squares_slope() -> None:
    assert slope([(0, 1), (1, 3), (2, 5)]) == pytest.approx(2.0)
    assert slope([(5, 1)]) == 0.0
    assert slope([(1, 1), (1, 2)]) == 0.0


@pytest.mark.parametrize(
    ("rss", "fds", "verdicts"),
    [
        pytest.param(
            lambda t: 80 + math.sin(t) * 3,
            lambda t: 20 + (t % 7 == 0),
            ("bounded", "bounded"),
            id="steady-noisy",
        ),
        pytest.param(
            lambda t: 60 + min(t, 200) * 0.1,
            lambda t: 10 + min(t, 250) // 25,
            ("bounded", "bounded"),
            id="warm-up-then-flat",
        ),
        pytest.param(
            lambda t: 80 + t * 0.01, lambda t: 20, ("growing", "bounded"), id="leaking-10-kib-a-second"
        ),
        pytest.param(
            lambda t: 80, lambda t: 20 + t // 60, ("bounded", "growing"), id="leaking-a-file-a-minute"
        ),
        # A step inside the judged half counts by its fitted share: a small one passes, a large
        # one reads as growth (ten minutes cannot tell it from a leak; a longer run can).
        pytest.param(
            lambda t: 80 + (1 if t > 450 else 0),
            lambda t: 20 + (2 if t > 450 else 0),
            ("bounded", "bounded"),
            id="small-step-in-the-second-half",
        ),
        pytest.param(
            lambda t: 80 + (6 if t > 450 else 0), lambda t: 20, ("growing", "bounded"), id="large-late-step"
        ),
    ],
)
def test_growth_verdicts(rss: object, fds: object, verdicts: tuple[str, str]) -> None:
    figures = growth(series(rss, fds))
    assert (figures["rss"], figures["open_files"]) == verdicts, figures
    assert figures["verdict"] == ("growing" if "growing" in verdicts else "bounded")


def test_too_few_samples_give_no_verdict() -> None:
    assert growth(series(lambda t: 80, seconds=6))["verdict"] == "too short"
    assert growth([])["verdict"] == "no samples"


LEAKER = textwrap.dedent(
    """
    import os, sys, time
    kept, files = [], []
    leak = sys.argv[1] == "leak"
    while True:
        if leak:
            kept.append(bytearray(1024 * 1024))          # 1 MiB ...
            files.append(open(os.devnull))               # ... and a file, every 50 ms
        time.sleep(0.05)
    """
)


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "verdict"), [("leak", "growing"), ("steady", "bounded")])
def test_the_sampler_tells_a_leaking_process_from_a_steady_one(mode: str, verdict: str) -> None:
    process = subprocess.Popen([sys.executable, "-c", LEAKER, mode])
    try:
        with Sampler({"child": process.pid}, interval=0.1) as sampler:
            time.sleep(4)
    finally:
        process.kill()
        process.wait()
    figures = growth(sampler.series["child"])
    assert figures["samples"] >= 20
    assert figures["verdict"] == verdict, figures
    assert figures["threads"]["last"] == 1  # the child's one thread, counted from /proc
    if mode == "leak":
        assert (figures["rss"], figures["open_files"]) == ("growing", "growing")


@pytest.mark.slow
def test_a_process_that_exits_is_noted_gone() -> None:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(0.5)"])
    with Sampler({"short-lived": process.pid}, interval=0.1) as sampler:
        process.wait()
        time.sleep(0.5)
    assert "short-lived" in sampler.gone
    assert sampler.series["short-lived"]
