"""scripts/bench's Python entry (shopmesh.bench) measures what it says and leaves nothing behind.

It checks the tool's correctness on a tiny load — every order counted, every service's memory
read, every process stopped — never its speed: speed is what the benchmark reports.
"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs the benchmark

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"order", "inventory", "payment"}


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()  # reaped: the bench waited for each service it stopped


def _bench(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "shopmesh.bench", *arguments]


def test_bench_reports_every_order_and_each_services_memory(tmp_path: Path) -> None:
    arguments = ["--orders", "20", "--concurrency", "4", "--state", str(tmp_path / "state"), "--json"]
    result = subprocess.run(
        _bench(*arguments), cwd=ROOT, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    assert report["orders_attempted"] == 20
    assert report["order_outcomes"] == {"CONFIRMED": 20}
    assert (report["CreateOrder"]["ok"], report["CreateOrder"]["errors"]) == (20, {})
    assert (report["GetOrder"]["ok"], report["GetOrder"]["errors"]) == (20, {})
    latency = report["CreateOrder"]["latency_ms"]
    assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
    assert report["orders_per_second"] > 0
    assert set(report["services"]) == SERVICES
    for usage in report["services"].values():
        assert usage["rss_mib"] > 0
        assert usage["peak_rss_mib"] >= usage["rss_mib"]
        assert not _alive(usage["pid"])  # stopped before the report was printed
    assert report["command"] == "scripts/bench " + " ".join(arguments)
    assert report["machine"]["nproc"] >= 1
    assert sorted(path.name for path in (tmp_path / "state").glob("*.db")) == [
        "inventory.db", "order.db", "payment.db",
    ]  # fmt: skip


def test_ctrl_c_stops_every_service(tmp_path: Path) -> None:
    errors = tmp_path / "bench.err"
    with errors.open("wb") as sink:
        bench = subprocess.Popen(
            _bench("--orders", "100000", "--max-seconds", "60", "--state", str(tmp_path / "state")),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )
    try:
        deadline = time.monotonic() + 60
        while "seeding and loading" not in errors.read_text() and time.monotonic() < deadline:
            assert bench.poll() is None, errors.read_text()
            time.sleep(0.2)
        printed = errors.read_text()
        pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", printed)]
        assert len(pids) == 3, printed
        time.sleep(1)  # into the load
        bench.send_signal(signal.SIGINT)  # what Ctrl-C sends
        assert bench.wait(timeout=30) == 130, errors.read_text()
        assert [pid for pid in pids if _alive(pid)] == []
        assert "interrupted; every service stopped" in errors.read_text()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
