"""Calls into the local mesh for the tests: as any identity, through gRPC's own xDS client."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from shopmesh.localmesh.supervisor import LocalMesh

PORTS = {"order": 50051, "inventory": 50052, "payment": 50053}


def target(service: str) -> str:
    return f"xds:///{service}.shop.svc.cluster.local:{PORTS[service]}"


def encoded(message: Message) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def probe(bootstrap: Path, plan: list[dict[str, Any]], timeout: float = 120.0) -> list[dict[str, Any]]:
    """Run a plan (see shopmesh.localmesh.probe) in a process whose xDS bootstrap is `bootstrap`."""
    env = {**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap)}
    completed = subprocess.run(
        [sys.executable, "-m", "shopmesh.localmesh.probe", "-"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [json.loads(line) for line in completed.stdout.splitlines() if line.startswith("{")]


def pod_of(peer: str) -> str:
    """`sidecar~127.1.3.1~order-v2-0.shop~shop.svc.cluster.local` -> `order-v2-0`."""
    return peer.split("~")[2].split(".")[0] if peer.count("~") >= 3 else ""


def as_identity(mesh: LocalMesh, namespace: str, service_account: str) -> Path:
    return mesh.client_bootstrap(namespace, service_account)
