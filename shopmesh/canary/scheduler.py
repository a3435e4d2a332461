"""Flagger's scheduler, one tick at a time: `advance(canary, status, world)` is
pkg/controller/scheduler.go advanceCanary for a Deployment on Istio with progressive traffic.

The scheduler holds no state of its own and does no I/O: the Canary's status comes in and the
new one goes out, with the tick's events; what Flagger reads from and does to the cluster, the
mesh, the webhooks and Prometheus goes through `world`. Flagger's job runs a tick at once and
then every analysis interval (job.go; `Canary.interval_seconds`).

The decisions of a tick, in Flagger's order (the step numbers are the comments' below):
 1. suspended → nothing;
 2. phase "" / Initializing: the metric providers are checked (`vector(1)`), the primary made
    and awaited, the target scaled to zero, the routes set 100/0 → Initialized, "Initialization
    done!";
 3. nothing to do unless a new revision is there or an analysis is under way (shouldAdvance);
 4. the primary must be ready (a stuck one rolls back, or fails a promotion);
 5. a new revision while Initialized/Succeeded/Failed/Waiting: confirm-rollout gates, then
    "New revision detected! Scaling up", status reset to Progressing; the tick ends;
 6. the revision changed during the analysis: routes back to 100/0, status reset;
 7. the canary must be ready (a stuck one rolls back);
 8. skipAnalysis: promote at once;
 9. a rollback webhook that answers yes rolls back;
10. Promoting: all traffic to the primary (or one stepWeightPromotion) → Finalising;
11. Finalising: canary scaled to zero → Succeeded, post-rollout hooks, "Promotion completed!";
12. failed checks ≥ threshold → roll back (so one tick after the failure that reached it);
13. first progressing tick (weight 0, no iteration): "Starting canary analysis", pre-rollout
    hooks; later ticks: rollout hooks, then the metric checks. A failure counts one failed
    check and ends the tick; failed checks are never reset by a passing one;
14. next step: confirm-traffic-increase gates, then the weight goes up a step (capped at 100,
    not at maxWeight); at maxWeight or past it: confirm-promotion gates, then "Copying … template
    spec" and Promoting.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from shopmesh.canary.checks import NoValuesFound, QueryError, run_metric_checks
from shopmesh.canary.events import Event, normal, warning
from shopmesh.canary.spec import BUILTIN_METRICS, TOTAL_WEIGHT, Canary, Metric, MetricTemplate, Webhook
from shopmesh.canary.status import UNDER_WAY, Phase, Status, World, spec_changed


@dataclass
class Tick:
    """One run of the scheduler: the new status and what it said."""

    status: Status
    events: list[Event] = field(default_factory=list)
    #: each metric's value, for the checks that ran (flagger_canary_metric_analysis)
    values: dict[str, float] = field(default_factory=dict)

    def say(self, event: Event) -> None:
        self.events.append(event)


@dataclass(frozen=True)
class Scheduler:
    canary: Canary
    templates: Mapping[tuple[str, str], MetricTemplate]

    # -- status writes (pkg/canary/status.go) ------------------------------------------------

    def _sync(self, tick: Tick, world: World, status: Status) -> None:
        """SyncStatus: the given counters, lastAppliedSpec = the target's hash now (and
        lastPromotedSpec too when Initialized)."""
        revision = world.target_revision()
        promoted = revision if status.phase == Phase.INITIALIZED else tick.status.last_promoted_spec
        tick.status = replace(status, last_applied_spec=revision, last_promoted_spec=promoted)

    def _set_phase(self, tick: Tick, phase: Phase) -> None:
        """SetStatusPhase: leaving the phases that step keeps weight and iterations at 0
        (WaitingPromotion: iterations = analysis.iterations - 1, which is -1 for a canary that
        steps by weight); Initialized and Succeeded record the applied spec as promoted."""
        status = replace(tick.status, phase=phase)
        if phase not in (Phase.PROGRESSING, Phase.WAITING, Phase.PROMOTING):
            iterations = -1 if phase == Phase.WAITING_PROMOTION else 0
            status = replace(status, canary_weight=0, iterations=iterations)
        if phase in (Phase.INITIALIZED, Phase.SUCCEEDED):
            status = replace(status, last_promoted_spec=status.last_applied_spec)
        tick.status = status

    # -- webhooks (scheduler_hooks.go) ---------------------------------------------------

    def _gate(self, tick: Tick, world: World, runs_as: str, phase: Phase) -> Webhook | None:
        """The first gate of this type that refuses, after "… check passed" for the others."""
        labels = {
            "confirm-rollout": "Confirm-rollout",
            "confirm-traffic-increase": "Confirm-traffic-increase",
            "confirm-promotion": "Confirm-promotion",
        }
        for hook in self.canary.hooks(runs_as):
            if world.call_webhook(hook, phase) is not None:
                return hook
            tick.say(normal(f"{labels[runs_as]} check {hook.name} passed"))
        return None

    def _post_rollout(self, tick: Tick, world: World, phase: Phase) -> None:
        for hook in self.canary.hooks("post-rollout"):
            error = world.call_webhook(hook, phase)
            if error is not None:
                tick.say(warning(f"Post-rollout hook {hook.name} failed {error}"))
                return
            tick.say(normal(f"Post-rollout check {hook.name} passed"))

    def _rollback_requested(self, tick: Tick, world: World) -> bool:
        for hook in self.canary.hooks("rollback"):
            if world.call_webhook(hook, tick.status.phase) is not None:
                tick.say(normal(f"Rollback hook {hook.name} not signaling a rollback"))
            else:
                tick.say(warning(f"Rollback check {hook.name} passed"))
                return True
        return False

    # -- outcomes ----------------------------------------------------------------------------

    def _rollback(self, tick: Tick, world: World) -> Tick:
        """scheduler.go rollback."""
        canary = self.canary
        if tick.status.failed_checks >= canary.threshold:
            tick.say(
                warning(
                    f"Rolling back {canary.ref} failed checks threshold reached {tick.status.failed_checks}"
                )
            )
        world.set_routes(TOTAL_WEIGHT, 0)
        tick.say(warning(f"Canary failed! Scaling down {canary.ref}"))
        world.scale_to_zero()
        self._sync(tick, world, Status(phase=Phase.FAILED, canary_weight=0))
        self._post_rollout(tick, world, Phase.FAILED)
        return tick

    def _failed_promotion(self, tick: Tick, world: World, error: str) -> Tick:
        """scheduler.go handleFailedPromotion: the canary is the healthy copy; all traffic to it."""
        tick.say(warning(f"Promotion of {self.canary.target_ref} failed, primary not ready: {error}"))
        world.set_routes(0, TOTAL_WEIGHT)
        self._sync(tick, world, Status(phase=Phase.FAILED, canary_weight=TOTAL_WEIGHT))
        self._post_rollout(tick, world, Phase.FAILED)
        return tick

    # -- the tick ----------------------------------------------------------------------------

    def _initialise(self, tick: Tick, world: World) -> bool:
        """Steps 2: Initialize, scale down, take over the routes; False ends the tick."""
        canary = self.canary
        if not canary.skip_analysis:
            self._check_providers(tick, world)
        world.make_primary()
        if not canary.skip_analysis:
            primary = world.primary_ready()
            if not primary.ready:
                tick.say(warning(f"{canary.primary_workload}.{canary.namespace} not ready: {primary.error}"))
                if not primary.retriable:
                    self._rollback(tick, world)
                return False
        world.scale_to_zero()
        world.set_routes(TOTAL_WEIGHT, 0)
        self._sync(tick, world, Status(phase=Phase.INITIALIZED))
        tick.say(normal(f"Initialization done! {canary.ref}"))
        return True

    def _check_providers(self, tick: Tick, world: World) -> None:
        """checkMetricProviderAvailability: `vector(1)` against each metric's server; the
        first failure is reported (Flagger's texts, "avaiable" included) and is not fatal."""
        for metric in self.canary.metrics:
            problem = self._provider_problem(metric, world)
            if problem is not None:
                tick.say(warning(f"Error checking metric providers: {problem}"))
                return
        tick.say(normal("all the metrics providers are available!"))

    def _provider_problem(self, metric: Metric, world: World) -> str | None:
        if metric.name in BUILTIN_METRICS:
            try:
                world.query(None, "vector(1)")
            except (NoValuesFound, QueryError) as error:
                return f"prometheus not avaiable: {error}"
            return None
        if metric.template is None:
            return None
        namespace, name = metric.template
        template = self.templates.get(metric.template)
        if template is None:
            return f'metric template {name}.{namespace} error: metrictemplate.flagger.app "{name}" not found'
        try:
            world.query(template.address or None, "vector(1)")
        except (NoValuesFound, QueryError) as error:
            return f"{template.provider} in metric template {name}.{namespace} not avaiable: {error}"
        return None

    def _new_revision(self, tick: Tick, world: World) -> bool:
        """shouldAdvance: an analysis under way, or a target that changed. A Failed canary's
        lastAppliedSpec is synced first, yet compared as it was (Flagger syncs the stored
        status and tests the one it read)."""
        status = tick.status
        if status.phase in UNDER_WAY:
            return True
        revision = world.target_revision()
        if status.phase == Phase.FAILED:
            tick.status = replace(status, last_applied_spec=revision)
        return spec_changed(status, revision)

    def _start(self, tick: Tick, world: World) -> None:
        """checkCanaryStatus for a new revision: confirm-rollout, then scale up (step 5)."""
        canary = self.canary
        refused = self._gate(tick, world, "confirm-rollout", tick.status.phase)
        if refused is not None:
            if tick.status.phase != Phase.WAITING:
                self._set_phase(tick, Phase.WAITING)
                tick.say(warning(f"Halt {canary.ref} advancement waiting for approval {refused.name}"))
            return
        tick.say(normal(f"New revision detected! Scaling up {canary.target_ref}"))
        world.scale_from_zero()
        self._sync(tick, world, Status(phase=Phase.PROGRESSING))

    def _analyse(self, tick: Tick, world: World, canary_weight: int) -> bool:
        """Step 13: pre-rollout hooks on the first tick, else rollout hooks and metrics."""
        canary = self.canary
        if canary_weight == 0 and tick.status.iterations == 0:
            tick.say(normal(f"Starting canary analysis for {canary.target_ref}"))
            for hook in canary.hooks("pre-rollout"):
                error = world.call_webhook(hook, Phase.PROGRESSING)
                if error is not None:
                    tick.say(
                        warning(f"Halt {canary.ref} advancement pre-rollout check {hook.name} failed {error}")
                    )
                    return False
                tick.say(normal(f"Pre-rollout check {hook.name} passed"))
            return True
        for hook in canary.hooks("rollout"):
            error = world.call_webhook(hook, Phase.PROGRESSING)
            if error is not None:
                tick.say(warning(f"Halt {canary.ref} advancement external check {hook.name} failed {error}"))
                return False
        analysis = run_metric_checks(canary, self.templates, world)
        tick.events.extend(analysis.events)
        tick.values.update(analysis.values)
        return analysis.passed

    def _step(self, tick: Tick, world: World, primary_weight: int, canary_weight: int) -> None:
        """Step 14 (runCanary)."""
        canary = self.canary
        if tick.status.phase not in (Phase.PROMOTING, Phase.WAITING_PROMOTION, Phase.FINALISING):
            refused = self._gate(tick, world, "confirm-traffic-increase", Phase.PROGRESSING)
            if refused is not None:
                tick.say(
                    warning(
                        f"Halt {canary.ref} advancement waiting for traffic increase approval {refused.name}"
                    )
                )
                return
        if canary_weight < canary.max_weight():
            step = canary.next_step_weight(canary_weight)
            primary_weight = max(primary_weight - step, 0)
            canary_weight = min(canary_weight + step, TOTAL_WEIGHT)
            world.set_routes(primary_weight, canary_weight)
            tick.status = replace(tick.status, canary_weight=canary_weight)
            tick.say(normal(f"Advance {canary.ref} canary weight {canary_weight}"))
            return
        refused = self._gate(tick, world, "confirm-promotion", Phase.PROGRESSING)
        if refused is not None:
            if tick.status.phase != Phase.WAITING_PROMOTION:
                self._set_phase(tick, Phase.WAITING_PROMOTION)
                tick.say(
                    warning(f"Halt {canary.ref} advancement waiting for promotion approval {refused.name}")
                )
            return
        tick.say(
            normal(
                f"Copying {canary.target_ref} template spec to {canary.primary_workload}.{canary.namespace}"
            )
        )
        world.promote()
        self._set_phase(tick, Phase.PROMOTING)

    def _promotion_traffic(self, tick: Tick, world: World, primary_weight: int, canary_weight: int) -> None:
        """Step 10 (runPromotionTrafficShift)."""
        step = self.canary.step_weight_promotion
        if step == 0:
            tick.say(normal("Routing all traffic to primary"))
            world.set_routes(TOTAL_WEIGHT, 0)
            self._set_phase(tick, Phase.FINALISING)
            return
        if canary_weight > 0:
            primary_weight = min(primary_weight + step, TOTAL_WEIGHT)
            canary_weight = max(canary_weight - step, 0)
            world.set_routes(primary_weight, canary_weight)
            tick.say(normal(f"Advance {self.canary.ref} primary weight {primary_weight}"))
            if primary_weight == TOTAL_WEIGHT:
                self._set_phase(tick, Phase.FINALISING)
            else:
                tick.status = replace(tick.status, canary_weight=canary_weight)

    def advance(self, status: Status, world: World) -> Tick:
        canary = self.canary
        tick = Tick(status)
        if canary.suspend:  # 1
            tick.say(normal("skipping canary run as object is suspended"))
            return tick
        if status.phase in (Phase.NONE, Phase.INITIALIZING) and not self._initialise(tick, world):  # 2
            return tick
        if not self._new_revision(tick, world):  # 3
            return tick
        if not canary.skip_analysis:  # 4
            primary = world.primary_ready()
            if not primary.ready:
                tick.say(warning(f"{canary.primary_workload}.{canary.namespace} not ready: {primary.error}"))
                if not primary.retriable:
                    if tick.status.phase in (Phase.PROMOTING, Phase.FINALISING):
                        return self._failed_promotion(tick, world, primary.error)
                    return self._rollback(tick, world)
                return tick
        primary_weight, canary_weight = world.routes()
        if tick.status.phase not in (
            Phase.PROGRESSING,
            Phase.WAITING_PROMOTION,
            Phase.PROMOTING,
            Phase.FINALISING,
        ):
            self._start(tick, world)  # 5: the tick ends either way
            return tick
        if tick.status.phase in (Phase.PROGRESSING, Phase.WAITING_PROMOTION) and (  # 6
            spec_changed(tick.status, world.target_revision())
        ):
            tick.say(normal(f"New revision detected! Restarting analysis for {canary.target_ref}"))
            world.set_routes(TOTAL_WEIGHT, 0)
            self._sync(tick, world, Status(phase=Phase.PROGRESSING))
            return tick
        ready = world.canary_ready()  # 7
        if not ready.ready:
            tick.say(warning(f"canary deployment {canary.target_ref} not ready: {ready.error}"))
            return self._rollback(tick, world) if not ready.retriable else tick
        if canary.skip_analysis:  # 8
            return self._skip_analysis(tick, world)
        if tick.status.phase in (Phase.PROGRESSING, Phase.WAITING, Phase.WAITING_PROMOTION) and (  # 9
            self._rollback_requested(tick, world)
        ):
            tick.say(warning(f"Rolling back {canary.ref} manual webhook invoked"))
            return self._rollback(tick, world)
        if tick.status.phase == Phase.PROMOTING:  # 10
            self._promotion_traffic(tick, world, primary_weight, canary_weight)
            return tick
        if tick.status.phase == Phase.FINALISING:  # 11
            world.scale_to_zero()
            self._set_phase(tick, Phase.SUCCEEDED)
            self._post_rollout(tick, world, Phase.SUCCEEDED)
            tick.say(normal(f"Promotion completed! Scaling down {canary.target_ref}"))
            return tick
        if tick.status.failed_checks >= canary.threshold:  # 12 (Progressing, WaitingPromotion)
            return self._rollback(tick, world)
        if not self._analyse(tick, world, canary_weight):  # 13
            tick.status = replace(tick.status, failed_checks=tick.status.failed_checks + 1)
            return tick
        if canary.next_step_weight(canary_weight) > 0:  # 14
            self._step(tick, world, primary_weight, canary_weight)
        return tick

    def _skip_analysis(self, tick: Tick, world: World) -> Tick:
        """shouldSkipAnalysis: all traffic to the primary, promote, scale down, Succeeded."""
        canary = self.canary
        world.set_routes(TOTAL_WEIGHT, 0)
        tick.say(
            normal(
                f"Copying {canary.target_ref} template spec to {canary.primary_workload}.{canary.namespace}"
            )
        )
        world.promote()
        world.scale_to_zero()
        self._set_phase(tick, Phase.SUCCEEDED)
        self._post_rollout(tick, world, Phase.SUCCEEDED)
        tick.say(normal(f"Promotion completed! Canary analysis was skipped for {canary.target_ref}"))
        return tick
