"""A real Prometheus on this machine: Debian's `prometheus` package (2.42) and its `promtool`.

    prometheus = LocalPrometheus(PrometheusSettings(state=root / "var" / "mesh" / "prometheus",
                                                    targets=targets, rule_files=[rules]))
    prometheus.start()      # returns once /-/ready answers; refuses a busy address
    prometheus.client.query('sum(rate(istio_requests_total[1m]))')
    prometheus.stop()       # the process ends and its port closes; the data stays in `state`

Everything lives under the state directory: `prometheus.yml` (generated from the targets),
`data/` (the TSDB) and `prometheus.log`. A start that fails stops the process and removes what
it created, and says why: Prometheus not installed, the address taken (and by whom), a
configuration promtool rejects, or Prometheus' own last words.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shopmesh.launch.listeners import accepts_connections, holder
from shopmesh.launch.processes import ManagedProcess
from shopmesh.telemetry.query import PrometheusClient
from shopmesh.telemetry.targets import (
    DEFAULT_SCRAPE_INTERVAL,
    ScrapeTarget,
    prometheus_config,
    render_config,
)

DEFAULT_LISTEN = "127.0.0.1:9090"
INSTALL_HINT = (
    "install Debian's prometheus package (`apt-get install prometheus`; scripts/up and scripts/test do)"
)
#: How long a local Prometheus keeps samples: the longest window the SLO alerts read.
DEFAULT_RETENTION = "3d"


class PrometheusError(RuntimeError):
    """Prometheus could not be started, with the reason and what to do."""


class PrometheusNotFound(PrometheusError):
    pass


class AddressInUse(PrometheusError):
    pass


@dataclass(frozen=True)
class Binaries:
    prometheus: Path
    promtool: Path

    def promtool_run(self, *arguments: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        """`promtool <arguments>`, output captured (a check's result is its exit status and text)."""
        return subprocess.run(
            [str(self.promtool), *arguments],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


def find_binaries(search_path: str | None = None) -> Binaries:
    """`prometheus` and `promtool` from PATH (or `search_path`); PrometheusNotFound says how to
    install them."""
    found = {name: shutil.which(name, path=search_path) for name in ("prometheus", "promtool")}
    missing = [name for name, location in found.items() if location is None]
    if missing:
        raise PrometheusNotFound(f"{' and '.join(missing)} not found on PATH: {INSTALL_HINT}")
    return Binaries(prometheus=Path(str(found["prometheus"])), promtool=Path(str(found["promtool"])))


@dataclass
class PrometheusSettings:
    state: Path
    targets: Sequence[ScrapeTarget] = ()
    listen: str = DEFAULT_LISTEN
    rule_files: Sequence[Path] = ()
    scrape_interval: float = DEFAULT_SCRAPE_INTERVAL
    retention: str = DEFAULT_RETENTION

    @property
    def url(self) -> str:
        return f"http://{self.listen}"


class LocalPrometheus:
    def __init__(self, settings: PrometheusSettings, binaries: Binaries | None = None) -> None:
        self.settings = settings
        self._binaries = binaries
        self.process: ManagedProcess | None = None
        self.client = PrometheusClient(settings.url)

    @property
    def config_file(self) -> Path:
        return self.settings.state / "prometheus.yml"

    @property
    def data_directory(self) -> Path:
        return self.settings.state / "data"

    @property
    def log_file(self) -> Path:
        return self.settings.state / "prometheus.log"

    @property
    def url(self) -> str:
        return self.settings.url

    def start(self, timeout: float = 30.0) -> LocalPrometheus:
        """Writes the configuration, starts Prometheus and waits until it is ready."""
        settings = self.settings
        binaries = self._binaries or find_binaries()
        config = render_config(
            prometheus_config(
                settings.targets, rule_files=settings.rule_files, scrape_interval=settings.scrape_interval
            )
        )
        if accepts_connections(settings.listen):
            raise AddressInUse(in_use_message(settings.listen))
        created = _missing_directories(settings.state)
        try:
            settings.state.mkdir(parents=True, exist_ok=True)
            self.config_file.write_text(config)
            checked = binaries.promtool_run("check", "config", str(self.config_file))
            if checked.returncode != 0:
                raise PrometheusError(
                    f"promtool rejects {self.config_file}:\n{checked.stdout}{checked.stderr}"
                )
            self.process = ManagedProcess(
                "prometheus", self._argv(binaries), dict(os.environ), self.log_file, cwd=settings.state
            ).start()
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            for directory in created:  # what this start created, nothing that was there before
                shutil.rmtree(directory, ignore_errors=True)
            raise
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (Prometheus flushes and closes its TSDB), SIGKILL after `timeout`."""
        if self.process is not None:
            self.process.stop(timeout)
            self.process = None

    def running(self) -> bool:
        return self.process is not None and self.process.running()

    def __enter__(self) -> LocalPrometheus:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _argv(self, binaries: Binaries) -> list[str]:
        return [
            str(binaries.prometheus),
            f"--config.file={self.config_file}",
            f"--storage.tsdb.path={self.data_directory}",
            f"--storage.tsdb.retention.time={self.settings.retention}",
            # Two Prometheus on one state directory would corrupt it: the second one refuses.
            "--storage.tsdb.use-lockfile",
            f"--web.listen-address={self.settings.listen}",
        ]

    def _wait_ready(self, timeout: float) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.process.running():
                self._raise_exited()
            if self.client.ready():
                return
            time.sleep(0.1)
        raise PrometheusError(f"Prometheus not ready on {self.url} within {timeout}s:\n{self._log_tail()}")

    def _raise_exited(self) -> None:
        assert self.process is not None
        log = self._log_tail()
        if "address already in use" in log:
            raise AddressInUse(in_use_message(self.settings.listen))
        raise PrometheusError(f"Prometheus exited ({self.process.returncode()}):\n{log}")

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def in_use_message(address: str) -> str:
    held_by = holder(address)
    return (
        f"{address} is already in use{f' by {held_by}' if held_by else ''}: stop it or choose another address"
    )


def _missing_directories(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, outermost first."""
    missing = []
    for directory in [path, *path.parents]:
        if directory.exists():
            break
        missing.append(directory)
    return missing[::-1]
