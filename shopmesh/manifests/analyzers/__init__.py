"""The analyzers: each one a function `(Inventory) -> None` that reports findings.

Every check that Istio (istioctl analyze) or Kiali also makes names its upstream source next
to it and reports the upstream code; the others report our SHM codes.
"""

from __future__ import annotations

from collections.abc import Callable

from shopmesh.manifests.analyzers import (
    authorization,
    flagger,
    hardening,
    istio_routing,
    mesh_coherence,
    workloads,
)
from shopmesh.manifests.findings import Inventory

Analyzer = Callable[[Inventory], None]

ALL: tuple[Analyzer, ...] = (
    *istio_routing.ANALYZERS,
    *workloads.ANALYZERS,
    *authorization.ANALYZERS,
    *hardening.ANALYZERS,
    *mesh_coherence.ANALYZERS,
    *flagger.ANALYZERS,
)


def analyze(inventory: Inventory) -> None:
    for analyzer in ALL:
        analyzer(inventory)
