"""`scripts/up` (the local mesh): everything up, Prometheus included, then Ctrl-C leaves no
process and no open port behind; a mesh or a Prometheus that cannot start says why in one line
and leaves nothing running."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shopmesh.launch.listeners import accepts_connections
from shopmesh.launch.ports import free_port
from shopmesh.localmesh.placement import free_subnet

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


def _addresses() -> dict[str, str]:
    """Free addresses for everything `mesh up` listens on outside the pods' own."""
    return {
        name: f"127.0.0.1:{free_port()}"
        for name in ("control-plane", "ingress", "ingress-stats", "prometheus")
    }


def _up(state: Path, addresses: dict[str, str], *more: str) -> list[str]:
    options = [argument for name, address in addresses.items() for argument in (f"--{name}", address)]
    return [str(ROOT / "scripts" / "up"), "--state", str(state), "--subnet", str(free_subnet()),
            *options, *more]  # fmt: skip


def test_mesh_up_then_ctrl_c_leaves_no_process_and_no_port(tmp_path: Path) -> None:
    addresses = _addresses()
    ingress, prometheus = addresses["ingress"], addresses["prometheus"]
    state = tmp_path / "state"
    command = _up(state, addresses)
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
        assert f"prometheus               http://{prometheus}  scrapes 11 targets every 5 s" in printed
        assert "grpcurl -plaintext" in printed

        children = _children(supervisor.pid)
        placement = json.loads((state / "placement.json").read_text())
        sidecars = [f"{i['address']}:{port}" for i in placement["instances"] for port in i["ports"]]
        stats = [f"{i['address']}:15090" for i in placement["instances"]]
        listening = [*addresses.values(), *sidecars, *stats]
        # control plane, apps, sidecars, ingress, Prometheus
        assert len(children) == 1 + 2 * len(placement["instances"]) + 1 + 1
        assert all(accepts_connections(address) for address in listening)
        assert (state / "prometheus" / "data").is_dir()  # its data under the state directory

        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0, output.read_text()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    assert "stopped: no process left." in output.read_text()
    assert not [pid for pid in children if _alive(pid)]
    assert not [address for address in listening if accepts_connections(address)]


def _nothing_left(state: Path, addresses: dict[str, str], *taken: str) -> None:
    placement = json.loads((state / "placement.json").read_text())
    sidecars = [f"{i['address']}:{port}" for i in placement["instances"] for port in i["ports"]]
    ours = [address for address in [*addresses.values(), *sidecars] if address not in taken]
    assert not [address for address in ours if accepts_connections(address)]
    assert not (state / "prometheus").exists()


def test_a_mesh_that_cannot_start_says_why_and_leaves_nothing(tmp_path: Path) -> None:
    addresses, state = _addresses(), tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addresses["ingress"] = f"127.0.0.1:{taken.getsockname()[1]}"
        completed = subprocess.run(
            _up(state, addresses), capture_output=True, text=True, timeout=240, check=False
        )
        assert completed.returncode == 1, completed.stdout + completed.stderr
        assert f"the local mesh did not start: already in use: {addresses['ingress']}" in completed.stderr
        _nothing_left(state, addresses, addresses["ingress"])


def test_a_prometheus_address_taken_is_said_in_one_line_and_nothing_starts(tmp_path: Path) -> None:
    addresses, state = _addresses(), tmp_path / "state"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        addresses["prometheus"] = f"127.0.0.1:{taken.getsockname()[1]}"
        completed = subprocess.run(
            _up(state, addresses), capture_output=True, text=True, timeout=240, check=False
        )
        assert completed.returncode == 1, completed.stdout + completed.stderr
        (error,) = completed.stderr.strip().splitlines()
        assert error.startswith(
            f"the local mesh did not start: {addresses['prometheus']} is already in use by pid "
        )
        assert error.endswith(
            ": stop it or choose another address (--prometheus ADDRESS, or --no-prometheus)"
        )
        _nothing_left(state, addresses, addresses["prometheus"])


def test_a_missing_prometheus_is_said_in_one_line_and_nothing_starts(tmp_path: Path) -> None:
    """`shopmesh mesh up` where no prometheus is installed (scripts/up would install it first):
    only the project's own tools on PATH."""
    addresses, state = _addresses(), tmp_path / "state"
    command = _up(state, addresses)
    command[:1] = [sys.executable, "-m", "shopmesh.cli", "mesh", "up"]
    environment = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    completed = subprocess.run(
        command, capture_output=True, text=True, timeout=240, check=False, env=environment
    )
    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert completed.stderr.strip() == (
        "the local mesh did not start: prometheus and promtool not found on PATH: install Debian's "
        "prometheus package (`apt-get install prometheus`; scripts/up and scripts/test do) "
        "(--prometheus ADDRESS, or --no-prometheus)"
    )
    _nothing_left(state, addresses)


def test_no_prometheus_runs_the_mesh_without_one(tmp_path: Path) -> None:
    addresses, state = _addresses(), tmp_path / "state"
    output = tmp_path / "up.out"
    with output.open("w") as sink:
        supervisor = subprocess.Popen(
            _up(state, addresses, "--no-prometheus"), cwd=ROOT, stdout=sink, stderr=sink
        )
    try:
        deadline = time.monotonic() + 240
        while "Ctrl-C stops everything." not in output.read_text():
            assert supervisor.poll() is None, output.read_text()
            assert time.monotonic() < deadline, output.read_text()
            time.sleep(0.2)
        assert "prometheus  " not in output.read_text()
        assert not accepts_connections(addresses["prometheus"])
        supervisor.send_signal(signal.SIGINT)
        assert supervisor.wait(timeout=60) == 0, output.read_text()
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
