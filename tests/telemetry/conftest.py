"""A real Prometheus for the telemetry tests: Debian's binaries, a free port, a temp state dir."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fixtures.ports import loopback

from shopmesh.launch.ports import free_port
from shopmesh.telemetry.prometheus import Binaries, LocalPrometheus, PrometheusSettings, find_binaries


@pytest.fixture(scope="session")
def binaries() -> Binaries:
    return find_binaries()


@pytest.fixture
def start_prometheus(tmp_path: Path, binaries: Binaries) -> Iterator[Callable[..., LocalPrometheus]]:
    """`start_prometheus(targets=[...], rule_files=[...])`: a ready Prometheus on a free port,
    stopped at the end of the test whatever happened."""
    started: list[LocalPrometheus] = []

    def start(**settings: Any) -> LocalPrometheus:
        settings.setdefault("state", tmp_path / f"prometheus-{len(started)}")
        settings.setdefault("listen", loopback(free_port()))
        prometheus = LocalPrometheus(PrometheusSettings(**settings), binaries)
        started.append(prometheus)
        return prometheus.start()

    yield start
    for prometheus in started:
        prometheus.stop()
