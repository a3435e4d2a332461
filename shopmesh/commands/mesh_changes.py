"""What changes a running local mesh without restarting it, as an operator changes a cluster:

shopmesh mesh apply -f FILE [-n NS]    objects on top of the sources (`kubectl apply -f`), e.g. a
                                       VirtualService with a fault; waits until it is pushed
shopmesh mesh delete -f FILE [-n NS]   removes what apply put there (`kubectl delete -f`)
shopmesh mesh rotate-certificates      the CA renews every pod's certificate now

Each finds the mesh by its state directory (`--state`, default var/mesh, as `mesh up`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: How long apply/delete wait for the control plane to push, and a rotation to be done.
WAIT_SECONDS = 20.0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    for name, handler, what in (
        ("apply", run_apply, "apply objects on top of the running mesh's sources (like kubectl apply -f)"),
        ("delete", run_delete, "delete objects that `mesh apply` applied (like kubectl delete -f)"),
    ):
        parser = commands.add_parser(name, help=what)
        _state(parser)
        parser.add_argument("-f", "--filename", required=True, type=Path, help="a YAML manifest ('-': stdin)")
        parser.add_argument(
            "-n", "--namespace", default="default", help="for objects without one (default: default)"
        )
        if name == "delete":
            parser.add_argument(
                "--ignore-not-found", action="store_true", help="an object that is not applied is no error"
            )
        parser.set_defaults(handler=handler)
    rotate = commands.add_parser(
        "rotate-certificates", help="have the running mesh's CA renew every certificate now"
    )
    _state(rotate)
    rotate.set_defaults(handler=run_rotate)


def _state(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state", type=Path, default=Path("var/mesh"), help="the mesh's state (default var/mesh)"
    )
    parser.add_argument(
        "--timeout", type=float, default=WAIT_SECONDS, help=f"seconds to wait (default {WAIT_SECONDS:g})"
    )


def _read(args: argparse.Namespace) -> list[dict[str, object]]:
    from shopmesh.localmesh.applied import MAX_FILE_BYTES, parse

    source = str(args.filename)
    if source == "-":
        text = sys.stdin.read(MAX_FILE_BYTES + 1)
    else:
        if not args.filename.is_file():
            raise ValueError(f"{source}: no such file")
        if args.filename.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
        text = args.filename.read_text(encoding="utf-8")
    if len(text) > MAX_FILE_BYTES:
        raise ValueError(f"{source}: larger than {MAX_FILE_BYTES} bytes")
    return parse(text, args.namespace, source)


def _change(args: argparse.Namespace, apply: bool) -> int:
    from shopmesh.localmesh.applied import AppliedObjects
    from shopmesh.localmesh.state import MeshState

    state = MeshState(args.state.resolve())
    if not state.placement_file.exists():
        print(f"no local mesh in {args.state} (no placement.json): is it up? (--state)", file=sys.stderr)
        return 1
    try:
        objects = _read(args)
    except (ValueError, OSError) as error:
        print(f"mesh {'apply' if apply else 'delete'}: {error}", file=sys.stderr)
        return 1
    applied = AppliedObjects(state.applied_directory)
    if apply:
        changed = applied.apply(objects)
    else:
        changed, missing = applied.delete(objects)
        if not args.ignore_not_found:
            for name in missing:
                print(f"not applied, nothing to delete: {name}", file=sys.stderr)
        if not changed:
            return 0 if args.ignore_not_found else 1
    try:
        refused = applied.wait_served(args.timeout)
    except TimeoutError as error:
        print(str(error), file=sys.stderr)
        return 1
    if refused is not None:
        print(f"the control plane refused it (the last good config stays): {refused}", file=sys.stderr)
        if apply:  # as kubectl: a refused object is not kept
            applied.delete(objects)
        return 1
    for name in changed:
        print(f"{name.removesuffix('.yaml')} {'applied' if apply else 'deleted'}, pushed")
    return 0


def run_apply(args: argparse.Namespace) -> int:
    return _change(args, apply=True)


def run_delete(args: argparse.Namespace) -> int:
    return _change(args, apply=False)


def run_rotate(args: argparse.Namespace) -> int:
    from shopmesh.localmesh.rotation import request_rotation
    from shopmesh.localmesh.state import MeshState

    state = MeshState(args.state.resolve())
    if not state.ca_directory.is_dir():
        print(f"no local mesh CA in {args.state}: is the mesh up? (--state)", file=sys.stderr)
        return 1
    try:
        renewed = request_rotation(state.rotation_request_file, args.timeout)
    except TimeoutError as error:
        print(str(error), file=sys.stderr)
        return 1
    print(f"renewed {renewed} certificates")
    return 0
