"""Who is listening on an address: to refuse a busy port with a message that names its holder.

`accepts_connections` is the test that counts (something answers there); `holder` reads Linux'
socket tables (/proc/net/tcp, tcp6) and the processes' file descriptors to say which process
it is. Processes of other users cannot be inspected without privileges: then the holder is
unknown and only the address is named.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from pathlib import Path

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's `st` column
_MAX_COMMAND_CHARS = 200


def accepts_connections(address: str, timeout: float = 0.5) -> bool:
    host, _, port = address.rpartition(":")
    with socket.socket() as probe:
        probe.settimeout(timeout)
        return probe.connect_ex((host, int(port))) == 0


def holder(address: str, proc: Path = Path("/proc")) -> str | None:
    """ "pid 123 (prometheus --config.file=…)" for the process listening on host:port, if known."""
    host, _, port_text = address.rpartition(":")
    try:
        wanted = ipaddress.ip_address(socket.gethostbyname(host))
    except (OSError, ValueError):
        return None
    inodes = _listening_inodes(proc, int(port_text), wanted)
    if not inodes:
        return None
    for pid_dir in proc.iterdir():
        if not pid_dir.name.isdigit():
            continue
        try:
            for descriptor in (pid_dir / "fd").iterdir():
                if os.readlink(descriptor) in inodes:
                    return f"pid {pid_dir.name} ({_command(pid_dir)})"
        except OSError:  # gone meanwhile, or not ours to inspect
            continue
    return None


def _listening_inodes(
    proc: Path, port: int, wanted: ipaddress.IPv4Address | ipaddress.IPv6Address
) -> set[str]:
    inodes = set()
    for table in ("tcp", "tcp6"):
        try:
            lines = (proc / "net" / table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) < 10 or fields[3] != _LISTEN:
                continue
            local_host, local_port = fields[1].split(":")
            if int(local_port, 16) == port and _covers(_kernel_address(local_host), wanted):
                inodes.add(f"socket:[{fields[9]}]")
    return inodes


def _kernel_address(hex_address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    """/proc/net/tcp prints addresses as host-order 32-bit words in hex."""
    raw = bytes.fromhex(hex_address)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return ipaddress.ip_address(words)


def _covers(
    listening: ipaddress.IPv4Address | ipaddress.IPv6Address,
    wanted: ipaddress.IPv4Address | ipaddress.IPv6Address,
) -> bool:
    if isinstance(listening, ipaddress.IPv6Address) and listening.ipv4_mapped is not None:
        listening = listening.ipv4_mapped
    return listening == wanted or listening.is_unspecified


def _command(pid_dir: Path) -> str:
    try:
        command = " ".join(
            (pid_dir / "cmdline").read_bytes().decode(errors="replace").replace("\0", " ").split()
        )
    except OSError:
        return "?"
    return command[:_MAX_COMMAND_CHARS] + ("…" if len(command) > _MAX_COMMAND_CHARS else "")
