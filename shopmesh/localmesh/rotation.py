"""Renewing every leaf certificate of a running local mesh at once:
`shopmesh mesh rotate-certificates`.

The CA renews each certificate at half its life on its own (shopmesh.localmesh.ca); an
operator's rotation renews all of them now, which is what a CA does when its leaves must be
replaced (a key feared leaked, a changed policy). The command asks through the mesh's state
directory, which is all it shares with the control plane: it writes a request (a fresh token)
to `ca/rotate`; the control plane renews every certificate and answers in `ca/rotated` with
the same token and how many it renewed. Each pod's gRPC re-reads its files within seconds
(its `file_watcher` certificate provider); nothing restarts.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import time
from collections.abc import Callable
from pathlib import Path

POLL_SECONDS = 0.2


def _answer_file(request: Path) -> Path:
    return request.with_name("rotated")


def request_rotation(request: Path, timeout: float) -> int:
    """Asks the control plane to renew every certificate and waits for it; how many it renewed.
    Raises TimeoutError when no control plane answers within `timeout` seconds."""
    token = secrets.token_hex(8)
    request.parent.mkdir(parents=True, exist_ok=True)
    temporary = request.with_name(f".{request.name}.tmp")
    temporary.write_text(token)
    os.replace(temporary, request)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            answer = json.loads(_answer_file(request).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            answer = {}
        if answer.get("token") == token:
            return int(answer["renewed"])
        time.sleep(POLL_SECONDS / 2)
    raise TimeoutError(f"no control plane renewed the certificates within {timeout:g} s (is it running?)")


def _token(request: Path) -> str:
    try:
        return request.read_text().strip()[:64]
    except FileNotFoundError:
        return ""


def _answered_token(request: Path) -> str:
    try:
        return str(json.loads(_answer_file(request).read_text()).get("token", ""))
    except (FileNotFoundError, json.JSONDecodeError, AttributeError):
        return ""


def _rotate_and_answer(request: Path, token: str, rotate_all: Callable[[], int]) -> None:
    renewed = rotate_all()
    answer = _answer_file(request)
    temporary = answer.with_name(f".{answer.name}.tmp")
    temporary.write_text(json.dumps({"token": token, "renewed": renewed}))
    os.replace(temporary, answer)


async def serve_rotation_requests(request: Path, rotate_all: Callable[[], int]) -> None:
    """The control plane's side: on each new request, renew everything, then answer."""
    loop = asyncio.get_running_loop()
    # What was answered already (by an earlier control plane): a request not answered yet, even
    # one made while this control plane started, is served.
    answered = await loop.run_in_executor(None, _answered_token, request)
    while True:
        await asyncio.sleep(POLL_SECONDS)
        token = await loop.run_in_executor(None, _token, request)
        if token and token != answered:
            await loop.run_in_executor(None, _rotate_and_answer, request, token, rotate_all)
            answered = token
