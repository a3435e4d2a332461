"""`shopmesh methods` lists every RPC of the declared services' contracts by its HTTP/2 path."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig

import pytest

from services.runtime.registry import declarations

pytestmark = pytest.mark.slow  # runs the shopmesh command

#: go-grpc-prometheus' grpc_type by (client streaming, server streaming).
GRPC_TYPES = {
    (False, False): "unary",
    (False, True): "server_stream",
    (True, False): "client_stream",
    (True, True): "bidi_stream",
}


def test_methods_lists_every_rpc_path() -> None:
    shopmesh = shutil.which("shopmesh", path=sysconfig.get_path("scripts"))
    assert shopmesh, "the shopmesh console script is not installed"
    result = subprocess.run([shopmesh, "methods"], capture_output=True, text=True, timeout=60, check=True)
    rows = [tuple(line.split()) for line in result.stdout.splitlines()]

    # Read from the generated descriptors, independently of the command's own code.
    expected = {
        (
            name,
            GRPC_TYPES[(method.client_streaming, method.server_streaming)],
            f"/{service.full_name}/{method.name}",
        )
        for name, declared in declarations().items()
        for service in declared.contract.services_by_name.values()
        for method in service.methods
    }
    assert expected, "no declared service has a method"
    assert sorted(rows) == sorted(expected), result.stdout
    assert ("order", "server_stream", "/shop.order.v1.OrderService/WatchOrder") in expected


def test_methods_imports_neither_the_manifest_tooling_nor_a_service() -> None:
    """The CLI's promise (shopmesh/cli.py): a subcommand pays only for its own imports."""
    script = (
        "import contextlib, io, sys\n"
        "from shopmesh.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    main(['methods'])\n"
        "heavy = ('shopmesh.manifests', 'shopmesh.localmesh', 'sqlalchemy', 'grpc')\n"
        "print(sorted(name for name in sys.modules if name.startswith(heavy)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
