"""What every stack renders to equals its committed snapshot (tests/manifests/snapshots/).

A reorganisation of k8s/ or istio/ (files moved, split, merged, comments rewritten) must not
change what `kubectl apply -k` sends to a cluster; this test proves it. The comparison is on
the objects, normalised: sorted by kind, namespace and name, keys sorted, comments gone.

A change of the rendered output that is meant goes with a refreshed snapshot, in a commit of
its own that says why: `scripts/refresh-render-snapshots` (it runs this module as a script).
"""

from __future__ import annotations

import difflib
import sys
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from shopmesh.manifests.render import Stack, discover_stacks

pytestmark = pytest.mark.slow  # renders with kubectl kustomize

REPOSITORY = Path(__file__).resolve().parents[2]
SNAPSHOTS = Path(__file__).parent / "snapshots"


def _sort_key(doc: Mapping[str, Any]) -> tuple[str, str, str, str]:
    metadata = doc.get("metadata") or {}
    return (
        str(doc.get("kind", "")),
        str(metadata.get("namespace", "")),
        str(metadata.get("name", "")),
        str(doc.get("apiVersion", "")),
    )


def normalised(docs: Iterable[Mapping[str, Any]]) -> str:
    """The objects as one YAML stream in a canonical order and layout."""
    return "".join(
        "---\n" + yaml.safe_dump(dict(doc), sort_keys=True, default_flow_style=False, width=1000)
        for doc in sorted(docs, key=_sort_key)
    )


def _snapshot(stack: Stack) -> Path:
    return SNAPSHOTS / f"{stack.name}.yaml"


STACKS = discover_stacks(REPOSITORY)


def test_every_stack_has_a_snapshot_and_every_snapshot_a_stack() -> None:
    assert sorted(p.stem for p in SNAPSHOTS.glob("*.yaml")) == sorted(s.name for s in STACKS)


@pytest.mark.parametrize("stack", STACKS, ids=[s.name for s in STACKS])
def test_rendered_objects_equal_the_snapshot(stack: Stack) -> None:
    rendered = normalised(stack.render())
    committed = _snapshot(stack).read_text(encoding="utf-8")
    if rendered != committed:
        diff = difflib.unified_diff(
            committed.splitlines(keepends=True),
            rendered.splitlines(keepends=True),
            fromfile=f"snapshots/{stack.name}.yaml",
            tofile=f"rendered {stack.name}",
        )
        pytest.fail(
            f"stack {stack.name} renders differently from its snapshot; if that is meant, run "
            "scripts/refresh-render-snapshots and commit it with the reason:\n" + "".join(diff)
        )


def test_normalisation_ignores_order_and_comments_but_not_values() -> None:
    first = list(
        yaml.safe_load_all("kind: B\nmetadata: {name: b}\n---\n# why\nkind: A\nmetadata: {name: a}\n")
    )
    second = list(yaml.safe_load_all("kind: A\nmetadata:\n  name: a\n---\nkind: B\nmetadata: {name: b}\n"))
    assert normalised(first) == normalised(second)
    second[1]["metadata"]["name"] = "c"
    assert normalised(first) != normalised(second)


def refresh() -> None:
    SNAPSHOTS.mkdir(exist_ok=True)
    for stale in set(SNAPSHOTS.glob("*.yaml")) - {_snapshot(s) for s in STACKS}:
        stale.unlink()
        print(f"removed {stale.relative_to(REPOSITORY)}")
    for stack in STACKS:
        _snapshot(stack).write_text(normalised(stack.render()), encoding="utf-8")
        print(f"wrote {_snapshot(stack).relative_to(REPOSITORY)}")


if __name__ == "__main__":
    if sys.argv[1:] != ["--refresh"]:
        sys.exit("usage: test_manifest_snapshots.py --refresh  (or scripts/refresh-render-snapshots)")
    refresh()
