"""Running stacks of the three services, shared per session (starting processes is the slow part).

`sqlite_stack`: the laptop default, an embedded SQLite file per service. `postgres_stack`: each
service with its own database and role on the session's real PostgreSQL. Tests that change
stock set it first (Clients.set_stock), so they do not depend on each other's order.
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from fixtures.postgres import PostgresServer, unique_name
from fixtures.processes import ServiceProcess
from holding_proxy import HoldingProxy
from shop_stack import Clients, ProxiedOrder, Stack

from services.runtime.registry import declarations


@pytest.fixture(scope="session")
def sqlite_stack() -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="shopmesh-stack-") as directory:
        stack = Stack.launch(Path(directory))
        try:
            yield stack
        finally:
            stack.kill()


@pytest.fixture(scope="session")
def postgres_stack(postgres: PostgresServer) -> Iterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="shopmesh-stack-") as directory:
        urls = {name: postgres.create_database(unique_name(name)) for name in declarations()}
        stack = Stack.launch(Path(directory), urls)
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


@pytest.fixture(params=["sqlite", "postgres"])
async def proxied_order(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ProxiedOrder]:
    """An order process of the test's own (fresh database) behind proxies to the backend's stack."""
    backend: str = request.param
    shared: Stack = request.getfixturevalue(f"{backend}_stack")
    inventory = await HoldingProxy(shared.processes["inventory"].address).start()
    payment = await HoldingProxy(shared.processes["payment"].address).start()
    if backend == "postgres":
        url = request.getfixturevalue("postgres").create_database(unique_name("order"))
    else:
        url = f"sqlite+aiosqlite:///{tmp_path / 'order.db'}"
    env = {
        "SHOPMESH_DATABASE_URL": url,
        "SHOPMESH_MIGRATE_ON_START": "true",
        "SHOPMESH_INVENTORY_TARGET": inventory.address,
        "SHOPMESH_PAYMENT_TARGET": payment.address,
    }
    process = ServiceProcess("order", env).start()
    stack = Stack({**shared.processes, "order": process}, {**shared.database_urls, "order": url})
    clients = Clients.of(
        process.address,
        shared.processes["inventory"].address,
        shared.processes["payment"].address,
    )
    proxied = ProxiedOrder(process, inventory, payment, clients, stack, env)
    try:
        await asyncio.to_thread(process.wait_serving)
        yield proxied
    finally:
        proxied.process.kill()
        await proxied.clients.close()
        await inventory.stop()
        await payment.stop()
