"""Fixtures shared by every test folder (see fixtures/README.md), and the `slow` marker.

A test is `slow` when it starts a process: a service, a stack, PostgreSQL, the local mesh, a
script, or a tool (kubectl, buf, mypy, grpcurl, …). A test that uses a fixture of
PROCESS_FIXTURES (directly or through another fixture) is marked here; a test that starts one
itself carries `@pytest.mark.slow` (or its module a `pytestmark`). `scripts/test -m "not slow"`
runs the rest, and there starting a process fails the test that does it, naming it (fixtures
included): the marker cannot silently fall out of date.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import pytest
from fixtures.postgres import PostgresServer
from fixtures.processes import ServiceProcess

#: Fixtures that start processes (where each is defined); a test that uses one is slow.
PROCESS_FIXTURES = frozenset(
    {
        "postgres",  # a PostgreSQL server (here)
        "private_postgres",  # (here)
        "launch_service",  # services (here)
        "sqlite_stack",  # every service, wired (tests/services/conftest.py)
        "postgres_stack",
        "backend",  # one of the two stacks, chosen per parameter (tests/services/conftest.py)
        "proxied_order",
        "mesh",  # the local mesh (tests/localmesh), a stack (tests/runtime/test_services_runtime.py)
        "postgres_mesh",  # the local mesh on PostgreSQL (tests/localmesh/test_postgres_mode.py)
        "echo_pod",  # a control plane and a sidecar (tests/localmesh/test_sidecar.py)
        "default_docs",  # kubectl kustomize (tests/manifests/conftest.py)
        "corpus_renders",  # kubectl kustomize (tests/manifests/test_manifest_lint.py)
        "monitoring",  # kubectl kustomize k8s/monitoring (tests/manifests/test_manifest_monitoring.py)
        "binaries",  # prometheus and promtool (tests/telemetry/conftest.py)
        "start_prometheus",  # a Prometheus server (tests/telemetry/test_prometheus.py)
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Iterator[None]:
    """Outside `slow` tests, starting a process in a fixture the test sets up fails."""
    return (yield from _refusing_processes(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Iterator[None]:
    """Outside `slow` tests, starting a process in the test itself fails. (Teardown is not
    guarded: the session's last test tears down session fixtures it never asked for.)"""
    return (yield from _refusing_processes(item))


def _refusing_processes(item: pytest.Item) -> Iterator[None]:
    if item.get_closest_marker("slow") is not None:
        return (yield)

    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> None:
        raise AssertionError(f"{item.nodeid} starts a process ({args!r}): mark it slow (tests/conftest.py)")

    allowed = subprocess.Popen.__init__
    subprocess.Popen.__init__ = refuse  # type: ignore[assignment]
    try:
        return (yield)
    finally:
        subprocess.Popen.__init__ = allowed  # type: ignore[method-assign]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One real PostgreSQL 15 for the session; each test makes its own database with
    `postgres.create_database(unique_name("payment"))`. Do not stop it: use `private_postgres`."""
    with _postgres_server() as server:
        yield server


@pytest.fixture
def private_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this test's own, free to `stop()` and `start()` (database outage tests)."""
    with _postgres_server() as server:
        yield server


@contextlib.contextmanager
def _postgres_server() -> Iterator[PostgresServer]:
    server = PostgresServer()
    try:
        server.start()
        yield server
    finally:
        server.close()  # processes and directory, also when the test failed


@pytest.fixture
def launch_service() -> Iterator[Callable[..., ServiceProcess]]:
    """`launch_service("payment", {"SHOPMESH_DATABASE_URL": url})` starts `python -m services.payment`
    and waits until it is SERVING; every process started is killed when the test ends."""
    started: list[ServiceProcess] = []

    def launch(
        service: str,
        env: Mapping[str, str] | None = None,
        *,
        command: Sequence[str] | None = None,
        wait: bool = True,
    ) -> ServiceProcess:
        process = ServiceProcess(service, env, command=command)
        started.append(process)
        process.start()
        if wait:
            process.wait_serving()
        return process

    yield launch
    for process in started:
        process.kill()
