"""Objects applied to a running local mesh, as `kubectl apply -f` / `kubectl delete -f` do to a
cluster: `shopmesh mesh apply -f FILE`, `shopmesh mesh delete -f FILE`.

The mesh's sources (k8s/ and istio/ overlays) are the project's own files; an operator's or an
experiment's extra object (a VirtualService with a `fault`, say) does not belong in them. The
control plane therefore also watches a directory of its state, `applied/`, as the API server's
store of objects applied on top: one YAML file per object, named after its kind, namespace and
name. An applied object replaces the object of the same kind, namespace and name that the
sources render (what `kubectl apply` of a changed object does), or is added. Deleting it
brings the sources' object back. The applied objects outlive a control plane restart, as
objects in etcd outlive istiod.

The control plane writes, after each change it saw, whether it served it (`status.json`), so
the command can wait until the change is pushed, or report why it was refused.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from shopmesh.manifests.model import CLUSTER_SCOPED_KINDS, MeshObjects, Resource

STATUS_FILE = "status.json"
#: An applied file is at most this big: it is read by the control plane on every change.
MAX_FILE_BYTES = 1_000_000
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")


class ApplyError(ValueError):
    """What is given is not something to apply; the message says which document and why."""


def _identity(doc: Mapping[str, Any]) -> tuple[str, str, str]:
    resource = Resource(doc)
    return (resource.kind, resource.namespace, resource.name)


def _file_name(identity: tuple[str, str, str]) -> str:
    kind, namespace, name = identity
    return f"{kind.lower()}.{namespace or '_cluster'}.{name}.yaml"


def parse(text: str, namespace: str, source: str) -> list[dict[str, Any]]:
    """The objects of a manifest, each with its namespace set (`namespace` when it has none);
    raises ApplyError naming the first bad document."""
    try:
        documents = [doc for doc in yaml.safe_load_all(text) if doc is not None]
    except yaml.YAMLError as error:
        raise ApplyError(f"{source}: not YAML: {error}") from error
    if not documents:
        raise ApplyError(f"{source}: no object in it")
    objects = []
    for index, doc in enumerate(documents, start=1):
        where = f"{source}, document {index}"
        if not isinstance(doc, dict) or not isinstance(doc.get("metadata"), dict):
            raise ApplyError(f"{where}: not a Kubernetes object (no metadata)")
        kind, api_version = doc.get("kind"), doc.get("apiVersion")
        if not isinstance(kind, str) or not kind or not isinstance(api_version, str) or not api_version:
            raise ApplyError(f"{where}: needs apiVersion and kind")
        name = doc["metadata"].get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            raise ApplyError(f"{where}: metadata.name {name!r} is not a valid object name")
        doc = {**doc, "metadata": dict(doc["metadata"])}
        if kind not in CLUSTER_SCOPED_KINDS:
            given = doc["metadata"].setdefault("namespace", namespace)
            if not isinstance(given, str) or not _NAME.match(given):
                raise ApplyError(f"{where}: metadata.namespace {given!r} is not a valid namespace")
        objects.append(doc)
    return objects


@dataclass(frozen=True)
class AppliedObjects:
    """The directory of applied objects (`<mesh state>/applied`)."""

    directory: Path

    def apply(self, objects: Iterable[Mapping[str, Any]]) -> list[str]:
        """Writes (creates or replaces) each object; the names of the files written."""
        self.directory.mkdir(parents=True, exist_ok=True)
        written = []
        for doc in objects:
            path = self.directory / _file_name(_identity(doc))
            temporary = path.with_name(f".{path.name}.tmp")  # the control plane skips dot files
            temporary.write_text(yaml.safe_dump(dict(doc), sort_keys=False))
            os.replace(temporary, path)
            written.append(path.name)
        return written

    def delete(self, objects: Iterable[Mapping[str, Any]]) -> tuple[list[str], list[str]]:
        """Removes each object; (the files removed, the objects that were not applied)."""
        removed, missing = [], []
        for doc in objects:
            identity = _identity(doc)
            path = self.directory / _file_name(identity)
            if path.exists():
                path.unlink()
                removed.append(path.name)
            else:
                missing.append("/".join(part for part in identity if part))
        return removed, missing

    def files(self) -> list[Path]:
        if not self.directory.is_dir():
            return []
        return sorted(p for p in self.directory.glob("*.yaml") if p.is_file() and not p.name.startswith("."))

    def fingerprint(self) -> list[list[Any]]:
        """What is applied now, as the status records it: each file's name, size and mtime."""
        entries = []
        for path in self.files():
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            entries.append([path.name, stat.st_size, stat.st_mtime_ns])
        return entries

    def load(self) -> list[dict[str, Any]]:
        """Every applied object (raises ApplyError on a file that is not one)."""
        objects = []
        for path in self.files():
            if path.stat().st_size > MAX_FILE_BYTES:
                raise ApplyError(f"{path.name}: larger than {MAX_FILE_BYTES} bytes")
            objects.extend(parse(path.read_text(encoding="utf-8"), "default", path.name))
        return objects

    # -- what the control plane served -------------------------------------------------------
    def write_status(self, fingerprint: Sequence[Sequence[Any]], error: str | None) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        status = self.directory / STATUS_FILE
        temporary = status.with_name(f".{STATUS_FILE}.tmp")
        temporary.write_text(
            json.dumps({"fingerprint": fingerprint, "served": error is None, "error": error})
        )
        os.replace(temporary, status)

    def wait_served(self, timeout: float) -> str | None:
        """Until the control plane has acted on what is applied now: None once it serves it,
        its reason if it refused it. Raises TimeoutError (no control plane running?)."""
        wanted = self.fingerprint()
        deadline = time.monotonic() + timeout
        while True:
            try:
                status = json.loads((self.directory / STATUS_FILE).read_text())
            except (FileNotFoundError, json.JSONDecodeError):
                status = {}
            if status.get("fingerprint") == wanted:
                return None if status.get("served") else str(status.get("error"))
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the control plane did not take up {self.directory} within {timeout:g} s "
                    "(is the mesh's control plane running?)"
                )
            time.sleep(0.05)


def overlay(objects: MeshObjects, applied: Iterable[Mapping[str, Any]]) -> MeshObjects:
    """The sources' objects with the applied ones on top: same kind, namespace and name
    replaces, anything else is added."""
    on_top = {_identity(doc): doc for doc in applied}
    kept = [resource for resource in objects if _identity(resource.doc) not in on_top]
    return MeshObjects([*kept, *on_top.values()])
