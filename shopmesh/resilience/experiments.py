"""`scripts/chaos`: the local Chaos Toolkit experiments (chaos/local/) against a real local mesh
under a fixed load, and their figures.

    python -m shopmesh.resilience.experiments [--rate 10] [--experiments a,b] [--short] [--report R]

It starts `shopmesh mesh up --autoscaler-floor` (each Deployment at its autoscaler's
minReplicas, as a cluster runs it at least; a state directory of its own, a random subnet, free
ports: it runs beside a `scripts/up`), holds the steady order load through the ingress
(shopmesh.resilience.load), lets a minute of it reach the local Prometheus, then runs each
experiment with `chaos run` while it samples `mesh ps` every half second (through the mesh's
control socket, shopmesh.chaos.localmesh); between experiments
it waits until the window the steady state is judged on holds none of the last event. The
database outage runs on a second mesh in PostgreSQL mode (`mesh up --postgres`). Per
experiment it reports what the customers saw during the event (failed calls and their codes,
p99), each pod's recovery (kill → Ready again) and the books (`shopmesh check`: lost orders,
stock drift, orphan charges), judged against the issue's bars (shopmesh.resilience.recovery).
It writes `<report>.json` and `<report>.txt`, and exits 0 only when every bar is met.

`--short` is the suite's version: a 20 s steady-state window instead of a minute, 10 s of fault,
22 s of settling.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shopmesh.bench import machine
from shopmesh.chaos import control
from shopmesh.chaos.hypothesis import ingress_success_met
from shopmesh.chaos.localmesh import pod_statuses
from shopmesh.check.reading import DatabaseUrls
from shopmesh.check.report import check
from shopmesh.check.stocked import demo_catalog
from shopmesh.launch.service import ROOT
from shopmesh.localmesh.settings import MeshSettings
from shopmesh.resilience import recovery
from shopmesh.resilience.load import LoadSettings, OrderLoad, wait_answering
from shopmesh.resilience.reports import write_report

EXPERIMENTS_DIRECTORY = ROOT / "chaos" / "local"
#: In the order they run; the database outage needs the mesh in PostgreSQL mode.
EXPERIMENTS = (
    *recovery.KILLED_POD,  # payment's, order's, inventory's
    "payment-faults",
    "certificates-rotated",
    "control-plane-down",
    "order-killed-mid-saga",
    "inventory-database-lost",
)
POSTGRES_EXPERIMENTS = frozenset({"inventory-database-lost"})
MESH_START_SECONDS = 300.0
SAMPLE_SECONDS = 0.5
SETTLE_SECONDS = 60.0  # how long the books may take to come to rest


@dataclass(frozen=True)
class Timing:
    """How long the steady state looks back, and what the experiments wait."""

    window: str  # PromQL duration of the steady state's window
    window_seconds: float
    settle_seconds: int
    fault_seconds: int
    rotation_interval_seconds: int

    def variables(self) -> list[str]:
        return [
            f"ingress_success_met={ingress_success_met(self.window)}",
            f"settle_seconds:int={self.settle_seconds}",
            f"fault_seconds:int={self.fault_seconds}",
            f"rotation_interval_seconds:int={self.rotation_interval_seconds}",
        ]


FULL = Timing("1m", 60.0, settle_seconds=65, fault_seconds=60, rotation_interval_seconds=15)
SHORT = Timing("20s", 20.0, settle_seconds=22, fault_seconds=10, rotation_interval_seconds=6)


@dataclass
class RunningMesh:
    state: Path
    ingress: str
    prometheus: str
    postgres: bool

    def databases(self) -> DatabaseUrls:
        return DatabaseUrls.of_run(self.state / "db")


@contextmanager
def mesh_up(state: Path, postgres: bool, log: Path) -> Iterator[RunningMesh]:
    """`shopmesh mesh up` in a process of its own, until it says it serves; stopped (Ctrl-C, as
    a person stops it) on leaving."""
    free = MeshSettings.for_project(ROOT).on_free_addresses()  # beside any other mesh
    assert free.prometheus is not None
    command = [
        sys.executable, "-m", "shopmesh.cli", "mesh", "up", "--state", str(state),
        "--subnet", str(free.subnet), "--control-plane", free.control_plane, "--ingress", free.ingress,
        "--ingress-stats", free.ingress_stats, "--prometheus", free.prometheus,
        # A cluster's floor of pods (two of order v1, inventory, payment): a killed pod leaves
        # one to retry on, as "any single pod killed" supposes.
        "--autoscaler-floor", *(["--postgres"] if postgres else []),
    ]  # fmt: skip
    state.chmod(0o711)  # the PostgreSQL mode's server runs as its own OS user, under this directory
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + MESH_START_SECONDS
        while "Ctrl-C stops everything." not in log.read_text(errors="replace"):
            if process.poll() is not None or time.monotonic() > deadline:
                said = [
                    line for line in log.read_text(errors="replace").splitlines() if "did not start" in line
                ]
                raise RuntimeError(said[-1] if said else f"the local mesh did not start (see {log})")
            time.sleep(0.5)
        yield RunningMesh(state, free.ingress, f"http://{free.prometheus}", postgres)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class BackgroundLoad:
    """The steady order load, in a thread of its own, every call recorded."""

    def __init__(self, target: str, rate: float) -> None:
        self.load = OrderLoad(LoadSettings(target, rate, record_calls=True))
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._started = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), name="load", daemon=True)

    async def _run(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        self._started.set()
        await self.load.run(0, self._stop)

    def __enter__(self) -> BackgroundLoad:
        self._thread.start()
        self._started.wait()
        return self

    def __exit__(self, *_: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()


class PodWatcher:
    """`mesh ps` every half second: each pod's readiness and restarts over time."""

    def __init__(self, state: Path) -> None:
        self.state = state
        self.samples: list[recovery.PodSample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="mesh-ps", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_SECONDS):
            try:
                statuses = pod_statuses(str(self.state))
            except (AssertionError, OSError, ValueError):  # refused, timed out, a bad reply
                continue  # a missed sample; the next one counts
            pods = {
                name: recovery.PodState(status.ready, status.restarts, status.ready_since)
                for name, status in statuses.items()
            }
            self.samples.append(recovery.PodSample(time.time(), pods))

    def __enter__(self) -> PodWatcher:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def experiment_file(name: str) -> Path:
    """The Chaos Toolkit experiment `name` runs: the three pod kills are one, told its pod."""
    return EXPERIMENTS_DIRECTORY / f"{'pod-killed' if name in recovery.KILLED_POD else name}.yaml"


def run_experiment(name: str, mesh: RunningMesh, timing: Timing, output: Path) -> dict[str, Any]:
    """`chaos run` of one local experiment against `mesh`; its journal."""
    journal = output / f"{name}.journal.json"
    venv = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{venv}{os.pathsep}{os.environ.get('PATH', '')}",  # `shopmesh`, kubectl
        "PROMETHEUS_URL": mesh.prometheus,
        "SHOPMESH_MESH_STATE": str(mesh.state),
    }
    variables = timing.variables()
    if name in recovery.KILLED_POD:
        variables.append(f"pod={recovery.KILLED_POD[name]}")
    arguments = [argument for variable in variables for argument in ("--var", variable)]
    command = [
        str(venv / "chaos"), "--no-version-check", "--log-file", str(output / f"{name}.log"), "run",
        "--journal-path", str(journal), *arguments, str(experiment_file(name)),
    ]  # fmt: skip
    subprocess.run(command, cwd=ROOT, env=env, timeout=900, check=False, capture_output=True)
    document: dict[str, Any] = json.loads(journal.read_text())
    return document


def figures(
    name: str,
    mesh: str,
    journal: dict[str, Any],
    books: dict[str, Any],
    load: OrderLoad,
    pods: PodWatcher,
    window_seconds: float,
) -> dict[str, Any]:
    """One experiment's figures and bars, once the load has run past its event by a window."""
    start, end = recovery.event_window(journal)
    kill = kill_times(journal)
    since = kill[1] if kill else start
    steady = journal.get("steady_states") or {}
    out: dict[str, Any] = {
        "mesh": mesh,
        "journal": {
            "status": journal.get("status"),
            "deviated": journal.get("deviated"),
            "steady_state_met_before": (steady.get("before") or {}).get("steady_state_met"),
            "steady_state_met_after": (steady.get("after") or {}).get("steady_state_met"),
            "failed_activities": control.failures(journal),
            "outputs": {run["activity"]["name"]: run.get("output") for run in journal.get("run") or []},
        },
        "event": recovery.calls_between(load.timeline, start, end),
        # The steady state's window, from the start of the event: what the SLO sees of it.
        "window": recovery.calls_between(load.timeline, start, start + window_seconds),
        # Recovery counts from the kill (the end of `mesh kill`), or from the start of the event.
        "recovery_from": "the kill" if kill else "the start of the event",
        "pods": recovery.recoveries(pods.samples, since, end + 5, before=kill[0] if kill else None),
        "books": recovery.books_figures(books),
    }
    back = [r for r in journal.get("run") or [] if r["activity"]["name"] == "start-the-control-plane"]
    if back:
        out["control_plane_back_at"] = round(recovery.epoch(back[0]["end"]) - since, 1)
    out["bars"] = recovery.bars(name, out)
    return out


def kill_times(journal: dict[str, Any]) -> tuple[float, float] | None:
    """When the method's first `mesh kill` began and ended (it sends SIGKILL just before it
    exits: the end is the kill, within the time the command takes to exit)."""
    for run in journal.get("run") or []:
        arguments = (run["activity"].get("provider") or {}).get("arguments") or []
        if isinstance(arguments, list) and arguments[:2] == ["mesh", "kill"]:
            return recovery.epoch(run["start"]), recovery.epoch(run["end"])
    return None


def run_on(
    mesh: RunningMesh, names: Sequence[str], rate: float, timing: Timing, output: Path
) -> dict[str, Any]:
    """The experiments `names`, one after the other, on `mesh` under the load."""
    runs: list[tuple[str, dict[str, Any], dict[str, Any]]] = []
    asyncio.run(wait_answering(mesh.ingress, SETTLE_SECONDS))
    with BackgroundLoad(mesh.ingress, rate) as load, PodWatcher(mesh.state) as pods:
        quiet_since = time.time()
        for name in names:
            # The steady state looks back one window: let it hold none of the last event.
            time.sleep(max(0.0, quiet_since + timing.window_seconds + 5 - time.time()))
            journal = run_experiment(name, mesh, timing, output)
            books = asyncio.run(check(mesh.databases(), stocked=demo_catalog(), wait=SETTLE_SECONDS))
            runs.append((name, journal, books.to_json()))
            quiet_since = recovery.event_window(journal)[1]
        # The load goes on for a window after the last event, whose figures span one.
        time.sleep(max(0.0, quiet_since + timing.window_seconds + 1 - time.time()))
    mode = "PostgreSQL" if mesh.postgres else "SQLite"
    results = {
        name: figures(name, mode, journal, books, load.load, pods, timing.window_seconds)
        for name, journal, books in runs
    }
    results["_load"] = load.load.summary()
    return results


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="scripts/chaos", description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=10.0, help="orders per second (default 10)")
    parser.add_argument(
        "--experiments",
        default=",".join(EXPERIMENTS),
        help=f"comma-separated (default all: {','.join(EXPERIMENTS)})",
    )
    parser.add_argument("--short", action="store_true", help="the suite's short timings")
    parser.add_argument(
        "--report",
        type=Path,
        default=ROOT / "var" / "reports" / "chaos",
        help="writes REPORT.json and REPORT.txt",
    )
    args = parser.parse_args(argv)
    args.experiments = [name.strip() for name in args.experiments.split(",") if name.strip()]
    unknown = sorted(set(args.experiments) - set(EXPERIMENTS))
    if unknown or not args.experiments:
        parser.error(
            f"unknown experiment(s) {', '.join(unknown) or '(none given)'}; known: {', '.join(EXPERIMENTS)}"
        )
    if not 0 < args.rate <= 100:
        parser.error("--rate must be more than 0 and at most 100 orders per second")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    timing = SHORT if args.short else FULL
    command = "scripts/chaos " + shlex.join(argv if argv is not None else sys.argv[1:])
    report: dict[str, Any] = {
        "command": command,
        "machine": machine(),
        "rate": args.rate,
        "timing": vars(timing),
    }
    output = args.report.parent / f"{args.report.name}-journals"
    output.mkdir(parents=True, exist_ok=True)
    experiments: dict[str, Any] = {}
    loads: dict[str, Any] = {}
    for postgres in (False, True):
        names = [n for n in args.experiments if (n in POSTGRES_EXPERIMENTS) == postgres]
        if not names:
            continue
        mode = "postgres" if postgres else "sqlite"
        with tempfile.TemporaryDirectory(prefix=f"shopmesh-chaos-{mode}-") as state:
            try:
                with mesh_up(Path(state), postgres, output / f"mesh-{mode}.log") as mesh:
                    results = run_on(mesh, names, args.rate, timing, output)
            except RuntimeError as error:
                experiments.update({name: {"skipped": str(error).splitlines()[0]} for name in names})
                continue
        loads[mode] = results.pop("_load")
        experiments.update(results)
    report["experiments"] = {name: experiments[name] for name in args.experiments}
    report["load"] = loads
    report["load_average_at_end"] = os.getloadavg()
    report["passed"] = all(
        "skipped" not in figures and all(bar["met"] for bar in figures["bars"])
        for figures in report["experiments"].values()
    )
    write_report(args.report, report, recovery.render(report))
    print(f"journals and logs: {output}")
    return 0 if report["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
