"""One measured run per path and concurrency, and what they add up to for each proxy."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc

from shopmesh.bench import proc_status
from shopmesh.localmesh.ca import spiffe_id
from shopmesh.localmesh.forwarding import PEER_ID, CallTally
from shopmesh.localmesh.observation import RelayedCall
from shopmesh.localmesh.proxybench.rig import CLIENT_ACCOUNT, Rig, python_module

PATHS = ("direct", "sidecar", "ingress")


def _percentiles(latencies: list[float]) -> dict[str, float | None]:
    ordered = sorted(latencies)

    def nearest_rank(fraction: float) -> float | None:
        return (
            round(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] * 1000, 3) if ordered else None
        )

    return {"p50": nearest_rank(0.5), "p90": nearest_rank(0.9), "p99": nearest_rank(0.99)}


@contextmanager
def _profiled(directory: Path | None, name: str, pid: int) -> Iterator[None]:
    """Meanwhile, py-spy records `pid`'s Python stacks into `directory/name.txt` (collapsed),
    `perf stat` counts its context switches into `directory/name.perf` and `perf record`
    samples it into `directory/name.perf.data` (`perf report -i ... --sort dso`), each when
    installed."""
    if directory is None:
        yield
        return
    directory.mkdir(parents=True, exist_ok=True)
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    commands = []
    if Path(py_spy).exists():
        commands.append(
            [py_spy, "record", "--pid", str(pid), "--rate", "200", "--format", "raw", "--threads",
             "--nonblocking", "--output", str(directory / f"{name}.txt")]
        )  # fmt: skip
    if shutil.which("perf"):
        commands.append(
            ["perf", "stat", "-e", "task-clock,context-switches,cpu-migrations", "-p", str(pid),
             "-o", str(directory / f"{name}.perf")]
        )  # fmt: skip
        commands.append(
            ["perf", "record", "-F", "999", "-g", "-p", str(pid), "-o", str(directory / f"{name}.perf.data")]
        )
    recorders = [subprocess.Popen(c, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for c in commands]
    time.sleep(1.0 if recorders else 0)  # they attach
    try:
        yield
    finally:
        for recorder in recorders:
            recorder.send_signal(signal.SIGINT)
            recorder.wait(30)


def measure(
    bench: Rig,
    path: str,
    concurrency: int,
    *,
    calls: int,
    warmup: int,
    size: int,
    rate: float | None = None,
    profile: Path | None = None,
) -> dict[str, Any]:
    """`calls` unary calls of `size` bytes along `path` (one of PATHS), `concurrency` at a time
    (at most `rate` a second), after `warmup` unmeasured ones: latencies, and the CPU per
    call of every process of the rig and of the load process."""
    target, credentials = {
        "direct": (bench.echo, "insecure"),
        "sidecar": (bench.sidecar, "xds"),
        "ingress": (bench.ingress, "insecure"),
    }[path]
    env = {key: value for key, value in os.environ.items() if not key.startswith("GRPC_XDS")}
    env["GRPC_XDS_BOOTSTRAP"] = str(bench.client_bootstrap)
    load = subprocess.Popen(
        python_module("shopmesh.localmesh.proxybench.peers", "load", target, "--credentials", credentials,
                "--concurrency", str(concurrency), "--calls", str(calls),
                "--warmup", str(warmup), "--size", str(size), *(["--rate", str(rate)] if rate else [])),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    assert load.stdin is not None
    assert load.stdout is not None
    with ExitStack() as cleanup:
        cleanup.callback(load.kill)
        if load.stdout.readline().strip() != "WARM":
            raise RuntimeError(f"the {path} load did not warm up (exit {load.wait()})")
        watched = {name: process.pid or 0 for name, process in bench.processes.items()}
        watched["load"] = load.pid
        proxy = path if path in ("sidecar", "ingress") else None
        with _profiled(profile, f"{path}-c{concurrency}", watched[proxy]) if proxy else ExitStack():
            before = {name: proc_status(pid)["cpu_seconds"] for name, pid in watched.items()}
            load.stdin.write("go\n")
            load.stdin.flush()
            report = json.loads(load.stdout.readline())
            after = {name: proc_status(pid)["cpu_seconds"] for name, pid in watched.items()}
        load.stdin.close()
        load.wait(30)
    done = len(report["latencies"])
    return {
        "path": path,
        "concurrency": concurrency,
        "calls": done,
        "failures": report["failures"],
        "calls_per_second": round(done / report["seconds"], 1),
        "latency_ms": _percentiles(report["latencies"]),
        "cpu_ms_per_call": {
            name: round((after[name] - before[name]) * 1000 / max(done, 1), 3)
            for name in watched
            if name != "controlplane"
        },
    }


class _Discard:
    """The no-op observer: what handing a call over costs, with nothing done with it."""

    def observe(self, call: RelayedCall) -> None:
        pass


def observer_cost(samples: int = 200_000) -> float:
    """Microseconds of CPU per call that handing each relayed call to a (no-op) observer adds to
    a proxy: building the `RelayedCall` and calling `observe`, measured in this process."""
    received = (("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"), ("x-request-id", "c" * 36))
    headers = ((PEER_ID, "sidecar~127.254.1.1~echo-0.shop~shop.svc.cluster.local"),)
    caller, discard = spiffe_id("shop", CLIENT_ACCOUNT), _Discard()

    def run(observe: bool) -> float:
        began = time.process_time()
        for _ in range(samples):
            tally = CallTally(received, caller)  # kept with or without an observer
            if observe:
                tally.report(discard, "/bench.Echo/Unary", grpc.StatusCode.OK, headers, ())
        return time.process_time() - began

    run(True)  # warm up
    return round((run(True) - run(False)) / samples * 1e6, 2)


def summarise(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per concurrency: each proxy's CPU per relayed call and the latency its hop adds."""
    by_key = {(run["path"], run["concurrency"]): run for run in runs}
    rows = []
    for concurrency in sorted({run["concurrency"] for run in runs}):
        direct, sidecar, ingress = (by_key[(p, concurrency)] for p in PATHS)

        def added(outer: dict[str, Any], inner: dict[str, Any], percentile: str) -> float:
            return round(float(outer["latency_ms"][percentile]) - float(inner["latency_ms"][percentile]), 3)

        rows.append(
            {
                "concurrency": concurrency,
                # one grpc.aio server call (the echo's) plus one client call (the load's)
                "server_plus_client_cpu_ms": round(
                    direct["cpu_ms_per_call"]["echo"] + direct["cpu_ms_per_call"]["load"], 3
                ),
                "sidecar_cpu_ms": sidecar["cpu_ms_per_call"]["sidecar"],
                "ingress_cpu_ms": ingress["cpu_ms_per_call"]["ingress"],
                "sidecar_hop_ms": {p: added(sidecar, direct, p) for p in ("p50", "p90")},
                "ingress_hop_ms": {p: added(ingress, sidecar, p) for p in ("p50", "p90")},
            }
        )
    return rows
