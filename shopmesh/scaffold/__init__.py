"""`scripts/new-service NAME`: a new service, complete from contract to mesh policy.

It writes the service's own files — its contract (proto/), its generated stubs (gen/), its
package (services/<name>/: declaration, servicer, migrations), its workload (k8s/base/<name>/)
and its mesh policy (istio/base/<name>.yaml) — and adds one registration line to each of the
two kustomizations that list the services. Nothing else is edited: the runtime, the CLI, the
linter, the authorization matrix, the topology, the local run and the local mesh find the
service through its declaration and its manifests.

The new service serves one method, `Greet`, which only operators may call: the smallest
service that proves the wiring, to be replaced by the real contract.
"""

from __future__ import annotations

import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from string import Template

from services.runtime.registry import declarations

TEMPLATES = Path(__file__).with_name("templates")
#: A service's name is its Python package, Kubernetes names, database and role: lower-case
#: letters and digits, starting with a letter (no `-`, which Python and PostgreSQL refuse).
_NAME = re.compile(r"[a-z][a-z0-9]{1,29}")
_RESERVED = frozenset({"runtime", "money", "postgres", "operator", "shop"})
REFLECTION_PATHS = (
    "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
)


class ScaffoldError(ValueError):
    """The name cannot be a new service here; the message says why."""


@dataclass(frozen=True)
class NewService:
    name: str
    grpc_port: int
    metrics_port: int

    @property
    def camel(self) -> str:
        return self.name.capitalize()

    def substitutions(self) -> dict[str, str]:
        paths = [f"/shop.{self.name}.v1.{self.camel}Service/Greet", *REFLECTION_PATHS]
        return {
            "name": self.name,
            "Name": self.camel,
            "grpc_port": str(self.grpc_port),
            "metrics_port": str(self.metrics_port),
            "operator_paths": "\n".join(f"              - {path}" for path in paths),
        }


def plan(root: Path, name: str) -> NewService:
    """The new service's ports (the next free after the declared ones), or why it cannot be."""
    if not _NAME.fullmatch(name) or name in _RESERVED:
        raise ScaffoldError(
            f"{name!r} is not a service name: 2-30 lower-case letters and digits, starting with a "
            f"letter, none of {', '.join(sorted(_RESERVED))}"
        )
    declared = declarations()
    taken = [
        path
        for path in (
            root / "services" / name,
            root / "proto" / "shop" / name,
            root / "k8s" / "base" / name,
            root / "istio" / "base" / f"{name}.yaml",
        )
        if path.exists()
    ]
    if name in declared or taken:
        raise ScaffoldError(f"{name} exists already: {', '.join(str(p) for p in taken) or 'declared'}")
    return NewService(
        name=name,
        grpc_port=max(service.grpc_port for service in declared.values()) + 1,
        metrics_port=max(service.metrics_port for service in declared.values()) + 1,
    )


def _files(service: NewService) -> dict[str, str]:
    """Template (under templates/) -> where it goes, relative to the project."""
    name = service.name
    package = f"services/{name}"
    return {
        "proto/service.proto.tmpl": f"proto/shop/{name}/v1/{name}.proto",
        "service/__init__.py.tmpl": f"{package}/__init__.py",
        "service/__main__.py.tmpl": f"{package}/__main__.py",
        "service/declaration.py.tmpl": f"{package}/declaration.py",
        "service/service.py.tmpl": f"{package}/service.py",
        "service/servicer.py.tmpl": f"{package}/servicer.py",
        "service/tables.py.tmpl": f"{package}/tables.py",
        "service/migrations_env.py.tmpl": f"{package}/migrations/env.py",
        "service/migration_0001.py.tmpl": f"{package}/migrations/versions/0001_initial.py",
        "k8s/kustomization.yaml.tmpl": f"k8s/base/{name}/kustomization.yaml",
        "k8s/workload.yaml.tmpl": f"k8s/base/{name}/workload.yaml",
        "k8s/deployment.yaml.tmpl": f"k8s/base/{name}/deployment.yaml",
        "k8s/network-policy.yaml.tmpl": f"k8s/base/{name}/network-policy.yaml",
        "istio/service.yaml.tmpl": f"istio/base/{name}.yaml",
    }


def register(kustomization: Path, entry: str) -> None:
    """Adds `- entry` after the last item of the kustomization's `resources:` list."""
    lines = kustomization.read_text().splitlines(keepends=True)
    try:
        start = next(i for i, line in enumerate(lines) if line.rstrip() == "resources:")
    except StopIteration:
        raise ScaffoldError(f"{kustomization} has no top-level `resources:` list") from None
    last = start
    for index in range(start + 1, len(lines)):
        stripped = lines[index].strip()
        if lines[index].startswith("  - "):
            last = index
        elif stripped and not stripped.startswith("#"):
            break
    lines.insert(last + 1, f"  - {entry}\n")
    kustomization.write_text("".join(lines))


def scaffold(root: Path, name: str) -> list[Path]:
    """Writes the new service; returns the files written and edited, in that order."""
    service = plan(root, name)
    substitutions = service.substitutions()
    written: list[Path] = []
    for template, target in _files(service).items():
        path = root / target
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(Template((TEMPLATES / template).read_text()).substitute(substitutions))
        written.append(path)
    # Alembic's own files: the revision template every service shares, and the packages.
    migrations = root / "services" / name / "migrations"
    mako = root / "services" / next(iter(declarations())) / "migrations" / "script.py.mako"
    (migrations / "script.py.mako").write_text(mako.read_text())
    written.append(migrations / "script.py.mako")
    for package in (migrations, migrations / "versions"):
        (package / "__init__.py").write_text("")
        written.append(package / "__init__.py")
    python = [path for path in written if path.suffix == ".py"]
    # Import order depends on the name (ruff sorts services.<name> among services.runtime).
    _run(root, "-m", "ruff", "check", "--quiet", "--fix", "--select", "I", *map(str, python))
    _run(root, "-m", "ruff", "format", "--quiet", *map(str, python))
    _run(root, str(root / "scripts" / "gen-stubs"))
    written += sorted((root / "gen" / "shop" / name).rglob("*"))
    # The schema a new database of it gets without running alembic (services/runtime/snapshot.py).
    _run(root, "-m", "services.runtime.snapshot", name)
    written.append(migrations / "head.sqlite.sql")
    edited = [root / "k8s" / "base" / "kustomization.yaml", root / "istio" / "base" / "kustomization.yaml"]
    register(edited[0], name)
    register(edited[1], f"{name}.yaml")
    return [path for path in written if path.is_file()] + edited


def _run(root: Path, *arguments: str) -> None:
    """Runs this Python with `arguments` in the project; its output only if it fails."""
    completed = subprocess.run(
        [sys.executable, *arguments], cwd=root, capture_output=True, text=True, check=False, timeout=300
    )
    if completed.returncode != 0:
        raise ScaffoldError(f"{' '.join(arguments[:3])} failed:\n{completed.stdout}{completed.stderr}")


NEXT_STEPS = """\
{name} is declared (gRPC port {grpc_port}, metrics {metrics_port}) and wired into k8s/ and istio/.
Next, on purpose:
  - replace Greet in proto/shop/{name}/v1/{name}.proto with the real contract, then scripts/gen-stubs;
  - give it callers: `calls` in the callers' declarations, its AuthorizationPolicy and
    NetworkPolicy (istio/base/{name}.yaml, k8s/base/{name}/network-policy.yaml), the callers'
    Sidecar egress hosts;
  - say who may call what in tests/manifests/test_manifest_authz.py (INTENDED), then regenerate
    docs/authz.md (shopmesh authz --markdown), docs/topology.svg (shopmesh topology -o ...) and
    the render snapshots (scripts/refresh-render-snapshots);
  - .venv/bin/shopmesh lint; then try it with scripts/up --plain (in the mesh only the operator
    identity may call it):
    .venv/bin/grpcurl -plaintext -d '{{"name": "me"}}' 127.0.0.1:{grpc_port} \\
      shop.{name}.v1.{Name}Service/Greet"""


def main(argv: list[str] | None = None) -> int:
    arguments = sys.argv[1:] if argv is None else argv
    if len(arguments) != 1 or arguments[0].startswith("-"):
        print("usage: scripts/new-service NAME   (e.g. scripts/new-service shipping)", file=sys.stderr)
        return 2
    root = Path.cwd()
    try:
        service = plan(root, arguments[0])
        files = scaffold(root, arguments[0])
    except ScaffoldError as error:
        print(f"new-service: {error}", file=sys.stderr)
        return 2
    for path in files:
        print(f"  {path.relative_to(root)}")
    print(NEXT_STEPS.format(**service.substitutions()))
    return 0
