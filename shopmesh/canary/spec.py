"""The Canary and MetricTemplate objects, read with Flagger's defaults.

pkg/apis/flagger/v1beta1/canary.go: GetServiceNames, GetAnalysisInterval (default 60 s, at
least 10 s, an unparsable value falls back to the default), GetAnalysisThreshold (default 1),
GetMetricInterval ("1m"), SkipAnalysis, DeploymentStrategy; pkg/controller/scheduler.go:
maxWeight and nextStepWeight.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from shopmesh.canary import CanaryError
from shopmesh.manifests.model import Resource

API_VERSION = "flagger.app/v1beta1"
DEFAULT_INTERVAL_SECONDS = 60.0
MIN_INTERVAL_SECONDS = 10.0
DEFAULT_METRIC_INTERVAL = "1m"
TOTAL_WEIGHT = 100  # scheduler.go totalWeight: "set total weight default value to 100%"
#: The builtin Istio checks (pkg/metrics/observers/istio.go).
BUILTIN_METRICS = ("request-success-rate", "request-duration")
#: Webhook types (canary.go HookType); "" runs as `rollout`.
HOOK_TYPES = frozenset(
    {
        "",
        "confirm-rollout",
        "pre-rollout",
        "rollout",
        "confirm-promotion",
        "post-rollout",
        "event",
        "rollback",
        "confirm-traffic-increase",
    }
)

_GO_DURATION = re.compile(r"^[-+]?(?:\d*\.?\d+(?:ns|us|µs|ms|s|m|h))+$")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def go_duration_seconds(text: str) -> float | None:
    """Go's time.ParseDuration, in seconds ("1m30s" → 90.0); None when Go would refuse it."""
    if text == "0":
        return 0.0
    if not _GO_DURATION.match(text):
        return None
    sign = -1.0 if text.startswith("-") else 1.0
    total = sum(
        float(number) * _GO_UNITS[unit]
        for number, unit in re.findall(r"(\d*\.?\d+)(ns|us|µs|ms|s|m|h)", text.lstrip("+-"))
    )
    return sign * total


@dataclass(frozen=True)
class Webhook:
    name: str
    type: str  # one of HOOK_TYPES
    url: str
    timeout: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)

    @property
    def runs_as(self) -> str:
        """The type Flagger runs it as: an empty type is a `rollout` hook."""
        return self.type or "rollout"


@dataclass(frozen=True)
class Metric:
    name: str
    interval: str  # verbatim, Flagger's default "1m" (it is `{{ interval }}` in queries)
    threshold_min: float | None = None
    threshold_max: float | None = None
    threshold: float = 0.0  # the legacy `threshold`, used without a thresholdRange
    has_range: bool = False
    template: tuple[str, str] | None = None  # (namespace, name) of its MetricTemplate
    query: str = ""  # an inline PromQL query
    variables: Mapping[str, str] = field(default_factory=dict)

    @property
    def is_builtin(self) -> bool:
        return self.template is None and not self.query and self.name in BUILTIN_METRICS


@dataclass(frozen=True)
class Canary:
    """A Canary with Flagger's defaults applied."""

    resource: Resource
    name: str
    namespace: str
    target_kind: str
    target_name: str
    service_name: str  # the apex Service: spec.service.name or the target's name
    port: int
    interval_seconds: float
    threshold: int
    max_weight_setting: int
    step_weight: int
    step_weights: tuple[int, ...]
    step_weight_promotion: int
    metrics: tuple[Metric, ...]
    webhooks: tuple[Webhook, ...]
    skip_analysis: bool
    suspend: bool

    @property
    def ref(self) -> str:
        return f"{self.name}.{self.namespace}"

    @property
    def target_ref(self) -> str:
        """How most of Flagger's events name it: the target, e.g. `order.shop`."""
        return f"{self.target_name}.{self.namespace}"

    @property
    def primary_name(self) -> str:
        return f"{self.service_name}-primary"

    @property
    def canary_name(self) -> str:
        return f"{self.service_name}-canary"

    @property
    def primary_workload(self) -> str:
        """The primary Deployment (scheduler.go runCanary: `<target>-primary`)."""
        return f"{self.target_name}-primary"

    @property
    def service(self) -> Mapping[str, Any]:
        return self.resource.spec.get("service") or {}

    def hooks(self, runs_as: str) -> list[Webhook]:
        return [hook for hook in self.webhooks if hook.runs_as == runs_as]

    def max_weight(self) -> int:
        """scheduler.go maxWeight: the last stepWeights entry (at most 100), else maxWeight,
        else 100."""
        if self.step_weights:
            return min(TOTAL_WEIGHT, self.step_weights[-1])
        if self.max_weight_setting > 0:
            return self.max_weight_setting
        return TOTAL_WEIGHT

    def next_step_weight(self, canary_weight: int) -> int:
        """scheduler.go nextStepWeight: stepWeight when set (or when there are no stepWeights,
        so 0 with neither: the canary never advances); else the next listed weight's
        difference, never past 100."""
        if self.step_weight > 0 or not self.step_weights:
            return self.step_weight
        max_step = TOTAL_WEIGHT - canary_weight
        if max_step == 0:
            return 1
        if canary_weight == 0:
            return min(max_step, self.step_weights[0])
        for current, following in zip(self.step_weights, self.step_weights[1:], strict=False):
            if current == canary_weight:
                return min(max_step, following - canary_weight)
        return max_step


@dataclass(frozen=True)
class MetricTemplate:
    name: str
    namespace: str
    provider: str
    address: str
    query: str


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise CanaryError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise CanaryError(f"{where}: expected a list, got {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
        raise CanaryError(f"{where}: {value!r} is not a whole number")
    return int(value)


def _float(value: Any, where: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CanaryError(f"{where}: {value!r} is not a number")
    return float(value)


def _interval_seconds(text: Any) -> float:
    if not text:
        return DEFAULT_INTERVAL_SECONDS
    seconds = go_duration_seconds(str(text))
    if seconds is None:
        return DEFAULT_INTERVAL_SECONDS
    return max(seconds, MIN_INTERVAL_SECONDS)


def _metric(item: Any, namespace: str, where: str) -> Metric:
    raw = _mapping(item, where)
    thresholds = _mapping(raw.get("thresholdRange"), f"{where}.thresholdRange")
    template = _mapping(raw.get("templateRef"), f"{where}.templateRef")
    return Metric(
        name=str(raw.get("name", "")),
        interval=str(raw.get("interval") or DEFAULT_METRIC_INTERVAL),
        threshold_min=_float(thresholds.get("min"), f"{where}.thresholdRange.min"),
        threshold_max=_float(thresholds.get("max"), f"{where}.thresholdRange.max"),
        threshold=_float(raw.get("threshold"), f"{where}.threshold") or 0.0,
        has_range=raw.get("thresholdRange") is not None,
        template=(str(template.get("namespace") or namespace), str(template.get("name", "")))
        if template
        else None,
        query=str(raw.get("query") or ""),
        variables={
            str(k): str(v)
            for k, v in _mapping(raw.get("templateVariables"), f"{where}.templateVariables").items()
        },
    )


def _webhook(item: Any, where: str) -> Webhook:
    raw = _mapping(item, where)
    kind = str(raw.get("type") or "")
    if kind not in HOOK_TYPES:
        raise CanaryError(f"{where}.type: {kind!r} is not a Flagger webhook type")
    return Webhook(
        name=str(raw.get("name", "")),
        type=kind,
        url=str(raw.get("url", "")),
        timeout=str(raw.get("timeout") or ""),
        metadata={str(k): str(v) for k, v in _mapping(raw.get("metadata"), f"{where}.metadata").items()},
    )


def read_canary(resource: Resource | Mapping[str, Any]) -> Canary:
    """A Canary object as Flagger reads it; CanaryError for what this model does not run."""
    resource = resource if isinstance(resource, Resource) else Resource(resource)
    if (resource.api_version, resource.kind) != (API_VERSION, "Canary"):
        raise CanaryError(f"{resource.ref}: not a {API_VERSION} Canary")
    where = f"Canary {resource.namespace}/{resource.name}"
    spec = resource.spec
    target = _mapping(spec.get("targetRef"), f"{where}: spec.targetRef")
    if target.get("kind") != "Deployment":
        raise CanaryError(f"{where}: spec.targetRef.kind {target.get('kind')!r}: only Deployment is modelled")
    service = _mapping(spec.get("service"), f"{where}: spec.service")
    analysis = _mapping(spec.get("analysis"), f"{where}: spec.analysis")
    if analysis.get("iterations") or analysis.get("match") or analysis.get("mirror"):
        raise CanaryError(
            f"{where}: spec.analysis iterations/match/mirror (A/B, blue/green, mirroring) are not modelled"
        )
    if "port" not in service:
        raise CanaryError(f"{where}: spec.service.port is required")
    return Canary(
        resource=resource,
        name=resource.name,
        namespace=resource.namespace,
        target_kind=str(target["kind"]),
        target_name=str(target.get("name", "")),
        service_name=str(service.get("name") or target.get("name", "")),
        port=_int(service["port"], f"{where}: spec.service.port"),
        interval_seconds=_interval_seconds(analysis.get("interval")),
        threshold=max(_int(analysis.get("threshold"), f"{where}: spec.analysis.threshold"), 0) or 1,
        max_weight_setting=_int(analysis.get("maxWeight"), f"{where}: spec.analysis.maxWeight"),
        step_weight=_int(analysis.get("stepWeight"), f"{where}: spec.analysis.stepWeight"),
        step_weights=tuple(
            _int(w, f"{where}: spec.analysis.stepWeights")
            for w in _list(analysis.get("stepWeights"), f"{where}: spec.analysis.stepWeights")
        ),
        step_weight_promotion=_int(
            analysis.get("stepWeightPromotion"), f"{where}: spec.analysis.stepWeightPromotion"
        ),
        metrics=tuple(
            _metric(m, resource.namespace, f"{where}: spec.analysis.metrics[{i}]")
            for i, m in enumerate(_list(analysis.get("metrics"), f"{where}: spec.analysis.metrics"))
        ),
        webhooks=tuple(
            _webhook(w, f"{where}: spec.analysis.webhooks[{i}]")
            for i, w in enumerate(_list(analysis.get("webhooks"), f"{where}: spec.analysis.webhooks"))
        ),
        skip_analysis=spec.get("analysis") is None or bool(spec.get("skipAnalysis")),
        suspend=bool(spec.get("suspend")),
    )


def read_metric_template(resource: Resource | Mapping[str, Any]) -> MetricTemplate:
    resource = resource if isinstance(resource, Resource) else Resource(resource)
    if (resource.api_version, resource.kind) != (API_VERSION, "MetricTemplate"):
        raise CanaryError(f"{resource.ref}: not a {API_VERSION} MetricTemplate")
    provider = _mapping(
        resource.spec.get("provider"), f"MetricTemplate {resource.namespace}/{resource.name}: spec.provider"
    )
    return MetricTemplate(
        name=resource.name,
        namespace=resource.namespace,
        provider=str(provider.get("type", "")),
        address=str(provider.get("address") or ""),
        query=str(resource.spec.get("query", "")),
    )


def canaries(resources: Iterable[Resource]) -> list[Canary]:
    return [read_canary(r) for r in resources if (r.api_version, r.kind) == (API_VERSION, "Canary")]


def metric_templates(resources: Iterable[Resource]) -> dict[tuple[str, str], MetricTemplate]:
    """Every MetricTemplate by (namespace, name), as a templateRef names it."""
    found = [
        read_metric_template(r)
        for r in resources
        if (r.api_version, r.kind) == (API_VERSION, "MetricTemplate")
    ]
    return {(t.namespace, t.name): t for t in found}
