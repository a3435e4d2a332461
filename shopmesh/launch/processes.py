"""Child processes that cannot outlive whoever started them: logs to a file, SIGTERM then SIGKILL
on stop, and the kernel's parent-death signal so that even a killed supervisor leaves nothing
behind. Every process the project starts (a stack's services, the local mesh's control plane,
sidecars and ingress) is one of these.

The parent-death signal is set by util-linux's `setpriv --pdeathsig`, which then execs the
command, so that Python need not run code between fork and exec: without a `preexec_fn`,
subprocess uses vfork, which runs no fork handlers. gRPC's handlers (grpc-core fork_posix.cc)
would otherwise restart its event engine in the child, whose epoll descriptor `close_fds` then
closes: the child aborts before exec ("epoll_wait error: Bad file descriptor") when the parent
uses gRPC while it spawns, as the local kubelet's probes do. The signal follows the *thread*
that spawned the child (prctl(2)): spawn from a thread that lives as long as the children.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import pwd
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Self

_PR_SET_PDEATHSIG = 1
# Looked up here, once: between fork and exec the child must not load a library (another thread
# of this process may have held the loader's lock at the fork).
_PRCTL: Any = ctypes.CDLL(None).prctl if sys.platform.startswith("linux") else None


_SETPRIV = shutil.which("setpriv") if sys.platform.startswith("linux") else None


def _die_with_parent() -> None:  # runs in the child between fork and exec (no setpriv only)
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


class ManagedProcess:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str],
        log_file: Path,
        cwd: Path,
        *,
        user: str | None = None,
    ) -> None:
        """`user`: the OS user it runs as, with that user's group and no other (a server that
        refuses root); by default this process's."""
        self.name = name
        self.user = user
        self.argv = list(argv)
        self.env = dict(env)
        self.log_file = log_file
        self.cwd = cwd
        self.process: subprocess.Popen[bytes] | None = None
        #: Where this run's output starts in the log, which a restarted process appends to.
        self.log_offset = 0

    def start(self) -> Self:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as output:
            self.log_offset = output.tell()
            self.process = subprocess.Popen(
                [_SETPRIV, "--pdeathsig", "TERM", "--", *self.argv] if _SETPRIV else self.argv,
                cwd=self.cwd,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=None if _SETPRIV else _die_with_parent,
                # Its own session and process group: Ctrl-C reaches the supervisor only, which
                # stops its children in order.
                start_new_session=True,
                user=self.user,
                group=_primary_group(self.user) if self.user else None,
                extra_groups=[] if self.user else None,
            )
        return self

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def logs(self, tail: int = 4000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-tail:]
        except FileNotFoundError:
            return ""

    def run_output(self) -> str:
        """What this run (since the last start) has written."""
        try:
            with self.log_file.open("rb") as log:
                log.seek(self.log_offset)
                return log.read().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_line(self, prefix: str, timeout: float) -> str:
        """The first line of this run's log starting with `prefix`; fails with the log if the
        process dies."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for line in self.run_output().splitlines():
                if line.startswith(prefix):
                    return line
            if not self.running():
                raise RuntimeError(f"{self.name} exited ({self.returncode()}):\n{self.logs()}")
            time.sleep(0.05)
        raise RuntimeError(f"{self.name}: no {prefix!r} within {timeout}s:\n{self.logs()}")

    def returncode(self) -> int | None:
        return self.process.poll() if self.process else None

    def wait(self, timeout: float) -> int:
        """Its exit status, once it has exited (subprocess.TimeoutExpired after `timeout`)."""
        if self.process is None:
            raise RuntimeError(f"{self.name} was never started")
        return self.process.wait(timeout)

    def signal(self, signum: int) -> None:
        if self.running() and self.process is not None:
            self.process.send_signal(signum)

    def stop(self, timeout: float = 5.0) -> None:
        """SIGTERM, then SIGKILL for the whole process group after `timeout`."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._reap_group()

    def kill(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)
        self._reap_group()

    def _reap_group(self) -> None:
        # A child's own children (none today) would share its process group: end them too.
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
