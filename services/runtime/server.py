"""The one bootstrap all three services share: `serve(definition, settings)`.

A service declares what is its own (name, migrations, servicers, optional start hook) in a
ServiceDefinition; everything else is here, once: database, health, reflection, metrics,
tracing, error mapping, outbound channels, and the SIGTERM drain.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from importlib import import_module
from pathlib import Path
from typing import Any, TypeVar

import grpc
import uvloop
from grpc_health.v1 import health_pb2, health_pb2_grpc

from services.runtime import metrics
from services.runtime.config import ConfigError, Settings
from services.runtime.database import Database
from services.runtime.declaration import ServiceDeclaration
from services.runtime.health import Health
from services.runtime.interceptor import RuntimeInterceptor
from services.runtime.logs import configure_logging
from services.runtime.outbound import open_channel
from services.runtime.reflection import enable_reflection
from services.runtime.tracing import configure_tracing, flush_tracing
from services.runtime.upgrade import upgrade_if_behind

log = logging.getLogger("shopmesh.server")
T = TypeVar("T")
#: How long shutdown waits for cancelled tasks to unwind (a cancelled task still rolls back).
CANCEL_SECONDS = 5.0


@dataclass(frozen=True)
class Registration:
    """A servicer and the generated function that adds it, e.g.
    `Registration(payment_pb2_grpc.add_PaymentServiceServicer_to_server, PaymentServicer(...))`."""

    add_to_server: Callable[[Any, grpc.aio.Server], None]
    servicer: Any


@dataclass
class ServiceContext:
    """What a service's `build` and `on_start` get: its settings, database and dependencies."""

    settings: Settings
    database: Database
    _channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _detached: set[asyncio.Task[Any]] = field(default_factory=set)

    def channel(self, name: str) -> grpc.aio.Channel:
        """The channel to dependency `name` (one its declaration `calls`); opened once, on first use."""
        if name not in self._channels:
            self._channels[name] = open_channel(self.settings.dependency_targets[name], self.settings)
        return self._channels[name]

    def spawn(self, work: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        """Background work that lives as long as the server; cancelled at shutdown."""
        return _tracked(work, self._tasks)

    def detach(self, work: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Work a call starts that its caller must not cut short by hanging up (a saga).

        At shutdown it gets what is left of the grace period to finish, then is cancelled: so
        only work that persists each step first (and is resumed on the next start) belongs here.
        """
        return _tracked(work, self._detached)

    async def settle(self, seconds: float) -> None:
        """Waits up to `seconds` for detached work, including work started meanwhile."""
        deadline = asyncio.get_running_loop().time() + seconds
        while self._detached:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                log.warning("grace period over: cancelling %d unfinished detached tasks", len(self._detached))
                return
            await asyncio.wait(set(self._detached), timeout=remaining)

    async def close(self) -> None:
        """Cancels background and detached work and waits for it to end, then closes channels
        and the database. Every task must end here, while the loop still runs, so that the
        database closes after the last unit of work was handed to it (its threads finish what
        they were given, then close their connections)."""
        tasks = [*self._tasks, *self._detached]
        for task in tasks:
            task.cancel()
        if tasks:
            _, stuck = await asyncio.wait(tasks, timeout=CANCEL_SECONDS)
            if stuck:
                log.error("%d tasks did not end within %.0fs of being cancelled", len(stuck), CANCEL_SECONDS)
        for channel in self._channels.values():
            await channel.close(None)  # shutdown waited for our calls already
        await self.database.dispose()


def _tracked(work: Coroutine[Any, Any, T], tasks: set[asyncio.Task[Any]]) -> asyncio.Task[T]:
    task = asyncio.create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    return task


@dataclass(frozen=True)
class ServiceDefinition:
    """How to run a declared service: its migrations, its servicers and an optional start hook."""

    declaration: ServiceDeclaration
    migrations: Path  # services/<name>/migrations
    build: Callable[[ServiceContext], Awaitable[Sequence[Registration]]]
    on_start: Callable[[ServiceContext], Awaitable[None]] | None = None  # awaited before the port opens

    @property
    def name(self) -> str:
        return self.declaration.name


def load_definition(name: str) -> ServiceDefinition:
    """`services.<name>.service:DEFINITION`, the convention every service follows."""
    definition = import_module(f"services.{name}.service").DEFINITION
    if not isinstance(definition, ServiceDefinition):
        raise TypeError(f"services.{name}.service.DEFINITION is not a ServiceDefinition")
    return definition


def main(definition: ServiceDefinition) -> None:
    """`python -m services.<name>`: serve until SIGTERM; a bad configuration exits 2 with one line."""
    run(definition, settings_or_exit(definition.name))


def settings_or_exit(service: str) -> Settings:
    """The settings from the environment, or exit 2 with one line naming the bad variable."""
    try:
        return Settings.from_environment(service)
    except ConfigError as error:
        raise SystemExit(f"shopmesh {service}: configuration error: {error}") from None


def event_loop() -> asyncio.Runner:
    """The event loop every service runs on: uvloop's (libuv), on which a grpc.aio call costs
    less CPU than on asyncio's own. (asyncio.run's loop_factory needs Python 3.12; the Runner
    has it from 3.11.)"""
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run(definition: ServiceDefinition, settings: Settings) -> None:
    """Log as JSON and serve until SIGTERM/SIGINT; a start-up ConfigError exits 2 with one line."""
    configure_logging(definition.name, settings.log_level)
    try:
        with event_loop() as runner:
            runner.run(serve(definition, settings))
    except ConfigError as error:
        raise SystemExit(f"shopmesh {definition.name}: configuration error: {error}") from None


async def serve(
    definition: ServiceDefinition,
    settings: Settings,
    *,
    ready: asyncio.Event | None = None,
    shutdown: asyncio.Event | None = None,
) -> None:
    """Serve until `shutdown` is set (or, without one, until SIGTERM/SIGINT), then drain and stop.

    `ready` is set once the port is open. A second signal during the drain skips the rest of it.
    """
    configure_tracing(definition.name)
    service_names = definition.declaration.health_names
    metrics.preregister(definition.declaration.methods)
    database = Database(settings.database_url, service=definition.name)
    if settings.should_migrate_on_start:
        await upgrade_if_behind(database, definition.migrations)
    context = ServiceContext(settings, database)
    hurry = asyncio.Event()
    if shutdown is None:
        shutdown = asyncio.Event()
        _on_signals(shutdown, hurry)
    server = grpc.aio.server(
        interceptors=[RuntimeInterceptor(definition.name)],
        options=[
            ("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", settings.max_message_bytes),
            ("grpc.so_reuseport", 0),  # a second server on a taken port must fail, not share it
        ],
    )
    health = Health(service_names)
    metrics_server: metrics.MetricsServer | None = None
    try:
        for registration in await definition.build(context):
            registration.add_to_server(registration.servicer, server)
        health_pb2_grpc.add_HealthServicer_to_server(health.servicer, server)
        enable_reflection(
            server, [*service_names, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
        )
        await health.start(await database.ping())  # the first probe, before any caller can ask
        if definition.on_start is not None:
            await definition.on_start(context)
        _bind(server, settings.listen_address)
        metrics_server = _start_metrics(settings.metrics_address)
        await server.start()
        context.spawn(health.watch_database(database))
        log.info("serving %s on %s", definition.name, settings.listen_address)
        if ready is not None:
            ready.set()
        await shutdown.wait()
        await _drain(server, context, health, settings, hurry)
    finally:
        await server.stop(0)
        await context.close()
        if metrics_server is not None:
            metrics_server.close()
        flush_tracing()


async def _drain(
    server: grpc.aio.Server,
    context: ServiceContext,
    health: Health,
    settings: Settings,
    hurry: asyncio.Event,
) -> None:
    # NOT_SERVING first, so probes and the mesh stop sending new calls, while the port keeps
    # answering the calls already on their way; then stop(grace) lets in-flight calls finish,
    # and detached work (sagas whose callers hung up: no call waits for them, so stop() does
    # not) gets the rest of the same grace period.
    log.info(
        "draining for %.1fs, then stopping with %.1fs grace", settings.drain_seconds, settings.grace_seconds
    )
    await health.drain()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hurry.wait(), timeout=settings.drain_seconds)
    grace_ends = asyncio.get_running_loop().time() + settings.grace_seconds
    await server.stop(settings.grace_seconds)
    await context.settle(grace_ends - asyncio.get_running_loop().time())
    log.info("stopped")


def _on_signals(shutdown: asyncio.Event, hurry: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()

    def received(signum: int) -> None:
        log.info("received %s", signal.Signals(signum).name)
        (hurry if shutdown.is_set() else shutdown).set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, received, signum)


def _bind(server: grpc.aio.Server, address: str) -> None:
    try:
        port = server.add_insecure_port(address)
    except RuntimeError as error:
        raise ConfigError("SHOPMESH_LISTEN_ADDRESS", f"cannot listen on {address}: {error}") from None
    if port == 0:
        raise ConfigError("SHOPMESH_LISTEN_ADDRESS", f"cannot listen on {address}")


def _start_metrics(address: str) -> metrics.MetricsServer:
    host, _, port = address.rpartition(":")
    try:
        return metrics.MetricsServer(host, int(port))
    except OSError as error:
        raise ConfigError(
            "SHOPMESH_METRICS_ADDRESS", f"cannot listen on {address}: {error.strerror}"
        ) from None
