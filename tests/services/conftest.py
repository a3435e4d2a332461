"""Running stacks of the three services, shared per session (starting processes is the slow part).

`sqlite_stack`: the laptop default, an embedded SQLite file per service. `postgres_stack`: each
service with its own database and role on the session's real PostgreSQL. Tests that change
stock set it first (Clients.set_stock), so they do not depend on each other's order.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer, unique_name
from shop_stack import SERVICES, Clients, Stack


@pytest.fixture(scope="session")
def sqlite_stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="shopmesh-stack-") as directory:
        urls = {name: f"sqlite+aiosqlite:///{Path(directory) / name}.db" for name in SERVICES}
        stack = Stack.start(urls)
        try:
            yield stack
        finally:
            stack.kill()


@pytest.fixture(scope="session")
def postgres_stack(postgres: PostgresServer) -> Iterator[Stack]:
    stack = Stack.start({name: postgres.create_database(unique_name(name)) for name in SERVICES})
    try:
        yield stack
    finally:
        stack.kill()


@pytest.fixture(scope="session")
async def sqlite_clients(sqlite_stack: Stack) -> AsyncIterator[Clients]:
    clients = sqlite_stack.clients()
    yield clients
    await clients.close()


@pytest.fixture(scope="session")
async def postgres_clients(postgres_stack: Stack) -> AsyncIterator[Clients]:
    clients = postgres_stack.clients()
    yield clients
    await clients.close()


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest) -> tuple[Stack, Clients]:
    """Runs a test once on each database backend."""
    name: str = request.param
    return request.getfixturevalue(f"{name}_stack"), request.getfixturevalue(f"{name}_clients")
