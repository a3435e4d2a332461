"""MetricTemplate queries rendered as Flagger renders them (pkg/metrics/observers/render.go).

Flagger runs Go's text/template with `Option("missingkey=error")` and the model's fields as
functions (pkg/apis/flagger/v1beta1/metric.go TemplateFunctions), so a query says
`{{ namespace }}`, not `{{ .namespace }}`:

| function | value (pkg/controller/scheduler_metrics.go toMetricModel) |
|---|---|
| `name` | the Canary's name |
| `namespace` | the Canary's namespace |
| `target` | `spec.targetRef.name` |
| `service` | `spec.service.name`, else the target's name |
| `ingress` | `spec.ingressRef.name`, else the target's name |
| `route` | `spec.routeRef.name`, else the target's name |
| `interval` | the metric's `interval`, verbatim (default `1m`) |
| `variables` | the metric's `templateVariables`: `{{ variables.direction }}` |

This renders the subset of text/template those queries use: actions holding one of these
functions (`variables` with a key), the `{{-`/`-}}` whitespace trims, and comments. Anything
else (pipelines, conditionals, literals) is refused with a clear error, as is an unknown
function or a missing variable, which Go refuses too. The provider then collapses every run of
whitespace to one space before sending the query (providers/prometheus.go trimQuery).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field

from shopmesh.canary.spec import Canary, Metric

_ACTION = re.compile(r"\{\{(-\s)?(.*?)(\s-)?\}\}", re.DOTALL)
_CALL = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)((?:\.[A-Za-z_][A-Za-z0-9_]*)*)$")
_WHITESPACE = re.compile(r"\s+")


class TemplateError(ValueError):
    """A query Flagger (or this subset of its templating) cannot render."""


@dataclass(frozen=True)
class MetricModel:
    """flaggerv1.MetricTemplateModel."""

    name: str
    namespace: str
    target: str
    service: str
    ingress: str
    route: str
    interval: str
    variables: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, canary: Canary, metric: Metric) -> MetricModel:
        spec = canary.resource.spec
        target = canary.target_name
        return cls(
            name=canary.name,
            namespace=canary.namespace,
            target=target,
            service=str((spec.get("service") or {}).get("name") or target),
            ingress=str((spec.get("ingressRef") or {}).get("name") or target),
            route=str((spec.get("routeRef") or {}).get("name") or target),
            interval=metric.interval,
            variables=dict(metric.variables),
        )

    def call(self, function: str, keys: list[str]) -> str:
        if function == "variables":
            if len(keys) != 1:
                raise TemplateError("variables needs one key: {{ variables.<key> }}")
            if keys[0] not in self.variables:
                raise TemplateError(
                    f'executing "tmpl" at <variables.{keys[0]}>: map has no entry for key "{keys[0]}"'
                )
            return self.variables[keys[0]]
        values = {
            "name": self.name,
            "namespace": self.namespace,
            "target": self.target,
            "service": self.service,
            "ingress": self.ingress,
            "route": self.route,
            "interval": self.interval,
        }
        if function not in values:
            raise TemplateError(f'function "{function}" not defined')
        if keys:
            raise TemplateError(f"can't evaluate field {keys[0]} in type string")
        return values[function]


def render(query: str, model: MetricModel) -> str:
    """The query with every action replaced by its value (render.go RenderQuery)."""
    out: list[str] = []
    position = 0
    for action in _ACTION.finditer(query):
        before = query[position : action.start()]
        out.append(before.rstrip() if action.group(1) else before)
        position = action.end()
        if action.group(3):
            rest = query[position:]
            position += len(rest) - len(rest.lstrip())
        body = action.group(2).strip()
        if body.startswith("/*") and body.endswith("*/"):
            continue
        call = _CALL.match(body)
        if call is None:
            raise TemplateError(f"unsupported template action {{{{{action.group(2)}}}}}")
        keys = [key for key in call.group(2).split(".") if key]
        out.append(model.call(call.group(1), keys))
    tail = query[position:]
    if "{{" in tail:
        raise TemplateError("unclosed action")
    out.append(tail)
    return "".join(out)


def trim(query: str) -> str:
    """providers/prometheus.go trimQuery: every run of whitespace becomes one space."""
    return _WHITESPACE.sub(" ", query)
