"""Python probes for Chaos Toolkit (`provider: {type: python, module: shopmesh.chaos.probes}`).

Chaos Toolkit passes `configuration` to a probe that declares it; the Prometheus address is its
`prometheus_base_url`, the key chaostoolkit-prometheus reads too. A probe that raises fails
(Chaos Toolkit records the exception as the activity's failure); Python probes get no timeout
from Chaos Toolkit, so each bounds its own time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from shopmesh.chaos.hypothesis import INGRESS_WINDOW, ingress_success_ratio
from shopmesh.check.reading import DatabaseUrls
from shopmesh.check.report import CheckReport, check
from shopmesh.check.stocked import baseline
from shopmesh.telemetry.query import DEFAULT_URL, PrometheusClient

#: How long a Prometheus query may take.
QUERY_TIMEOUT_SECONDS = 10.0


class ProbeFailed(AssertionError):
    """What a probe asserts does not hold; the message says what was seen."""


def books_agree(
    order_url: str = "",
    inventory_url: str = "",
    payment_url: str = "",
    databases: str = "",
    stocked: str = "demo",
    wait_seconds: float = 30.0,
    must_agree: bool = False,
) -> dict[str, Any]:
    """`shopmesh check`'s report as JSON (judge it on `$.consistent`): the URLs given, else the
    databases of the local run on `databases` (a directory). Raises when a database cannot be
    read, and with `must_agree` (for a method, where Chaos Toolkit judges no tolerance) unless
    every order is at rest and the books agree."""
    report = _books(order_url, inventory_url, payment_url, databases, stocked, wait_seconds)
    if must_agree and not report.consistent:
        raise ProbeFailed(f"the books do not agree: {report.to_text()[-1500:]}")
    return report.to_json()


def _books(
    order_url: str, inventory_url: str, payment_url: str, databases: str, stocked: str, wait_seconds: float
) -> CheckReport:
    files = DatabaseUrls.of_run(Path(databases)) if databases else None
    urls = DatabaseUrls(
        order=order_url or (files.order if files else ""),
        inventory=inventory_url or (files.inventory if files else ""),
        payment=payment_url or (files.payment if files else ""),
    )
    missing = [service for service, url in vars(urls).items() if not url]
    if missing:
        raise ValueError(f"books_agree: no database for {', '.join(missing)}: give its URL or `databases`")
    return asyncio.run(check(urls, stocked=baseline(stocked), wait=float(wait_seconds)))


def ingress_success(window: str = INGRESS_WINDOW, configuration: Mapping[str, Any] | None = None) -> float:
    """The ingress' gRPC success ratio over `window` (judge it with a `range` tolerance).
    Raises when there was no call in the window: no traffic is no evidence of success."""
    return prometheus_value(ingress_success_ratio(window), configuration)


def at_most(query: str, maximum: float, configuration: Mapping[str, Any] | None = None) -> float:
    """The value of `query` (an instant query giving one sample, or none, read as 0); raises
    `ProbeFailed` when it exceeds `maximum`. For assertions inside a method, where Chaos
    Toolkit has no tolerance: e.g. no INTERNAL reply during an outage, no restart."""
    value = _one_or_zero(query, configuration)
    if value > maximum:
        raise ProbeFailed(f"{query!r} is {value:g}, more than {maximum:g}")
    return value


def at_least(query: str, minimum: float, configuration: Mapping[str, Any] | None = None) -> float:
    """The value of `query` (one sample, or none, read as 0); raises `ProbeFailed` when it is
    below `minimum`: e.g. the injected faults did happen, the certificates were renewed."""
    value = _one_or_zero(query, configuration)
    if value < minimum:
        raise ProbeFailed(f"{query!r} is {value:g}, less than {minimum:g}")
    return value


def prometheus_value(query: str, configuration: Mapping[str, Any] | None = None) -> float:
    """The one sample of an instant query; raises when there is none or several."""
    samples = _client(configuration).query(query)
    if len(samples) != 1:
        raise ProbeFailed(f"{query!r} gave {len(samples)} samples, not one (no traffic in the window?)")
    return samples[0].value


def _one_or_zero(query: str, configuration: Mapping[str, Any] | None) -> float:
    samples = _client(configuration).query(query)
    if len(samples) > 1:
        raise ProbeFailed(f"{query!r} gave {len(samples)} samples; aggregate it to one")
    return samples[0].value if samples else 0.0


def _client(configuration: Mapping[str, Any] | None) -> PrometheusClient:
    url = str((configuration or {}).get("prometheus_base_url") or DEFAULT_URL)
    return PrometheusClient(url, timeout=QUERY_TIMEOUT_SECONDS)
