"""What Flagger does with a Canary, in Python: the model `shopmesh canary` runs on the local mesh.

Read from Flagger v1.44.0 (github.com/fluxcd/flagger, tag v1.44.0, commit
15bd6ad555e6c935da55f0ab95977be74c149bd6), the release whose CRDs shopmesh/manifests/crds/
vendors; each module cites the files it follows:

- `spec`: the Canary and MetricTemplate objects, with Flagger's defaults
  (pkg/apis/flagger/v1beta1/canary.go, metric.go).
- `objects`: the objects Flagger makes for a Deployment target on Istio: the primary
  Deployment, the apex/primary/canary Services, the DestinationRules and the VirtualService
  whose weights it moves (pkg/canary/deployment_controller.go, pkg/router/kubernetes_default.go,
  pkg/router/istio.go).
- `templates`: MetricTemplate query rendering (pkg/metrics/observers/render.go).
- `checks`: the metric checks and their events (pkg/controller/scheduler_metrics.go,
  pkg/metrics/observers/istio.go, pkg/metrics/providers/prometheus.go).
- `status`: the Canary's status, and what the scheduler reads from and does to the world
  (the cluster or the local mesh, webhooks, Prometheus).
- `scheduler`: one analysis tick as a state machine over the Canary's status
  (pkg/controller/scheduler.go, scheduler_hooks.go).
- `events`: Flagger's event texts and Go's formatting of their values.

Only what an Istio canary of a Deployment uses is modelled: progressive traffic (stepWeight,
stepWeights, maxWeight, stepWeightPromotion), Prometheus metrics and every webhook gate.
A/B testing, blue/green and traffic mirroring are refused by `spec` with a clear error.
"""


class CanaryError(ValueError):
    """A Canary or MetricTemplate this model cannot run; names the object and the field."""
