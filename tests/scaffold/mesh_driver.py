"""Run inside a project copy that has a scaffolded service: start that copy's local mesh (the
default stack) and call the service through it as two identities; print the outcomes as JSON.

    python tests/scaffold/mesh_driver.py NAME STATE_DIR   (cwd: the copy; PYTHONPATH: its gen/ and root)

A separate process because a process has one xDS bootstrap and sees one project's services.
"""

from __future__ import annotations

import json
import sys
from importlib import import_module
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the copy's tests/, for localmesh.*

from localmesh.meshcalls import client_bootstrap, encoded, probe, target

from shopmesh.localmesh.settings import MeshSettings
from shopmesh.localmesh.supervisor import LocalMesh


def main(name: str, state: Path) -> None:
    root = Path.cwd()
    settings = MeshSettings(
        root=root,
        sources=[root / "k8s", root / "istio"],
        state=state,
        prometheus=None,
    ).on_free_addresses()
    messages = import_module(f"shop.{name}.v1.{name}_pb2")
    greet = {
        "target": target(name),
        "method": f"/shop.{name}.v1.{name.capitalize()}Service/Greet",
        "request_b64": encoded(messages.GreetRequest(name="mesh")),
        "timeout": 10.0,
    }
    mesh = LocalMesh(settings)
    mesh.start(timeout=120)
    try:
        outcomes = {
            account: probe(client_bootstrap(mesh, "shop", account), [greet])[0]
            for account in ("operator", "order")
        }
        pods = [pod.instance.name for pod in mesh.pods]
    finally:
        mesh.stop()
    print(json.dumps({"pods": pods, "calls": outcomes}))


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
