"""The strict control: a run that proved nothing fails (`controls: [{name: strict, provider:
{type: python, module: shopmesh.chaos.control}}]`).

Chaos Toolkit (chaostoolkit-lib 1.44/1.45) ends a run "completed" and exits 0 when the steady
state was not met *before* the method (the experiment never started), and when an action of
the method or a rollback failed (the fault was never injected, or never undone). Both are
failures of the run here: the journal's status becomes "failed", so `chaos run` exits 1.
Counted as failed: an activity Chaos Toolkit marked failed (it raised, a process timed out), a
process that exited non-zero, a command chaostoolkit-kubernetes' exec_in_pods ran that exited
non-zero (it returns `[{"exit_code": ...}]` instead of raising), and an HTTP-like reply of 400 or
more (chaostoolkit-istio returns the Kubernetes API's refusal as `{"status": 4xx, ...}`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any

log = logging.getLogger("chaostoolkit")


def after_experiment_control(context: Mapping[str, Any], state: dict[str, Any], **_: Any) -> None:
    problems = failures(state)
    if problems:
        for problem in problems:
            log.error("strict control: %s", problem)
        state["status"] = "failed"


def failures(journal: Mapping[str, Any]) -> list[str]:
    """Why this run proved nothing (nothing: it did)."""
    problems = []
    before = (journal.get("steady_states") or {}).get("before")
    if before is not None and before.get("steady_state_met") is False:
        problems.append("the steady state was not met before the method: the experiment did not run")
    runs: Iterable[Mapping[str, Any]] = [*(journal.get("run") or []), *(journal.get("rollbacks") or [])]
    for run in runs:
        reason = _failure(run)
        if reason:
            name = (run.get("activity") or {}).get("name", "?")
            problems.append(f"activity {name!r} failed: {reason}")
    return problems


def _failure(run: Mapping[str, Any]) -> str:
    if run.get("status") == "failed":
        exception = run.get("exception") or []
        return str(exception[-1]).strip() if exception else "it raised"
    provider = (run.get("activity") or {}).get("provider") or {}
    output = run.get("output")
    if isinstance(output, list):
        failed = [r for r in output if isinstance(r, Mapping) and r.get("exit_code", 0) not in (0, "0")]
        return "; ".join(
            f"{r.get('pod_name', '?')} exited {r['exit_code']}: {r.get('stderr', '')}" for r in failed
        )
    if not isinstance(output, Mapping) or not isinstance(output.get("status"), int):
        return ""
    status: int = output["status"]
    if provider.get("type") == "process" and status != 0:
        return f"exited {status}: {str(output.get('stderr', '')).strip()[-300:]}"
    if provider.get("type") in ("python", "http") and status >= 400:
        return f"answered HTTP {status}"
    return ""
