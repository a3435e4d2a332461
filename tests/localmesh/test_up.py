"""`scripts/up` (the local mesh): everything up, then Ctrl-C leaves no process and no open port
behind."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest

from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.readiness import free_port

pytestmark = pytest.mark.slow  # runs scripts/up

ROOT = Path(__file__).resolve().parents[2]


def _children(pid: int) -> set[int]:
    """Processes whose parent is `pid` (the mesh's processes are its direct children)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (ProcessLookupError, FileNotFoundError):
        return False
    return state != "Z"  # a zombie has exited already


def test_mesh_up_then_ctrl_c_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    control_plane, ingress = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    state = tmp_path / "state"
    command = [
        str(ROOT / "scripts" / "up"),
        "--state", str(state), "--subnet", str(random.randint(100, 250)),
        "--control-plane", control_plane, "--ingress", ingress,
    ]  # fmt: skip
    output = tmp_path / "up.out"
    with output.open("w") as sink:
        supervisor = subprocess.Popen(command, cwd=ROOT, stdout=sink, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 240  # a first run may install the project
        while "Ctrl-C stops everything." not in output.read_text():
            assert supervisor.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        printed = output.read_text()
        assert f"ingress gateway          {ingress}" in printed
        assert "grpcurl -plaintext" in printed

        children = _children(supervisor.pid)
        placement = json.loads((state / "placement.json").read_text())
        sidecars = [f"{i['address']}:{port}" for i in placement["instances"] for port in i["ports"]]
        addresses = [control_plane, ingress, *sidecars]
        assert len(children) == 1 + 2 * len(placement["instances"]) + 1  # cp, apps, sidecars, ingress
        assert all(accepts_connections(address) for address in addresses)

        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0, output.read_text()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    assert "stopped: no process left." in output.read_text()
    assert not [pid for pid in children if _alive(pid)]
    assert not [address for address in addresses if accepts_connections(address)]


def test_a_mesh_that_cannot_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        ingress = f"127.0.0.1:{taken.getsockname()[1]}"
        control_plane = f"127.0.0.1:{free_port()}"
        state = tmp_path / "state"
        completed = subprocess.run(
            [str(ROOT / "scripts" / "up"), "--state", str(state), "--subnet", str(random.randint(100, 250)),
             "--control-plane", control_plane, "--ingress", ingress],
            capture_output=True, text=True, timeout=240, check=False,
        )  # fmt: skip
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert f"the local mesh did not start: already in use: {ingress}" in completed.stderr
    placement = json.loads((state / "placement.json").read_text())
    sidecars = [f"{i['address']}:{port}" for i in placement["instances"] for port in i["ports"]]
    assert not [address for address in [control_plane, *sidecars] if accepts_connections(address)]
