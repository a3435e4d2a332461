"""Free ports: below the kernel's ephemeral range, never one that a socket holds, never twice."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from shopmesh.launch import ports


@pytest.fixture
def held_port() -> Iterator[int]:
    """A port below the ephemeral range that a listener holds, as a gRPC server binds it
    (SO_REUSEPORT set, which a second SO_REUSEPORT listener could share)."""
    with socket.socket() as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        listener.bind(("127.0.0.1", ports.free_port()))
        listener.listen()
        yield int(listener.getsockname()[1])


def test_ports_come_from_below_the_ephemeral_range() -> None:
    start = ports.ephemeral_range_start()
    chosen = [ports.free_port() for _ in range(50)]
    assert all(10_000 <= port < start for port in chosen), chosen


def test_no_port_is_handed_out_twice() -> None:
    chosen = [ports.free_port() for _ in range(500)]
    assert len(set(chosen)) == len(chosen)


def test_a_held_port_is_passed_over(held_port: int, monkeypatch: pytest.MonkeyPatch) -> None:
    draws = iter([held_port, held_port, held_port + 1, held_port + 2])
    monkeypatch.setattr(ports._random, "randrange", lambda low, high: next(draws))
    monkeypatch.setattr(ports, "_handed_out", set())

    chosen = ports.free_port()

    assert chosen != held_port
    assert chosen in (held_port + 1, held_port + 2)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", chosen))  # free indeed


def test_running_out_of_tries_says_where_it_looked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ports, "_bindable", lambda host, port: False)

    with pytest.raises(RuntimeError, match=r"no free TCP port on 127\.0\.0\.1 in 10000\.\."):
        ports.free_port()
