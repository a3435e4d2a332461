"""One measured run per path and concurrency, and what they add up to for each proxy."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import grpc

from shopmesh.bench import proc_status
from shopmesh.localmesh.ca import CertificateAuthority
from shopmesh.localmesh.forwarding import PEER_ID, CallTally
from shopmesh.localmesh.istiostats import DESTINATION, SOURCE, IstioStats
from shopmesh.localmesh.observation import CallObserver, RelayedCall, VerifiedPeer
from shopmesh.localmesh.peers import PeerDirectory, PeerDirectoryWriter, WorkloadMetadata, workload_metadata
from shopmesh.localmesh.placement import place
from shopmesh.localmesh.proxybench.rig import ECHO_PORT, MANIFESTS, Rig, python_module
from shopmesh.manifests.model import MeshObjects

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


def bench_directory(directory: Path) -> tuple[PeerDirectory, dict[str, WorkloadMetadata], VerifiedPeer]:
    """A peer directory as the rig's control plane writes it (the echo pod, the ingress, the
    client), with one certificate of the ingress recorded: the caller of the measured calls."""
    objects = MeshObjects.from_yaml(MANIFESTS)
    placement = place(objects)
    workloads = workload_metadata(objects, placement)
    writer = PeerDirectoryWriter(directory / "peer-metadata.json", workloads)
    issued = CertificateAuthority.create().issue(placement.ingress.spiffe_id, datetime.timedelta(hours=1))
    writer.record(placement.ingress.node_id, issued)
    by_pod = {workload.pod: workload for workload in workloads}
    return PeerDirectory(writer.path), by_pod, VerifiedPeer(issued.spiffe_id, issued.sha256)


def observer_cost(samples: int = 100_000) -> dict[str, float]:
    """Microseconds of CPU per call that each proxy's observer adds, measured in this process:
    handing the call over to a no-op observer (building the `RelayedCall`, calling `observe`),
    and recording Istio's metrics for it as the sidecar (destination) and the ingress (source)
    do. The calls vary in status and duration, so several series and buckets are touched."""
    received = (("traceparent", "00-" + "a" * 32 + "-" + "b" * 16 + "-01"), ("x-request-id", "c" * 36))
    codes = (grpc.StatusCode.OK,) * 8 + (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.UNAVAILABLE)
    with tempfile.TemporaryDirectory(prefix="shopmesh-observer-") as directory:
        peers, pods, caller = bench_directory(Path(directory))
        echo, ingress = pods["echo-0"], pods["istio-ingressgateway-0"]
        headers = ((PEER_ID, echo.node_id),)
        observers: dict[str, CallObserver] = {
            "no-op": _Discard(),
            "sidecar": IstioStats(DESTINATION, echo, peers, ECHO_PORT),
            "ingress": IstioStats(SOURCE, ingress, peers),
        }

        def run(observer: CallObserver | None) -> float:
            began = time.process_time()
            for index in range(samples):
                tally = CallTally(received, caller)  # kept with or without an observer
                tally.started -= (index % 7) * 0.004  # durations spread over a few buckets
                if observer is not None:
                    tally.report(observer, "/bench.Echo/Unary", codes[index % 10], headers, ())
            return time.process_time() - began

        for observer in observers.values():
            run(observer)  # warm up: every series exists
        bare = run(None)
        return {
            name: round((run(observer) - bare) / samples * 1e6, 2) for name, observer in observers.items()
        }


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
