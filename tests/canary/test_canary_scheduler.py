"""Flagger's scheduler, tick by tick, on the project's Canary (k8s/overlays/flagger: 1m interval,
threshold 5, stepWeight 10, maxWeight 50; the gRPC success rate ≥ 99 % and p99 ≤ 500 ms) against
a fake world. The expected events are Flagger's texts; the order of decisions is
pkg/controller/scheduler.go advanceCanary's (docstring of shopmesh/canary/scheduler.py)."""

from __future__ import annotations

from canary.fakes import FakeWorld, Run, healthy_answers, scheduler
from shopmesh.canary.checks import NoValuesFound
from shopmesh.canary.status import Phase, Readiness, Status
from shopmesh.manifests.model import MeshObjects


def _initialised(objects: MeshObjects, **changes: object) -> Run:
    """Tick 0 (initialisation) done and a new revision of order rolled out."""
    run = Run(scheduler(objects, **changes), FakeWorld(answers=healthy_answers()))
    assert run.tick() == [
        "Normal  all the metrics providers are available!",
        "Normal  Initialization done! order.shop",
    ]
    assert run.status.phase == Phase.INITIALIZED
    assert run.world.actions == ["make primary", "scale canary to 0", "routes 100/0"]
    assert run.tick() == []  # nothing new: shouldAdvance says no
    run.world.revision = "rev-2"
    return run


def test_a_healthy_canary_steps_to_max_weight_then_promotes_in_three_ticks(
    flagger_objects: MeshObjects,
) -> None:
    run = _initialised(flagger_objects)
    assert run.tick() == ["Normal  New revision detected! Scaling up order.shop"]
    assert (run.status.phase, run.world.actions[-1]) == (Phase.PROGRESSING, "scale canary up")
    assert run.tick() == [
        "Normal  Starting canary analysis for order.shop",
        "Normal  Pre-rollout check acceptance-test passed",
        "Normal  Advance order.shop canary weight 10",
    ]
    assert not run.world.queries[2:], "no metric is queried on the first progressing tick"
    for weight in (20, 30, 40, 50):
        assert run.tick() == [f"Normal  Advance order.shop canary weight {weight}"]
        assert run.world.weights == (100 - weight, weight)
    assert run.tick() == ["Normal  Copying order.shop template spec to order-primary.shop"]
    assert (run.status.phase, run.world.actions[-1]) == (Phase.PROMOTING, "promote")
    assert run.tick() == ["Normal  Routing all traffic to primary"]
    assert (run.status.phase, run.world.weights) == (Phase.FINALISING, (100, 0))
    assert run.tick() == ["Normal  Promotion completed! Scaling down order.shop"]
    assert run.status == Status(Phase.SUCCEEDED, 0, 0, 0, "rev-2", "rev-2")
    assert run.world.actions[-1] == "scale canary to 0"
    assert run.tick() == []  # promoted: nothing more until the next revision
    load = [name for name, _phase in run.world.hooks if name == "load-test"]
    assert len(load) == 5, "the load webhook runs before every metric check"


def test_failing_checks_roll_back_one_tick_after_the_threshold_is_reached(
    flagger_objects: MeshObjects,
) -> None:
    run = _initialised(flagger_objects)
    run.tick(), run.tick()  # scaled up; pre-rollout and weight 10
    run.world.answers["grpc_response_status"] = 90.0
    for failed in range(1, 6):
        assert run.tick() == ["Warning Halt order.shop advancement grpc-success-rate 90.00 < 99"]
        assert (run.status.failed_checks, run.world.weights) == (failed, (90, 10))
    assert run.tick() == [
        "Warning Rolling back order.shop failed checks threshold reached 5",
        "Warning Canary failed! Scaling down order.shop",
    ]
    assert run.world.weights == (100, 0)
    assert run.status == Status(Phase.FAILED, 0, 0, 0, "rev-2", "rev-1")
    assert run.tick() == []  # rolled back: waits for the next revision


def test_a_custom_metric_message_is_flaggers_for_templates(flagger_objects: MeshObjects) -> None:
    """The success rate is a MetricTemplate, so its Halt message is the custom metrics' one
    ("<name> <value> < <min>"), not the builtin's ("success rate …%")."""
    run = _initialised(flagger_objects)
    run.tick(), run.tick()
    run.world.answers["grpc_response_status"] = 97.5
    assert run.tick() == ["Warning Halt order.shop advancement grpc-success-rate 97.50 < 99"]
    run.world.answers["grpc_response_status"] = 100.0
    run.world.answers["histogram_quantile"] = 512.7
    assert run.tick() == ["Warning Halt order.shop advancement grpc-request-duration-p99 512.70 > 500"]


def test_no_traffic_halts_every_tick_and_never_promotes(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects)
    run.tick(), run.tick()
    run.world.answers = {"grpc_response_status": NoValuesFound()}
    for _ in range(5):
        assert run.tick() == [
            "Warning Halt advancement no values found for custom metric: grpc-success-rate: no values found"
        ]
        assert run.world.weights == (90, 10)
    run.tick()
    assert (run.status.phase, run.world.weights) == (Phase.FAILED, (100, 0))
    assert "promote" not in run.world.actions


def test_failed_checks_are_never_reset_by_a_passing_one(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects, threshold=2)
    run.tick(), run.tick()
    answers = iter([90.0, 100.0, 90.0])
    run.world.answers["grpc_response_status"] = lambda: next(answers)
    run.tick()
    assert run.tick() == ["Normal  Advance order.shop canary weight 20"]
    assert run.status.failed_checks == 1
    run.tick()
    assert run.status.failed_checks == 2
    assert run.tick()[0] == "Warning Rolling back order.shop failed checks threshold reached 2"


def test_a_failed_pre_rollout_check_counts_and_holds_the_weight(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects)
    run.tick()
    run.world.refusals["acceptance-test"] = "exit status 1: NOT_SERVING"
    assert run.tick() == [
        "Normal  Starting canary analysis for order.shop",
        "Warning Halt order.shop advancement pre-rollout check acceptance-test failed "
        "exit status 1: NOT_SERVING",
    ]
    assert (run.status.failed_checks, run.world.weights) == (1, (100, 0))
    del run.world.refusals["acceptance-test"]
    assert run.tick()[-1] == "Normal  Advance order.shop canary weight 10"


def test_a_failed_load_webhook_is_a_failed_check(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects)
    run.tick(), run.tick()
    run.world.refusals["load-test"] = "connection refused"
    assert run.tick() == [
        "Warning Halt order.shop advancement external check load-test failed connection refused"
    ]
    assert run.status.failed_checks == 1


def test_step_weights_follow_the_list_and_promotion_steps_back(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects, stepWeight=0, stepWeights=[1, 20, 80], stepWeightPromotion=50)
    run.tick()
    weights = []
    for _ in range(3):
        run.tick()
        weights.append(run.world.weights[1])
    assert weights == [1, 20, 80]
    assert run.tick() == ["Normal  Copying order.shop template spec to order-primary.shop"]
    assert run.tick() == ["Normal  Advance order.shop primary weight 70"]
    assert (run.status.phase, run.world.weights) == (Phase.PROMOTING, (70, 30))
    assert run.tick() == ["Normal  Advance order.shop primary weight 100"]
    assert run.status.phase == Phase.FINALISING


def test_the_weight_is_capped_at_100_not_at_max_weight(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects, stepWeight=30, maxWeight=50)
    run.tick()
    weights = [(run.tick(), run.world.weights[1])[1] for _ in range(2)]
    assert weights == [30, 60]  # Flagger steps past maxWeight, then promotes
    assert run.tick() == ["Normal  Copying order.shop template spec to order-primary.shop"]


def test_a_promotion_gate_waits_while_the_checks_keep_running(flagger_objects: MeshObjects) -> None:
    objects = MeshObjects(flagger_objects.resources)
    canary = objects.of_kind("Canary")[0].doc
    canary["spec"]["analysis"]["webhooks"].append(
        {"name": "approve", "type": "confirm-promotion", "url": "http://x/"}
    )
    run = _initialised(objects, maxWeight=10)
    run.world.refusals["approve"] = "not yet"
    run.tick(), run.tick()  # scaled up; weight 10
    assert run.tick() == ["Warning Halt order.shop advancement waiting for promotion approval approve"]
    assert run.status.phase == Phase.WAITING_PROMOTION
    queried = len(run.world.queries)
    assert run.tick() == []  # still waiting, silently; the metrics were checked again
    assert len(run.world.queries) > queried
    del run.world.refusals["approve"]
    assert run.tick() == [
        "Normal  Confirm-promotion check approve passed",
        "Normal  Copying order.shop template spec to order-primary.shop",
    ]


def test_a_new_revision_during_the_analysis_restarts_it(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects)
    run.tick(), run.tick(), run.tick()
    run.world.revision = "rev-3"
    assert run.tick() == ["Normal  New revision detected! Restarting analysis for order.shop"]
    assert (run.status, run.world.weights) == (Status(Phase.PROGRESSING, 0, 0, 0, "rev-3", "rev-1"), (100, 0))
    assert run.tick()[0] == "Normal  Starting canary analysis for order.shop"


def test_a_canary_stuck_past_its_progress_deadline_is_rolled_back(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects)
    run.tick()
    run.world.canary = Readiness(
        "waiting for rollout to finish: 0 of 1 (readyThreshold 100%) updated replicas are available"
    )
    assert run.tick() == [
        "Warning canary deployment order.shop not ready: waiting for rollout to finish: 0 of 1 "
        "(readyThreshold 100%) updated replicas are available"
    ]
    assert run.status.phase == Phase.PROGRESSING  # retriable: wait
    run.world.canary = Readiness('deployment "order" exceeded its progress deadline', retriable=False)
    assert run.tick()[-1] == "Warning Canary failed! Scaling down order.shop"
    assert run.status.phase == Phase.FAILED


def test_a_primary_failing_during_promotion_sends_all_traffic_to_the_canary(
    flagger_objects: MeshObjects,
) -> None:
    run = _initialised(flagger_objects, maxWeight=10)
    for _ in range(3):
        run.tick()
    assert run.status.phase == Phase.PROMOTING
    run.world.primary = Readiness(
        'deployment "order-primary" exceeded its progress deadline', retriable=False
    )
    assert run.tick() == [
        'Warning order-primary.shop not ready: deployment "order-primary" exceeded its progress deadline',
        "Warning Promotion of order.shop failed, primary not ready: "
        'deployment "order-primary" exceeded its progress deadline',
    ]
    assert (run.status.phase, run.status.canary_weight, run.world.weights) == (Phase.FAILED, 100, (0, 100))


def test_a_rollback_webhook_that_answers_yes_rolls_back(flagger_objects: MeshObjects) -> None:
    objects = MeshObjects(flagger_objects.resources)
    objects.of_kind("Canary")[0].doc["spec"]["analysis"]["webhooks"].append(
        {"name": "abort", "type": "rollback", "url": "http://x/"}
    )
    run = _initialised(objects)
    run.world.refusals["abort"] = "no"
    run.tick(), run.tick()
    assert run.tick()[0] == "Normal  Rollback hook abort not signaling a rollback"
    del run.world.refusals["abort"]
    assert run.tick()[:3] == [
        "Warning Rollback check abort passed",
        "Warning Rolling back order.shop manual webhook invoked",
        "Warning Canary failed! Scaling down order.shop",
    ]


def test_a_failed_canary_takes_the_next_revision(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects, threshold=1)
    run.tick(), run.tick()
    run.world.answers["grpc_response_status"] = 50.0
    run.tick(), run.tick()
    assert run.status.phase == Phase.FAILED
    run.world.answers["grpc_response_status"] = 100.0
    assert run.tick() == []
    run.world.revision = "rev-3"
    assert run.tick() == ["Normal  New revision detected! Scaling up order.shop"]


def test_a_manual_rollback_to_the_promoted_revision_starts_nothing(flagger_objects: MeshObjects) -> None:
    run = _initialised(flagger_objects)
    run.world.revision = "rev-1"  # back to what the primary runs
    assert run.tick() == []


def test_suspended_and_gated_canaries(flagger_objects: MeshObjects) -> None:
    objects = MeshObjects(flagger_objects.resources)
    canary = objects.of_kind("Canary")[0].doc
    canary["spec"]["analysis"]["webhooks"].append(
        {"name": "ship-it", "type": "confirm-rollout", "url": "http://x/"}
    )
    run = _initialised(objects)
    run.world.refusals["ship-it"] = "closed"
    assert run.tick() == ["Warning Halt order.shop advancement waiting for approval ship-it"]
    assert run.status.phase == Phase.WAITING
    assert run.tick() == []
    del run.world.refusals["ship-it"]
    assert run.tick() == [
        "Normal  Confirm-rollout check ship-it passed",
        "Normal  New revision detected! Scaling up order.shop",
    ]
    canary["spec"]["suspend"] = True
    suspended = Run(scheduler(objects), FakeWorld())
    assert suspended.tick() == ["Normal  skipping canary run as object is suspended"]
    assert suspended.world.actions == []


def test_an_unreachable_metrics_server_is_reported_at_initialisation(flagger_objects: MeshObjects) -> None:
    class Unreachable(FakeWorld):
        def query(self, address: str | None, promql: str) -> float:
            from shopmesh.canary.checks import QueryError

            raise QueryError("request failed: connection refused")

    run = Run(scheduler(flagger_objects), Unreachable())
    assert run.tick()[0] == (
        "Warning Error checking metric providers: prometheus in metric template grpc-success-rate.shop "
        "not avaiable: request failed: connection refused"
    )
    assert run.status.phase == Phase.INITIALIZED  # not fatal
