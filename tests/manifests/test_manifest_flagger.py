"""The Flagger analyzers alone, on a Canary and the objects Flagger makes of it: which ports
count as gRPC for SHM0402, and which hooks count as load for SHM0403."""

from __future__ import annotations

from typing import Any

import pytest

from shopmesh.manifests.analyzers import flagger
from shopmesh.manifests.linter import applied


def _stack(service: dict[str, Any], analysis: dict[str, Any]) -> list[dict[str, Any]]:
    labels = {"app": "web"}
    return [
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "selector": {"matchLabels": labels},
                "template": {"metadata": {"labels": labels}, "spec": {"containers": [{"name": "web"}]}},
            },
        },
        {
            "apiVersion": "flagger.app/v1beta1",
            "kind": "Canary",
            "metadata": {"name": "web", "namespace": "shop"},
            "spec": {
                "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                "service": {"port": 8080, **service},
                "analysis": {"interval": "1m", "threshold": 1, "stepWeight": 10, **analysis},
            },
        },
    ]


LOAD = {
    "name": "load",
    "url": "http://tester/",
    "metadata": {"cmd": "hey -z 1m http://web-canary.shop:8080/"},
}
STOCK = {"metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}}], "webhooks": [LOAD]}


@pytest.mark.parametrize(
    ("service", "grpc"),
    [
        ({}, False),  # Flagger's default port name is http
        ({"portName": "http"}, False),
        ({"portName": "grpc"}, True),
        ({"portName": "grpc-web-api"}, True),  # grpc-web: still gRPC statuses in trailers
        ({"portName": "http", "appProtocol": "grpc"}, True),  # appProtocol wins, as in Istio
    ],
)
def test_the_stock_success_rate_is_reported_on_grpc_ports_only(service: dict[str, Any], grpc: bool) -> None:
    inventory = applied(_stack(service, STOCK))
    flagger.grpc_judged_by_http_status(inventory)
    assert [f.code for f in inventory.findings] == (["SHM0402"] if grpc else [])


@pytest.mark.parametrize(
    ("webhooks", "load"),
    [
        ([LOAD], True),
        ([{**LOAD, "type": "rollout"}], True),
        ([{**LOAD, "metadata": {"type": "cmd", "cmd": "ghz ..."}}], True),
        ([{**LOAD, "type": "pre-rollout"}], False),  # once, before the first step
        ([{**LOAD, "metadata": {"type": "bash", "cmd": "curl -f ..."}}], False),  # a blocking check
        ([{**LOAD, "metadata": {"type": "cmd", "cmd": "  "}}], False),
        ([], False),
    ],
)
def test_load_means_a_rollout_hook_starting_a_background_command(webhooks: list[Any], load: bool) -> None:
    inventory = applied(_stack({}, {"webhooks": webhooks}))
    flagger.load_webhook(inventory)
    assert [f.code for f in inventory.findings] == ([] if load else ["SHM0403"])


def test_a_canary_that_skips_its_analysis_needs_no_load() -> None:
    inventory = applied(_stack({}, {}))
    inventory.resources[1].doc["spec"]["skipAnalysis"] = True
    flagger.load_webhook(inventory)
    assert inventory.findings == []
