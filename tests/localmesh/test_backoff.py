"""CrashLoopBackOff's schedule, as the kubelet keeps it (shopmesh/localmesh/backoff.py): the
first exit restarts at once, the next ones wait 10 s, 20 s, … 300 s after the exit, and a pod
that ran 10 minutes since its last restart starts over."""

from __future__ import annotations

from pathlib import Path

import pytest

from shopmesh.localmesh.backoff import BackOffPolicy, CrashLoopBackOff
from shopmesh.localmesh.settings import MeshSettings


def crash_loop(back_off: CrashLoopBackOff, exits: int, run_seconds: float = 1.0) -> list[float]:
    """The wait before each restart of a pod that exits `run_seconds` after each start."""
    waits, now = [], 0.0
    for _ in range(exits):
        finished = now + run_seconds
        restart = back_off.restart_at(finished)
        waits.append(restart - finished)
        back_off.restarted(finished, restart)
        now = restart
    return waits


def test_kubernetes_defaults_are_the_mesh_defaults() -> None:
    policy = MeshSettings(root=Path("."), sources=[], state=Path("state")).crash_loop_backoff
    assert (policy.initial, policy.maximum, policy.reset_after) == (10.0, 300.0, 600.0)


def test_the_first_exit_restarts_at_once_then_the_delay_doubles_to_five_minutes() -> None:
    waits = crash_loop(CrashLoopBackOff(BackOffPolicy()), exits=9)
    assert waits == [0.0, 10.0, 20.0, 40.0, 80.0, 160.0, 300.0, 300.0, 300.0]


def test_in_back_off_until_the_delay_after_the_exit_has_passed() -> None:
    back_off = CrashLoopBackOff(BackOffPolicy())
    back_off.restarted(finished_at=0.0, now=0.0)  # the first restart: entry at 10 s
    assert back_off.in_back_off(finished_at=5.0, now=14.9)
    assert not back_off.in_back_off(finished_at=5.0, now=15.0)


def test_ten_minutes_of_running_since_the_last_restart_resets_the_delay() -> None:
    back_off = CrashLoopBackOff(BackOffPolicy())
    crash_loop(back_off, exits=5)  # the next exit waits 160 s
    assert back_off.delay == 160.0
    last = back_off.last_restart
    assert last is not None
    assert back_off.restart_at(last + 600.0) == last + 600.0 + 160.0  # exactly 10 min: not yet
    assert back_off.restart_at(last + 600.5) == last + 600.5  # longer: a fresh entry, at once
    back_off.restarted(last + 600.5, last + 600.5)
    assert back_off.delay == 10.0


def test_a_shortened_policy_keeps_the_shape() -> None:
    waits = crash_loop(CrashLoopBackOff(BackOffPolicy(initial=0.5, maximum=2.0)), exits=6, run_seconds=0.1)
    assert waits == pytest.approx([0.0, 0.5, 1.0, 2.0, 2.0, 2.0])


@pytest.mark.parametrize(("initial", "maximum"), [(0.0, 300.0), (-1.0, 300.0), (20.0, 10.0)])
def test_a_policy_that_is_not_a_back_off_is_refused(initial: float, maximum: float) -> None:
    with pytest.raises(ValueError, match="back-off needs"):
        BackOffPolicy(initial=initial, maximum=maximum)
