"""Fixtures shared by every test folder (see fixtures/README.md)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence

import pytest
from fixtures.postgres import PostgresServer
from fixtures.processes import ServiceProcess


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
