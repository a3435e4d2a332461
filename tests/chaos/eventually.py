"""Waiting, bounded, for something to become true."""

from __future__ import annotations

import time
from collections.abc import Callable


def eventually(check: Callable[[], bool], within: float, what: str) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {within}s: {what}")
