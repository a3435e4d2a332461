"""The mesh's telemetry: a real local Prometheus and what it loads and shows.

- `targets`: what to scrape, with the labels Kubernetes service discovery would give, and the
  Prometheus configuration generated from them;
- `prometheus`: the Prometheus process (Debian's `prometheus` package) and `promtool`;
- `query`: a small HTTP API client;
- `slo`: the service level objectives, the one source of the alerting and recording rules
  (`rules`) shipped to clusters (k8s/monitoring) and loaded locally;
- `dashboard`: the Grafana dashboard and the extraction of its panel queries;
- `generate`: writes the generated files (`scripts/gen-monitoring`);
- `kiali`, `flagger`: the queries Kiali's graph and Flagger's canary checks run, as they run them;
- `livegraph`: `shopmesh topology --live`, the observed graph against the allowed one.

See docs/observability.md.
"""
