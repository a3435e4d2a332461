"""Configuration is read once from the environment and every mistake names its variable."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from services.runtime.config import ConfigError, Settings
from shopmesh.launch.ports import free_port

REPO = Path(__file__).resolve().parents[2]


def test_defaults_come_from_the_declaration() -> None:
    settings = Settings.from_environment("order", {})
    assert settings.listen_address == "127.0.0.1:50051"
    assert settings.metrics_address == "127.0.0.1:9091"
    assert settings.database_url == "sqlite+aiosqlite:///var/order.db"
    assert settings.dependency_targets == {"inventory": "127.0.0.1:50052", "payment": "127.0.0.1:50053"}
    assert (settings.drain_seconds, settings.grace_seconds) == (5.0, 10.0)
    assert settings.max_message_bytes == 4 * 1024 * 1024
    assert settings.channel_credentials == "insecure"
    assert settings.should_migrate_on_start  # embedded SQLite migrates itself


def test_postgresql_migrates_on_start_only_when_asked() -> None:
    url = "postgresql+asyncpg://payment:pw@db:5432/payment"
    assert not Settings.from_environment("payment", {"SHOPMESH_DATABASE_URL": url}).should_migrate_on_start
    asked = {"SHOPMESH_DATABASE_URL": url, "SHOPMESH_MIGRATE_ON_START": "true"}
    assert Settings.from_environment("payment", asked).should_migrate_on_start


def test_dependency_targets_take_any_grpc_target() -> None:
    env = {"SHOPMESH_INVENTORY_TARGET": "xds:///inventory.shop:50052", "SHOPMESH_CHANNEL_CREDENTIALS": "xds"}
    settings = Settings.from_environment("order", env)
    assert settings.dependency_targets["inventory"] == "xds:///inventory.shop:50052"
    assert settings.channel_credentials == "xds"


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("SHOPMESH_DRAIN_SECONDS", "abc"),
        ("SHOPMESH_DRAIN_SECONDS", "-1"),
        ("SHOPMESH_GRACE_SECONDS", "nan"),
        ("SHOPMESH_LISTEN_ADDRESS", "50051"),
        ("SHOPMESH_METRICS_ADDRESS", "127.0.0.1:99999"),
        ("SHOPMESH_DATABASE_URL", "mysql://x"),
        ("SHOPMESH_CHANNEL_CREDENTIALS", "tls"),
        ("SHOPMESH_MAX_MESSAGE_BYTES", "12"),
        ("SHOPMESH_MAX_MESSAGE_BYTES", "lots"),
        ("SHOPMESH_LOG_LEVEL", "LOUD"),
        ("SHOPMESH_SEED", "everything"),
        ("SHOPMESH_MIGRATE_ON_START", "maybe"),
    ],
)
def test_a_bad_value_is_reported_with_its_variable(variable: str, value: str) -> None:
    with pytest.raises(ConfigError) as failure:
        Settings.from_environment("payment", {variable: value})
    assert failure.value.variable == variable
    assert str(failure.value).startswith(f"{variable}: ")


def test_seed_data_is_what_the_service_declares() -> None:
    assert Settings.from_environment("inventory", {"SHOPMESH_SEED": "demo"}).seed == "demo"
    assert Settings.from_environment("inventory", {}).seed is None
    with pytest.raises(ConfigError, match="takes none"):
        Settings.from_environment("order", {"SHOPMESH_SEED": "demo"})


def test_an_unknown_service_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown service"):
        Settings.from_environment("shipping", {})


def shopmesh(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {key: value for key, value in os.environ.items() if not key.startswith("SHOPMESH_")}
    return subprocess.run(
        [str(REPO / ".venv" / "bin" / "shopmesh"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


@pytest.mark.slow  # runs the shopmesh command
def test_shopmesh_serve_exits_with_one_line_naming_the_variable() -> None:
    result = shopmesh("serve", "payment", SHOPMESH_DRAIN_SECONDS="abc")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "SHOPMESH_DRAIN_SECONDS" in lines[0]
    assert "'abc'" in lines[0]


@pytest.mark.slow  # runs the shopmesh command
def test_shopmesh_migrate_says_in_one_line_that_the_database_is_unreachable() -> None:
    url = f"postgresql+asyncpg://payment:pw@127.0.0.1:{free_port()}/payment"  # nothing listens there
    result = shopmesh("migrate", "payment", SHOPMESH_DATABASE_URL=url)
    assert result.returncode == 1
    assert (
        result.stderr.strip()
        == "shopmesh migrate payment: the database is unreachable: ConnectionRefusedError"
    )
