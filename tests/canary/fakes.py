"""A fake world for the scheduler's tests: a cluster whose Deployments, routes and webhooks are
plain fields, and a metrics source answering by what a query asks for. A boundary that only a
cluster with Flagger's controllers, Kubernetes and Prometheus would give for real."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from shopmesh.canary.checks import NoValuesFound
from shopmesh.canary.scheduler import Scheduler, Tick
from shopmesh.canary.spec import Canary, Webhook, canaries, metric_templates, read_canary
from shopmesh.canary.status import Phase, Readiness, Status
from shopmesh.manifests.model import MeshObjects

#: What the metric source answers: a value, or an exception to raise.
Answer = float | Exception


@dataclass
class FakeWorld:
    revision: str = "rev-1"
    primary: Readiness = field(default_factory=Readiness)
    canary: Readiness = field(default_factory=Readiness)
    weights: tuple[int, int] = (100, 0)
    #: webhook name -> the error it answers (absent: accepted)
    refusals: dict[str, str] = field(default_factory=dict)
    #: query marker (a substring of the PromQL) -> answer; checked in order
    answers: dict[str, Answer | Callable[[], Answer]] = field(default_factory=dict)
    actions: list[str] = field(default_factory=list)
    queries: list[tuple[str | None, str]] = field(default_factory=list)
    hooks: list[tuple[str, str]] = field(default_factory=list)

    def target_revision(self) -> str:
        return self.revision

    def make_primary(self) -> None:
        self.actions.append("make primary")

    def primary_ready(self) -> Readiness:
        return self.primary

    def canary_ready(self) -> Readiness:
        return self.canary

    def routes(self) -> tuple[int, int]:
        return self.weights

    def set_routes(self, primary: int, canary: int) -> None:
        self.weights = (primary, canary)
        self.actions.append(f"routes {primary}/{canary}")

    def scale_to_zero(self) -> None:
        self.actions.append("scale canary to 0")

    def scale_from_zero(self) -> None:
        self.actions.append("scale canary up")

    def promote(self) -> None:
        self.actions.append("promote")

    def call_webhook(self, hook: Webhook, phase: Phase) -> str | None:
        self.hooks.append((hook.name, phase.value))
        return self.refusals.get(hook.name)

    def query(self, address: str | None, promql: str) -> float:
        self.queries.append((address, promql))
        if promql == "vector(1)":
            return 1.0
        for marker, answer in self.answers.items():
            if marker in promql:
                value = answer() if callable(answer) else answer
                if isinstance(value, Exception):
                    raise value
                return value
        raise NoValuesFound


@dataclass
class Run:
    """A Canary under the scheduler: its status carried from tick to tick."""

    scheduler: Scheduler
    world: FakeWorld
    status: Status = field(default_factory=Status)
    ticks: list[Tick] = field(default_factory=list)

    def tick(self) -> list[str]:
        tick = self.scheduler.advance(self.status, self.world)
        self.status = tick.status
        self.ticks.append(tick)
        return [str(event) for event in tick.events]

    def events(self) -> list[str]:
        return [str(event) for tick in self.ticks for event in tick.events]


def scheduler(objects: MeshObjects, **changes: object) -> Scheduler:
    """The Scheduler of the objects' one Canary, its analysis fields changed as given."""
    (canary,) = canaries(objects)
    if changes:
        document = dict(canary.resource.doc)
        spec = dict(document["spec"])
        spec["analysis"] = {**spec["analysis"], **changes}
        document["spec"] = spec
        canary = read_canary(document)
    return Scheduler(canary, metric_templates(objects))


def canary_document(analysis: dict[str, Any], **spec: Any) -> dict[str, Any]:
    """A Canary of Deployment order in shop, port 50051, with this analysis (and spec fields)."""
    return {
        "apiVersion": "flagger.app/v1beta1",
        "kind": "Canary",
        "metadata": {"name": "order", "namespace": "shop"},
        "spec": {
            "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "order"},
            "service": {"port": 50051},
            "analysis": analysis,
            **spec,
        },
    }


def healthy_answers() -> dict[str, Answer | Callable[[], Answer]]:
    """The project's two templates, both well within bounds."""
    return {"grpc_response_status": 100.0, "histogram_quantile": 42.0}


def canary_of(run: Run) -> Canary:
    return run.scheduler.canary
