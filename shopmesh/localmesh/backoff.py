"""CrashLoopBackOff: when the local kubelet may start a pod's exited containers again.

Kubernetes' rule, as the kubelet applies it (pkg/kubelet/kuberuntime/kuberuntime_manager.go
`doBackOff`, over client-go's util/flowcontrol/backoff.go, created with
`NewBackOff(10 s, MaxContainerBackOff = 300 s)`, no jitter):

- when a container has exited, it is in back-off while less than the entry's delay has passed
  since it *finished* (`IsInBackOffSince(key, finishedAt)`);
- otherwise it is restarted now, and the entry moves on (`Next(key, finishedAt)`): the first
  time, or when the entry has expired, to the initial delay (10 s); else to twice the last one,
  capped at the maximum (300 s);
- an entry expires when the container finished more than twice the maximum (10 min) after
  the last restart (`hasExpired`): a container that ran 10 minutes starts over at 10 s.

So a pod's first crash restarts it at once, the next ones wait 10 s, 20 s, 40 s, … 300 s, each
counted from the moment it exited. Times here are `time.monotonic()` seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Kubernetes' values (kubelet `backOffPeriod`, `MaxContainerBackOff`).
INITIAL_DELAY_SECONDS = 10.0
MAX_DELAY_SECONDS = 300.0


@dataclass(frozen=True)
class BackOffPolicy:
    """The schedule's two numbers; the defaults are Kubernetes'. Tests shorten them through
    MeshSettings.crash_loop_backoff, never anything else."""

    initial: float = INITIAL_DELAY_SECONDS
    maximum: float = MAX_DELAY_SECONDS

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError(f"back-off needs 0 < initial <= maximum, got {self.initial}, {self.maximum}")

    @property
    def reset_after(self) -> float:
        """How long after a restart an exit no longer continues the back-off (2 x maximum)."""
        return 2 * self.maximum


class CrashLoopBackOff:
    """One container's (here: one pod's) back-off entry."""

    def __init__(self, policy: BackOffPolicy) -> None:
        self.policy = policy
        self.delay: float | None = None  # None: no entry (never restarted, or forgotten)
        self.last_restart: float | None = None

    def _expired(self, finished_at: float) -> bool:
        return self.last_restart is None or finished_at - self.last_restart > self.policy.reset_after

    def restart_at(self, finished_at: float) -> float:
        """When a pod that exited at `finished_at` may start again (IsInBackOffSince)."""
        if self.delay is None or self._expired(finished_at):
            return finished_at
        return finished_at + self.delay

    def in_back_off(self, finished_at: float, now: float) -> bool:
        return now < self.restart_at(finished_at)

    def restarted(self, finished_at: float, now: float) -> None:
        """Record a restart at `now` of a pod that exited at `finished_at` (Next)."""
        if self.delay is None or self._expired(finished_at):
            self.delay = self.policy.initial
        else:
            self.delay = min(2 * self.delay, self.policy.maximum)
        self.last_restart = now
