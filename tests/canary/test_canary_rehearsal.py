"""The rehearsal loop of `shopmesh canary` on a fake world, ticks a few milliseconds apart:
its outcomes and exit codes, and the line that puts the Canary's checks beside Flagger's stock
success rate. (On the running local mesh: tests/localmesh/test_canary_rollouts.py.)"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from canary.conftest import overlay_documents
from canary.fakes import FakeWorld, healthy_answers
from shopmesh.canary.rehearsal import Outcome, Rehearsal, Result
from shopmesh.canary.spec import canaries, metric_templates
from shopmesh.manifests.model import MeshObjects

STOCK = 'response_code!~"5.*"'  # only Flagger's stock success rate says this


@dataclass
class RehearsedWorld(FakeWorld):
    """The fake cluster, with what a rehearsal also reads from the local mesh's world."""

    stack: MeshObjects = field(default_factory=lambda: MeshObjects([]))
    notes: list[str] = field(default_factory=list)


def rehearse(answers: dict[str, object], timeout: float = 5.0) -> tuple[Result, list[str], RehearsedWorld]:
    objects = MeshObjects(overlay_documents())
    (canary,) = canaries(objects)
    world = RehearsedWorld(answers={STOCK: 100.0, **answers})  # type: ignore[dict-item]
    lines: list[str] = []
    rehearsal = Rehearsal(
        replace(canary, interval_seconds=0.005),
        metric_templates(objects),
        world,
        timeout=timeout,
        say=lines.append,
    )  # type: ignore[arg-type]
    return rehearsal.run(), lines, world


def test_a_healthy_canary_is_promoted_with_exit_0() -> None:
    result, lines, world = rehearse(healthy_answers())
    assert (result.outcome, result.exit_code) == (Outcome.PROMOTED, 0)
    assert [line.strip().split("  ", 1)[1] for line in lines if "Advance" in line] == [
        f"Normal  Advance order.shop canary weight {weight}" for weight in (10, 20, 30, 40, 50)
    ]
    assert world.weights == (100, 0)
    checks = [line for line in lines if " checks " in line]
    assert len(checks) == 5  # ticks 2 to 6 ran the checks
    assert checks[0].endswith(
        "checks  grpc-success-rate 100.00 (min 99)   grpc-request-duration-p99 42.00 (max 500)   |   "
        "Flagger's stock request-success-rate, not judged: 100.00% (min 99%): would pass"
    )


def test_a_failing_canary_is_rolled_back_with_exit_1_while_the_stock_check_would_pass() -> None:
    result, lines, world = rehearse({"grpc_response_status": 90.0, "histogram_quantile": 42.0})
    assert (result.outcome, result.exit_code) == (Outcome.ROLLED_BACK, 1)
    assert world.weights == (100, 0)
    assert max(tick.canary_weight for tick in result.ticks) == 10
    judged = [(tick.values["grpc-success-rate"], tick.stock) for tick in result.ticks if tick.values]
    assert judged == [(90.0, 100.0)] * 5
    assert any(line.endswith("Halt order.shop advancement grpc-success-rate 90.00 < 99") for line in lines)
    assert result.as_json()["ticks"][2]["stock_request_success_rate"] == 100.0


def test_a_rollout_without_an_outcome_in_time_halts_with_exit_2_and_routes_back() -> None:
    result, lines, world = rehearse(healthy_answers(), timeout=0.012)
    assert (result.outcome, result.exit_code) == (Outcome.HALTED, 2)
    assert world.actions[-1] == "routes 100/0"
    assert lines[-1] == "stopped without an outcome: all traffic back to the primary"
