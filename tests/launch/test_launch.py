"""The launcher's rules without starting anything: each service's environment follows from its
declaration, a stack wires each caller to what it calls, and the demo lines are runnable."""

from __future__ import annotations

import json
import shlex
from pathlib import Path

import pytest

from services.runtime.config import Settings
from services.runtime.registry import declaration, start_order
from shopmesh.launch.demo import DEMO_PRODUCT, grpcurl_examples
from shopmesh.launch.service import service_environment
from shopmesh.launch.stack import Stack


def _environment(service: str, targets: dict[str, str], **options: bool) -> dict[str, str]:
    return service_environment(
        declaration(service),
        address="127.0.0.1:7001",
        metrics_address="127.0.0.1:7002",
        database_url="sqlite+aiosqlite:///x.db",
        targets=targets,
        base={"PATH": "/bin", "SHOPMESH_SEED": "stale"},
        settings={"SHOPMESH_DRAIN_SECONDS": "0"},
        **options,
    )


def test_an_environment_follows_from_the_declaration() -> None:
    caller = _environment("order", {"inventory": "a:1", "payment": "b:2", "unrelated": "c:3"})
    settings = Settings.from_environment("order", caller)
    assert settings.dependency_targets == {"inventory": "a:1", "payment": "b:2"}  # what it calls only
    assert (settings.listen_address, settings.metrics_address) == ("127.0.0.1:7001", "127.0.0.1:7002")
    assert settings.drain_seconds == 0
    assert "SHOPMESH_UNRELATED_TARGET" not in caller
    assert caller["PATH"] == "/bin"
    assert Settings.from_environment("inventory", _environment("inventory", {})).seed == "demo"
    assert "SHOPMESH_SEED" not in _environment("payment", {})  # it declares none (the base's dropped)
    assert "SHOPMESH_SEED" not in _environment("inventory", {}, seed=False)


def test_a_service_without_a_target_for_what_it_calls_is_refused() -> None:
    with pytest.raises(ValueError, match="order calls payment: give a target for each"):
        _environment("order", {"inventory": "a:1"})


def test_a_stack_wires_each_caller_to_the_processes_it_calls(tmp_path: Path) -> None:
    ports = {service.name: 41000 + n for n, service in enumerate(start_order())}
    stack = Stack.on_loopback(tmp_path, ports=ports, base={})
    assert list(stack.processes) == [service.name for service in start_order()]
    for service in start_order():
        process = stack.processes[service.name]
        settings = Settings.from_environment(service.name, process.env)
        assert process.address == f"127.0.0.1:{ports[service.name]}"
        assert settings.dependency_targets == {name: stack.address(name) for name in service.calls}
        assert settings.database_url == f"sqlite+aiosqlite:///{tmp_path / service.name}.db"
        assert process.log_file == tmp_path / "logs" / f"{service.name}.log"
        assert process.pid is None  # planned, not started


def test_every_demo_line_is_one_shell_command_with_valid_json() -> None:
    lines = grpcurl_examples("127.0.0.1:1", "127.0.0.1:2", more=["echo 'it''s'"])
    commands = [shlex.split(line) for line in lines if line.startswith(".venv/bin/grpcurl")]
    assert len(commands) == 7
    payloads = [json.loads(words[words.index("-d") + 1]) for words in commands if "-d" in words]
    assert payloads[0]["items"] == [{"product_id": DEMO_PRODUCT, "quantity": 2}]
    assert [words[-2] for words in commands if "ListProducts" in words[-1]] == ["127.0.0.1:2"]
    assert lines[-2:] == [
        "echo 'it''s'",
        "(tok_chargeDeclined declines, tok_unavailable is a processor outage)",
    ]
