"""Free TCP ports for the processes the project starts (services, sidecars, PostgreSQL, Prometheus).

A port is chosen here and bound later, by another process, so something else may take it in
between. `bind(0)` hands out ports from the kernel's ephemeral range, which is also where every
outgoing connection on the machine gets its local port: a load generator's, a gRPC channel's, a
package download's. One such connection landing on a chosen port made a service fail to start
("Address already in use") in a CI run. So ports come from below that range, where only a
listener that asks for the port by number can land; they are drawn at random, so that two
processes choosing at once rarely meet, and this process never hands out one port twice.
"""

from __future__ import annotations

import random
import socket
import threading
from pathlib import Path

#: Below this, ports are often well known (databases, dev servers) and taken on developers' machines.
_LOWEST = 10_000
#: Linux's default start of the ephemeral range, for a system that does not say its own.
_DEFAULT_EPHEMERAL_START = 32_768
_ATTEMPTS = 1_000

#: Its own generator: tests that seed the global one (hypothesis does) must not make ports repeat.
_random = random.Random()
_handed_out: set[int] = set()
_lock = threading.Lock()


def ephemeral_range_start() -> int:
    """The first port the kernel may give an outgoing connection."""
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return _DEFAULT_EPHEMERAL_START


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port on `host`, below the ephemeral range, free now and not handed out before."""
    top = max(ephemeral_range_start(), _LOWEST + _ATTEMPTS)
    with _lock:
        for _ in range(_ATTEMPTS):
            port = _random.randrange(_LOWEST, top)
            if port not in _handed_out and _bindable(host, port):
                _handed_out.add(port)
                return port
    raise RuntimeError(f"no free TCP port on {host} in {_LOWEST}..{top - 1} after {_ATTEMPTS} tries")


def _bindable(host: str, port: int) -> bool:
    # No SO_REUSEADDR or SO_REUSEPORT: a port that any socket holds, or that a listener shares
    # with others (gRPC servers set SO_REUSEPORT), counts as taken.
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
