"""gen/ is exactly what scripts/gen-stubs makes from proto/: it never drifts."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest


def tree(directory: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(directory)): path.read_bytes()
        for path in sorted(directory.rglob("*"))
        if path.is_file() and "__pycache__" not in path.parts
    }


@pytest.mark.slow  # runs scripts/gen-stubs
def test_gen_matches_a_fresh_generation(root: Path, tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, str(root / "scripts/gen-stubs"), "--out", str(tmp_path)],
        check=True,
        capture_output=True,
        timeout=120,
    )
    committed, fresh = tree(root / "gen/shop"), tree(tmp_path / "shop")

    assert sorted(committed) == sorted(fresh), "gen/ has other files than a fresh generation"
    drifted = [name for name in fresh if committed[name] != fresh[name]]
    assert not drifted, f"gen/ drifted from proto/ in {drifted}: run scripts/gen-stubs"


def test_every_module_has_typed_stubs(root: Path) -> None:
    modules = sorted((root / "gen").rglob("*_pb2*.py"))
    assert modules, "no generated modules"
    untyped = [str(m) for m in modules if not m.with_suffix(".pyi").is_file()]
    assert not untyped
    assert (root / "gen/shop/py.typed").is_file()


@pytest.mark.slow  # builds the clients' wheel with pip
def test_clients_distribution_ships_typed_stubs(root: Path, tmp_path: Path) -> None:
    """`pip wheel ./gen` gives users the clients with their .pyi and py.typed (types in the IDE)."""
    source = tmp_path / "gen"  # build from a copy: setuptools leaves build/ and egg-info behind
    shutil.copytree(root / "gen", source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    wheels = tmp_path / "wheels"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(wheels),
            str(source),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = wheels.glob("shopmesh_clients-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert "shop/py.typed" in names
    for service in ("order", "inventory", "payment"):
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi"):
            assert f"shop/{service}/v1/{service}{suffix}" in names
