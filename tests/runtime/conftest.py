"""The session's in-process probe server (see probe_server.py)."""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from runtime.probe_server import RunningServer, probe_settings, running


@pytest.fixture(scope="session")
async def probe_server() -> AsyncIterator[RunningServer]:
    """One probe server on SQLite for the session's read-only checks (errors, health, metrics)."""
    directory = Path(tempfile.mkdtemp(prefix="shopmesh-probe-"))
    async with running(probe_settings(f"sqlite+aiosqlite:///{directory}/probe.db")) as server:
        yield server
