"""The framework's ceiling: a bare grpc.aio unary echo on the services' event loop.

    python -m shopmesh.launch.echo ADDRESS

The proxy benchmark's echo (shopmesh.localmesh.proxybench.peers: raw bytes in and out, no
message class, no interceptor, no database, reflection only) run on the loop every service runs
on (services.runtime.server.event_loop), so `scripts/bench` can set what a service does per call
against what grpc.aio alone does on the same machine, in the same run.
"""

from __future__ import annotations

import sys

from services.runtime.server import event_loop
from shopmesh.localmesh.proxybench.peers import UNARY, serve_echo

__all__ = ["UNARY", "main"]


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m shopmesh.launch.echo HOST:PORT", file=sys.stderr)
        return 2
    with event_loop() as runner:
        runner.run(serve_echo(argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
