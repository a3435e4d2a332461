"""The running mesh's control socket: how `shopmesh mesh ps`, `kill`, `stop-control-plane` and
`start-control-plane` reach the supervisor from another shell.

A Unix socket in the state directory (MeshState.control_socket), owner-only. One request per
connection: a JSON object line `{"command": NAME, ...arguments}`; one reply line, `{"ok": true,
"result": ...}` or `{"ok": false, "error": "one line"}`. The supervisor registers a handler per
command (LocalMesh.control_handlers); a handler raises ControlError for a refusal the caller
should read (an unknown pod, a control plane already stopped).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import socketserver
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

log = logging.getLogger("shopmesh.localmesh.control")

#: A request is a command name and a pod name or two: anything longer is not one.
MAX_REQUEST_BYTES = 4096
#: Starting the control plane again is the slowest command (it renders the manifests).
CLIENT_TIMEOUT_SECONDS = 120.0

Handler = Callable[[Mapping[str, Any]], Any]


class ControlError(Exception):
    """A refusal, said to the caller in one line."""


class MeshNotRunning(ControlError):
    pass


class _RequestHandler(socketserver.StreamRequestHandler):
    server: _Server

    def handle(self) -> None:
        line = self.rfile.readline(MAX_REQUEST_BYTES + 1)
        try:
            if len(line) > MAX_REQUEST_BYTES:
                raise ControlError(f"request longer than {MAX_REQUEST_BYTES} bytes")
            try:
                request = json.loads(line)
            except ValueError as error:
                raise ControlError(f"request is not JSON: {error}") from error
            if not isinstance(request, dict) or not isinstance(request.get("command"), str):
                raise ControlError('request must be a JSON object with a "command"')
            handler = self.server.handlers.get(request["command"])
            if handler is None:
                known = ", ".join(sorted(self.server.handlers))
                raise ControlError(f"unknown command {request['command']!r} (commands: {known})")
            reply: dict[str, Any] = {"ok": True, "result": handler(request)}
        except ControlError as error:
            reply = {"ok": False, "error": str(error)}
        except Exception as error:  # a bug must not kill the socket, and the caller must hear
            log.exception("control command failed")
            reply = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        self.wfile.write(json.dumps(reply).encode() + b"\n")


class _Server(socketserver.ThreadingUnixStreamServer):
    daemon_threads = True

    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.handlers = dict(handlers)
        super().__init__(str(path), _RequestHandler)


class ControlServer:
    def __init__(self, path: Path, handlers: Mapping[str, Handler]) -> None:
        self.path = path
        self.handlers = handlers
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.path.exists():
            try:
                request(self.path, "ps", timeout=2.0)
            except MeshNotRunning:
                self.path.unlink()  # left by a supervisor that was killed
            else:
                raise RuntimeError(f"another local mesh answers at {self.path}")
        old_umask = os.umask(0o077)  # only this user may command the mesh
        try:
            self._server = _Server(self.path, self.handlers)
        finally:
            os.umask(old_umask)
        self._thread = threading.Thread(target=self._server.serve_forever, name="mesh-control", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


def request(
    path: Path,
    command: str,
    arguments: Mapping[str, str] | None = None,
    timeout: float = CLIENT_TIMEOUT_SECONDS,
) -> Any:
    """Send one command to the mesh whose control socket is `path`; its result. ControlError
    with the mesh's one-line refusal; MeshNotRunning when nothing answers there."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as connection:
        connection.settimeout(timeout)
        try:
            connection.connect(str(path))
        except (FileNotFoundError, ConnectionRefusedError) as error:
            raise MeshNotRunning(f"no local mesh is running (nothing answers at {path})") from error
        connection.sendall(json.dumps({**(arguments or {}), "command": command}).encode() + b"\n")
        with connection.makefile("rb") as replies:
            line = replies.readline()
    if not line:
        raise ControlError(f"the mesh at {path} closed the connection without a reply")
    reply = json.loads(line)
    if not reply.get("ok"):
        raise ControlError(str(reply.get("error")))
    return reply.get("result")
