"""A fourth service, end to end: `scripts/new-service shipping` in a copy of the project, then the
linter, the authorization matrix, the topology, the contracts' checks, the plain local run and the
local mesh all pick it up, with no edit outside its own files but one registration line in each
of the two kustomizations that list the services."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NAME = "shipping"
GREET = f"shop.{NAME}.v1.{NAME.capitalize()}Service/Greet"

pytestmark = pytest.mark.slow  # copies the project and runs its commands, services and mesh


def _git(copy: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", "-C", str(copy), *arguments], capture_output=True, text=True, check=True, timeout=60
    ).stdout


class Project:
    """A copy of the project (what git knows of it, committed or not) to scaffold into."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        # The copy's own code and stubs come first: the venv's editable install points at ROOT.
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(directory / "gen"), str(directory)]),
        }

    def run(
        self, *arguments: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            [sys.executable, *arguments],
            cwd=self.directory,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check:
            assert completed.returncode == 0, (
                f"{arguments}: {completed.stdout[-3000:]}{completed.stderr[-3000:]}"
            )
        return completed

    def shopmesh(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return self.run("-m", "shopmesh.cli", *arguments)


@pytest.fixture(scope="module")
def project() -> Iterator[Project]:
    directory = Path(tempfile.mkdtemp(prefix="shopmesh-new-service-"))
    files = (
        subprocess.run(
            ["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
            capture_output=True,
            check=True,
            timeout=60,
        )
        .stdout.decode()
        .split("\0")
    )
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (directory / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, directory / name)
    _git(directory, "init", "-q")
    _git(directory, "add", "-A")
    _git(directory, "-c", "user.name=test", "-c", "user.email=test@example.invalid", "commit", "-qm", "base")
    copy = Project(directory)
    scaffolded = copy.run("-m", "shopmesh.scaffold", NAME)
    assert f"{NAME} is declared" in scaffolded.stdout
    try:
        yield copy
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_only_its_own_files_and_two_registration_lines(project: Project) -> None:
    changed = _git(project.directory, "diff", "--numstat").split("\n")
    assert sorted(line for line in changed if line) == [
        "1\t0\tistio/base/kustomization.yaml",
        "1\t0\tk8s/base/kustomization.yaml",
    ]
    assert f"+  - {NAME}.yaml" in _git(project.directory, "diff", "istio/base/kustomization.yaml")
    assert f"+  - {NAME}\n" in _git(project.directory, "diff", "k8s/base/kustomization.yaml")
    new = _git(project.directory, "ls-files", "--others", "--exclude-standard").split()
    own = (f"proto/shop/{NAME}/", f"gen/shop/{NAME}/", f"services/{NAME}/", f"k8s/base/{NAME}/")
    assert f"services/{NAME}/declaration.py" in new
    assert all(path.startswith(own) or path == f"istio/base/{NAME}.yaml" for path in new), new


def test_a_name_that_cannot_be_a_service_is_refused(project: Project) -> None:
    for name, reason in (
        (NAME, "exists already"),
        ("Ship-ping", "is not a service name"),
        ("runtime", "none of"),
    ):
        refused = project.run("-m", "shopmesh.scaffold", name, check=False)
        assert (refused.returncode, reason in refused.stderr) == (2, True), refused.stderr


def test_the_contract_passes_buf_and_the_code_mypy_and_ruff(project: Project) -> None:
    scripts = Path(sys.executable).parent
    for command in (["lint"], ["format", "--exit-code", "-d"]):
        subprocess.run([str(scripts / "buf"), *command], cwd=project.directory, check=True, timeout=120)
    project.run("-m", "mypy", "--strict", "--no-incremental", f"services/{NAME}")
    project.run("-m", "ruff", "check", f"services/{NAME}")
    project.run("-m", "ruff", "format", "--check", f"services/{NAME}")


def test_lint_authz_and_topology_pick_it_up(project: Project) -> None:
    lint = project.shopmesh("lint")
    assert lint.stdout == "", lint.stdout  # no finding at all, in any stack
    rows = [line.split() for line in project.shopmesh("authz").stdout.splitlines()]
    header = rows[0]
    greet = next(row for row in rows if row[:2] == [NAME, f"/{GREET}"])
    allowed = {caller for caller, decision in zip(header[2:], greet[2:], strict=True) if decision == "allow"}
    assert allowed == {"operator"}
    svg = project.shopmesh("topology").stdout
    assert f">{NAME}</text>" in svg
    xds = json.loads(project.shopmesh("mesh", "xds", "--overlay", "none").stdout)
    assert f"{NAME}.shop.svc.cluster.local:50054" in xds["Listener"]
    assert f"outbound|50054|v1|{NAME}.shop.svc.cluster.local" in xds["Cluster"]


def test_the_plain_local_run_serves_it(project: Project) -> None:
    from shopmesh.launch.ports import free_port

    ports = {service: free_port() for service in ("order", "inventory", "payment", NAME)}
    arguments = [argument for service, port in ports.items() for argument in (f"--{service}-port", str(port))]
    metrics = [argument for service in ports for argument in (f"--{service}-metrics-port", str(free_port()))]
    state = project.directory / "var-plain"
    run = subprocess.Popen(
        [sys.executable, "-m", "shopmesh.localrun", *arguments, *metrics, "--state", str(state)],
        cwd=project.directory,
        env=project.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert run.stdout is not None
        for line in run.stdout:  # bounded: the run exits (and closes stdout) if it cannot start
            if "Ctrl-C stops it" in line:
                break
        grpcurl = shutil.which("grpcurl", path=str(Path(sys.executable).parent))
        assert grpcurl is not None
        reply = subprocess.run(
            [grpcurl, "-plaintext", "-d", '{"name": "me"}', f"127.0.0.1:{ports[NAME]}", GREET],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert json.loads(reply.stdout) == {"greeting": "hello, me"}
    finally:
        run.terminate()
        run.wait(timeout=30)


def test_the_local_mesh_serves_it_to_whom_its_policy_allows(project: Project) -> None:
    driver = project.run(
        str(project.directory / "tests" / "scaffold" / "mesh_driver.py"),
        NAME,
        str(project.directory / "var-mesh"),
        timeout=300,
    )
    report = json.loads(driver.stdout.strip().splitlines()[-1])
    assert f"{NAME}-0" in report["pods"]
    operator, order = report["calls"]["operator"], report["calls"]["order"]
    assert operator["code"] == "OK", operator
    assert base64.b64decode(operator["response_b64"]).endswith(b"hello, mesh")
    assert order["code"] == "PERMISSION_DENIED", order
