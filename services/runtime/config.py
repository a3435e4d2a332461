"""Service configuration: read from the environment once, validated at start.

Every problem is reported as a ConfigError naming the variable, so a bad deployment fails at
start with one clear line instead of misbehaving later (12-factor config).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field

from services.runtime import registry
from services.runtime.database import sqlite_path

CHANNEL_CREDENTIALS = ("insecure", "xds")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


class ConfigError(ValueError):
    """A bad environment variable; the message starts with the variable's name."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


@dataclass(frozen=True)
class Settings:
    service: str
    listen_address: str
    metrics_address: str
    database_url: str
    dependency_targets: Mapping[str, str] = field(default_factory=dict)
    channel_credentials: str = "insecure"
    drain_seconds: float = 5.0
    grace_seconds: float = 10.0
    max_message_bytes: int = 4 * 1024 * 1024
    log_level: str = "INFO"
    seed: str | None = None
    migrate_on_start: bool | None = None  # None: only for an embedded SQLite database

    @classmethod
    def from_environment(cls, service: str, environ: Mapping[str, str] | None = None) -> Settings:
        env = _Environment(os.environ if environ is None else environ)
        try:
            declared = registry.declaration(service)
        except LookupError as error:
            raise ConfigError("service", str(error)) from None
        return cls(
            service=service,
            listen_address=env.address("SHOPMESH_LISTEN_ADDRESS", f"127.0.0.1:{declared.grpc_port}"),
            metrics_address=env.address("SHOPMESH_METRICS_ADDRESS", f"127.0.0.1:{declared.metrics_port}"),
            database_url=env.database_url("SHOPMESH_DATABASE_URL", f"sqlite+aiosqlite:///var/{service}.db"),
            dependency_targets={
                name: env.text(target_variable(name), f"127.0.0.1:{registry.declaration(name).grpc_port}")
                for name in declared.calls
            },
            channel_credentials=env.choice("SHOPMESH_CHANNEL_CREDENTIALS", "insecure", CHANNEL_CREDENTIALS),
            drain_seconds=env.seconds("SHOPMESH_DRAIN_SECONDS", 5.0),
            grace_seconds=env.seconds("SHOPMESH_GRACE_SECONDS", 10.0),
            max_message_bytes=env.integer(
                "SHOPMESH_MAX_MESSAGE_BYTES", 4 * 1024 * 1024, 1024, 64 * 1024 * 1024
            ),
            log_level=env.choice("SHOPMESH_LOG_LEVEL", "INFO", LOG_LEVELS, upper=True),
            seed=env.optional_choice("SHOPMESH_SEED", (declared.seed,) if declared.seed else ()),
            migrate_on_start=env.optional_boolean("SHOPMESH_MIGRATE_ON_START"),
        )

    @property
    def embedded_database(self) -> bool:
        return self.database_url.startswith("sqlite")

    @property
    def should_migrate_on_start(self) -> bool:
        """SQLite (a laptop run) migrates itself; PostgreSQL only when asked (k8s runs an initContainer)."""
        return self.embedded_database if self.migrate_on_start is None else self.migrate_on_start


def target_variable(dependency: str) -> str:
    """The variable that points a caller at one of its dependencies: SHOPMESH_<NAME>_TARGET."""
    return f"SHOPMESH_{dependency.upper().replace('-', '_')}_TARGET"


class _Environment:
    """Typed reads of one environment mapping; an empty value counts as unset."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def text(self, name: str, default: str) -> str:
        value = self._environ.get(name, "").strip()
        return value or default

    def address(self, name: str, default: str) -> str:
        value = self.text(name, default)
        host, separator, port = value.rpartition(":")
        if not separator or not host or not port.isdigit() or int(port) > 65535:
            raise ConfigError(name, f"{value!r} is not host:port (port 0-65535)")
        return value

    def database_url(self, name: str, default: str) -> str:
        """A PostgreSQL URL (asyncpg) or an SQLite file's; `+asyncpg` and `+aiosqlite` are
        accepted spellings of the same (SQLAlchemy's), as the runtime has one driver each."""
        value = self.text(name, default)
        if value.startswith(("sqlite://", "sqlite+aiosqlite://")):
            try:
                path = sqlite_path(value)
            except ValueError as error:
                raise ConfigError(name, f"{error}, got {value[:40]!r}") from None
            if path is None:
                raise ConfigError(name, f"an SQLite URL is sqlite:///path/to/file.db, got {value[:40]!r}")
            return value
        if not value.startswith(("postgresql://", "postgresql+asyncpg://")):
            raise ConfigError(
                name, f"must start with postgresql+asyncpg:// or sqlite+aiosqlite://, got {value[:40]!r}"
            )
        return value

    def choice(self, name: str, default: str, choices: tuple[str, ...], *, upper: bool = False) -> str:
        value = self.text(name, default)
        value = value.upper() if upper else value
        if value not in choices:
            allowed = f"one of {', '.join(choices)}" if choices else "set for this service (it takes none)"
            raise ConfigError(name, f"{value!r} is not {allowed}")
        return value

    def optional_choice(self, name: str, choices: tuple[str, ...]) -> str | None:
        value = self.text(name, "")
        return self.choice(name, "", choices) if value else None

    def optional_boolean(self, name: str) -> bool | None:
        value = self.text(name, "").lower()
        if not value:
            return None
        if value not in ("true", "false", "1", "0"):
            raise ConfigError(name, f"{value!r} is not true or false")
        return value in ("true", "1")

    def seconds(self, name: str, default: float) -> float:
        raw = self.text(name, str(default))
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(name, f"{raw!r} is not a number of seconds") from None
        if not 0 <= value <= 3600:
            raise ConfigError(name, f"{raw!r} must be between 0 and 3600 seconds")
        return value

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        raw = self.text(name, str(default))
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(name, f"{raw!r} is not an integer") from None
        if not low <= value <= high:
            raise ConfigError(name, f"{raw!r} must be between {low} and {high}")
        return value
