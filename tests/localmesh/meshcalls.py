"""Calls into the local mesh for the tests: as any identity, through gRPC's own xDS client."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from google.protobuf.message import Message

from services.runtime.registry import declaration
from shopmesh.localmesh.ca import spiffe_id
from shopmesh.localmesh.placement import Instance
from shopmesh.localmesh.supervisor import LocalMesh

TESTS = Path(__file__).resolve().parents[1]


def target(service: str) -> str:
    return f"xds:///{service}.shop.svc.cluster.local:{declaration(service).grpc_port}"


def encoded(message: Message) -> str:
    return base64.b64encode(message.SerializeToString()).decode()


def probe(bootstrap: Path, plan: list[dict[str, Any]], timeout: float = 120.0) -> list[dict[str, Any]]:
    """Run a plan (see probe.py) in a process whose xDS bootstrap is `bootstrap`."""
    path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "GRPC_XDS_BOOTSTRAP": str(bootstrap), "PYTHONPATH": path}
    completed = subprocess.run(
        [sys.executable, "-m", "localmesh.probe", "-"],
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


def client_bootstrap(mesh: LocalMesh, namespace: str, service_account: str) -> Path:
    """A bootstrap for a client pod with this identity and no labels (no workload's policies or
    routes single it out): how the tests call as anyone the control plane issued a certificate."""
    assert mesh.placement is not None
    identity = spiffe_id(namespace, service_account)
    if not mesh.identity_files(identity).certificate_chain.exists():
        raise LookupError(f"the control plane issued no certificate for {identity}")
    client = Instance(
        name=f"client-{namespace}-{service_account}",
        deployment="client",
        namespace=namespace,
        labels={},
        service_account=service_account,
        address="127.0.0.1",
        ports=(),
    )
    return mesh.write_bootstrap(client)


def pushes(mesh: LocalMesh) -> int:
    """How many configs the control plane has pushed since it started."""
    return mesh.processes["controlplane"].logs(tail=10_000_000).count("pushed new config")


def wait_for_push(mesh: LocalMesh, before: int, timeout: float = 5.0) -> float:
    """Seconds until the control plane has pushed a config after `before` pushes."""
    started = time.monotonic()
    while pushes(mesh) == before:
        assert time.monotonic() - started < timeout, "the control plane pushed nothing"
        time.sleep(0.02)
    return time.monotonic() - started


@contextmanager
def rewritten(mesh: LocalMesh, path: Path, text: str) -> Iterator[float]:
    """`path` (a file of the mesh's own copy of the manifests) holds `text` until the block
    ends, then its old text again; each change waited for until pushed. Yields the seconds the
    first push took."""
    original = path.read_text()
    before = pushes(mesh)
    path.write_text(text)
    try:
        yield wait_for_push(mesh, before)
    finally:
        before = pushes(mesh)
        path.write_text(original)
        wait_for_push(mesh, before)
