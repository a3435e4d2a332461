"""Every cell of the authorization matrix (shopmesh.manifests.authz, computed from the same
rendered manifests) walked with real calls: each caller's certificate, each method of each
service, through gRPC's xDS client and the sidecars' RBAC filters."""

from __future__ import annotations

from collections import defaultdict

import grpc
import pytest

from localmesh.meshcalls import client_bootstrap, probe, target
from shopmesh.localmesh.supervisor import LocalMesh
from shopmesh.manifests.authz import Cell, callers, matrix


@pytest.fixture(scope="module")
def cells(mesh: LocalMesh) -> list[Cell]:
    assert mesh.objects is not None
    computed = matrix(mesh.objects)
    assert {c.allowed for c in computed} == {True, False}  # a matrix with both answers
    return computed


def test_every_cell_of_the_matrix_holds_for_every_mesh_identity(mesh: LocalMesh, cells: list[Cell]) -> None:
    by_caller: dict[str, list[Cell]] = defaultdict(list)
    for cell in cells:
        by_caller[cell.caller].append(cell)
    checked = 0
    assert mesh.objects is not None
    for caller in callers(mesh.objects):
        if caller.principal is None:
            continue  # plaintext: below
        namespace, account = caller.principal.split("/")[2], caller.principal.split("/")[4]
        bootstrap = client_bootstrap(mesh, namespace, account)
        caller_cells = by_caller[caller.name]
        # An empty request: the service rejects it as INVALID_ARGUMENT (or answers a read),
        # so an allowed call changes nothing and still proves it reached the service.
        plan = [{"target": target(cell.service), "method": cell.path, "timeout": 5} for cell in caller_cells]
        results = probe(bootstrap, plan)
        assert len(results) == len(caller_cells)
        for result in results:
            cell = caller_cells[result["batch"]]
            where = f"{caller.name} -> {cell.service} {cell.path}: {result}"
            if cell.allowed:
                assert result["code"] != "PERMISSION_DENIED", where
                assert result["peer"].startswith("sidecar~"), where  # the pod's sidecar forwarded it
            else:
                assert result["code"] == "PERMISSION_DENIED", where
                assert result["peer"] == "", where  # refused before the service
            checked += 1
    assert checked == sum(len(v) for k, v in by_caller.items() if k != "no-identity")


def test_callers_without_identity_are_refused_before_authorization(
    mesh: LocalMesh, cells: list[Cell]
) -> None:
    """The matrix denies every plaintext cell; STRICT mTLS refuses them even earlier."""
    plaintext = [cell for cell in cells if cell.caller == "no-identity"]
    assert plaintext
    assert not any(cell.allowed for cell in plaintext)
    for pod in mesh.pods:
        for address in pod.sidecar_addresses:
            with grpc.insecure_channel(address) as channel:
                for cell in plaintext:
                    if cell.service != pod.instance.app:
                        continue
                    with pytest.raises(grpc.RpcError) as refused:
                        channel.unary_unary(cell.path)(b"", timeout=3)
                    assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
