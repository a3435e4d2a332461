"""scripts/gen-db-secret: the only source of database credentials, one key per declared service.
Its Secret is valid, fresh on every run, and has exactly the keys the manifests read; and
PostgreSQL's init script, as the rendered StatefulSet runs it, makes one role and database per
key on a real PostgreSQL, each closed to the other roles."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from fixtures.postgres import OS_USER, PostgresServer

from services.runtime.registry import declarations
from shopmesh.manifests import schema
from shopmesh.manifests.findings import Inventory

pytestmark = pytest.mark.slow  # runs scripts/gen-db-secret

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "gen-db-secret"
INIT_DIRECTORY = "/docker-entrypoint-initdb.d"  # where the postgres image runs init scripts


def _generate() -> dict[str, Any]:
    completed = subprocess.run([SCRIPT], capture_output=True, text=True, check=True, timeout=120)
    document: dict[str, Any] = yaml.safe_load(completed.stdout)
    return document


def _secret_refs(node: Any) -> Iterator[Mapping[str, str]]:
    if isinstance(node, Mapping):
        if "secretKeyRef" in node:
            yield node["secretKeyRef"]
        for value in node.values():
            yield from _secret_refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _secret_refs(value)


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    return next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)


def test_secret_is_valid_and_fresh() -> None:
    first, second = _generate(), _generate()
    inventory = Inventory.of([first])
    schema.validate(inventory)
    assert inventory.findings == []
    assert first["metadata"] == {"name": "postgres-credentials", "namespace": "shop"}
    assert all(len(value) >= 32 for value in first["stringData"].values())
    assert set(first["stringData"].values()).isdisjoint(second["stringData"].values())


def test_secret_has_a_password_per_declared_service_and_the_superuser() -> None:
    keys = set(_generate()["stringData"])
    assert keys == {"postgres-password"} | {f"{name}-password" for name in declarations()}


def test_every_key_the_manifests_read_is_generated(default_docs: list[dict[str, Any]]) -> None:
    refs = list(_secret_refs(default_docs))
    assert {ref["name"] for ref in refs} == {"postgres-credentials"}
    assert {ref["key"] for ref in refs} <= set(_generate()["stringData"])
    for name in declarations():
        deployment = _named(default_docs, "Deployment", name)
        assert {ref["key"] for ref in _secret_refs(deployment)} == {f"{name}-password"}


def _postgres_init(docs: list[dict[str, Any]]) -> tuple[str, dict[str, str]]:
    """The init script as the StatefulSet mounts it, and the environment it runs with."""
    statefulset = _named(docs, "StatefulSet", "postgres")
    pod = statefulset["spec"]["template"]["spec"]
    [container] = pod["containers"]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    [init] = [name for name, path in mounts.items() if path == INIT_DIRECTORY]
    config_map = _named(docs, "ConfigMap", volumes[init]["configMap"]["name"])
    [script] = config_map["data"].values()
    [passwords] = [
        n for n in mounts if volumes.get(n, {}).get("secret", {}).get("secretName") == "postgres-credentials"
    ]
    env = {e["name"]: e["value"] for e in container["env"] if "value" in e}
    assert env["SHOPMESH_DATABASE_PASSWORDS"] == mounts[passwords], "the script must read the mounted Secret"
    return script, env


def _run_init(server: PostgresServer, script: str, env: Mapping[str, str], secret: Mapping[str, str]) -> None:
    """Run the script as the image would: as the postgres user, the Secret's keys as files."""
    directory = Path(tempfile.mkdtemp(prefix="shopmesh-init-"))
    try:
        passwords = directory / "passwords"
        passwords.mkdir()
        for key, value in secret.items():
            (passwords / key).write_text(value)
        (directory / "init.sh").write_text(script)
        for path in (directory, passwords, *passwords.iterdir(), directory / "init.sh"):
            shutil.chown(path, OS_USER, OS_USER)
        subprocess.run(
            ["runuser", "-u", OS_USER, "--", "env", f"POSTGRES_USER={env['POSTGRES_USER']}",
             f"SHOPMESH_DATABASE_PASSWORDS={passwords}", f"PGHOST={server.directory}",
             f"PGPORT={server.port}", "sh", str(directory / "init.sh")],
            check=True, capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    finally:
        shutil.rmtree(directory, ignore_errors=True)


async def _connects(server: PostgresServer, user: str, password: str, database: str) -> bool:
    try:
        connection = await asyncpg.connect(
            host="127.0.0.1", port=server.port, user=user, password=password, database=database
        )
    except asyncpg.InsufficientPrivilegeError:
        return False
    await connection.close()
    return True


async def test_init_script_makes_one_closed_database_per_secret_key(
    default_docs: list[dict[str, Any]], private_postgres: PostgresServer
) -> None:
    script, env = _postgres_init(default_docs)
    secret = _generate()["stringData"]
    _run_init(private_postgres, script, env, secret)
    databases = private_postgres.sql("SELECT datname FROM pg_database WHERE NOT datistemplate").split()
    assert set(databases) == {"postgres", *declarations()}
    for name in declarations():
        password = secret[f"{name}-password"]
        assert await _connects(private_postgres, name, password, name)
        for other in set(declarations()) - {name}:
            assert not await _connects(private_postgres, name, password, other)


def test_init_script_refuses_to_run_without_the_secret(
    default_docs: list[dict[str, Any]], private_postgres: PostgresServer
) -> None:
    script, env = _postgres_init(default_docs)
    with pytest.raises(subprocess.CalledProcessError) as failure:
        _run_init(private_postgres, script, env, {"postgres-password": "only-the-superuser"})
    assert "is postgres-credentials mounted?" in failure.value.stderr
