"""`python -m shopmesh.localmesh.app <service>`: run a service unchanged, as its pod's app
container. Exists only for a runtime compatibility fix (below); everything else about the
service, including its mesh mode, comes from its environment."""

from __future__ import annotations

import runpy
import sys

import grpc
import grpc.experimental

# services/runtime/outbound.py asks for `grpc.insecure_channel_credentials()` as the fallback
# of xDS channel credentials; grpcio 1.85 only has it as `grpc.experimental.
# insecure_channel_credentials()`. Provide the name until the runtime uses the experimental one.
if not hasattr(grpc, "insecure_channel_credentials"):
    grpc.insecure_channel_credentials = grpc.experimental.insecure_channel_credentials  # type: ignore[attr-defined]


def main() -> None:
    if len(sys.argv) != 2 or sys.argv[1] not in ("order", "inventory", "payment"):
        raise SystemExit("usage: python -m shopmesh.localmesh.app order|inventory|payment")
    service = sys.argv.pop(1)
    runpy.run_module(f"services.{service}", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
