"""What shopmesh's Chaos Toolkit experiments (chaos/) call besides the extensions' own functions.

- `hypothesis`: the steady state, once: the ingress success ratio query and its target;
- `probes`: Python probes — the books agree (shopmesh.check), the ingress success ratio and a
  bound on any Prometheus query, from the local or a cluster's Prometheus;
- `control`: the strict control: a run whose steady state was not met before the method, or
  whose method or rollbacks failed, fails (Chaos Toolkit itself exits 0 for both).

Nothing here imports Chaos Toolkit: the experiments name these functions, `chaos` calls them.
"""
