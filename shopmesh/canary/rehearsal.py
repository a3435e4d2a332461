"""`shopmesh canary <name>`: Flagger's analysis of one Canary, rehearsed on the running local mesh.

The decisions are `Scheduler.advance`'s, tick by tick (pkg/controller/scheduler.go
advanceCanary, see shopmesh.canary.scheduler); the world it acts on is the local mesh
(shopmesh.canary.localworld). The rehearsal starts where Flagger stands when a new revision
of its target appears: the Canary initialised, `<target>-primary` serving every call, the
target's pod template changed. So its first tick is "New revision detected! Scaling up".
Ticks come as Flagger's job runs them (job.go): one at once, then one per analysis interval,
whatever each took; the interval is the manifest's unless a rehearsal shortens it.

Each tick that ran the metric checks also runs Flagger's stock Istio `request-success-rate`
(≥ 99 %, its documented threshold) on the same window, and prints its value beside the
Canary's own checks: what a stock setup would have decided. It takes no part in the decisions.

With a load rate, the rehearsal also drives customers through the ingress
(shopmesh.resilience.load: catalog, order, cancel) from before the first tick to after the
last, so the canary gets its weight's share of real calls; it reports every call that failed.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

from shopmesh.canary.checks import run_metric_checks
from shopmesh.canary.events import Event, go_value
from shopmesh.canary.localworld import LocalMeshWorld, RehearsalError, revision
from shopmesh.canary.scheduler import Scheduler, Tick
from shopmesh.canary.spec import Canary, Metric, MetricTemplate
from shopmesh.canary.status import Phase, Status
from shopmesh.resilience.load import LoadSettings, OrderLoad, wait_answering

#: Flagger's stock Istio success rate, as its docs configure it: at least 99 %.
STOCK_METRIC = "request-success-rate"
STOCK_MINIMUM = 99.0
#: How long the ingress may take to answer before the load starts (a mesh that just started).
INGRESS_WAIT_SECONDS = 30.0


class Outcome(StrEnum):
    PROMOTED = "promoted"
    ROLLED_BACK = "rolled back"
    HALTED = "halted"  # no outcome when the rehearsal stopped (its time ran out, or Ctrl-C)


EXIT_CODES = {Outcome.PROMOTED: 0, Outcome.ROLLED_BACK: 1, Outcome.HALTED: 2}


@dataclass(frozen=True)
class TickRecord:
    at: float  # seconds since the rehearsal started
    phase: str
    canary_weight: int
    failed_checks: int
    events: tuple[Event, ...]
    values: Mapping[str, float]  # the Canary's checks that ran, by metric name
    stock: float | str | None  # the stock success rate, or why it has none; None: not run


@dataclass
class Result:
    outcome: Outcome
    ticks: list[TickRecord] = field(default_factory=list)
    load: dict[str, Any] | None = None  # shopmesh.resilience.load's summary
    notes: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.outcome]

    def as_json(self) -> dict[str, Any]:
        return {
            "outcome": self.outcome.value,
            "exit_code": self.exit_code,
            "ticks": [
                {
                    "at_seconds": round(t.at, 3),
                    "phase": t.phase,
                    "canary_weight": t.canary_weight,
                    "failed_checks": t.failed_checks,
                    "events": [{"type": e.type.value, "message": e.message} for e in t.events],
                    "values": dict(t.values),
                    "stock_request_success_rate": t.stock,
                }
                for t in self.ticks
            ],
            "load": self.load,
            "notes": self.notes,
        }


class BackgroundLoad:
    """shopmesh.resilience.load's customers on a thread of their own, until stopped."""

    def __init__(self, target: str, rate: float) -> None:
        self.load = OrderLoad(LoadSettings(target, rate))
        self._thread = threading.Thread(target=self._run, name="rehearsal-load", daemon=True)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._answering = threading.Event()
        self._error: BaseException | None = None

    def start(self) -> None:
        self._thread.start()
        self._answering.wait(INGRESS_WAIT_SECONDS + 5)
        if self._error is not None:
            raise RehearsalError(
                f"the ingress {self.load.settings.target} did not answer within {INGRESS_WAIT_SECONDS:g} s"
            )

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        try:
            await wait_answering(self.load.settings.target, INGRESS_WAIT_SECONDS)
        except TimeoutError as error:
            self._error = error
            self._answering.set()
            return
        self._answering.set()
        await self.load.run(0, self._stop)

    def stop(self) -> dict[str, Any]:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join()
        return self.load.summary()


@dataclass
class Rehearsal:
    canary: Canary
    templates: Mapping[tuple[str, str], MetricTemplate]
    world: LocalMeshWorld
    #: customers per second through `ingress` (None: no load)
    load_rate: float | None = None
    ingress: str = "127.0.0.1:50051"
    #: seconds after which a rollout without an outcome is stopped (halted)
    timeout: float = 900.0
    say: Callable[[str], None] = print

    def run(self) -> Result:
        world = self.world
        world.set_routes(100, 0)  # Initialized: all traffic on the primary
        promoted = revision(world.stack, self.canary.namespace, self.canary.primary_workload)
        status = Status(phase=Phase.INITIALIZED, last_applied_spec=promoted, last_promoted_spec=promoted)
        load = BackgroundLoad(self.ingress, self.load_rate) if self.load_rate else None
        result = Result(Outcome.HALTED)
        if load is not None:
            load.start()
            self.say(f"load: {self.load_rate:g} customers a second through the ingress {self.ingress}")
        started = time.monotonic()
        try:
            result.outcome = self._ticks(status, started, result)
        finally:
            if result.outcome is Outcome.HALTED:
                world.set_routes(100, 0)
                self.say("stopped without an outcome: all traffic back to the primary")
            if load is not None:
                result.load = load.stop()
                self.say(_load_line(result.load))
            result.notes = list(world.notes)
            for note in result.notes:
                self.say(f"note: {note}")
        return result

    def _ticks(self, status: Status, started: float, result: Result) -> Outcome:
        scheduler = Scheduler(self.canary, self.templates)
        ticks = 0
        while True:
            at = time.monotonic() - started
            queried = len(self.world.queries)
            tick = scheduler.advance(status, self.world)
            status = tick.status
            stock = self._stock() if len(self.world.queries) > queried else None
            record = TickRecord(
                at, status.phase.value, status.canary_weight, status.failed_checks, tuple(tick.events),
                dict(tick.values), stock,
            )  # fmt: skip
            result.ticks.append(record)
            self._print(record, tick)
            if status.phase == Phase.SUCCEEDED:
                return Outcome.PROMOTED
            if status.phase == Phase.FAILED:
                return Outcome.ROLLED_BACK
            ticks += 1
            next_tick = started + ticks * self.canary.interval_seconds
            if next_tick - started > self.timeout:
                return Outcome.HALTED
            time.sleep(max(0.0, next_tick - time.monotonic()))

    def _stock(self) -> float | str:
        """Flagger's stock success rate over the Canary's metric window, not judged."""
        interval = self.canary.metrics[0].interval if self.canary.metrics else "1m"
        stock = Metric(STOCK_METRIC, interval, threshold_min=STOCK_MINIMUM, has_range=True)
        analysis = run_metric_checks(replace(self.canary, metrics=(stock,)), {}, self.world)
        if STOCK_METRIC in analysis.values:
            return analysis.values[STOCK_METRIC]
        return analysis.events[0].message if analysis.events else "no value"

    def _print(self, record: TickRecord, tick: Tick) -> None:
        """The tick's check values (when it ran them) beside the stock check's, then its events."""
        if record.stock is not None:
            checks = "   ".join(
                f"{metric.name} {tick.values[metric.name]:.2f} ({_bounds(metric)})"
                for metric in self.canary.metrics
                if metric.name in tick.values
            )
            if isinstance(record.stock, float):
                verdict = "would pass" if record.stock >= STOCK_MINIMUM else "would fail"
                stock = f"{record.stock:.2f}% (min {go_value(STOCK_MINIMUM)}%): {verdict}"
            else:
                stock = f"none: {record.stock}"
            self.say(
                f"{record.at:7.1f}s  checks  {checks or 'no value'}   |   "
                f"Flagger's stock {STOCK_METRIC}, not judged: {stock}"
            )
        for event in tick.events:
            self.say(f"{record.at:7.1f}s  {event}")


def _bounds(metric: Metric) -> str:
    parts = []
    if metric.threshold_min is not None:
        parts.append(f"min {go_value(metric.threshold_min)}")
    if metric.threshold_max is not None:
        parts.append(f"max {go_value(metric.threshold_max)}")
    if not metric.has_range:
        parts.append(f"max {go_value(metric.threshold)}")
    return ", ".join(parts)


def _load_line(summary: Mapping[str, Any]) -> str:
    failed = {
        f"{method} {code}": count
        for method, calls in summary["calls"].items()
        for code, count in (calls["errors"] or {}).items()
    }
    calls = sum(calls["ok"] for calls in summary["calls"].values()) + sum(failed.values())
    detail = f": {', '.join(f'{k} x{v}' for k, v in failed.items())}" if failed else ""
    return (
        f"load: {summary['customers_sent']} customers in {summary['seconds']} s, {calls} calls, "
        f"{summary['errors']} failed{detail}; orders {summary['order_outcomes']}"
    )
