"""The fuzz, short: a few dozen malformed requests of every family at a local mesh's ingress and
at each service's own process. Every target stays SERVING after every family, no process dies,
and every failure (INTERNAL, UNKNOWN, a hang) has a known cause (shopmesh...causes, each with a
strict xfail reproduction in test_fuzz_findings.py): a new kind of failure fails this test.
The full run (about 1000 cases a target) is `scripts/fuzz`."""

from __future__ import annotations

from collections.abc import Iterator

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2
from grpc_status import rpc_status

from shopmesh.resilience.fuzz.cases import FAMILIES, HEALTH
from shopmesh.resilience.fuzz.runner import Target, fuzz
from shopmesh.resilience.mesh import RunningMesh, local_mesh

pytestmark = pytest.mark.slow
SERVICES = ("order", "inventory", "payment")


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningMesh]:
    with local_mesh(tmp_path_factory.mktemp("fuzz-mesh"), prometheus=False) as mesh:
        yield mesh


def test_a_short_fuzz_finds_nothing_new(running: RunningMesh) -> None:
    targets = [Target("ingress", running.ingress, SERVICES)]
    targets += [Target(app, address, (app,)) for app, address in sorted(running.apps().items())]
    reports = fuzz(targets, scale=0.04, seed=12, progress=lambda _: None, timeout=2.0)
    assert running.dead() == []
    assert [report.target.name for report in reports] == ["ingress", "inventory", "order", "payment"]
    for report in reports:
        assert report.sent >= 35, report.target
        assert set(report.outcomes) == set(FAMILIES), report.target
        assert report.unhealthy_after == [], report.target
        assert "unexplained" not in report.causes, [e for e in report.examples if e["cause"] == "unexplained"]


def test_the_ingress_health_refuses_undecodable_bytes_as_invalid_argument(running: RunningMesh) -> None:
    with grpc.insecure_channel(running.ingress) as channel, pytest.raises(grpc.RpcError) as refused:
        channel.unary_unary(HEALTH.path, None, None)(b"\x0a\x04\xff\xfe\xc0\x80", timeout=5)
    error = refused.value
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT  # type: ignore[attr-defined]
    status = rpc_status.from_call(error)  # type: ignore[arg-type]
    assert status is not None, "no google.rpc.Status in the trailers"
    bad_request = error_details_pb2.BadRequest()
    assert status.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("service", "is not valid UTF-8")
    ]


def test_the_ingress_health_still_answers_a_good_check(running: RunningMesh) -> None:
    with grpc.insecure_channel(running.ingress) as channel:
        check = channel.unary_unary(
            HEALTH.path,
            health_pb2.HealthCheckRequest.SerializeToString,
            health_pb2.HealthCheckResponse.FromString,
        )
        assert (
            check(health_pb2.HealthCheckRequest(), timeout=5).status == health_pb2.HealthCheckResponse.SERVING
        )
