"""Where Flagger's writes live in the local mesh: each Canary's VirtualService, in a file of
the state directory that the control plane watches as one more source.

In a cluster Flagger writes the VirtualService of a Canary's service into the API server and
istiod pushes it. Here the supervisor writes it once, at 100/0 as Flagger's initialisation
does (`flagger/<namespace>-<name>.virtualservice.yaml`), and hands the file to the control
plane with the overlays; `shopmesh canary` rewrites it at each weight, and the control plane
pushes the change live. The rest of what Flagger makes (the primary Deployment, the Services,
the DestinationRules) the control plane and the supervisor derive from the Canary itself
(shopmesh.canary.objects.running), as Flagger's reconcilers keep it.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

from shopmesh.canary.objects import set_routes
from shopmesh.canary.spec import Canary, canaries
from shopmesh.localmesh.state import MeshState
from shopmesh.manifests.model import MeshObjects

#: What the control plane logs when it has pushed a change of its sources (controlplane.py).
PUSHED = "pushed new config ("
NOT_APPLIED = "sources changed but were not applied"


def routes_file(state: MeshState, canary: Canary) -> Path:
    return state.root / "flagger" / f"{canary.namespace}-{canary.name}.virtualservice.yaml"


def write_routes(path: Path, canary: Canary, primary_weight: int, canary_weight: int) -> None:
    """Flagger's SetRoutes: the VirtualService at these weights, replacing the file at once (a
    rename), so the control plane never reads half of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.write_text(yaml.safe_dump(set_routes(canary, primary_weight, canary_weight), sort_keys=False))
    os.replace(partial, path)


def initial_routes(objects: MeshObjects, state: MeshState) -> dict[str, Path]:
    """Every Canary's VirtualService at 100/0 (Flagger's initialisation), one file each, by
    `<namespace>/<name>` of the Canary."""
    paths = {}
    for canary in canaries(objects):
        path = routes_file(state, canary)
        write_routes(path, canary, 100, 0)
        paths[f"{canary.namespace}/{canary.name}"] = path
    return paths
