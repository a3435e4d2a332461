"""The code stays as clean as it is: mypy --strict, ruff's lint and ruff's formatting, all of it.

Each check runs as a developer runs it, from the repository root with pyproject.toml's config,
and fails with the tool's own report.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow  # runs mypy and ruff

REPO_ROOT = Path(__file__).resolve().parents[2]

#: mypy's incremental cache, outside the working tree and kept between runs: a cold run takes
#: ~15 s on two busy cores, a warm one under a second. Keyed by checkout, so two clones never
#: share one (mypy would only miss the cache, never mis-check, but there is no point).
_MYPY_CACHE = (
    Path(tempfile.gettempdir())
    / f"shopmesh-mypy-cache-{hashlib.sha256(str(REPO_ROOT).encode()).hexdigest()[:12]}"
)

CHECKS = {
    "mypy --strict": ["mypy", "--strict", "--cache-dir", str(_MYPY_CACHE), "services", "shopmesh"],
    "ruff check": ["ruff", "check", "."],
    "ruff format --check": ["ruff", "format", "--check", "."],
}


@pytest.mark.parametrize("command", CHECKS.values(), ids=CHECKS.keys())
def test_static_check_passes(command: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", *command],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, (
        f"`{' '.join(command)}` exited {result.returncode}:\n{result.stdout}{result.stderr}"
    )
