"""The Canary's status and what the scheduler asks of the world (pkg/apis/flagger/v1beta1/
status.go; the canary and router controllers' interfaces, pkg/canary/controller.go,
pkg/router/router.go), for `scheduler`."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple, Protocol

from shopmesh.canary.checks import MetricsSource
from shopmesh.canary.spec import Webhook


class Phase(StrEnum):
    """pkg/apis/flagger/v1beta1/status.go CanaryPhase."""

    NONE = ""
    INITIALIZING = "Initializing"
    INITIALIZED = "Initialized"
    WAITING = "Waiting"
    PROGRESSING = "Progressing"
    WAITING_PROMOTION = "WaitingPromotion"
    PROMOTING = "Promoting"
    FINALISING = "Finalising"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


#: Phases in which an analysis is under way (shouldAdvance's first test).
UNDER_WAY = frozenset(
    {Phase.PROGRESSING, Phase.WAITING, Phase.WAITING_PROMOTION, Phase.PROMOTING, Phase.FINALISING}
)


@dataclass(frozen=True)
class Status:
    """The Canary's status fields the scheduler reads and writes."""

    phase: Phase = Phase.NONE
    canary_weight: int = 0
    failed_checks: int = 0
    iterations: int = 0
    last_applied_spec: str = ""  # the target's pod template hash when last synced
    last_promoted_spec: str = ""


class Readiness(NamedTuple):
    """A Deployment's readiness (deployment_ready.go isDeploymentReady): its error, and
    whether waiting may still help (false: its progress deadline passed)."""

    error: str = ""
    retriable: bool = True

    @property
    def ready(self) -> bool:
        return not self.error


class World(MetricsSource, Protocol):
    """What the scheduler reads and changes: the cluster (or the local mesh), the webhooks,
    the metrics server."""

    def target_revision(self) -> str:
        """A hash of the target Deployment's pod template (canary/spec.go ComputeHash)."""
        ...

    def make_primary(self) -> None:
        """Create the primary Deployment and the Services, if missing (Initialize)."""
        ...

    def primary_ready(self) -> Readiness: ...

    def canary_ready(self) -> Readiness: ...

    def routes(self) -> tuple[int, int]:
        """The (primary, canary) weights of the VirtualService."""
        ...

    def set_routes(self, primary: int, canary: int) -> None: ...

    def scale_to_zero(self) -> None: ...

    def scale_from_zero(self) -> None: ...

    def promote(self) -> None:
        """Copy the target's pod template to the primary (DeploymentController.Promote)."""
        ...

    def call_webhook(self, hook: Webhook, phase: Phase) -> str | None:
        """POST the hook; None when it answered ≤ 202, else the error (webhook.go CallWebhook)."""
        ...


def spec_changed(status: Status, revision: str) -> bool:
    """canary/spec.go hasSpecChanged: never applied, or neither the applied nor (a manual
    rollback) the promoted revision."""
    if not status.last_applied_spec:
        return True
    return revision not in (status.last_promoted_spec, status.last_applied_spec)
