"""scripts/bench's Python entry (shopmesh.bench) measures what it says and leaves nothing behind.

It checks the tool's correctness on a tiny load — every call counted, every ratio from numbers
of the same run, every service's memory read, every process stopped — never its speed: speed is
what the benchmark reports.
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

from shopmesh.bench.report import targets

pytestmark = pytest.mark.slow  # runs the benchmark

ROOT = Path(__file__).resolve().parents[2]
SERVICES = {"order", "inventory", "payment"}


def _alive(pid: int) -> bool:
    return Path(f"/proc/{pid}").exists()  # reaped: the bench waited for each process it stopped


def _bench(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "shopmesh.bench", *arguments]


def test_bench_reports_every_call_and_each_services_memory(tmp_path: Path) -> None:
    # 400 calls: enough CPU (about 0.3 ms a call) for /proc's 10 ms ticks to see every phase's
    calls = 400
    arguments = ["--orders", "20", "--calls", str(calls), "--concurrency", "4", "2"]
    arguments += ["--state", str(tmp_path / "state"), "--json"]
    result = subprocess.run(
        _bench(*arguments), cwd=ROOT, capture_output=True, text=True, timeout=300, check=False
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)

    echo = report["echo"]
    assert (echo["ok"], echo["errors"]) == (calls, {})
    assert echo["per_second"] == max(echo["per_second_each_run"]) > 0  # measured at start and end
    assert echo["server_cpu_ms"]["echo"] > 0
    assert set(report["up_plain_seconds"]) == {"cold", "warm"}
    assert all(seconds > 0 for seconds in report["up_plain_seconds"].values())
    run = report["sqlite"]
    assert set(run["idle_rss_mib"]) == SERVICES
    assert all(mib > 0 for mib in run["idle_rss_mib"].values())
    for concurrency in ("c4", "c2"):
        created = run["CreateOrder"][concurrency]
        assert (created["ok"], created["errors"], created["outcomes"]) == (20, {}, {"CONFIRMED": 20})
        latency = created["latency_ms"]
        assert 0 < latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]
        assert set(created["server_cpu_ms"]) == {*SERVICES, "total"}
        assert created["server_cpu_ms"]["total"] == pytest.approx(
            sum(created["server_cpu_ms"][service] for service in SERVICES), abs=0.01
        )
    for method, service in (("GetProduct", "inventory"), ("GetOrder", "order")):
        assert (run[method]["ok"], run[method]["errors"]) == (calls, {})
        assert set(run[method]["server_cpu_ms"]) == {service, "total"}
    for usage in run["rss_after_mib"].values():
        assert usage["peak_rss_mib"] >= usage["rss_mib"] > 0
    pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", result.stderr)]
    assert len(pids) == 1 + 2 + 3  # the echo, the two up --plain runs, the stack's services
    assert [pid for pid in pids if _alive(pid)] == []  # stopped before the report was printed
    assert report["command"] == "scripts/bench " + " ".join(arguments)
    assert report["machine"]["nproc"] >= 1
    assert report["targets"] == targets(report)
    figures = {row["figure"]: row for row in report["targets"]}
    ratio = figures["GetProduct calls/s / echo calls/s"]
    assert ratio["sqlite"] == pytest.approx(run["GetProduct"]["per_second"] / echo["per_second"], abs=0.001)
    assert "CreateOrder p99, c16 (ms)" not in figures  # not measured at c16: not judged
    assert sorted(path.name for path in (tmp_path / "state" / "sqlite").glob("*.db")) == [
        "inventory.db", "order.db", "payment.db",
    ]  # fmt: skip


def test_ctrl_c_stops_every_process(tmp_path: Path) -> None:
    errors = tmp_path / "bench.err"
    with errors.open("wb") as sink:
        bench = subprocess.Popen(
            _bench(
                "--orders", "100000", "--calls", "20", "--max-seconds", "60", "--state", str(tmp_path / "s")
            ),
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=sink,
            # As a background job of a script starts: SIGINT ignored. Ctrl-C must stop it still.
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
        )
    try:
        deadline = time.monotonic() + 120
        while "loading" not in errors.read_text() and time.monotonic() < deadline:
            assert bench.poll() is None, errors.read_text()
            time.sleep(0.2)
        printed = errors.read_text()
        pids = [int(pid) for pid in re.findall(r"\(pid (\d+)\)", printed)]
        assert len(pids) >= 4, printed  # the echo and the stack's services at least
        time.sleep(1)  # into the load
        bench.send_signal(signal.SIGINT)  # what Ctrl-C sends
        try:
            code = bench.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"scripts/bench still ran 60 s after Ctrl-C:\n{errors.read_text()}")
        assert code == 130, errors.read_text()
        assert [pid for pid in pids if _alive(pid)] == []
        assert "interrupted; every process stopped" in errors.read_text()
    finally:
        if bench.poll() is None:
            bench.kill()
            bench.wait(10)
